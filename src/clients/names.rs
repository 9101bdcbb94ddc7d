//! Pure validation of the names the functions pass to Key Vault and Blob Storage, the
//! `ALLOWED_SECRETS` and `ALLOWED_CONTAINERS` allowlists (one matcher), the containers that are
//! never served, the size limit for blob writes, and the rules every configured service URL
//! follows.
//!
//! Names are checked before any request is built, so a bad name is a 400 for the caller and never
//! becomes a strange URL (`..`, `%2F`, control characters) sent with our managed identity's token.

use thiserror::Error;

/// Checks a configured Azure service URL (`KEY_VAULT_URL`, `STORAGE_BLOB_URL`): absolute, https,
/// a host, no user info, query or fragment, with `query_reason` the message for a query or a
/// fragment. Each service checks the path itself; the error is the reason, for its own type.
pub(crate) fn check_service_url(
    raw: &str,
    query_reason: &'static str,
) -> Result<url::Url, &'static str> {
    let url = url::Url::parse(raw.trim()).map_err(|_| "it is not an absolute URL")?;
    if url.scheme() != "https" {
        return Err("it must use https");
    }
    if url.host().is_none() {
        return Err("it has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it must not carry user info");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(query_reason);
    }
    Ok(url)
}

/// Largest blob body `put_block_blob` accepts and `get_blob` returns: 16 MiB.
///
/// Why 16 MiB: the body arrives through the Functions host inside a JSON invocation envelope
/// (binary as base64, so about 4/3 larger), and the handler holds the envelope, the decoded bytes and
/// the request the SDK sends at the same time. 16 MiB keeps that below ~100 MB per invocation on a
/// 1.5 GB Consumption instance with several concurrent invocations, stays under the host's 100 MB
/// HTTP request limit even after base64, and fits one Put Blob request (no block staging), so a write
/// is exactly one request.
pub const MAX_BLOB_BYTES: usize = 16 * 1024 * 1024;

/// Longest Key Vault secret name the service accepts.
pub const MAX_SECRET_NAME_LEN: usize = 127;

/// Longest blob name the service accepts (characters).
pub const MAX_BLOB_NAME_LEN: usize = 1024;

/// Most path segments (`/`-separated parts) a blob name may have.
pub const MAX_BLOB_PATH_SEGMENTS: usize = 254;

/// Longest content type `put_block_blob` stores.
pub const MAX_CONTENT_TYPE_LEN: usize = 255;

/// Why an input (name, version, content type, body size, allowlist entry) was rejected. The
/// message quotes the rule, never the input itself (except an allowlist entry, which is config).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    /// A Key Vault secret name breaks the service's rules.
    #[error("invalid secret name: {0}")]
    SecretName(&'static str),
    /// A secret version is not the 32-character identifier Key Vault issues.
    #[error("invalid secret version: {0}")]
    SecretVersion(&'static str),
    /// A container name breaks the service's rules.
    #[error("invalid container name: {0}")]
    ContainerName(&'static str),
    /// A blob name breaks the service's rules.
    #[error("invalid blob name: {0}")]
    BlobName(&'static str),
    /// A content type is empty, too long or has characters a header cannot carry.
    #[error("invalid content type: {0}")]
    ContentType(&'static str),
    /// A blob body is larger than [`MAX_BLOB_BYTES`].
    #[error("blob body of {size} bytes is larger than the {limit}-byte limit")]
    BodyTooLarge {
        /// The size that was offered.
        size: usize,
        /// The limit, [`MAX_BLOB_BYTES`].
        limit: usize,
    },
    /// An allowlist entry is neither a valid name nor a prefix ending in `*`, or it names only
    /// containers that are never served.
    #[error("invalid {setting} entry '{entry}': {reason}")]
    AllowlistEntry {
        /// The setting, `ALLOWED_SECRETS` or `ALLOWED_CONTAINERS`.
        setting: &'static str,
        /// The entry as written (configuration, never a secret).
        entry: String,
        /// What is wrong and what is expected.
        reason: &'static str,
    },
}

/// Checks a Key Vault secret name: 1-127 characters of `0-9 a-z A-Z -`.
pub fn validate_secret_name(name: &str) -> Result<(), InputError> {
    if name.is_empty() {
        return Err(InputError::SecretName("it is empty"));
    }
    if name.len() > MAX_SECRET_NAME_LEN {
        return Err(InputError::SecretName("it is longer than 127 characters"));
    }
    if !name.bytes().all(is_secret_name_byte) {
        return Err(InputError::SecretName(
            "only 0-9, a-z, A-Z and '-' are allowed",
        ));
    }
    Ok(())
}

fn is_secret_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// Checks a secret version: Key Vault issues 32 hexadecimal characters.
pub fn validate_secret_version(version: &str) -> Result<(), InputError> {
    if version.len() != 32 || !version.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InputError::SecretVersion(
            "expected 32 hexadecimal characters",
        ));
    }
    Ok(())
}

/// Checks a container name: 3-63 characters of lowercase letters, digits and single hyphens,
/// starting and ending with a letter or digit.
pub fn validate_container_name(name: &str) -> Result<(), InputError> {
    if !(3..=63).contains(&name.len()) {
        return Err(InputError::ContainerName(
            "it must be 3 to 63 characters long",
        ));
    }
    let lower_or_digit = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !name.bytes().all(|b| lower_or_digit(b) || b == b'-') {
        return Err(InputError::ContainerName(
            "only lowercase letters, digits and '-' are allowed",
        ));
    }
    let bytes = name.as_bytes();
    let starts_ok = bytes.first().is_some_and(|b| lower_or_digit(*b));
    let ends_ok = bytes.last().is_some_and(|b| lower_or_digit(*b));
    if !starts_ok || !ends_ok {
        return Err(InputError::ContainerName(
            "it must start and end with a letter or digit",
        ));
    }
    if name.contains("--") {
        return Err(InputError::ContainerName(
            "consecutive hyphens are not allowed",
        ));
    }
    Ok(())
}

/// Checks a blob name: 1-1024 characters, no control characters and no `\\`, at most 254
/// `/`-separated segments, each non-empty and neither `.` nor `..`, and not ending with `.`.
///
/// Why per segment: the blob's URL is built by joining the name under the container, and a URL
/// library or proxy that resolves `..` (or collapses `//`) would move the request to another
/// container; a backslash is a separator to some servers and proxies.
pub fn validate_blob_name(name: &str) -> Result<(), InputError> {
    if name.is_empty() {
        return Err(InputError::BlobName("it is empty"));
    }
    if name.chars().count() > MAX_BLOB_NAME_LEN {
        return Err(InputError::BlobName("it is longer than 1024 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(InputError::BlobName("control characters are not allowed"));
    }
    if name.contains('\\') {
        return Err(InputError::BlobName("'\\' is not allowed"));
    }
    if name.ends_with('.') {
        return Err(InputError::BlobName("it must not end with '.'"));
    }
    if name.split('/').count() > MAX_BLOB_PATH_SEGMENTS {
        return Err(InputError::BlobName("it has more than 254 path segments"));
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return Err(InputError::BlobName(
                "empty path segments (a leading, trailing or double '/') are not allowed",
            ));
        }
        if segment == "." || segment == ".." {
            return Err(InputError::BlobName(
                "'.' and '..' segments are not allowed",
            ));
        }
    }
    Ok(())
}

/// Checks a content type to store with a blob: 1-255 visible ASCII characters or spaces.
pub fn validate_content_type(content_type: &str) -> Result<(), InputError> {
    if content_type.trim().is_empty() {
        return Err(InputError::ContentType("it is empty"));
    }
    if content_type.len() > MAX_CONTENT_TYPE_LEN {
        return Err(InputError::ContentType("it is longer than 255 characters"));
    }
    if !content_type
        .bytes()
        .all(|b| b == b' ' || b.is_ascii_graphic())
    {
        return Err(InputError::ContentType(
            "only visible ASCII characters are allowed",
        ));
    }
    Ok(())
}

/// Checks a blob body against [`MAX_BLOB_BYTES`].
pub fn validate_body_size(size: usize) -> Result<(), InputError> {
    if size > MAX_BLOB_BYTES {
        return Err(InputError::BodyTooLarge {
            size,
            limit: MAX_BLOB_BYTES,
        });
    }
    Ok(())
}

/// The secrets `GetSecret` may read, from the `ALLOWED_SECRETS` setting.
///
/// The setting is a comma-separated list of exact secret names (`db-password`) or prefixes ending in
/// `*` (`app-*`; a lone `*` allows every secret). Whitespace around entries is trimmed and empty
/// entries are skipped. An absent or empty setting allows nothing, so a missing setting fails closed.
/// Matching ignores ASCII case because Key Vault secret names are case-insensitive: `DB-PASSWORD`
/// reads the same secret as `db-password`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretAllowlist {
    list: Allowlist,
}

impl SecretAllowlist {
    /// Parses the setting's raw value; `None` (setting absent) allows nothing.
    ///
    /// Fails on an entry that is neither a valid secret name nor a valid prefix followed by `*`,
    /// so a typo in the setting is reported at start-up instead of silently denying.
    pub fn parse(raw: Option<&str>) -> Result<Self, InputError> {
        let list = Allowlist::parse(raw, &SECRETS)?;
        Ok(Self { list })
    }

    /// Whether `name` may be read. Invalid secret names are never allowed.
    pub fn allows(&self, name: &str) -> bool {
        validate_secret_name(name).is_ok() && self.list.matches(name)
    }

    /// Whether the allowlist allows nothing at all.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Containers that belong to the Functions host or the platform, refused whatever
/// `ALLOWED_CONTAINERS` says: the host keeps its function keys in `azure-webjobs-secrets` and its
/// timer and lease state in `azure-webjobs-hosts`; App Service and Kudu keep deployments in `scm-*`
/// containers; the Flex Consumption template names its deployment package container
/// `app-package-<app>` (see infra/azuredeploy.json). The app's identity can usually reach them
/// (it often shares the account with `AzureWebJobsStorage`), so a caller with a function key must
/// never be able to name them.
pub const RESERVED_CONTAINER_PREFIXES: &[&str] = &["azure-webjobs-", "scm-", "app-package-"];

/// The reserved prefix `container` starts with, if any.
pub fn reserved_container(container: &str) -> Option<&'static str> {
    let lower = container.to_ascii_lowercase();
    RESERVED_CONTAINER_PREFIXES
        .iter()
        .copied()
        .find(|prefix| lower.starts_with(prefix))
}

/// Why a container may not be used by WriteBlob and ReadBlob.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContainerRefusal {
    /// The container belongs to the host or the platform.
    #[error(
        "container '{container}' belongs to the Functions host or the platform ({prefix}*) and is never served, whatever ALLOWED_CONTAINERS says; use a container of the app's own"
    )]
    Reserved {
        /// The container asked for.
        container: String,
        /// The reserved prefix it starts with.
        prefix: &'static str,
    },
    /// ALLOWED_CONTAINERS is absent or empty.
    #[error(
        "ALLOWED_CONTAINERS is not set, so no container may be used; to use '{container}', add its name, or a prefix such as logs-*, to the comma-separated ALLOWED_CONTAINERS app setting"
    )]
    NoneAllowed {
        /// The container asked for.
        container: String,
    },
    /// ALLOWED_CONTAINERS does not name the container.
    #[error(
        "container '{container}' is not in ALLOWED_CONTAINERS; to allow it, add its name, or a prefix such as logs-*, to the comma-separated ALLOWED_CONTAINERS app setting"
    )]
    NotAllowed {
        /// The container asked for.
        container: String,
    },
}

/// The containers `WriteBlob` and `ReadBlob` may use, from the `ALLOWED_CONTAINERS` setting: the
/// same syntax and matcher as `ALLOWED_SECRETS` (names, prefixes ending in `*`, a lone `*`; absent
/// allows nothing), and never a container [`reserved_container`] names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerAllowlist {
    list: Allowlist,
}

impl ContainerAllowlist {
    /// Parses the setting's raw value; `None` (setting absent) allows nothing.
    ///
    /// Fails on an entry that is not a container name or prefix, and on one that could only
    /// match reserved containers (`azure-webjobs-secrets`, `scm-*`): such an entry can never take
    /// effect, and saying so at start-up beats a 403 that contradicts the setting.
    pub fn parse(raw: Option<&str>) -> Result<Self, InputError> {
        let list = Allowlist::parse(raw, &CONTAINERS)?;
        for entry in &list.entries {
            // An exact name or a prefix that starts with a reserved prefix can only ever match
            // reserved containers; a shorter one (`scm`, `app*`) also matches containers of the
            // app's own, and the reserved ones among them are refused when used.
            let inside_reserved = reserved_container(entry.text()).is_some();
            if inside_reserved {
                return Err(InputError::AllowlistEntry {
                    setting: CONTAINERS.setting,
                    entry: entry.to_string(),
                    reason: "containers starting with azure-webjobs-, scm- or app-package- belong to the Functions host or the platform and are never served",
                });
            }
        }
        Ok(Self { list })
    }

    /// Whether the allowlist allows no container at all.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether `container` (already a valid container name) may be used, or why not.
    pub fn check(&self, container: &str) -> Result<(), ContainerRefusal> {
        let container_owned = || container.to_owned();
        if let Some(prefix) = reserved_container(container) {
            return Err(ContainerRefusal::Reserved {
                container: container_owned(),
                prefix,
            });
        }
        if self.list.is_empty() {
            return Err(ContainerRefusal::NoneAllowed {
                container: container_owned(),
            });
        }
        if validate_container_name(container).is_err() || !self.list.matches(container) {
            return Err(ContainerRefusal::NotAllowed {
                container: container_owned(),
            });
        }
        Ok(())
    }
}

/// What one allowlist setting accepts as an entry.
struct AllowlistRules {
    setting: &'static str,
    validate: fn(&str) -> Result<(), InputError>,
    prefix_byte: fn(u8) -> bool,
    max_len: usize,
    hint: &'static str,
}

const SECRETS: AllowlistRules = AllowlistRules {
    setting: "ALLOWED_SECRETS",
    validate: validate_secret_name,
    prefix_byte: is_secret_name_byte,
    max_len: MAX_SECRET_NAME_LEN,
    hint: "use secret names or prefixes ending in '*'",
};

const CONTAINERS: AllowlistRules = AllowlistRules {
    setting: "ALLOWED_CONTAINERS",
    validate: validate_container_name,
    prefix_byte: |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-',
    max_len: 63,
    hint: "use container names or prefixes ending in '*' (lowercase letters, digits and '-')",
};

/// The one matcher behind every allowlist setting: exact names and prefixes, compared without
/// regard to ASCII case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Allowlist {
    entries: Vec<AllowEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowEntry {
    Exact(String),
    Prefix(String),
}

impl AllowEntry {
    fn text(&self) -> &str {
        match self {
            Self::Exact(text) | Self::Prefix(text) => text,
        }
    }
}

impl std::fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

impl Allowlist {
    fn parse(raw: Option<&str>, rules: &AllowlistRules) -> Result<Self, InputError> {
        let entries = raw
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| parse_allow_entry(entry, rules))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { entries })
    }

    fn matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.entries.iter().any(|entry| match entry {
            AllowEntry::Exact(exact) => *exact == name,
            AllowEntry::Prefix(prefix) => name.starts_with(prefix.as_str()),
        })
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn parse_allow_entry(entry: &str, rules: &AllowlistRules) -> Result<AllowEntry, InputError> {
    let invalid = || InputError::AllowlistEntry {
        setting: rules.setting,
        entry: entry.to_string(),
        reason: rules.hint,
    };
    match entry.strip_suffix('*') {
        Some(prefix) => {
            let prefix_ok = prefix.bytes().all(rules.prefix_byte) && prefix.len() < rules.max_len;
            prefix_ok
                .then(|| AllowEntry::Prefix(prefix.to_ascii_lowercase()))
                .ok_or_else(invalid)
        }
        None => (rules.validate)(entry)
            .map(|()| AllowEntry::Exact(entry.to_ascii_lowercase()))
            .map_err(|_| invalid()),
    }
}

/// Every input in `bad` is refused by `validate`; a failure names the input.
#[cfg(test)]
pub(crate) fn assert_rejected<T, E>(validate: impl Fn(&str) -> Result<T, E>, bad: &[&str]) {
    for input in bad {
        assert!(validate(input).is_err(), "{input:?} should be rejected");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls_are_refused_with_the_rule_they_break() {
        let query = "the query reason";
        for (raw, reason) in [
            ("vault.azure.net", "it is not an absolute URL"),
            ("http://v.vault.azure.net/", "it must use https"),
            (
                "https://u:p@v.vault.azure.net/",
                "it must not carry user info",
            ),
            ("https://v.vault.azure.net/?sig=x", query),
            ("https://v.vault.azure.net/#f", query),
        ] {
            assert_eq!(check_service_url(raw, query), Err(reason), "{raw}");
        }
        let url = check_service_url(" https://v.vault.azure.net/a ", query).unwrap();
        assert_eq!(url.as_str(), "https://v.vault.azure.net/a");
    }

    #[test]
    fn secret_names_follow_key_vault_rules() {
        assert!(validate_secret_name("db-password").is_ok());
        assert!(validate_secret_name("A1-b2").is_ok());
        assert!(validate_secret_name(&"a".repeat(127)).is_ok());
        assert!(validate_secret_name("").is_err());
        assert!(validate_secret_name(&"a".repeat(128)).is_err());
        assert_rejected(
            validate_secret_name,
            &[
                "db_password",
                "db.password",
                "a/b",
                "../x",
                "é",
                "a b",
                "a%2Fb",
            ],
        );
    }

    #[test]
    fn secret_versions_are_32_hex_characters() {
        assert!(validate_secret_version("0123456789abcdef0123456789ABCDEF").is_ok());
        assert!(validate_secret_version("").is_err());
        assert!(validate_secret_version("0123456789abcdef0123456789abcde").is_err());
        assert!(validate_secret_version("0123456789abcdef0123456789abcdeg").is_err());
        assert!(validate_secret_version("../../secrets/other/0123456789ab").is_err());
    }

    #[test]
    fn container_names_follow_storage_rules() {
        for good in ["abc", "my-container-1", "123", &"a".repeat(63)] {
            assert!(validate_container_name(good).is_ok(), "{good} should pass");
        }
        assert_rejected(
            validate_container_name,
            &[
                "ab",
                &"a".repeat(64),
                "Upper",
                "-abc",
                "abc-",
                "a--b",
                "a_b",
                "a.b",
                "$root",
                "",
            ],
        );
    }

    #[test]
    fn blob_names_follow_storage_rules() {
        for good in ["a", "dir/file.txt", "ünïcode name.bin", &"x".repeat(1024)] {
            assert!(validate_blob_name(good).is_ok(), "{good} should pass");
        }
        let too_many_segments = vec!["s"; 255].join("/");
        let max_segments = vec!["s"; 254].join("/");
        assert!(validate_blob_name(&max_segments).is_ok());
        assert_rejected(
            validate_blob_name,
            &[
                "",
                &"x".repeat(1025),
                "file.",
                "dir/",
                "dir\\",
                "a\\b",
                "..\\x",
                "a\nb",
                "a\u{0}b",
                "a\u{7f}b",
                "a\u{85}b",
                "a/../b",
                "./a",
                "..",
                ".",
                "a/.",
                "/a",
                "a//b",
                too_many_segments.as_str(),
            ],
        );
    }

    #[test]
    fn content_types_must_fit_a_header() {
        assert!(validate_content_type("text/plain; charset=utf-8").is_ok());
        assert!(validate_content_type("").is_err());
        assert!(validate_content_type("text/plain\r\nx-evil: 1").is_err());
        assert!(validate_content_type(&"a".repeat(256)).is_err());
    }

    #[test]
    fn body_size_limit_is_inclusive() {
        assert!(validate_body_size(MAX_BLOB_BYTES).is_ok());
        assert_eq!(
            validate_body_size(MAX_BLOB_BYTES + 1),
            Err(InputError::BodyTooLarge {
                size: MAX_BLOB_BYTES + 1,
                limit: MAX_BLOB_BYTES
            })
        );
    }

    #[test]
    fn absent_or_empty_allowlist_allows_nothing() {
        for raw in [None, Some(""), Some(" , ,")] {
            let list = SecretAllowlist::parse(raw).unwrap();
            assert!(list.is_empty());
            assert!(!list.allows("db-password"));
        }
    }

    #[test]
    fn allowlist_matches_exact_names_and_prefixes() {
        let list = SecretAllowlist::parse(Some(" db-password , app-* ")).unwrap();
        for (name, allowed, why) in [
            ("db-password", true, "listed"),
            ("DB-Password", true, "Key Vault names are case-insensitive"),
            ("app-key", true, "under a listed prefix"),
            ("app-", true, "the prefix itself"),
            ("db-password2", false, "a name is exact, not a prefix"),
            ("db", false, "shorter than a listed name"),
            ("ap", false, "shorter than a prefix"),
            ("other", false, "not listed"),
            ("app-../x", false, "invalid names are never allowed"),
        ] {
            assert_eq!(list.allows(name), allowed, "{name}: {why}");
        }
    }

    #[test]
    fn lone_star_allows_every_valid_name() {
        let list = SecretAllowlist::parse(Some("*")).unwrap();
        assert!(list.allows("anything-1"));
        assert!(!list.allows("not valid"));
    }

    #[test]
    fn allowlist_rejects_malformed_entries() {
        for raw in ["a*b", "*app", "app_*", "db password", "app-**"] {
            assert!(
                matches!(
                    SecretAllowlist::parse(Some(raw)),
                    Err(InputError::AllowlistEntry { setting: "ALLOWED_SECRETS", entry, .. }) if entry == raw
                ),
                "{raw} should be rejected"
            );
        }
    }
    #[test]
    fn the_host_and_platform_containers_are_refused_whatever_the_setting_says() {
        let everything = ContainerAllowlist::parse(Some("*")).unwrap();
        for reserved in [
            "azure-webjobs-secrets",
            "azure-webjobs-hosts",
            "azure-webjobs-eventhub",
            "scm-releases",
            "scm-deployments",
            "app-package-x",
            "app-package-my-app-1234",
        ] {
            assert!(
                matches!(
                    everything.check(reserved),
                    Err(ContainerRefusal::Reserved { .. })
                ),
                "{reserved}"
            );
        }
        assert_eq!(everything.check("demo"), Ok(()));
        assert_eq!(
            everything.check("app-packages"),
            Ok(()),
            "only the prefix is reserved"
        );
    }

    #[test]
    fn container_allowlist_shares_the_secret_allowlists_rules() {
        for raw in [None, Some(""), Some(" , ")] {
            let none = ContainerAllowlist::parse(raw).unwrap();
            assert!(matches!(
                none.check("demo"),
                Err(ContainerRefusal::NoneAllowed { .. })
            ));
        }
        let list = ContainerAllowlist::parse(Some(" demo , logs-* ")).unwrap();
        assert_eq!(list.check("demo"), Ok(()));
        assert_eq!(list.check("logs-2024"), Ok(()));
        assert_eq!(
            list.check("logs-"),
            Err(ContainerRefusal::NotAllowed {
                container: "logs-".into()
            })
        );
        for refused in ["demo2", "dem", "logs", "other"] {
            assert!(
                matches!(
                    list.check(refused),
                    Err(ContainerRefusal::NotAllowed { .. })
                ),
                "{refused}"
            );
        }
        let message = list.check("other").unwrap_err().to_string();
        assert!(message.contains("ALLOWED_CONTAINERS"), "{message}");
    }

    #[test]
    fn container_allowlist_entries_that_only_reach_reserved_containers_are_a_setting_error() {
        for raw in [
            "azure-webjobs-secrets",
            "azure-webjobs-*",
            "scm-*",
            "demo,app-package-*",
            "Demo",
            "a_b*",
            "bad*name",
        ] {
            let error = ContainerAllowlist::parse(Some(raw)).unwrap_err();
            assert!(
                matches!(
                    &error,
                    InputError::AllowlistEntry {
                        setting: "ALLOWED_CONTAINERS",
                        ..
                    }
                ),
                "{raw}: {error}"
            );
        }
        let wider = ContainerAllowlist::parse(Some("app*,s*,scm,azure-webjobs*")).unwrap();
        assert_eq!(wider.check("scm"), Ok(()), "'scm' itself is not reserved");
        assert_eq!(wider.check("apps"), Ok(()));
        for reserved in ["scm-releases", "azure-webjobs-hosts", "app-package-x"] {
            assert!(
                matches!(
                    wider.check(reserved),
                    Err(ContainerRefusal::Reserved { .. })
                ),
                "wider prefixes keep the reserved refusal: {reserved}"
            );
        }
    }
}
