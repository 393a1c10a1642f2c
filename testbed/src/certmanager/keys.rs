//! Private keys as cert-manager makes them: generation per `spec.privateKey`, PEM in the
//! requested encoding (PKCS#1 / SEC1 by default, PKCS#8 on request), and the facts the
//! re-issuance checks compare (algorithm, size).
use std::sync::{Arc, Mutex};

use dbtls_contract::certmanager::CertificatePrivateKey;
use rcgen::{KeyPair, PublicKeyData as _, RsaKeySize, SignatureAlgorithm};

/// The key a Certificate asks for, with cert-manager's defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    Rsa(u32),
    Ecdsa(u32),
    Ed25519,
}

/// How `tls.key` is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// `RSA PRIVATE KEY` / `EC PRIVATE KEY` (Ed25519 is always PKCS#8).
    Pkcs1,
    /// `PRIVATE KEY`.
    Pkcs8,
}

impl KeySpec {
    /// Applies cert-manager's defaults (RSA 2048, ECDSA 256); unknown algorithms are an error.
    pub fn from_spec(pk: Option<&CertificatePrivateKey>) -> Result<KeySpec, String> {
        let algorithm = pk.and_then(|p| p.algorithm.as_deref()).unwrap_or("RSA");
        let size = pk.and_then(|p| p.size).filter(|s| *s != 0);
        match algorithm {
            "RSA" | "" => match size.unwrap_or(2048) {
                s @ (2048 | 3072 | 4096) => Ok(KeySpec::Rsa(s as u32)),
                s => Err(format!(
                    "spec.privateKey.size: RSA key size {s} is not supported by the stand-in (2048, 3072, 4096)"
                )),
            },
            "ECDSA" => match size.unwrap_or(256) {
                s @ (256 | 384 | 521) => Ok(KeySpec::Ecdsa(s as u32)),
                s => Err(format!(
                    "spec.privateKey.size: Unsupported value: {s}: supported values: \"256\", \"384\", \"521\""
                )),
            },
            "Ed25519" => Ok(KeySpec::Ed25519),
            other => Err(format!(
                "spec.privateKey.algorithm: Unsupported value: \"{other}\": supported values: \"RSA\", \"ECDSA\", \"Ed25519\""
            )),
        }
    }

    /// The signature algorithm cert-manager picks for a key of this type when it signs.
    pub fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeySpec::Rsa(s) if s >= 4096 => &rcgen::PKCS_RSA_SHA512,
            KeySpec::Rsa(s) if s >= 3072 => &rcgen::PKCS_RSA_SHA384,
            KeySpec::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
            KeySpec::Ecdsa(521) => &rcgen::PKCS_ECDSA_P521_SHA512,
            KeySpec::Ecdsa(384) => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeySpec::Ecdsa(_) => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeySpec::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    /// The spec of an existing key (from its SubjectPublicKeyInfo).
    pub fn of_key(key: &KeyPair) -> Option<KeySpec> {
        use x509_parser::prelude::FromDer as _;
        let spki_der = key.subject_public_key_info();
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki_der).ok()?;
        match spki.parsed().ok()? {
            x509_parser::public_key::PublicKey::RSA(rsa) => {
                Some(KeySpec::Rsa(rsa.key_size() as u32))
            }
            x509_parser::public_key::PublicKey::EC(point) => {
                Some(KeySpec::Ecdsa(match point.key_size() {
                    0..=256 => 256,
                    257..=384 => 384,
                    _ => 521,
                }))
            }
            _ if key.algorithm() == &rcgen::PKCS_ED25519 => Some(KeySpec::Ed25519),
            _ => None,
        }
    }

    /// Generates a fresh key.
    pub fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            KeySpec::Rsa(size) => {
                let size = match size {
                    3072 => RsaKeySize::_3072,
                    4096 => RsaKeySize::_4096,
                    _ => RsaKeySize::_2048,
                };
                KeyPair::generate_rsa_for(self.signature_algorithm(), size)
            }
            _ => KeyPair::generate_for(self.signature_algorithm()),
        }
    }
}

impl KeyEncoding {
    pub fn from_spec(pk: Option<&CertificatePrivateKey>) -> Result<KeyEncoding, String> {
        match pk.and_then(|p| p.encoding.as_deref()).unwrap_or("PKCS1") {
            "PKCS1" | "" => Ok(KeyEncoding::Pkcs1),
            "PKCS8" => Ok(KeyEncoding::Pkcs8),
            other => Err(format!(
                "spec.privateKey.encoding: Unsupported value: \"{other}\": supported values: \"PKCS1\", \"PKCS8\""
            )),
        }
    }
}

/// Parses a PEM private key in any of the encodings cert-manager writes. The key is held as
/// PKCS#8 whatever the input, so that [`encode_pem`] can re-encode it.
pub fn parse_pem(text: &str) -> Option<KeyPair> {
    let block = pem::parse(text).ok()?;
    let pkcs8 = match block.tag() {
        "RSA PRIVATE KEY" => der::pkcs8_wrap(der::OID_RSA_ENCRYPTION, None, block.contents()),
        "EC PRIVATE KEY" => {
            let curve = der::sec1_curve(block.contents())?;
            der::pkcs8_wrap(der::OID_EC_PUBLIC_KEY, Some(curve), block.contents())
        }
        _ => block.contents().to_vec(),
    };
    let key = KeyPair::try_from(pkcs8.as_slice()).ok()?;
    // Re-load with the signature algorithm cert-manager would use for this key size.
    let spec = KeySpec::of_key(&key)?;
    if key.algorithm() == spec.signature_algorithm() {
        return Some(key);
    }
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8);
    KeyPair::from_pkcs8_der_and_sign_algo(&der, spec.signature_algorithm())
        .ok()
        .or(Some(key))
}

/// The PEM of `key` in `encoding` (Go's `x509.MarshalPKCS1PrivateKey` /
/// `MarshalECPrivateKey` / `MarshalPKCS8PrivateKey` output).
pub fn encode_pem(key: &KeyPair, encoding: KeyEncoding) -> Result<String, String> {
    if encoding == KeyEncoding::Pkcs8 || key.algorithm() == &rcgen::PKCS_ED25519 {
        return Ok(key.serialize_pem());
    }
    let pkcs8 = key.serialize_der();
    let info = der::PrivateKeyInfo::parse(&pkcs8).ok_or("unparseable PKCS#8 key")?;
    match info.algorithm_oid {
        der::OID_RSA_ENCRYPTION => Ok(pem_block("RSA PRIVATE KEY", info.private_key)),
        der::OID_EC_PUBLIC_KEY => {
            let curve = info.parameters.ok_or("EC key without a named curve")?;
            let sec1 = der::sec1_with_curve(info.private_key, curve)
                .ok_or("unparseable EC private key")?;
            Ok(pem_block("EC PRIVATE KEY", &sec1))
        }
        _ => Ok(key.serialize_pem()),
    }
}

fn pem_block(tag: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der.to_vec()), config)
}

/// Just enough DER to unwrap PKCS#8 and to add the named curve to SEC1 as Go does.
mod der {
    pub const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    pub const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

    /// Splits one TLV: (tag, content, rest).
    pub fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    pub struct PrivateKeyInfo<'a> {
        pub algorithm_oid: &'a [u8],
        /// The named-curve OID content for EC keys.
        pub parameters: Option<&'a [u8]>,
        pub private_key: &'a [u8],
    }

    impl<'a> PrivateKeyInfo<'a> {
        pub fn parse(der: &'a [u8]) -> Option<PrivateKeyInfo<'a>> {
            let (0x30, body, _) = tlv(der)? else {
                return None;
            };
            let (0x02, _version, rest) = tlv(body)? else {
                return None;
            };
            let (0x30, algorithm, rest) = tlv(rest)? else {
                return None;
            };
            let (0x04, private_key, _) = tlv(rest)? else {
                return None;
            };
            let (0x06, algorithm_oid, params) = tlv(algorithm)? else {
                return None;
            };
            let parameters = match tlv(params) {
                Some((0x06, oid, _)) => Some(oid),
                _ => None,
            };
            Some(PrivateKeyInfo {
                algorithm_oid,
                parameters,
                private_key,
            })
        }
    }

    /// PrivateKeyInfo { 0, { algorithm, parameters }, privateKey }.
    pub fn pkcs8_wrap(algorithm: &[u8], curve: Option<&[u8]>, private_key: &[u8]) -> Vec<u8> {
        let mut alg = encode(0x06, algorithm);
        match curve {
            Some(oid) => alg.extend(encode(0x06, oid)),
            None => alg.extend([0x05, 0x00]),
        }
        let mut content = encode(0x02, &[0]);
        content.extend(encode(0x30, &alg));
        content.extend(encode(0x04, private_key));
        encode(0x30, &content)
    }

    /// The named-curve OID inside a SEC1 ECPrivateKey.
    pub fn sec1_curve(sec1: &[u8]) -> Option<&[u8]> {
        let (0x30, body, _) = tlv(sec1)? else {
            return None;
        };
        let (_, _, rest) = tlv(body)?;
        let (_, _, mut rest) = tlv(rest)?;
        while !rest.is_empty() {
            let (tag, content, next) = tlv(rest)?;
            if tag == 0xa0 {
                let (0x06, oid, _) = tlv(content)? else {
                    return None;
                };
                return Some(oid);
            }
            rest = next;
        }
        None
    }

    /// ECPrivateKey { version, privateKey, [0] namedCurve, [1] publicKey }, as Go writes it.
    pub fn sec1_with_curve(inner: &[u8], curve_oid: &[u8]) -> Option<Vec<u8>> {
        let (0x30, body, _) = tlv(inner)? else {
            return None;
        };
        let (0x02, version, rest) = tlv(body)? else {
            return None;
        };
        let (0x04, key, mut rest) = tlv(rest)? else {
            return None;
        };
        let mut public_key = None;
        while !rest.is_empty() {
            let (tag, content, next) = tlv(rest)?;
            if tag == 0xa1 {
                public_key = Some(content);
            }
            rest = next;
        }
        let mut content = encode(0x02, version);
        content.extend(encode(0x04, key));
        content.extend(encode(0xa0, &encode(0x06, curve_oid)));
        if let Some(pk) = public_key {
            content.extend(encode(0xa1, pk));
        }
        Some(encode(0x30, &content))
    }
}

/// RSA-2048 keys generated ahead of time, each handed out once: a stock given at start (the
/// benchmark's keys, made before its clock starts) and a background thread that keeps about 64
/// more ready once the stock runs out.
#[derive(Clone, Default)]
pub struct KeyPool {
    keys: Arc<Mutex<Vec<KeyPair>>>,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ready = self.keys.lock().map(|k| k.len()).unwrap_or(0);
        f.debug_struct("KeyPool").field("ready", &ready).finish()
    }
}

const POOL_TARGET: usize = 64;

impl KeyPool {
    /// Starts a background thread that keeps about 64 keys ready; it ends with the pool.
    pub fn start() -> KeyPool {
        Self::start_with(Vec::new())
    }

    /// A pool that hands out `stock` first, refilled in the background as [`KeyPool::start`].
    pub fn start_with(stock: Vec<KeyPair>) -> KeyPool {
        let pool = KeyPool {
            keys: Arc::new(Mutex::new(stock)),
        };
        let weak = Arc::downgrade(&pool.keys);
        std::thread::spawn(move || {
            loop {
                let ready = match weak.upgrade() {
                    Some(keys) => keys.lock().map(|k| k.len()).unwrap_or(POOL_TARGET),
                    None => return,
                };
                if ready >= POOL_TARGET {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                }
                let Ok(key) = KeySpec::Rsa(2048).generate() else {
                    return;
                };
                match weak.upgrade() {
                    Some(keys) => {
                        if let Ok(mut keys) = keys.lock() {
                            keys.push(key);
                        }
                    }
                    None => return,
                }
            }
        });
        pool
    }

    /// A pooled key when `spec` is RSA-2048 and one is ready, else None.
    pub fn take(&self, spec: KeySpec) -> Option<KeyPair> {
        if spec != KeySpec::Rsa(2048) {
            return None;
        }
        self.keys.lock().ok()?.pop()
    }
}

/// `count` RSA-2048 keys from the PEM file `file`, generating (on every core) and appending the
/// ones it lacks, so that a benchmark pays for key generation once per machine and not on its
/// clock. Each run hands every key out once; runs reuse them (no two Certificates of one run
/// share a key).
pub fn cached_rsa_keys(file: &std::path::Path, count: usize) -> std::io::Result<Vec<KeyPair>> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut keys: Vec<KeyPair> = pem::parse_many(&text)
        .map_err(std::io::Error::other)?
        .iter()
        .filter_map(|block| parse_pem(&pem::encode(block)))
        .filter(|k| KeySpec::of_key(k) == Some(KeySpec::Rsa(2048)))
        .take(count)
        .collect();
    let missing = count.saturating_sub(keys.len());
    if missing == 0 {
        return Ok(keys);
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fresh: Vec<KeyPair> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let share = missing / threads + usize::from(t < missing % threads);
                scope.spawn(move || {
                    let mut mine = Vec::with_capacity(share);
                    for _ in 0..share {
                        if let Ok(key) = KeySpec::Rsa(2048).generate() {
                            mine.push(key);
                        }
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    for key in &fresh {
        std::io::Write::write_all(&mut out, key.serialize_pem().as_bytes())?;
    }
    keys.extend(fresh);
    Ok(keys)
}

/// `count` keys made of `keys` handed out in turn (each a copy; a key is then shared by several
/// Certificates).
pub fn reused(keys: &[KeyPair], count: usize) -> Vec<KeyPair> {
    let pems: Vec<String> = keys.iter().map(|k| k.serialize_pem()).collect();
    pems.iter()
        .cycle()
        .take(count)
        .filter_map(|pem| parse_pem(pem))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod cache_tests {
    use super::*;

    #[test]
    fn the_key_cache_keeps_its_keys_and_adds_only_the_missing_ones() {
        let file = std::env::temp_dir()
            .join(format!("dbtls-key-cache-{}", std::process::id()))
            .join("keys.pem");
        let public = |keys: &[KeyPair]| -> Vec<Vec<u8>> {
            keys.iter()
                .map(|k| k.public_key_pem().into_bytes())
                .collect()
        };
        let first = cached_rsa_keys(&file, 2).unwrap();
        assert_eq!(first.len(), 2);
        assert_ne!(public(&first)[0], public(&first)[1], "keys are unique");
        let again = cached_rsa_keys(&file, 2).unwrap();
        assert_eq!(public(&again), public(&first), "read back, not made again");
        let more = cached_rsa_keys(&file, 3).unwrap();
        assert_eq!(public(&more)[..2], public(&first)[..]);
        assert_eq!(KeySpec::of_key(&more[2]), Some(KeySpec::Rsa(2048)));
        let fewer = cached_rsa_keys(&file, 1).unwrap();
        assert_eq!(public(&fewer), public(&first)[..1]);
        let handed_out = reused(&first, 5);
        assert_eq!(
            public(&handed_out),
            [0, 1, 0, 1, 0].map(|i| public(&first)[i].clone()),
            "in turn"
        );
        let _ = std::fs::remove_dir_all(file.parent().unwrap());
    }
}
