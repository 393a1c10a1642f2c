//! Condition types, statuses and reasons on the database status, as types: a misspelt or
//! unknown one does not compile. Each condition type has one writer; each operator applies only
//! its own types (a list-map keyed by `type`).

/// A string-valued enum: `as_str` is the wire value, `parse` its inverse, `ALL` every value.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

/// Which operator writes a condition type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    Provisioner,
    OpsManager,
}

wire_enum!(
    /// `status.conditions[].type`.
    ConditionType {
        ProvisioningStarted = "ProvisioningStarted",
        TlsSecretsReady = "TLSSecretsReady",
        WorkloadReady = "WorkloadReady",
        Ready = "Ready",
        Provisioned = "Provisioned",
        Halted = "Halted",
        IssuerReady = "IssuerReady",
        CertificatesReady = "CertificatesReady",
        /// Every pod presents the current certificate of the server Secret.
        TlsServing = "TLSServing",
        /// An OpsRequest is changing the database's TLS (True while one runs).
        OpsRequestProgressing = "OpsRequestProgressing",
    }
);

impl ConditionType {
    pub const fn writer(self) -> Writer {
        match self {
            Self::IssuerReady
            | Self::CertificatesReady
            | Self::TlsServing
            | Self::OpsRequestProgressing => Writer::OpsManager,
            _ => Writer::Provisioner,
        }
    }

    /// Whether `reader` reads this type on a database's status (the others are dropped from its
    /// cache): its own, and for the ops-manager the provisioner's `WorkloadReady`, which an
    /// OpsRequest and a removal of `spec.tls` wait on.
    pub const fn read_by(self, reader: Writer) -> bool {
        match (self.writer(), reader) {
            (Writer::Provisioner, Writer::Provisioner)
            | (Writer::OpsManager, Writer::OpsManager) => true,
            (_, Writer::OpsManager) => matches!(self, Self::WorkloadReady),
            (_, Writer::Provisioner) => false,
        }
    }

    /// The types `writer` owns.
    pub fn of(writer: Writer) -> impl Iterator<Item = ConditionType> {
        Self::ALL
            .iter()
            .copied()
            .filter(move |t| t.writer() == writer)
    }
}

wire_enum!(
    /// `status.conditions[].status`.
    ConditionStatus {
        True = "True",
        False = "False",
        Unknown = "Unknown",
    }
);

wire_enum!(
    /// `status.conditions[].reason` (CamelCase, as Kubernetes expects), also the Event reason.
    Reason {
        // provisioner
        ProvisioningStarted = "DatabaseProvisioningStartedSuccessfully",
        WaitingForTlsSecrets = "WaitingForTLSSecrets",
        TlsSecretInvalid = "TLSSecretInvalid",
        TlsSecretsReady = "AllTLSSecretsReady",
        TlsNotConfigured = "TLSNotConfigured",
        WorkloadNotCreated = "WorkloadNotCreated",
        ReplicasNotReady = "ReplicasNotReady",
        AllReplicasReady = "AllReplicasReady",
        Provisioned = "DatabaseSuccessfullyProvisioned",
        InvalidSpec = "InvalidSpec",
        AuthSecretMissing = "AuthSecretMissing",
        AuthSecretInvalid = "AuthSecretInvalid",
        ImmutableFieldChanged = "ImmutableFieldChanged",
        NameConflict = "NameConflict",
        Halted = "DatabaseHalted",
        /// Deletion refused because `deletionPolicy` is DoNotTerminate.
        DeletionBlocked = "DeletionBlocked",
        // ops-manager
        IssuerNotFound = "IssuerNotFound",
        IssuerNotReady = "IssuerNotReady",
        InvalidIssuerRef = "InvalidIssuerRef",
        IssuerReady = "IssuerReady",
        WaitingForDatabaseObjects = "WaitingForDatabaseObjects",
        CertificatesNotReady = "CertificatesNotReady",
        CertificatesReady = "AllCertificatesReady",
        InvalidCertificateSpec = "InvalidCertificateSpec",
        UnknownAlias = "UnknownCertificateAlias",
        SecretNameConflict = "SecretNameConflict",
        /// An issuer change waits until every pod trusts the new issuer's CA.
        WaitingForCaTrust = "WaitingForCATrust",
        /// Event: the CAs the servers trust changed (widened for a change, narrowed after it).
        CaBundleUpdated = "CABundleUpdated",
        // ops-manager: what the running servers present
        CurrentCertificateServed = "CurrentCertificateServed",
        ReloadingCertificate = "ReloadingCertificate",
        RestartingForCertificate = "RestartingForCertificate",
        PodsNotReady = "PodsNotReady",
        ServingCheckFailed = "ServingCheckFailed",
        EvictionBlocked = "EvictionBlocked",
        /// Event: a pod reloaded its certificate and now presents the current one.
        CertificateReloaded = "CertificateReloaded",
        /// Event: the server refused to reload its certificate (the pod is restarted instead).
        CertificateReloadFailed = "CertificateReloadFailed",
        /// Event: a pod was evicted to start with the current certificate.
        PodEvictedForCertificate = "PodEvictedForCertificate",
        // ops-manager: OpsRequests, on the database
        OpsRequestRunning = "OpsRequestRunning",
        OpsRequestFinished = "OpsRequestFinished",
        // ops-manager: OpsRequests, on the request (KubeDB's condition types double as reasons)
        ReconfigureTls = "ReconfigureTLS",
        UpdateDatabase = "UpdateDatabase",
        IssueCertificatesSucceeded = "IssueCertificatesSucceeded",
        CertificateSynced = "CertificateSynced",
        DatabaseReady = "DatabaseReady",
        /// Waiting: another OpsRequest of the same database runs, or the database is not Ready.
        WaitingForOpsRequest = "WaitingForOpsRequest",
        WaitingForDatabase = "WaitingForDatabase",
        DatabaseNotFound = "DatabaseNotFound",
        NothingToDo = "NothingToDo",
        StepTimedOut = "StepTimedOut",
        InvalidOpsRequest = "InvalidOpsRequest",
        OpsRequestSucceeded = "Successful",
    }
);

wire_enum!(
    /// `status.conditions[].type` of an OpsRequest, one per step (KubeDB's names).
    OpsConditionType {
        /// The request started (its first step).
        ReconfigureTls = "ReconfigureTLS",
        /// The database's spec now says what the request asks for.
        UpdateDatabase = "UpdateDatabase",
        /// Rotation: re-issuance was asked of every Certificate.
        IssueCertificatesSucceeded = "IssueCertificatesSucceeded",
        /// Every Certificate is issued for the new settings.
        CertificateSynced = "CertificateSynced",
        /// Every pod runs the new settings and serves the current certificate.
        DatabaseReady = "DatabaseReady",
        /// Waiting to start (for another request, or for the database).
        Pending = "Pending",
        Successful = "Successful",
        Failed = "Failed",
        Skipped = "Skipped",
    }
);

impl Reason {
    /// Whether a False condition with this reason waits for a database's Certificates to be
    /// issued (the ops-manager for the provisioner's objects and then cert-manager, the
    /// provisioner for the Secrets): a wait whose message moves with every issuance, at
    /// cert-manager's pace.
    pub const fn is_issuance_wait(self) -> bool {
        matches!(
            self,
            Self::WaitingForTlsSecrets
                | Self::WaitingForDatabaseObjects
                | Self::CertificatesNotReady
        )
    }

    /// Whether an Event with this reason is a Warning: something the user has to fix, or a
    /// wait on the ops-manager's side that blocks issuance.
    pub const fn is_warning(self) -> bool {
        matches!(
            self,
            Self::InvalidSpec
                | Self::AuthSecretMissing
                | Self::AuthSecretInvalid
                | Self::TlsSecretInvalid
                | Self::ImmutableFieldChanged
                | Self::NameConflict
                | Self::DeletionBlocked
                | Self::IssuerNotFound
                | Self::IssuerNotReady
                | Self::InvalidIssuerRef
                | Self::WaitingForDatabaseObjects
                | Self::CertificatesNotReady
                | Self::InvalidCertificateSpec
                | Self::UnknownAlias
                | Self::SecretNameConflict
                | Self::ServingCheckFailed
                | Self::EvictionBlocked
                | Self::CertificateReloadFailed
                | Self::DatabaseNotFound
                | Self::StepTimedOut
                | Self::InvalidOpsRequest
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip_and_are_unique() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(*reason));
            let same = Reason::ALL.iter().filter(|r| r.as_str() == reason.as_str());
            assert_eq!(same.count(), 1, "{reason}");
        }
        for type_ in ConditionType::ALL {
            assert_eq!(ConditionType::parse(type_.as_str()), Some(*type_));
        }
        assert_eq!(Reason::parse("Misspelt"), None);
        assert_eq!(ConditionType::TlsSecretsReady.as_str(), "TLSSecretsReady");
    }

    #[test]
    fn each_operator_reads_its_own_types_and_the_ops_manager_also_workload_ready() {
        let read = |reader| {
            ConditionType::ALL
                .iter()
                .copied()
                .filter(move |t| t.read_by(reader))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            read(Writer::Provisioner),
            ConditionType::of(Writer::Provisioner).collect::<Vec<_>>()
        );
        assert_eq!(
            read(Writer::OpsManager),
            [
                ConditionType::WorkloadReady,
                ConditionType::IssuerReady,
                ConditionType::CertificatesReady,
                ConditionType::TlsServing,
                ConditionType::OpsRequestProgressing
            ]
        );
    }

    #[test]
    fn each_type_has_one_writer() {
        let ops: Vec<_> = ConditionType::of(Writer::OpsManager).collect();
        assert_eq!(
            ops,
            [
                ConditionType::IssuerReady,
                ConditionType::CertificatesReady,
                ConditionType::TlsServing,
                ConditionType::OpsRequestProgressing
            ]
        );
        assert_eq!(
            ConditionType::of(Writer::Provisioner).count() + ops.len(),
            ConditionType::ALL.len()
        );
    }

    #[test]
    fn user_errors_are_warnings_and_progress_is_not() {
        assert!(Reason::NameConflict.is_warning());
        assert!(Reason::CertificatesNotReady.is_warning());
        assert!(!Reason::WaitingForTlsSecrets.is_warning());
        assert!(!Reason::AllReplicasReady.is_warning());
    }
}
