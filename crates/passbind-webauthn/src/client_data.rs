//! `clientDataJSON` (CollectedClientData, L3 §5.8.1) parsing and the checks shared by both
//! ceremonies.
//!
//! Parsing tolerates what real clients send: unknown keys (the dictionary is extensible),
//! the legacy `tokenBinding` member, escaped slashes (`https:\/\/...`), any whitespace or
//! key order. Duplicate keys among the members read here are rejected.

use crate::b64;
use crate::error::WebauthnError;
use serde::Deserialize;
use std::borrow::Cow;

/// The legacy `tokenBinding` member: a TokenBinding dictionary, or something else that some
/// old clients sent (e.g. the string "unused"), which is ignored.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenBindingMember {
    Dictionary { status: String },
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
pub(crate) struct ClientData<'a> {
    #[serde(rename = "type", borrow)]
    pub type_: Cow<'a, str>,
    #[serde(borrow)]
    pub challenge: Cow<'a, str>,
    #[serde(borrow)]
    pub origin: Cow<'a, str>,
    #[serde(rename = "crossOrigin", default)]
    pub cross_origin: Option<bool>,
    #[serde(rename = "topOrigin", default, borrow)]
    pub top_origin: Option<Cow<'a, str>>,
    #[serde(rename = "tokenBinding", default)]
    token_binding: Option<TokenBindingMember>,
}

/// Parses clientDataJSON (steps "Let JSONtext be the result of running UTF-8 decode on
/// cData" and "Let C ... be the result of running an implementation-specific JSON parser").
pub(crate) fn parse(bytes: &[u8]) -> Result<ClientData<'_>, WebauthnError> {
    // serde_json validates UTF-8 while parsing from a slice.
    let cd: ClientData<'_> = serde_json::from_slice(bytes)
        .map_err(|e| WebauthnError::malformed(format!("clientDataJSON: {e}")))?;
    // tokenBinding is deprecated; if it is a TokenBinding dictionary, its status must still
    // be a valid TokenBindingStatus ("present" | "supported"); anything else is malformed.
    if let Some(TokenBindingMember::Dictionary { status }) = &cd.token_binding {
        if status != "present" && status != "supported" {
            return Err(WebauthnError::malformed(format!(
                "clientDataJSON.tokenBinding.status {status:?} is not a TokenBindingStatus"
            )));
        }
    }
    Ok(cd)
}

impl ClientData<'_> {
    /// Type check ("Verify that the value of C.type is ...").
    pub fn check_type(&self, expected: &'static str) -> Result<(), WebauthnError> {
        if self.type_ != expected {
            return Err(WebauthnError::ClientDataTypeMismatch {
                expected,
                found: self.type_.to_string(),
            });
        }
        Ok(())
    }

    /// Challenge check ("Verify that the value of C.challenge equals the base64url encoding
    /// of options.challenge"): an exact, constant-time string comparison with the unpadded
    /// base64url encoding (trailing `=` padding is tolerated).
    pub fn check_challenge(&self, expected: &[u8]) -> Result<(), WebauthnError> {
        use subtle::ConstantTimeEq as _;
        let expected = b64::encode(expected);
        let got = self.challenge.trim_end_matches('=');
        if got.len() != expected.len() || !bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(WebauthnError::ChallengeMismatch);
        }
        Ok(())
    }

    /// Cross-origin check: Passbind never embeds its ceremonies in third-party iframes, so
    /// `crossOrigin: true` or a `topOrigin` is rejected (L3 §7.1 step 10 / §7.2 step 13).
    pub fn check_not_cross_origin(&self) -> Result<(), WebauthnError> {
        if self.cross_origin == Some(true) || self.top_origin.is_some() {
            return Err(WebauthnError::CrossOriginNotAllowed);
        }
        Ok(())
    }
}
