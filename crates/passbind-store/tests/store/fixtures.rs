//! Records for the tests, and assertions on commit results.

use passbind_core::model::{
    ApiKeyRecord, Conflict, CredentialRecord, EbtRecord, SecretRecord, SessionRecord, StoreError,
    UserRecord, Write,
};
use passbind_proto::session::{Flow, SessionState};
use serde_json::json;

pub const T0: i64 = 1_700_000_000_000;

pub fn user(n: u32) -> UserRecord {
    UserRecord {
        id: format!("usr_{n}"),
        external_user_id: format!("ext-{n}"),
        user_handle: handle(n),
        created_at: T0 + i64::from(n),
        erased_at: None,
    }
}

pub fn handle(n: u32) -> Vec<u8> {
    let mut h = vec![0xA5; 32];
    h[..4].copy_from_slice(&n.to_be_bytes());
    h
}

pub fn session(id: &str, u: &UserRecord, created_at: i64) -> SessionRecord {
    SessionRecord {
        id: id.to_owned(),
        flow: Flow::Registration,
        state: SessionState::Created,
        version: 1,
        user_id: u.id.clone(),
        external_user_id: u.external_user_id.clone(),
        created_at,
        updated_at: created_at,
        expires_at: created_at + 600_000,
        idv_provider: None,
        idv_run_id: None,
        idv_failure: None,
        credential_id: None,
        data: json!({ "challenge": "abc", "n": 1, "nested": { "list": [1, 2, 3] } }),
    }
}

/// A session with an identity-verification run.
pub fn session_with_run(id: &str, u: &UserRecord, provider: &str, run: &str) -> SessionRecord {
    SessionRecord {
        state: SessionState::IdvPending,
        idv_provider: Some(provider.to_owned()),
        idv_run_id: Some(run.to_owned()),
        ..session(id, u, T0)
    }
}

pub fn ebt(u: &UserRecord, key_version: u32) -> EbtRecord {
    EbtRecord {
        user_id: u.id.clone(),
        key_version,
        wrapped_dek: vec![1; 60],
        ciphertext: vec![2, 0, 255, 7],
        created_at: T0,
    }
}

pub fn credential(id: &str, u: &UserRecord, created_at: i64) -> CredentialRecord {
    CredentialRecord {
        credential_id: id.to_owned(),
        user_id: u.id.clone(),
        public_key: Some(vec![0xA5, 0x01, 0x02, 0x03, 0x26]),
        alg: Some(-7),
        sign_count: 0,
        aaguid: Some("00112233445566778899aabbccddeeff".to_owned()),
        transports: vec!["internal".to_owned(), "hybrid".to_owned()],
        backup_eligible: true,
        backed_up: false,
        attestation_format: Some("none".to_owned()),
        device_label: Some("Pixel".to_owned()),
        registration_session_id: "ses_reg".to_owned(),
        created_at,
        last_used_at: None,
        revoked_at: None,
    }
}

/// A credential with every optional field empty (external relying-party mode).
pub fn bare_credential(id: &str, u: &UserRecord, created_at: i64) -> CredentialRecord {
    CredentialRecord {
        public_key: None,
        alg: None,
        aaguid: None,
        transports: Vec::new(),
        backup_eligible: false,
        attestation_format: None,
        device_label: None,
        ..credential(id, u, created_at)
    }
}

pub fn api_key(id: &str, created_at: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.to_owned(),
        name: format!("key {id}"),
        secret_hash: vec![9; 32],
        scopes: vec!["sessions:write".to_owned(), "users:read".to_owned()],
        created_at,
        revoked_at: None,
    }
}

pub fn secret(hash_byte: u8, session_id: &str) -> SecretRecord {
    SecretRecord {
        hash: vec![hash_byte; 32],
        kind: "handoff".to_owned(),
        session_id: session_id.to_owned(),
        created_at: T0,
        expires_at: T0 + 300_000,
        consumed_at: None,
    }
}

pub fn idv_event(provider: &str, key: &str) -> Write {
    Write::RecordIdvEvent {
        provider: provider.to_owned(),
        event_key: key.to_owned(),
        received_at: T0,
    }
}

#[track_caller]
pub fn assert_conflict(result: Result<(), StoreError>, expected: Conflict) {
    match result {
        Err(StoreError::Conflict(c)) => assert_eq!(c, expected),
        other => panic!("expected conflict {expected:?}, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_backend<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Backend(msg)) => msg,
        other => panic!("expected a backend error, got {other:?}"),
    }
}
