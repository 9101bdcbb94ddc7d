//! The token cache: one slot per (identity, normalized resource).
//!
//! Rules: a token with less than 5 minutes left is never handed out; from `refresh_on`
//! on, the first caller starts one background refresh and everyone keeps getting the still-valid
//! token (readers of a valid token never wait); a failed refresh keeps serving the cached token, logs a warning and
//! waits `refresh_failure_backoff` before trying again; concurrent misses on one key make exactly
//! one request (single-flight, and a failure is shared with the callers that waited for it);
//! different keys never wait for each other.
//!
//! Bounds: a failed blocking fetch is remembered for `failure_memory`, so a flood of calls for
//! one failing key costs one request per period; the cache holds at most `max_entries` slots,
//! and when a new key finds it full, the least recently used slot that nobody is using (no
//! caller holds it, no fetch or refresh runs for it) goes, those without a usable token first.
//! A key that finds every slot in use is served with a slot of its own that is not kept.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use time::OffsetDateTime;

use super::claims::{self, Claims};
use super::clock::Clock;
use super::lifetime::EXPIRY_MARGIN;
use super::{IdentityError, IdentitySelector, Token};

/// A token's decoded claims, kept with the cached token: decoding them (base64 and JSON) on every
/// TokenInfo call was a tenth of its cost. Clones share the one decode.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClaimsMemo(Arc<OnceLock<Option<Claims>>>);

impl Token {
    /// The token's claims, unverified (for showing, never for trusting); `None` when it is not a
    /// readable JWT.
    pub fn claims(&self) -> Option<&Claims> {
        self.claims
            .0
            .get_or_init(|| claims::decode_unverified(self.access_token.expose()).ok())
            .as_ref()
    }
}

/// What a cache slot is keyed by: the identity and the resource (scope without `/.default`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub(crate) identity: IdentitySelector,
    pub(crate) resource: String,
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} as {}", self.resource, self.identity)
    }
}

/// How usable a cached token is at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Before `refresh_on`: serve it.
    Fresh,
    /// Between `refresh_on` and the 5-minute margin: serve it, and one caller refreshes.
    RefreshDue,
    /// Within 5 minutes of expiry (or past it): never hand out.
    Unusable,
}

/// `now` is in nanoseconds since 1970 ([`Clock::unix_nanos`]): comparing there costs a few
/// multiplications, where building an `OffsetDateTime` for "now" takes a calendar conversion,
/// and the check runs on every token a caller asks for.
pub(crate) fn freshness(token: &Token, now: i128) -> Freshness {
    let expires_on = token.expires_on.unix_timestamp_nanos();
    if now >= expires_on - EXPIRY_MARGIN.whole_nanoseconds() {
        Freshness::Unusable
    } else if now >= token.refresh_on.unix_timestamp_nanos() {
        Freshness::RefreshDue
    } else {
        Freshness::Fresh
    }
}

#[derive(Debug, Default)]
struct SlotState {
    token: Option<Token>,
    /// No refresh-ahead before this moment (set after a failed refresh).
    refresh_not_before: Option<OffsetDateTime>,
    /// Completed blocking fetches, to tell waiters that a fetch finished while they waited.
    fetches: u64,
    /// The error of the most recent blocking fetch, if it failed, and when it failed.
    last_failure: Option<(IdentityError, OffsetDateTime)>,
}

#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    /// Held by the one caller fetching for this key.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, SlotState> {
        // A panic while holding this lock cannot leave the state inconsistent (plain assignments).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a background refresh needs to store its result.
struct RefreshTask {
    slot: Arc<Slot>,
    key: CacheKey,
    cached_expiry: OffsetDateTime,
    clock: Clock,
    backoff: std::time::Duration,
}

impl RefreshTask {
    fn complete(self, result: Result<Token, IdentityError>) {
        match result {
            Ok(token) => {
                let mut state = self.slot.state();
                state.token = Some(token);
                state.refresh_not_before = None;
            }
            Err(error) => {
                let retry_at = self.clock.now() + self.backoff;
                log::warn!(
                    "refreshing the token for {} failed; serving the cached token (expires {}) and trying again after {retry_at}: {error}",
                    self.key,
                    self.cached_expiry
                );
                self.slot.state().refresh_not_before = Some(retry_at);
            }
        }
    }
}

/// The cache's bounds (from [`Timing`](super::Timing)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheLimits {
    pub(crate) refresh_failure_backoff: std::time::Duration,
    pub(crate) failure_memory: std::time::Duration,
    pub(crate) max_entries: usize,
}

/// A slot and when it was last asked for (a counter, for least-recently-used eviction).
#[derive(Debug)]
struct Entry {
    slot: Arc<Slot>,
    used: u64,
}

#[derive(Debug, Default)]
struct Slots {
    map: HashMap<CacheKey, Entry, BuildHasherDefault<Fnv1a>>,
    tick: u64,
}

/// FNV-1a (http://www.isthe.com/chongo/tech/comp/fnv/): the cache's keys are the app's own
/// identities and resources, at most `max_entries` of them, so the flooding resistance of std's
/// SipHash buys nothing, and hashing a key with it was most of a cached token's lookup.
#[derive(Debug)]
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Per-key token cache with single-flight fetches.
#[derive(Debug)]
pub(crate) struct TokenCache {
    slots: Mutex<Slots>,
    clock: Clock,
    limits: CacheLimits,
}

impl TokenCache {
    pub(crate) fn new(clock: Clock, limits: CacheLimits) -> Self {
        Self {
            slots: Mutex::new(Slots::default()),
            clock,
            limits,
        }
    }

    /// How many keys the cache holds now.
    pub(crate) fn len(&self) -> usize {
        self.lock_slots().map.len()
    }

    fn lock_slots(&self) -> MutexGuard<'_, Slots> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The slot for `key`. Callers get their `Arc` under the map's lock, so "only the map holds
    /// it" (a strong count of 1), checked under the same lock, means nobody is using it.
    fn slot(&self, key: &CacheKey) -> Arc<Slot> {
        let mut slots = self.lock_slots();
        slots.tick += 1;
        let tick = slots.tick;
        if let Some(entry) = slots.map.get_mut(key) {
            entry.used = tick;
            return entry.slot.clone();
        }
        if slots.map.len() >= self.limits.max_entries.max(1) {
            let now = self.clock.unix_nanos();
            let victim = slots
                .map
                .iter()
                .filter(|(_, entry)| Arc::strong_count(&entry.slot) == 1)
                .min_by_key(|(_, entry)| {
                    let usable = entry
                        .slot
                        .state()
                        .token
                        .as_ref()
                        .is_some_and(|t| freshness(t, now) != Freshness::Unusable);
                    (usable, entry.used)
                })
                .map(|(key, _)| key.clone());
            match victim {
                Some(victim) => {
                    log::debug!("token cache full: dropping {victim}");
                    slots.map.remove(&victim);
                }
                None => {
                    log::warn!(
                        "token cache full of entries in use ({}); {key} is served without caching",
                        slots.map.len()
                    );
                    return Arc::default();
                }
            }
        }
        let slot = Arc::<Slot>::default();
        slots.map.insert(
            key.clone(),
            Entry {
                slot: slot.clone(),
                used: tick,
            },
        );
        slot
    }

    /// Returns a usable token for `key`, calling `fetch` with it when the cache cannot answer
    /// (see the module documentation for the rules). The fetch takes what it needs from the key
    /// only then, so a cached answer copies nothing.
    pub(crate) async fn get<F, Fut>(&self, key: CacheKey, fetch: F) -> Result<Token, IdentityError>
    where
        F: FnOnce(&CacheKey) -> Fut,
        Fut: Future<Output = Result<Token, IdentityError>> + Send + 'static,
    {
        let slot = self.slot(&key);
        let (cached, refresh_not_before, fetches_seen) = {
            let state = slot.state();
            (state.token.clone(), state.refresh_not_before, state.fetches)
        };
        let now = self.clock.unix_nanos();
        if let Some(token) = cached {
            match freshness(&token, now) {
                Freshness::Fresh => return Ok(token),
                Freshness::RefreshDue => {
                    if refresh_not_before.is_some_and(|t| now < t.unix_timestamp_nanos()) {
                        return Ok(token);
                    }
                    return Ok(self.refresh_ahead(&slot, &key, token, fetch(&key)));
                }
                Freshness::Unusable => {}
            }
        }
        self.fetch_blocking(&slot, &key, fetches_seen, fetch).await
    }

    /// Refresh-ahead: the caller that gets the fetch lock without waiting starts a refresh in the
    /// background; every caller, that one included, gets the still-valid cached token at once. A
    /// failed refresh keeps the cached token and pauses refreshing for the back-off.
    fn refresh_ahead<Fut>(
        &self,
        slot: &Arc<Slot>,
        key: &CacheKey,
        cached: Token,
        refresh: Fut,
    ) -> Token
    where
        Fut: Future<Output = Result<Token, IdentityError>> + Send + 'static,
    {
        let Ok(guard) = slot.fetching.clone().try_lock_owned() else {
            return cached;
        };
        if let Some(token) = slot.state().token.clone()
            && freshness(&token, self.clock.unix_nanos()) == Freshness::Fresh
        {
            return token;
        }
        log::debug!("refreshing the token for {key} ahead of expiry");
        let task = RefreshTask {
            slot: slot.clone(),
            key: key.clone(),
            cached_expiry: cached.expires_on,
            clock: self.clock.clone(),
            backoff: self.limits.refresh_failure_backoff,
        };
        let job = async move {
            let _guard = guard;
            task.complete(refresh.await);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(job);
            }
            // Not on a tokio runtime: nothing to run a background task, so refresh next time
            // a caller on a runtime asks (the cached token is valid for a while yet).
            Err(_) => log::debug!("no tokio runtime to refresh {key} in the background"),
        }
        cached
    }

    /// No usable token: one caller fetches; the callers that waited for it get its token or its
    /// error, and so does every caller until `failure_memory` has passed since it failed.
    async fn fetch_blocking<F, Fut>(
        &self,
        slot: &Slot,
        key: &CacheKey,
        fetches_seen: u64,
        fetch: F,
    ) -> Result<Token, IdentityError>
    where
        F: FnOnce(&CacheKey) -> Fut,
        Fut: Future<Output = Result<Token, IdentityError>>,
    {
        let _guard = slot.fetching.lock().await;
        {
            let state = slot.state();
            if let Some(token) = &state.token
                && freshness(token, self.clock.unix_nanos()) != Freshness::Unusable
            {
                return Ok(token.clone());
            }
            if let Some((error, failed_at)) = &state.last_failure
                && (state.fetches != fetches_seen
                    || self.clock.now() < *failed_at + self.limits.failure_memory)
            {
                return Err(error.clone());
            }
        }
        log::debug!("no usable cached token for {key}; fetching");
        let result = fetch(key).await;
        let mut state = slot.state();
        state.fetches += 1;
        match &result {
            Ok(token) => {
                state.token = Some(token.clone());
                state.refresh_not_before = None;
                state.last_failure = None;
            }
            Err(error) => state.last_failure = Some((error.clone(), self.clock.now())),
        }
        result
    }
}

#[cfg(test)]
mod key_hash_tests {
    use super::*;

    #[test]
    fn the_key_hash_is_fnv_1a() {
        // The published 64-bit FNV-1a test vectors.
        for (text, hash) in [
            ("", 0xcbf2_9ce4_8422_2325_u64),
            ("a", 0xaf63_dc4c_8601_ec8c),
            ("foobar", 0x8594_4171_f739_67e8),
        ] {
            let mut hasher = Fnv1a::default();
            hasher.write(text.as_bytes());
            assert_eq!(hasher.finish(), hash, "{text:?}");
        }
    }
}

#[cfg(test)]
mod claims_memo_tests {
    use super::*;
    use crate::{AccessTokenSecret, SourceKind};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn token(access_token: String) -> Token {
        let now = OffsetDateTime::now_utc();
        Token {
            access_token: AccessTokenSecret::new(access_token),
            token_type: "Bearer".into(),
            resource: "https://vault.azure.net".into(),
            expires_on: now,
            refresh_on: now,
            source: SourceKind::Imds,
            identity: IdentitySelector::SystemAssigned,
            claims: ClaimsMemo::default(),
        }
    }

    #[test]
    fn claims_are_decoded_once_and_shared_by_every_copy() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"oid":"o1","roles":["r"]}"#);
        let original = token(format!("e30.{payload}.c2ln"));
        let copy = original.clone();
        let decoded = original.claims().expect("a JWT");
        assert_eq!(decoded.oid.as_deref(), Some("o1"));
        assert!(std::ptr::eq(decoded, copy.claims().unwrap()), "one decode");
        assert!(token("not a jwt".into()).claims().is_none());
    }
}
