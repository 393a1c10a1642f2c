//! Writes the database CRDs to `deploy/crds/` (or the directory given as the first argument).
use std::path::PathBuf;

use anyhow::Context;
use shared_types::crd;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for definition in crd::database_crds() {
        let path = dir.join(crd::file_name(&definition));
        std::fs::write(&path, crd::render(&definition)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
