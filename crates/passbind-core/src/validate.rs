//! Input rules shared by every flow.

use crate::error::CoreError;

/// The reserved workflow-input key that only Passbind may set.
pub const RESERVED_KEY: &str = "encrypted_biometric_token";

/// `external_user_id`: 1 to 128 URL-safe characters (`A-Z a-z 0-9 . _ ~ -`).
pub fn external_user_id(id: &str) -> Result<(), CoreError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-');
    if id.is_empty() || id.len() > 128 || !id.chars().all(ok_char) {
        return Err(CoreError::validation(
            "external_user_id",
            "must be 1 to 128 characters from A-Z a-z 0-9 . _ ~ -",
        ));
    }
    Ok(())
}

/// `workflow_input.custom_data`: free-form, but never the reserved key, and bounded.
pub fn custom_data(
    data: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<serde_json::Map<String, serde_json::Value>, CoreError> {
    let Some(data) = data else {
        return Ok(serde_json::Map::new());
    };
    if data.contains_key(RESERVED_KEY) {
        return Err(CoreError::ReservedKey);
    }
    if data.len() > 64 {
        return Err(CoreError::validation(
            "workflow_input.custom_data",
            "at most 64 keys",
        ));
    }
    Ok(data.clone())
}

/// Whether a string has the shape of one of Passbind's record ids (`prefix_` + base32). Ids
/// from paths are checked before any lookup, so that bytes a database refuses (NUL, invalid
/// UTF-8) never reach it.
pub fn is_record_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Optional short display text (display name, device label).
pub fn short_text(field: &str, value: Option<&str>, max: usize) -> Result<(), CoreError> {
    if let Some(v) = value {
        if v.chars().count() > max || v.chars().any(char::is_control) {
            return Err(CoreError::validation(
                field,
                "too long or contains control characters",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn external_ids() {
        for ok in ["a", "user-1", "U.s_e~r", &"x".repeat(128)] {
            assert!(external_user_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "ü",
            "a%20",
            "a\n",
            &"x".repeat(129),
            "a+b",
        ] {
            assert!(external_user_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn record_ids() {
        assert!(is_record_id("reg_0123abc"));
        for bad in ["", "reg\0", "REG_1", "a/b", "..", &"a".repeat(65)] {
            assert!(!is_record_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn reserved_key_is_refused() {
        let mut m = serde_json::Map::new();
        m.insert("locale".into(), "en".into());
        assert!(custom_data(Some(&m)).is_ok());
        m.insert(RESERVED_KEY.into(), "x".into());
        assert!(matches!(custom_data(Some(&m)), Err(CoreError::ReservedKey)));
    }
}
