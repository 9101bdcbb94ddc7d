//! GetSecret's in-memory cache, as Key Vault's throttling guidance asks: a vault serves a few
//! thousand reads per 10 s and answers 429 beyond that, so an app reads each secret once per
//! period instead of once per request (https://learn.microsoft.com/azure/key-vault/general/overview-throttling).
//!
//! Rules:
//! * a read of the latest version is served from memory for `SECRET_CACHE_SECONDS` after it was
//!   fetched (0 turns the whole cache off); a read pinned to a version never changes, so it is
//!   kept for as long as it stays in the cache;
//! * the cache holds at most [`MAX_ENTRIES`] secrets; past that, expired entries go first, then
//!   the least recently used;
//! * concurrent misses of one secret make one vault read, and share its answer (or its error);
//! * only values are cached: a failure (401, 403, 404, 429, …) is never kept, so the next call
//!   asks the vault again;
//! * a value leaves memory wiped ([`SecretValue`] zeroes its bytes when dropped) once the cache
//!   and every answer in flight have let go of it.
//!
//! Names are matched without regard to case, as Key Vault does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

// tokio's clock is the system's monotonic clock, and follows a paused clock in tests.
use tokio::time::Instant;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};

use crate::clients::keyvault::{KeyVault, KeyVaultError, Secret};

#[cfg(doc)]
use crate::clients::keyvault::SecretValue;

/// The most secrets kept at once. A secret is at most 25 KB, so the cache stays under a few MB.
pub const MAX_ENTRIES: usize = 256;

/// The default time a latest-version read is served from memory.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// The longest `SECRET_CACHE_SECONDS` accepted: a day.
pub const MAX_TTL_SECONDS: u64 = 86_400;

/// A secret and, when it came from memory, how long ago the vault gave it.
#[derive(Debug, Clone)]
pub struct CachedSecret {
    /// The secret.
    pub secret: Arc<Secret>,
    /// `None` when this call read the vault (or shared a read in flight); else the age of the
    /// cached copy, for the `Age` header.
    pub age: Option<Duration>,
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Secret>, KeyVaultError>>>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    name: String,
    version: Option<String>,
}

impl Key {
    fn new(name: &str, version: Option<&str>) -> Self {
        Self {
            name: name.to_ascii_lowercase(),
            version: version.map(str::to_ascii_lowercase),
        }
    }
}

struct Entry {
    secret: Arc<Secret>,
    fetched: Instant,
    used: Instant,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    in_flight: HashMap<Key, Fetch>,
}

/// The cache. One per app, shared by every GetSecret invocation.
pub struct SecretCache {
    ttl: Duration,
    capacity: usize,
    state: Mutex<State>,
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.lock().entries.len())
            .finish()
    }
}

impl SecretCache {
    /// A cache serving latest-version reads for `ttl`; a zero `ttl` caches nothing.
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, MAX_ENTRIES)
    }

    /// A cache holding at most `capacity` secrets (tests).
    pub fn with_capacity(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Reads SECRET_CACHE_SECONDS: unset is the default (60 s), `0` turns the cache off.
    pub fn ttl_from_setting(value: Option<&str>) -> Result<Duration, String> {
        let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(DEFAULT_TTL);
        };
        match text.parse::<u64>() {
            Ok(seconds) if seconds <= MAX_TTL_SECONDS => Ok(Duration::from_secs(seconds)),
            _ => Err(format!(
                "'{text}' is not a whole number of seconds from 0 (no cache) to {MAX_TTL_SECONDS}"
            )),
        }
    }

    /// Whether anything is cached at all (`SECRET_CACHE_SECONDS` > 0).
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// How many secrets are held now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no secret is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads a secret through the cache from `vault`.
    pub async fn get(
        &self,
        vault: &KeyVault,
        name: &str,
        version: Option<&str>,
    ) -> Result<CachedSecret, KeyVaultError> {
        if !self.enabled() {
            let secret = vault.get_secret(name, version).await?;
            return Ok(CachedSecret {
                secret: Arc::new(secret),
                age: None,
            });
        }
        let vault = vault.clone();
        let (owned_name, owned_version) = (name.to_owned(), version.map(str::to_owned));
        self.get_with(name, version, move || {
            async move {
                vault
                    .get_secret(&owned_name, owned_version.as_deref())
                    .await
                    .map(Arc::new)
            }
            .boxed()
        })
        .await
    }

    /// [`SecretCache::get`] with any fetch (unit tests count and fail fetches with it).
    pub(crate) async fn get_with(
        &self,
        name: &str,
        version: Option<&str>,
        fetch: impl FnOnce() -> BoxFuture<'static, Result<Arc<Secret>, KeyVaultError>>,
    ) -> Result<CachedSecret, KeyVaultError> {
        let key = Key::new(name, version);
        let fetching = {
            let mut state = self.lock();
            let now = Instant::now();
            if let Some(entry) = state.entries.get_mut(&key) {
                if self.is_fresh(&key, entry, now) {
                    entry.used = now;
                    return Ok(CachedSecret {
                        secret: entry.secret.clone(),
                        age: Some(now.saturating_duration_since(entry.fetched)),
                    });
                }
                state.entries.remove(&key);
            }
            state
                .in_flight
                .entry(key.clone())
                .or_insert_with(|| fetch().shared())
                .clone()
        };
        let result = fetching.clone().await;
        // The first caller to see the read finish stores it (values only) and clears the slot;
        // a read that was cancelled by all its callers stays in the slot and resumes when the
        // next caller awaits it.
        let mut state = self.lock();
        if state
            .in_flight
            .get(&key)
            .is_some_and(|current| current.ptr_eq(&fetching))
        {
            state.in_flight.remove(&key);
            if let Ok(secret) = &result {
                let now = Instant::now();
                self.make_room(&mut state, now);
                state.entries.insert(
                    key,
                    Entry {
                        secret: secret.clone(),
                        fetched: now,
                        used: now,
                    },
                );
            }
        }
        result.map(|secret| CachedSecret { secret, age: None })
    }

    fn is_fresh(&self, key: &Key, entry: &Entry, now: Instant) -> bool {
        key.version.is_some() || now.saturating_duration_since(entry.fetched) < self.ttl
    }

    /// Drops expired entries, then the least recently used, until one more fits.
    fn make_room(&self, state: &mut State, now: Instant) {
        if state.entries.len() < self.capacity {
            return;
        }
        state
            .entries
            .retain(|key, entry| self.is_fresh(key, entry, now));
        while state.entries.len() >= self.capacity {
            let Some(oldest) = state
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            state.entries.remove(&oldest);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain map updates: a panic elsewhere cannot leave them half done.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::CallError;
    use crate::clients::keyvault::{SecretRef, SecretValue};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn secret(name: &str, value: &str) -> Arc<Secret> {
        Arc::new(Secret {
            name: name.into(),
            value: SecretValue::new(value),
            version: Some("0123456789abcdef0123456789abcdef".into()),
            content_type: None,
        })
    }

    /// A fetch that counts its calls and answers after 20 ms (so concurrent callers overlap).
    fn counting(
        calls: &Arc<AtomicUsize>,
        answer: Result<&'static str, KeyVaultError>,
    ) -> impl FnOnce() -> BoxFuture<'static, Result<Arc<Secret>, KeyVaultError>> + use<> {
        let calls = calls.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                answer.map(|value| secret("db", value))
            }
            .boxed()
        }
    }

    /// A read that must succeed; on a miss, `value` is fetched and counted in `calls`.
    async fn read(
        cache: &SecretCache,
        name: &str,
        version: Option<&str>,
        calls: &Arc<AtomicUsize>,
        value: &'static str,
    ) -> CachedSecret {
        cache
            .get_with(name, version, counting(calls, Ok(value)))
            .await
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn latest_reads_are_served_from_memory_until_the_ttl_passes() {
        let cache = SecretCache::new(Duration::from_secs(60));
        let calls = Arc::new(AtomicUsize::new(0));
        let first = read(&cache, "db", None, &calls, "v1").await;
        assert_eq!(first.age, None);
        tokio::time::advance(Duration::from_secs(59)).await;
        let cached = read(&cache, "DB", None, &calls, "v2").await;
        assert_eq!(cached.secret.value.expose(), "v1");
        assert!(cached.age.unwrap() >= Duration::from_secs(59));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        let refreshed = read(&cache, "db", None, &calls, "v2").await;
        assert_eq!(refreshed.secret.value.expose(), "v2");
        assert_eq!(refreshed.age, None);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn pinned_versions_outlive_the_ttl() {
        let cache = SecretCache::new(Duration::from_secs(60));
        let calls = Arc::new(AtomicUsize::new(0));
        let version = Some("0123456789ABCDEF0123456789abcdef");
        read(&cache, "db", version, &calls, "v1").await;
        tokio::time::advance(Duration::from_secs(3600)).await;
        let again = read(
            &cache,
            "db",
            Some("0123456789abcdef0123456789abcdef"),
            &calls,
            "x",
        )
        .await;
        assert_eq!(again.secret.value.expose(), "v1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn concurrent_misses_make_one_read_and_share_it() {
        let cache = SecretCache::new(Duration::from_secs(60));
        let calls = Arc::new(AtomicUsize::new(0));
        let reads = (0..50).map(|_| cache.get_with("db", None, counting(&calls, Ok("v1"))));
        for result in futures::future::join_all(reads).await {
            assert_eq!(result.unwrap().secret.value.expose(), "v1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn failures_are_shared_by_waiters_but_never_kept() {
        let cache = SecretCache::new(Duration::from_secs(60));
        let calls = Arc::new(AtomicUsize::new(0));
        let not_found = || {
            KeyVaultError::Call(CallError::NotFound {
                target: SecretRef::new("db", None),
                code: None,
            })
        };
        let reads = (0..10).map(|_| cache.get_with("db", None, counting(&calls, Err(not_found()))));
        for result in futures::future::join_all(reads).await {
            assert!(matches!(
                result,
                Err(KeyVaultError::Call(CallError::NotFound { .. }))
            ));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(cache.is_empty());
        let forbidden = KeyVaultError::Call(CallError::Forbidden {
            target: SecretRef::new("db", None),
            code: "Forbidden".into(),
        });
        assert!(
            cache
                .get_with("db", None, counting(&calls, Err(forbidden)))
                .await
                .is_err()
        );
        assert!(cache.is_empty());
        let ok = read(&cache, "db", None, &calls, "v1").await;
        assert_eq!(ok.secret.value.expose(), "v1");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_is_bounded_expired_first_then_least_recently_used() {
        let cache = SecretCache::with_capacity(Duration::from_secs(60), 2);
        let calls = Arc::new(AtomicUsize::new(0));
        let pinned = Some("0123456789abcdef0123456789abcdef");
        read(&cache, "a", pinned, &calls, "a").await;
        read(&cache, "b", None, &calls, "b").await;
        tokio::time::advance(Duration::from_secs(61)).await;
        // b expired: it goes, a (pinned) stays.
        read(&cache, "c", pinned, &calls, "c").await;
        assert_eq!(cache.len(), 2);
        tokio::time::advance(Duration::from_secs(1)).await;
        read(&cache, "a", pinned, &calls, "x").await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "a was still cached");
        tokio::time::advance(Duration::from_secs(1)).await;
        // Full of fresh entries: c, used least recently, goes.
        read(&cache, "d", pinned, &calls, "d").await;
        assert_eq!(cache.len(), 2);
        let c = read(&cache, "c", pinned, &calls, "c2").await;
        assert_eq!(c.secret.value.expose(), "c2");
    }

    #[test]
    fn the_setting_is_seconds_from_zero_to_a_day() {
        assert_eq!(SecretCache::ttl_from_setting(None).unwrap(), DEFAULT_TTL);
        assert_eq!(
            SecretCache::ttl_from_setting(Some(" ")).unwrap(),
            DEFAULT_TTL
        );
        let off = SecretCache::ttl_from_setting(Some("0")).unwrap();
        assert!(!SecretCache::new(off).enabled());
        assert_eq!(
            SecretCache::ttl_from_setting(Some("300")).unwrap(),
            Duration::from_secs(300)
        );
        for bad in ["-1", "1.5", "ten", "86401"] {
            assert!(SecretCache::ttl_from_setting(Some(bad)).is_err(), "{bad}");
        }
    }
}
