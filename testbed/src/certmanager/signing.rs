//! Building and signing leaves as cert-manager's CA and SelfSigned issuers do (reference §5):
//! subject and SANs from the spec, random 20-byte serial, validity now..now+duration, key usages
//! and EKUs from `usages`, BasicConstraints always, chain and `ca.crt` from the CA Secret.
use chrono::{DateTime, Utc};
use dbtls_contract::certmanager::CertificateSpec;
use rand::RngCore as _;
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DnType, ExtendedKeyUsagePurpose,
    IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;

use super::inspect::{self, pem_certificates};
use super::spec;

/// The directory URL of the stand-in's own ACME server: an ACME issuer naming it is Ready and
/// issues from a public-like CA, as an ACME CA such as Let's Encrypt would: the chain without
/// its root, and no `ca.crt`. Any other ACME server is refused (no solver reaches a database).
pub const STAND_IN_ACME_SERVER: &str = "https://acme.stand-in.dbtls.invalid/directory";

/// The stand-in ACME server's CA, made once per process.
fn acme_ca() -> Result<&'static (KeyPair, Vec<u8>), String> {
    static CA: std::sync::OnceLock<Result<(KeyPair, Vec<u8>), String>> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, "dbtls stand-in ACME CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).map_err(|e| e.to_string())?;
        Ok((key, cert.der().to_vec()))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Who signs: a CA key pair with its chain, the leaf's own key, or the stand-in's ACME server.
pub enum Signer {
    /// Leaves signed by the stand-in ACME server's CA, issued without `ca.crt`.
    Acme,
    Ca {
        /// `tls.crt` of the CA Secret followed by its `ca.crt`, as DER.
        chain: Vec<Vec<u8>>,
        key: KeyPair,
        crl_distribution_points: Vec<String>,
    },
    SelfSigned {
        crl_distribution_points: Vec<String>,
    },
}

/// The PEM data of an issued certificate.
pub struct Issued {
    /// Leaf then intermediates.
    pub tls_crt: String,
    /// Empty when the issuer gives no CA (ACME): the Secret then has no `ca.crt`.
    pub ca_crt: String,
}

fn der_to_pem(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der.to_vec()), config)
}

/// Go's `x509.CreateCertificate` serial: 20 random bytes, top bit cleared (kept minimal by
/// never starting with a zero byte).
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    SerialNumber::from_slice(&bytes)
}

fn key_usage(name: &str) -> Option<KeyUsagePurpose> {
    Some(match name {
        "digital signature" => KeyUsagePurpose::DigitalSignature,
        "content commitment" => KeyUsagePurpose::ContentCommitment,
        "key encipherment" => KeyUsagePurpose::KeyEncipherment,
        "key agreement" => KeyUsagePurpose::KeyAgreement,
        "data encipherment" => KeyUsagePurpose::DataEncipherment,
        "cert sign" => KeyUsagePurpose::KeyCertSign,
        "crl sign" => KeyUsagePurpose::CrlSign,
        "encipher only" => KeyUsagePurpose::EncipherOnly,
        "decipher only" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

fn extended_key_usage(name: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match name {
        "any" => ExtendedKeyUsagePurpose::Any,
        "server auth" => ExtendedKeyUsagePurpose::ServerAuth,
        "client auth" => ExtendedKeyUsagePurpose::ClientAuth,
        "code signing" => ExtendedKeyUsagePurpose::CodeSigning,
        "email protection" => ExtendedKeyUsagePurpose::EmailProtection,
        "timestamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocsp" => ExtendedKeyUsagePurpose::OcspSigning,
        _ => return None,
    })
}

/// The leaf's parameters (everything but the signature).
pub fn params(
    cert: &CertificateSpec,
    now: DateTime<Utc>,
    crl_distribution_points: &[String],
) -> Result<CertificateParams, String> {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    let subject = cert.subject.clone().unwrap_or_default();
    // Go's pkix.Name order: C, ST, L, street, postalCode, O, OU, CN, serialNumber.
    let attributes: [(DnType, Option<&str>); 9] = [
        (DnType::CountryName, spec::first(&subject.countries)),
        (DnType::StateOrProvinceName, spec::first(&subject.provinces)),
        (DnType::LocalityName, spec::first(&subject.localities)),
        (
            DnType::CustomDnType(vec![2, 5, 4, 9]),
            spec::first(&subject.street_addresses),
        ),
        (
            DnType::CustomDnType(vec![2, 5, 4, 17]),
            spec::first(&subject.postal_codes),
        ),
        (
            DnType::OrganizationName,
            spec::first(&subject.organizations),
        ),
        (
            DnType::OrganizationalUnitName,
            spec::first(&subject.organizational_units),
        ),
        (
            DnType::CommonName,
            cert.common_name.as_deref().filter(|c| !c.is_empty()),
        ),
        (
            DnType::CustomDnType(vec![2, 5, 4, 5]),
            subject.serial_number.as_deref().filter(|s| !s.is_empty()),
        ),
    ];
    for (ty, value) in attributes {
        if let Some(value) = value {
            p.distinguished_name.push(ty, value);
        }
    }
    let ia5 = |s: &str| {
        rcgen::string::Ia5String::try_from(s.to_string()).map_err(|e| format!("{s:?}: {e}"))
    };
    for dns in cert.dns_names.iter().flatten() {
        p.subject_alt_names.push(SanType::DnsName(ia5(dns)?));
    }
    for ip in cert.ip_addresses.iter().flatten() {
        let addr = ip
            .parse()
            .map_err(|_| format!("invalid IP address {ip:?}"))?;
        p.subject_alt_names.push(SanType::IpAddress(addr));
    }
    for uri in cert.uris.iter().flatten() {
        p.subject_alt_names.push(SanType::URI(ia5(uri)?));
    }
    for email in cert.email_addresses.iter().flatten() {
        p.subject_alt_names.push(SanType::Rfc822Name(ia5(email)?));
    }
    let now_s = now.timestamp();
    p.not_before = time::OffsetDateTime::from_unix_timestamp(now_s).map_err(|e| e.to_string())?;
    let lifetime = i64::try_from(spec::duration(cert).as_secs()).map_err(|e| e.to_string())?;
    p.not_after =
        time::OffsetDateTime::from_unix_timestamp(now_s + lifetime).map_err(|e| e.to_string())?;
    p.serial_number = Some(random_serial());
    let usages = spec::effective_usages(cert);
    p.key_usages = usages.iter().filter_map(|u| key_usage(u)).collect();
    p.extended_key_usages = usages
        .iter()
        .filter_map(|u| extended_key_usage(u))
        .collect();
    p.is_ca = if cert.is_ca == Some(true) {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::ExplicitNoCa
    };
    p.use_authority_key_identifier_extension = true;
    if !crl_distribution_points.is_empty() {
        p.crl_distribution_points = vec![CrlDistributionPoint {
            uris: crl_distribution_points.to_vec(),
        }];
    }
    Ok(p)
}

/// Signs a leaf for `leaf_key` per `cert`.
pub fn sign(
    cert: &CertificateSpec,
    leaf_key: &KeyPair,
    signer: &Signer,
    now: DateTime<Utc>,
) -> Result<Issued, String> {
    match signer {
        Signer::Acme => {
            let (key, ca_der) = acme_ca()?;
            let p = params(cert, now, &[])?;
            let issuer =
                rcgen::Issuer::from_ca_cert_der(&CertificateDer::from(ca_der.as_slice()), key)
                    .map_err(|e| format!("parsing the ACME CA certificate: {e}"))?;
            let leaf = p.signed_by(leaf_key, &issuer).map_err(|e| e.to_string())?;
            Ok(Issued {
                tls_crt: der_to_pem(leaf.der()),
                ca_crt: String::new(),
            })
        }
        Signer::SelfSigned {
            crl_distribution_points,
        } => {
            let p = params(cert, now, crl_distribution_points)?;
            let issued = p.self_signed(leaf_key).map_err(|e| e.to_string())?;
            let pem = der_to_pem(issued.der());
            Ok(Issued {
                tls_crt: pem.clone(),
                ca_crt: pem,
            })
        }
        Signer::Ca {
            chain,
            key,
            crl_distribution_points,
        } => {
            let ca_der = chain.first().ok_or("the CA Secret holds no certificate")?;
            let p = params(cert, now, crl_distribution_points)?;
            let issuer =
                rcgen::Issuer::from_ca_cert_der(&CertificateDer::from(ca_der.as_slice()), key)
                    .map_err(|e| format!("parsing the CA certificate: {e}"))?;
            let leaf = p.signed_by(leaf_key, &issuer).map_err(|e| e.to_string())?;
            let path = path_to_root(chain);
            let mut tls_crt = der_to_pem(leaf.der());
            for der in &path {
                if !self_signed(der) {
                    tls_crt.push_str(&der_to_pem(der));
                }
            }
            let top = path.last().unwrap_or(ca_der);
            Ok(Issued {
                tls_crt,
                ca_crt: der_to_pem(top),
            })
        }
    }
}

fn self_signed(der: &[u8]) -> bool {
    inspect::facts(der).is_some_and(|f| f.subject_der == f.issuer_der)
        && inspect::signed_by(der, der)
}

/// The CA certificate and the certificates above it, linked by signature (cert-manager's
/// `ParseSingleCertificateChain`, simplified to a walk up from the CA).
fn path_to_root(pool: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let Some(first) = pool.first() else {
        return Vec::new();
    };
    let mut path = vec![first.clone()];
    while path.len() <= pool.len() {
        let Some(current) = path.last() else { break };
        if self_signed(current) {
            break;
        }
        let Some(current_facts) = inspect::facts(current) else {
            break;
        };
        let parent = pool.iter().find(|cand| {
            !path.contains(cand)
                && inspect::facts(cand).is_some_and(|f| f.subject_der == current_facts.issuer_der)
                && inspect::signed_by(current, cand)
        });
        match parent {
            Some(p) => path.push(p.clone()),
            None => break,
        }
    }
    path
}

/// The DER certificates of a CA Secret: `tls.crt` then `ca.crt`, de-duplicated.
pub fn ca_pool(tls_crt: &[u8], ca_crt: Option<&[u8]>) -> Vec<Vec<u8>> {
    let mut pool = pem_certificates(tls_crt);
    for der in ca_crt.map(pem_certificates).unwrap_or_default() {
        if !pool.contains(&der) {
            pool.push(der);
        }
    }
    pool
}
