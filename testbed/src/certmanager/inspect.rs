//! Reading issued certificates: the facts cert-manager puts in Secret annotations and compares
//! against the spec when it decides whether to re-issue.
use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

/// What the stand-in needs to know about one certificate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CertFacts {
    pub common_name: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub uris: Vec<String>,
    pub email_addresses: Vec<String>,
    pub organizations: Vec<String>,
    pub organizational_units: Vec<String>,
    pub countries: Vec<String>,
    pub provinces: Vec<String>,
    pub localities: Vec<String>,
    pub street_addresses: Vec<String>,
    pub postal_codes: Vec<String>,
    pub serial_number: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub is_ca: bool,
    /// cert-manager usage names (`digital signature`, `server auth`, ...).
    pub usages: BTreeSet<String>,
    pub spki_der: Vec<u8>,
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
}

/// The DER certificates of a PEM bundle, in order; unparseable blocks are skipped.
pub fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

const OID_STREET: &str = "2.5.4.9";
const OID_POSTAL_CODE: &str = "2.5.4.17";
const OID_SERIAL_NUMBER: &str = "2.5.4.5";

fn values_of(cert: &X509Certificate<'_>, oid: &str) -> Vec<String> {
    cert.subject()
        .iter_attributes()
        .filter(|a| a.attr_type().to_id_string() == oid)
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect()
}

fn ip_string(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => {
            let a: [u8; 4] = bytes.try_into().ok()?;
            Some(IpAddr::from(a).to_string())
        }
        16 => {
            let a: [u8; 16] = bytes.try_into().ok()?;
            Some(IpAddr::from(a).to_string())
        }
        _ => None,
    }
}

/// Parses one DER certificate.
pub fn facts(der: &[u8]) -> Option<CertFacts> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut f = CertFacts {
        common_name: values_of(&cert, "2.5.4.3")
            .into_iter()
            .next()
            .unwrap_or_default(),
        organizations: values_of(&cert, "2.5.4.10"),
        organizational_units: values_of(&cert, "2.5.4.11"),
        countries: values_of(&cert, "2.5.4.6"),
        provinces: values_of(&cert, "2.5.4.8"),
        localities: values_of(&cert, "2.5.4.7"),
        street_addresses: values_of(&cert, OID_STREET),
        postal_codes: values_of(&cert, OID_POSTAL_CODE),
        serial_number: values_of(&cert, OID_SERIAL_NUMBER)
            .into_iter()
            .next()
            .unwrap_or_default(),
        not_before: DateTime::from_timestamp(cert.validity().not_before.timestamp(), 0)?,
        not_after: DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)?,
        is_ca: cert.is_ca(),
        spki_der: cert.public_key().raw.to_vec(),
        subject_der: cert.subject().as_raw().to_vec(),
        issuer_der: cert.issuer().as_raw().to_vec(),
        ..CertFacts::default()
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => f.dns_names.push(n.to_string()),
                GeneralName::IPAddress(ip) => f.ip_addresses.extend(ip_string(ip)),
                GeneralName::URI(u) => f.uris.push(u.to_string()),
                GeneralName::RFC822Name(e) => f.email_addresses.push(e.to_string()),
                _ => {}
            }
        }
    }
    if let Ok(Some(ku)) = cert.key_usage() {
        let ku = ku.value;
        for (set, name) in [
            (ku.digital_signature(), "digital signature"),
            (ku.non_repudiation(), "content commitment"),
            (ku.key_encipherment(), "key encipherment"),
            (ku.data_encipherment(), "data encipherment"),
            (ku.key_agreement(), "key agreement"),
            (ku.key_cert_sign(), "cert sign"),
            (ku.crl_sign(), "crl sign"),
            (ku.encipher_only(), "encipher only"),
            (ku.decipher_only(), "decipher only"),
        ] {
            if set {
                f.usages.insert(name.to_string());
            }
        }
    }
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        let eku = eku.value;
        for (set, name) in [
            (eku.any, "any"),
            (eku.server_auth, "server auth"),
            (eku.client_auth, "client auth"),
            (eku.code_signing, "code signing"),
            (eku.email_protection, "email protection"),
            (eku.time_stamping, "timestamping"),
            (eku.ocsp_signing, "ocsp"),
        ] {
            if set {
                f.usages.insert(name.to_string());
            }
        }
    }
    Some(f)
}

/// Whether the certificate's signature verifies with `issuer`'s public key.
pub fn signed_by(der: &[u8], issuer_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, issuer))) = (
        X509Certificate::from_der(der),
        X509Certificate::from_der(issuer_der),
    ) else {
        return false;
    };
    cert.verify_signature(Some(issuer.public_key())).is_ok()
}
