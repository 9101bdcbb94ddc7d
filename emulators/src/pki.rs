//! Test PKI: a CA and a CA-signed TLS leaf for the HTTPS emulators.
//!
//! `emulators pki --out DIR` (and [`ensure_pki`]) writes `DIR/ca.pem`, `DIR/leaf.pem` and
//! `DIR/leaf.key` (PKCS#8 PEM, mode 0600). The leaf is signed by the CA because rustls rejects a CA
//! certificate used as an end entity; its SANs cover 127.0.0.1, localhost, `*.vault.azure.net` and
//! `*.blob.core.windows.net`, so clients can keep hostname and challenge-resource checks on by
//! resolving a real-looking host to 127.0.0.1. Idempotent: existing files are kept while the leaf
//! stays valid for more than a day.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

/// Subject alternative names of the leaf certificate.
pub const LEAF_SANS: [&str; 4] = [
    "127.0.0.1",
    "localhost",
    "*.vault.azure.net",
    "*.blob.core.windows.net",
];

/// How long generated certificates are valid.
const VALIDITY: Duration = Duration::days(365);
/// Existing files are regenerated when the leaf expires within this margin.
const RENEW_MARGIN: Duration = Duration::days(1);

/// Where the PKI files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    /// The CA certificate (PEM); clients trust this.
    pub ca_cert: PathBuf,
    /// The leaf certificate (PEM) that servers present.
    pub leaf_cert: PathBuf,
    /// The leaf private key (PKCS#8 PEM).
    pub leaf_key: PathBuf,
    /// True when this call generated new files, false when valid ones were kept.
    pub generated: bool,
}

impl PkiPaths {
    fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            leaf_cert: dir.join("leaf.pem"),
            leaf_key: dir.join("leaf.key"),
            generated: false,
        }
    }

    /// The paths as one JSON line for scripts: `{"ca":..,"leaf":..,"key":..,"generated":..}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ca": self.ca_cert.display().to_string(),
            "leaf": self.leaf_cert.display().to_string(),
            "key": self.leaf_key.display().to_string(),
            "generated": self.generated,
        })
    }
}

/// Failures while creating the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Creating the directory or writing a file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path that failed.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// rcgen could not build a key or certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Parses `--out DIR` (the only flag of `emulators pki`).
pub fn parse_args(args: &[String]) -> Result<PathBuf, String> {
    match args {
        [flag, dir] if flag == "--out" && !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Err("pki expects exactly `--out DIR`".to_string()),
    }
}

/// Makes sure `dir` holds a CA and a CA-signed leaf valid for more than a day; creates them if not.
pub fn ensure_pki(dir: &Path) -> Result<PkiPaths, PkiError> {
    let mut paths = PkiPaths::in_dir(dir);
    if existing_pki_is_usable(&paths) {
        return Ok(paths);
    }
    std::fs::create_dir_all(dir).map_err(|source| write_error(dir, source))?;
    let generated = generate()?;
    write_file(&paths.ca_cert, &generated.ca_pem, false)?;
    write_file(&paths.leaf_key, &generated.leaf_key_pem, true)?;
    write_file(&paths.leaf_cert, &generated.leaf_pem, false)?;
    paths.generated = true;
    Ok(paths)
}

fn write_error(path: &Path, source: std::io::Error) -> PkiError {
    PkiError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// True when all three files exist and the leaf is valid beyond the renewal margin.
fn existing_pki_is_usable(paths: &PkiPaths) -> bool {
    if !paths.ca_cert.is_file() || !paths.leaf_key.is_file() {
        return false;
    }
    let Ok(pem) = std::fs::read(&paths.leaf_cert) else {
        return false;
    };
    let Ok(cert) = CertificateDer::from_pem_slice(&pem) else {
        return false;
    };
    match der::certificate_not_after(cert.as_ref()) {
        Some(not_after) => not_after > OffsetDateTime::now_utc() + RENEW_MARGIN,
        None => false,
    }
}

struct GeneratedPki {
    ca_pem: String,
    leaf_pem: String,
    leaf_key_pem: String,
}

fn generate() -> Result<GeneratedPki, PkiError> {
    let now = OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params(now)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf_params(now)?.signed_by(&leaf_key, &issuer)?;
    Ok(GeneratedPki {
        ca_pem: ca_cert.pem(),
        leaf_pem: leaf_cert.pem(),
        leaf_key_pem: leaf_key.serialize_pem(),
    })
}

fn named(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "handler test emulators");
    name
}

fn ca_params(now: OffsetDateTime) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = named("emulators test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + VALIDITY + Duration::days(1);
    Ok(params)
}

fn leaf_params(now: OffsetDateTime) -> Result<CertificateParams, PkiError> {
    let sans: Vec<String> = LEAF_SANS.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans)?;
    params.distinguished_name = named("127.0.0.1");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after = now + VALIDITY;
    Ok(params)
}

/// Writes via a temporary file and rename, so a reader never sees half a file.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, contents).map_err(|source| write_error(&temporary, source))?;
    if private {
        restrict_to_owner(&temporary)?;
    }
    std::fs::rename(&temporary, path).map_err(|source| write_error(path, source))
}

fn restrict_to_owner(path: &Path) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|source| write_error(path, source))
}

/// Just enough DER reading to find a certificate's notAfter.
mod der {
    use time::{Date, Month, OffsetDateTime, Time};

    /// One tag-length-value item: (tag, contents, rest of input).
    fn read_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (length, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let length = rest[..count]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (length, &rest[count..])
        };
        if rest.len() < length {
            return None;
        }
        Some((tag, &rest[..length], &rest[length..]))
    }

    /// notAfter of an X.509 certificate, or None if the DER is not what we expect.
    pub fn certificate_not_after(cert: &[u8]) -> Option<OffsetDateTime> {
        let (_, certificate, _) = read_item(cert)?;
        let (_, tbs, _) = read_item(certificate)?;
        let mut rest = tbs;
        let (tag, _, after) = read_item(rest)?;
        if tag == 0xa0 {
            rest = after; // explicit version
        }
        for _ in 0..3 {
            let (_, _, after) = read_item(rest)?; // serial, signature algorithm, issuer
            rest = after;
        }
        let (_, validity, _) = read_item(rest)?;
        let (_, _, after_not_before) = read_item(validity)?;
        let (tag, not_after, _) = read_item(after_not_before)?;
        parse_time(tag, std::str::from_utf8(not_after).ok()?)
    }

    /// UTCTime (tag 0x17, YYMMDDHHMMSSZ) or GeneralizedTime (tag 0x18, YYYYMMDDHHMMSSZ).
    fn parse_time(tag: u8, text: &str) -> Option<OffsetDateTime> {
        let digits = text.strip_suffix('Z')?;
        let (year, rest) = match tag {
            0x17 => {
                let short: i32 = digits.get(..2)?.parse().ok()?;
                (
                    if short >= 50 {
                        1900 + short
                    } else {
                        2000 + short
                    },
                    digits.get(2..)?,
                )
            }
            0x18 => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
            _ => return None,
        };
        let field = |i: usize| -> Option<u8> { rest.get(i * 2..i * 2 + 2)?.parse().ok() };
        let date =
            Date::from_calendar_date(year, Month::try_from(field(0)?).ok()?, field(1)?).ok()?;
        let time = Time::from_hms(field(2)?, field(3)?, field(4)?).ok()?;
        Some(date.with_time(time).assume_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_then_keeps_valid_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_pki(dir.path()).unwrap();
        assert!(first.generated);
        let leaf = std::fs::read_to_string(&first.leaf_cert).unwrap();
        let second = ensure_pki(dir.path()).unwrap();
        assert!(!second.generated);
        assert_eq!(leaf, std::fs::read_to_string(&second.leaf_cert).unwrap());
    }

    #[test]
    fn reads_the_leaf_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ensure_pki(dir.path()).unwrap();
        let pem = std::fs::read(&paths.leaf_cert).unwrap();
        let cert = CertificateDer::from_pem_slice(&pem).unwrap();
        let not_after = der::certificate_not_after(cert.as_ref()).unwrap();
        let days = (not_after - OffsetDateTime::now_utc()).whole_days();
        assert!((364..=366).contains(&days), "leaf valid for {days} days");
    }

    #[test]
    fn regenerates_when_the_leaf_is_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ensure_pki(dir.path()).unwrap();
        std::fs::write(&paths.leaf_cert, "not a certificate").unwrap();
        assert!(ensure_pki(dir.path()).unwrap().generated);
    }

    #[test]
    fn leaf_verifies_against_the_ca_for_every_san() {
        use rustls::client::danger::ServerCertVerifier as _;
        let dir = tempfile::tempdir().unwrap();
        let paths = ensure_pki(dir.path()).unwrap();
        crate::serve::tls_acceptor(&paths.leaf_cert, &paths.leaf_key).unwrap();
        let ca = CertificateDer::from_pem_slice(&std::fs::read(&paths.ca_cert).unwrap()).unwrap();
        let leaf =
            CertificateDer::from_pem_slice(&std::fs::read(&paths.leaf_cert).unwrap()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        for host in [
            "127.0.0.1",
            "localhost",
            "myvault.vault.azure.net",
            "acct.blob.core.windows.net",
        ] {
            let name = rustls_pki_types::ServerName::try_from(host).unwrap();
            let now = rustls_pki_types::UnixTime::now();
            verifier
                .verify_server_cert(&leaf, &[], &name, &[], now)
                .unwrap_or_else(|e| panic!("{host}: {e}"));
        }
        let other = rustls_pki_types::ServerName::try_from("example.com").unwrap();
        let now = rustls_pki_types::UnixTime::now();
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &other, &[], now)
                .is_err()
        );
    }
}
