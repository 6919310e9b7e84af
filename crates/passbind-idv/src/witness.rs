//! Witness mode (seed 002, "Webhook-Based Identity Witnessing"): no identity proofing happens
//! in Passbind. For each run, a minimal identity bundle is signed by Passbind (a compact JWS,
//! EdDSA, verifiable with `/v1/audit/public-key`) and sent to the integrator's webhook, whose
//! answer is authoritative: `{"run_id": ..., "decision": "approve" | "reject"}`, authenticated
//! by `X-Passbind-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`
//! within five minutes. A timeout, an error, a bad signature, a stale or replayed answer, or an
//! answer about another run rejects.

use crate::signature::sign_sha2;
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use passbind_core::ports::{
    Clock, IdvError, IdvProvider, RunOutcome, RunStatus, StartRun, StartedRun, WebhookEvent,
};
use ring::signature::Ed25519KeyPair;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

/// The header that authenticates the integrator's answer.
pub const RESPONSE_SIGNATURE_HEADER: &str = "x-passbind-signature";
/// How far the answer's timestamp may be from now.
pub const TOLERANCE_SECS: i64 = 300;
/// Runs remembered (their verdict is read right after the answer).
const MAX_RUNS: usize = 10_000;

pub struct WitnessConfig {
    /// The integrator's webhook.
    pub url: Url,
    /// Shared secret that authenticates the answers.
    pub secret: String,
    pub timeout: Duration,
    /// Ed25519 seed that signs the bundles (Passbind's audit signing key).
    pub signing_seed: [u8; 32],
    /// The time of the bundles (`issued_at`) and of the answers' signature check.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WitnessConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessConfig")
            .field("url", &self.url.as_str())
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct WitnessProvider {
    url: Url,
    secret: zeroize::Zeroizing<String>,
    key: Ed25519KeyPair,
    key_id: String,
    http: reqwest::Client,
    runs: Mutex<HashMap<String, (RunStatus, String)>>,
    clock: Arc<dyn Clock>,
}

/// Checks `t=<unix>,v1=<hex>` over `body` with `secret` at time `now` (seconds).
pub fn verify_response_signature(secret: &[u8], header: &str, body: &[u8], now: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > TOLERANCE_SECS {
        return false;
    }
    let mut signed = t.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    sigs.iter()
        .any(|s| crate::signature::verify_sha2(secret, &signed, s))
}

/// Signs an answer as the integrator's webhook must (for tests and integrators).
pub fn sign_response(secret: &[u8], body: &[u8], now: i64) -> String {
    let mut signed = now.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!("t={now},v1={}", sign_sha2(secret, &signed))
}

impl WitnessProvider {
    pub fn new(cfg: WitnessConfig) -> Result<Self, crate::ConfigError> {
        if cfg.secret.len() < 16 {
            return Err(crate::ConfigError(
                "the witness secret must have at least 16 characters".into(),
            ));
        }
        if !matches!(cfg.url.scheme(), "http" | "https") {
            return Err(crate::ConfigError("the witness URL must be http(s)".into()));
        }
        let key = Ed25519KeyPair::from_seed_unchecked(&cfg.signing_seed)
            .map_err(|_| crate::ConfigError("bad signing seed".into()))?;
        let public = ring::signature::KeyPair::public_key(&key).as_ref().to_vec();
        let digest = ring::digest::digest(&ring::digest::SHA256, &public);
        let key_id = hex::encode(digest.as_ref().get(..8).unwrap_or_default());
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::ConfigError(format!("http client: {e}")))?;
        Ok(Self {
            url: cfg.url,
            secret: zeroize::Zeroizing::new(cfg.secret),
            key,
            key_id,
            http,
            runs: Mutex::new(HashMap::new()),
            clock: cfg.clock,
        })
    }

    /// The injected clock, in Unix seconds.
    fn unix_now(&self) -> i64 {
        self.clock.now().div_euclid(1000)
    }

    /// A compact JWS (EdDSA) over the bundle.
    fn sign_bundle(&self, bundle: &Value) -> String {
        let header = json!({"alg": "EdDSA", "typ": "passbind-witness+jwt", "kid": self.key_id});
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(bundle.to_string());
        let input = format!("{h}.{p}");
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// Asks the integrator; any failure is a reject, with its reason.
    async fn decide(&self, run_id: &str, jws: &str) -> (RunStatus, String) {
        let body = json!({ "bundle": jws }).to_string();
        let resp = match self
            .http
            .post(self.url.clone())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return (RunStatus::Error, "timeout".into()),
            Err(_) => return (RunStatus::Error, "unreachable".into()),
        };
        if !resp.status().is_success() {
            return (
                RunStatus::Error,
                format!("status_{}", resp.status().as_u16()),
            );
        }
        let sig = resp
            .headers()
            .get(RESPONSE_SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Ok(bytes) = resp.bytes().await else {
            return (RunStatus::Error, "unreadable".into());
        };
        let authentic = sig
            .map(|s| verify_response_signature(self.secret.as_bytes(), &s, &bytes, self.unix_now()))
            .unwrap_or(false);
        if !authentic {
            return (RunStatus::Error, "bad_signature".into());
        }
        let Ok(answer) = serde_json::from_slice::<Value>(&bytes) else {
            return (RunStatus::Error, "malformed".into());
        };
        if answer.get("run_id").and_then(Value::as_str) != Some(run_id) {
            return (RunStatus::Error, "other_run".into());
        }
        match answer.get("decision").and_then(Value::as_str) {
            Some("approve") => (RunStatus::Approved, "approved".into()),
            Some("reject") => (RunStatus::Declined, "rejected".into()),
            _ => (RunStatus::Error, "no_decision".into()),
        }
    }
}

#[async_trait]
impl IdvProvider for WitnessProvider {
    fn name(&self) -> &str {
        "witness"
    }

    fn settles_at_start(&self) -> bool {
        true
    }

    fn uses_biometrics(&self) -> bool {
        false
    }

    async fn start_run(&self, req: StartRun) -> Result<StartedRun, IdvError> {
        let run_id = uuid::Uuid::new_v4().to_string();
        let bundle = json!({
            "run_id": run_id,
            "purpose": req.purpose.as_str(),
            "session_id": req.session_id,
            "trace_id": req.session_id,
            "customer_user_ref": req.customer_user_ref,
            "issued_at": self.unix_now(),
            "identity": { "kind": "witness", "user_ref": req.customer_user_ref },
        });
        let jws = self.sign_bundle(&bundle);
        let (status, reason) = self.decide(&run_id, &jws).await;
        tracing::info!(run = %run_id, decision = ?status, reason, "witness decision");
        if let Ok(mut runs) = self.runs.lock() {
            if runs.len() >= MAX_RUNS {
                runs.clear();
            }
            runs.insert(run_id.clone(), (status, reason));
        }
        Ok(StartedRun {
            run_id,
            sdk_token: String::new(),
            capture_url: None,
        })
    }

    fn verify_webhook(
        &self,
        _header: &(dyn Fn(&str) -> Option<String> + Sync),
        _body: &[u8],
    ) -> Result<WebhookEvent, IdvError> {
        Err(IdvError::InvalidSignature)
    }

    async fn fetch_run(&self, run_id: &str) -> Result<RunOutcome, IdvError> {
        let found = self
            .runs
            .lock()
            .ok()
            .and_then(|runs| runs.get(run_id).cloned());
        let (status, reason) =
            found.ok_or_else(|| IdvError::Rejected("unknown witness run".into()))?;
        Ok(RunOutcome {
            run_id: run_id.to_owned(),
            status,
            biometric_token: None,
            identity: Some(zeroize::Zeroizing::new(
                json!({ "witness_decision": reason }).to_string(),
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn response_signatures() {
        let body = br#"{"run_id":"r","decision":"approve"}"#;
        let h = sign_response(b"0123456789abcdef", body, 1_000_000);
        assert!(verify_response_signature(
            b"0123456789abcdef",
            &h,
            body,
            1_000_000
        ));
        assert!(verify_response_signature(
            b"0123456789abcdef",
            &h,
            body,
            1_000_299
        ));
        assert!(
            !verify_response_signature(b"0123456789abcdef", &h, body, 1_000_301),
            "stale"
        );
        assert!(!verify_response_signature(
            b"another-secret-xx",
            &h,
            body,
            1_000_000
        ));
        assert!(!verify_response_signature(
            b"0123456789abcdef",
            &h,
            b"{}",
            1_000_000
        ));
        assert!(!verify_response_signature(
            b"0123456789abcdef",
            "v1=00",
            body,
            1_000_000
        ));
        assert!(!verify_response_signature(
            b"0123456789abcdef",
            "",
            body,
            1_000_000
        ));
        // Several v1 values during secret rotation: one valid is enough.
        let two = format!("{h},v1={}", "0".repeat(64));
        assert!(verify_response_signature(
            b"0123456789abcdef",
            &two,
            body,
            1_000_000
        ));
    }
}
