//! API keys for the integrator backend: `pbk_<id>_<secret>`. Only a SHA-256 of the 256-bit
//! secret is stored (a slow password hash adds nothing for a random secret of that size, and
//! would put a KDF on every request); lookups go by id, the comparison is constant-time.

use crate::crypto::{b64url, b64url_decode, ct_eq, random_bytes, sha256};
use crate::error::CoreError;
use crate::model::{ApiKeyRecord, Millis};
use crate::ports::Rng;

/// The scopes an API key can carry.
pub const SCOPES: &[(&str, &str)] = &[
    (
        "flows",
        "open, read, complete and cancel sessions of every flow",
    ),
    ("users", "read users, revoke credentials, erase users"),
    ("audit", "read and export the audit trail"),
];

pub const SCOPE_FLOWS: &str = "flows";
pub const SCOPE_USERS: &str = "users";
pub const SCOPE_AUDIT: &str = "audit";

/// A new key: the record to store and the token to show once.
pub struct NewApiKey {
    pub record: ApiKeyRecord,
    pub token: String,
}

pub fn new_api_key(
    rng: &dyn Rng,
    name: &str,
    scopes: &[String],
    now: Millis,
) -> Result<NewApiKey, CoreError> {
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(CoreError::validation(
            "name",
            "1 to 64 printable characters",
        ));
    }
    if scopes.is_empty() {
        return Err(CoreError::validation("scopes", "at least one scope"));
    }
    for s in scopes {
        if !SCOPES.iter().any(|(k, _)| k == s) {
            return Err(CoreError::validation("scopes", "unknown scope"));
        }
    }
    let id = hex::encode(random_bytes::<8>(rng));
    let secret: [u8; 32] = random_bytes(rng);
    let token = format!("pbk_{id}_{}", b64url(&secret));
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    Ok(NewApiKey {
        record: ApiKeyRecord {
            id,
            name: name.to_owned(),
            secret_hash: sha256(&secret).to_vec(),
            scopes,
            created_at: now,
            revoked_at: None,
        },
        token,
    })
}

/// Splits a presented token into (id, secret); `None` if it is not of the key's form.
pub fn parse_token(token: &str) -> Option<(&str, Vec<u8>)> {
    let rest = token.strip_prefix("pbk_")?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let secret = b64url_decode(secret)?;
    (secret.len() == 32).then_some((id, secret))
}

/// Checks a presented secret against a stored record.
pub fn check(record: &ApiKeyRecord, secret: &[u8]) -> Result<(), CoreError> {
    if record.revoked_at.is_some() || !ct_eq(&sha256(secret), &record.secret_hash) {
        return Err(CoreError::Unauthorized);
    }
    Ok(())
}

/// API keys recently read from the store, so that a request does not read its key again.
///
/// An entry is trusted for the engine's `api_key_cache_ms` after it was read (default 1 s),
/// then read again. A key revoked through this engine is forgotten at once; a key revoked
/// through another replica is refused here at the latest that long after the revocation
/// committed. Only keys that exist are kept (an unknown id is read every time, so random ids
/// cannot fill the cache), and at most [`ApiKeyCache::CAPACITY`] of them.
#[derive(Debug, Default)]
pub struct ApiKeyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (ApiKeyRecord, Millis)>>,
}

impl ApiKeyCache {
    pub const CAPACITY: usize = 4096;

    /// The key `id` if it was read less than `ttl_ms` before `now`.
    pub fn get(&self, id: &str, now: Millis, ttl_ms: i64) -> Option<ApiKeyRecord> {
        let entries = self.entries.lock().ok()?;
        let (record, read_at) = entries.get(id)?;
        (now >= *read_at && now - *read_at < ttl_ms).then(|| record.clone())
    }

    pub fn put(&self, record: &ApiKeyRecord, now: Millis) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::CAPACITY && !entries.contains_key(&record.id) {
                entries.clear();
            }
            entries.insert(record.id.clone(), (record.clone(), now));
        }
    }

    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::tests::CountingRng;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn token_roundtrip_and_refusals() {
        let rng = CountingRng(AtomicU64::new(5));
        let k = new_api_key(&rng, "backend", &["flows".into()], 1).unwrap();
        let (id, secret) = parse_token(&k.token).unwrap();
        assert_eq!(id, k.record.id);
        assert!(check(&k.record, &secret).is_ok());
        let mut wrong = secret.clone();
        wrong[0] ^= 1;
        assert!(check(&k.record, &wrong).is_err());
        let revoked = ApiKeyRecord {
            revoked_at: Some(2),
            ..k.record.clone()
        };
        assert!(check(&revoked, &secret).is_err());
        for bad in [
            "",
            "pbk_",
            "pbk_zz_abc",
            "Bearer x",
            "pbk_0123456789abcdef_short",
        ] {
            assert!(parse_token(bad).is_none(), "{bad}");
        }
        assert!(new_api_key(&rng, "x", &["root".into()], 1).is_err());
        assert!(new_api_key(&rng, "", &["flows".into()], 1).is_err());
    }

    #[test]
    fn cached_keys_expire_and_are_forgotten() {
        let rng = CountingRng(AtomicU64::new(7));
        let k = new_api_key(&rng, "backend", &["flows".into()], 1).unwrap();
        let cache = ApiKeyCache::default();
        assert!(cache.get(&k.record.id, 1000, 1000).is_none());
        cache.put(&k.record, 1000);
        assert_eq!(cache.get(&k.record.id, 1999, 1000), Some(k.record.clone()));
        // Expired, from the future (a clock step back), disabled, forgotten: read again.
        assert!(cache.get(&k.record.id, 2000, 1000).is_none());
        assert!(cache.get(&k.record.id, 999, 1000).is_none());
        assert!(cache.get(&k.record.id, 1000, 0).is_none());
        cache.forget(&k.record.id);
        assert!(cache.get(&k.record.id, 1001, 1000).is_none());
    }
}
