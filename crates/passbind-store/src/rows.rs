//! Rows to records, and records to column values. Every stored value is checked on the way
//! out: an unknown enumeration string, a non-0/1 boolean, malformed JSON or an out-of-range
//! number becomes [`StoreError::Backend`], never a panic.

use crate::db::{FromValue, Row};
use crate::error::corrupt;
use passbind_core::model::{
    ApiKeyRecord, CredentialRecord, EbtRecord, SecretRecord, SessionRecord, StoreError, UserRecord,
};
use passbind_proto::session::{Flow, IdvFailureReason, SessionState};

/// The columns each record is read from (the decoders below read them by name).
macro_rules! user_columns {
    () => {
        "id, external_user_id, user_handle, created_at, erased_at"
    };
}
macro_rules! ebt_columns {
    () => {
        "user_id, key_version, wrapped_dek, ciphertext, created_at"
    };
}
macro_rules! credential_columns {
    () => {
        "credential_id, user_id, public_key, alg, sign_count, aaguid, transports, \
         backup_eligible, backed_up, attestation_format, device_label, \
         registration_session_id, created_at, last_used_at, revoked_at"
    };
}
macro_rules! session_columns {
    () => {
        "id, flow, state, version, user_id, external_user_id, created_at, updated_at, \
         expires_at, idv_provider, idv_run_id, idv_failure, credential_id, data"
    };
}
macro_rules! api_key_columns {
    () => {
        "id, name, secret_hash, scopes, created_at, revoked_at"
    };
}
macro_rules! secret_columns {
    () => {
        "hash, kind, session_id, created_at, expires_at, consumed_at"
    };
}
pub(crate) use {
    api_key_columns, credential_columns, ebt_columns, secret_columns, session_columns, user_columns,
};

/// Typed access to one row of `table`.
struct Cols<'r> {
    row: &'r Row,
    table: &'static str,
}

impl<'r> Cols<'r> {
    fn new(row: &'r Row, table: &'static str) -> Self {
        Self { row, table }
    }

    fn get<T: FromValue>(&self, column: &'static str) -> Result<T, StoreError> {
        self.row
            .get::<T>(column)
            .ok_or_else(|| corrupt(self.table, column, "unexpected type or null"))
    }

    fn flag(&self, column: &'static str) -> Result<bool, StoreError> {
        match self.get::<i64>(column)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt(self.table, column, "not a 0/1 boolean")),
        }
    }

    fn string_list(&self, column: &'static str) -> Result<Vec<String>, StoreError> {
        let text: String = self.get(column)?;
        serde_json::from_str(&text)
            .map_err(|_| corrupt(self.table, column, "not a JSON list of strings"))
    }
}

pub(crate) fn flag(value: bool) -> i16 {
    i16::from(value)
}

pub(crate) fn string_list(values: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(values)
        .map_err(|_| StoreError::Backend("cannot encode a list of strings as JSON".to_owned()))
}

pub(crate) fn json(value: &serde_json::Value) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|_| StoreError::Backend("cannot encode session data as JSON".to_owned()))
}

pub(crate) fn user(row: &Row) -> Result<UserRecord, StoreError> {
    let c = Cols::new(row, "users");
    Ok(UserRecord {
        id: c.get("id")?,
        external_user_id: c.get("external_user_id")?,
        user_handle: c.get("user_handle")?,
        created_at: c.get("created_at")?,
        erased_at: c.get("erased_at")?,
    })
}

pub(crate) fn ebt(row: &Row) -> Result<EbtRecord, StoreError> {
    let c = Cols::new(row, "ebts");
    let key_version: i64 = c.get("key_version")?;
    Ok(EbtRecord {
        user_id: c.get("user_id")?,
        key_version: u32::try_from(key_version)
            .map_err(|_| corrupt("ebts", "key_version", "out of range for u32"))?,
        wrapped_dek: c.get("wrapped_dek")?,
        ciphertext: c.get("ciphertext")?,
        created_at: c.get("created_at")?,
    })
}

pub(crate) fn credential(row: &Row) -> Result<CredentialRecord, StoreError> {
    let c = Cols::new(row, "credentials");
    Ok(CredentialRecord {
        credential_id: c.get("credential_id")?,
        user_id: c.get("user_id")?,
        public_key: c.get("public_key")?,
        alg: c.get("alg")?,
        sign_count: c.get("sign_count")?,
        aaguid: c.get("aaguid")?,
        transports: c.string_list("transports")?,
        backup_eligible: c.flag("backup_eligible")?,
        backed_up: c.flag("backed_up")?,
        attestation_format: c.get("attestation_format")?,
        device_label: c.get("device_label")?,
        registration_session_id: c.get("registration_session_id")?,
        created_at: c.get("created_at")?,
        last_used_at: c.get("last_used_at")?,
        revoked_at: c.get("revoked_at")?,
    })
}

pub(crate) fn session(row: &Row) -> Result<SessionRecord, StoreError> {
    let c = Cols::new(row, "sessions");
    let flow: String = c.get("flow")?;
    let state: String = c.get("state")?;
    let idv_failure: Option<String> = c.get("idv_failure")?;
    let data: String = c.get("data")?;
    Ok(SessionRecord {
        id: c.get("id")?,
        flow: Flow::parse(&flow).ok_or_else(|| corrupt("sessions", "flow", "unknown flow"))?,
        state: SessionState::parse(&state)
            .ok_or_else(|| corrupt("sessions", "state", "unknown state"))?,
        version: c.get("version")?,
        user_id: c.get("user_id")?,
        external_user_id: c.get("external_user_id")?,
        created_at: c.get("created_at")?,
        updated_at: c.get("updated_at")?,
        expires_at: c.get("expires_at")?,
        idv_provider: c.get("idv_provider")?,
        idv_run_id: c.get("idv_run_id")?,
        idv_failure: idv_failure
            .map(|s| {
                IdvFailureReason::parse(&s)
                    .ok_or_else(|| corrupt("sessions", "idv_failure", "unknown failure reason"))
            })
            .transpose()?,
        credential_id: c.get("credential_id")?,
        data: serde_json::from_str(&data).map_err(|_| corrupt("sessions", "data", "not JSON"))?,
    })
}

pub(crate) fn api_key(row: &Row) -> Result<ApiKeyRecord, StoreError> {
    let c = Cols::new(row, "api_keys");
    Ok(ApiKeyRecord {
        id: c.get("id")?,
        name: c.get("name")?,
        secret_hash: c.get("secret_hash")?,
        scopes: c.string_list("scopes")?,
        created_at: c.get("created_at")?,
        revoked_at: c.get("revoked_at")?,
    })
}

pub(crate) fn secret(row: &Row) -> Result<SecretRecord, StoreError> {
    let c = Cols::new(row, "secrets");
    Ok(SecretRecord {
        hash: c.get("hash")?,
        kind: c.get("kind")?,
        session_id: c.get("session_id")?,
        created_at: c.get("created_at")?,
        expires_at: c.get("expires_at")?,
        consumed_at: c.get("consumed_at")?,
    })
}

pub(crate) fn failure_time(row: &Row) -> Result<i64, StoreError> {
    Cols::new(row, "failures").get("at")
}
