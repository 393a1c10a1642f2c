//! Writes the database and OpsRequest CRDs to `deploy/crds/` and to the Helm chart's copy
//! (`deploy/helm/dbtls/files/crds/`), or only to the directory given as the first argument.
use std::path::PathBuf;

use anyhow::Context;
use dbtls_contract::crd;

fn main() -> anyhow::Result<()> {
    let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let dirs = match std::env::args().nth(1) {
        Some(dir) => vec![PathBuf::from(dir)],
        // A chart cannot read files outside itself, so it carries its own copy.
        None => vec![deploy.join("crds"), deploy.join("helm/dbtls/files/crds")],
    };
    for dir in dirs {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for definition in crd::all_crds() {
            let path = dir.join(crd::file_name(&definition));
            std::fs::write(&path, crd::render(&definition)?)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
