//! `--workload=auto|statefulset|petset`: which API the workload of each kind is written in.
use dbtls_contract::DbKind;
use dbtls_contract::kinds::WorkloadKind;

/// The `--workload` flag.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkloadFlag {
    /// PetSet for the kinds KubeDB runs on PetSets when the PetSet API is served, else StatefulSet.
    #[default]
    Auto,
    Statefulset,
    Petset,
}

/// The API a workload is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadApi {
    StatefulSet,
    PetSet,
}

impl WorkloadApi {
    pub fn kind(self) -> &'static str {
        match self {
            WorkloadApi::StatefulSet => "StatefulSet",
            WorkloadApi::PetSet => "PetSet",
        }
    }
}

/// The workload API for `kind` and why, for the WorkloadReady message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadChoice {
    pub api: WorkloadApi,
    pub why: &'static str,
}

/// Decides the API once at start (discovery says whether PetSets are served).
pub fn choose(flag: WorkloadFlag, kind: DbKind, petsets_served: bool) -> WorkloadChoice {
    match flag {
        WorkloadFlag::Statefulset => WorkloadChoice {
            api: WorkloadApi::StatefulSet,
            why: "--workload=statefulset",
        },
        WorkloadFlag::Petset => WorkloadChoice {
            api: WorkloadApi::PetSet,
            why: "--workload=petset",
        },
        WorkloadFlag::Auto => match (kind.profile().workload, petsets_served) {
            (WorkloadKind::PetSet, true) => WorkloadChoice {
                api: WorkloadApi::PetSet,
                why: "--workload=auto: KubeDB runs this kind on a PetSet and apps.k8s.appscode.com/v1 petsets is served",
            },
            (WorkloadKind::PetSet, false) => WorkloadChoice {
                api: WorkloadApi::StatefulSet,
                why: "--workload=auto: apps.k8s.appscode.com/v1 petsets is not served",
            },
            (WorkloadKind::StatefulSet, _) => WorkloadChoice {
                api: WorkloadApi::StatefulSet,
                why: "--workload=auto: this kind runs on a StatefulSet",
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_uses_petsets_only_where_kubedb_does_and_they_are_served() {
        let api = |kind, served| choose(WorkloadFlag::Auto, kind, served).api;
        assert_eq!(api(DbKind::MSSQLServer, true), WorkloadApi::PetSet);
        assert_eq!(api(DbKind::MSSQLServer, false), WorkloadApi::StatefulSet);
        assert_eq!(api(DbKind::MySQL, true), WorkloadApi::StatefulSet);
        assert_eq!(
            choose(WorkloadFlag::Petset, DbKind::MySQL, false).api,
            WorkloadApi::PetSet
        );
    }
}
