//! Condition types and reasons on the database status. Each operator applies only its own types.

/// Condition types written by the provisioner.
pub mod provisioner {
    pub const PROVISIONING_STARTED: &str = "ProvisioningStarted";
    pub const TLS_SECRETS_READY: &str = "TLSSecretsReady";
    pub const WORKLOAD_READY: &str = "WorkloadReady";
    pub const READY: &str = "Ready";
    pub const PROVISIONED: &str = "Provisioned";
    pub const HALTED: &str = "Halted";
    /// All types the provisioner owns (so it never touches the others).
    pub const ALL: [&str; 6] = [
        PROVISIONING_STARTED,
        TLS_SECRETS_READY,
        WORKLOAD_READY,
        READY,
        PROVISIONED,
        HALTED,
    ];
}

/// Condition types written by the ops-manager.
pub mod ops_manager {
    pub const ISSUER_READY: &str = "IssuerReady";
    pub const CERTIFICATES_READY: &str = "CertificatesReady";
    pub const ALL: [&str; 2] = [ISSUER_READY, CERTIFICATES_READY];
}

/// Reasons (CamelCase, as Kubernetes expects).
pub mod reasons {
    // provisioner
    pub const PROVISIONING_STARTED: &str = "DatabaseProvisioningStartedSuccessfully";
    pub const WAITING_FOR_TLS_SECRETS: &str = "WaitingForTLSSecrets";
    pub const TLS_SECRET_INVALID: &str = "TLSSecretInvalid";
    pub const TLS_SECRETS_READY: &str = "AllTLSSecretsReady";
    pub const TLS_NOT_CONFIGURED: &str = "TLSNotConfigured";
    pub const WORKLOAD_CREATED: &str = "WorkloadCreated";
    pub const WORKLOAD_NOT_CREATED: &str = "WorkloadNotCreated";
    pub const REPLICAS_NOT_READY: &str = "ReplicasNotReady";
    pub const ALL_REPLICAS_READY: &str = "AllReplicasReady";
    pub const PROVISIONED: &str = "DatabaseSuccessfullyProvisioned";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const AUTH_SECRET_MISSING: &str = "AuthSecretMissing";
    pub const AUTH_SECRET_INVALID: &str = "AuthSecretInvalid";
    pub const IMMUTABLE_FIELD_CHANGED: &str = "ImmutableFieldChanged";
    pub const NAME_CONFLICT: &str = "NameConflict";
    pub const HALTED: &str = "DatabaseHalted";
    /// Deletion refused because `deletionPolicy` is DoNotTerminate.
    pub const DELETION_BLOCKED: &str = "DeletionBlocked";
    // ops-manager
    pub const ISSUER_NOT_FOUND: &str = "IssuerNotFound";
    pub const ISSUER_NOT_READY: &str = "IssuerNotReady";
    pub const INVALID_ISSUER_REF: &str = "InvalidIssuerRef";
    pub const ISSUER_READY: &str = "IssuerReady";
    pub const WAITING_FOR_DATABASE_OBJECTS: &str = "WaitingForDatabaseObjects";
    pub const CERTIFICATES_NOT_READY: &str = "CertificatesNotReady";
    pub const CERTIFICATES_READY: &str = "AllCertificatesReady";
    pub const INVALID_CERTIFICATE_SPEC: &str = "InvalidCertificateSpec";
    pub const UNKNOWN_ALIAS: &str = "UnknownCertificateAlias";
    pub const SECRET_NAME_CONFLICT: &str = "SecretNameConflict";
}

pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";
