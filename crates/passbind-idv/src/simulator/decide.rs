//! The simulated workflow's decision (the seed's workflow contract):
//!
//! * input `encrypted_biometric_token` empty: new-user registration. Approved iff the face is
//!   live and matches the document photo (cosine >= threshold); an approved run outputs a new
//!   `encrypted_biometric_token` and the document's `identity`.
//! * input token present: face-only match against the template sealed in the token (a token
//!   that does not open: `declined`, reason `invalid_biometric_token`). Approved iff live and
//!   matching; no new token.
//! * `simulate` forces an outcome (test control).

use super::capture::{Simulate, SimulatorCapture};
use super::ebt::EbtSealer;
use crate::face::cosine;
use crate::wire::{RunError, EBT_KEY};
use serde_json::{json, Value};

pub(crate) struct Verdict {
    pub status: &'static str,
    pub output: Option<Value>,
    pub reasons: Vec<String>,
    pub error: Option<RunError>,
}

impl Verdict {
    fn status(status: &'static str, reason: &str) -> Self {
        Self {
            status,
            output: None,
            reasons: vec![reason.to_owned()],
            error: None,
        }
    }

    fn declined(reason: &str) -> Self {
        Self::status("declined", reason)
    }

    fn error(kind: &str, message: &str) -> Self {
        Self {
            status: "error",
            output: None,
            reasons: Vec::new(),
            error: Some(RunError {
                kind: Some(kind.to_owned()),
                message: Some(message.to_owned()),
            }),
        }
    }
}

pub(crate) fn decide(
    capture: &SimulatorCapture,
    input_token: &str,
    sealer: &EbtSealer,
    threshold: f32,
) -> Verdict {
    let registration = input_token.is_empty();
    let identity = || {
        capture.document.as_ref().map(|d| {
            json!({
                "document_type": d.document_type,
                "issuing_country": d.issuing_country,
                "document_number": d.document_number,
                "given_names": d.given_names,
                "family_name": d.family_name,
                "date_of_birth": d.date_of_birth,
            })
        })
    };
    match capture.simulated() {
        Some(Simulate::Review) => return Verdict::status("review", "simulated_review"),
        Some(Simulate::Abandoned) => return Verdict::status("abandoned", "simulated_abandon"),
        Some(Simulate::Declined) => return Verdict::declined("simulated_decline"),
        Some(Simulate::Error) => {
            return Verdict::error("simulated_error", "forced by the capture's simulate field")
        }
        Some(Simulate::ApprovedWithoutToken) => {
            let mut output = serde_json::Map::new();
            if let Some(identity) = identity().filter(|_| registration) {
                output.insert("identity".into(), identity);
            }
            return Verdict {
                status: "approved",
                output: Some(Value::Object(output)),
                reasons: Vec::new(),
                error: None,
            };
        }
        None => {}
    }

    if registration {
        let Some(document) = &capture.document else {
            return Verdict::declined("document_missing");
        };
        if !capture.face.liveness {
            return Verdict::declined("liveness_failed");
        }
        if cosine(&capture.face.template, &document.face_template) < threshold {
            return Verdict::declined("face_mismatch");
        }
        let Some(token) = sealer.seal(&capture.face.template) else {
            return Verdict::error("internal_error", "sealing the biometric token failed");
        };
        let mut output = serde_json::Map::new();
        output.insert(EBT_KEY.into(), Value::String(token.to_string()));
        if let Some(identity) = identity() {
            output.insert("identity".into(), identity);
        }
        return Verdict {
            status: "approved",
            output: Some(Value::Object(output)),
            reasons: Vec::new(),
            error: None,
        };
    }

    let Some(reference) = sealer.open(input_token) else {
        return Verdict::declined("invalid_biometric_token");
    };
    if !capture.face.liveness {
        return Verdict::declined("liveness_failed");
    }
    if cosine(&capture.face.template, &reference) < threshold {
        return Verdict::declined("face_mismatch");
    }
    Verdict {
        status: "approved",
        output: Some(Value::Object(serde_json::Map::new())),
        reasons: Vec::new(),
        error: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::face::FaceTemplate;
    use crate::simulator::capture::DocumentCapture;

    #[test]
    fn registration_then_face_only() {
        let sealer = EbtSealer::new(&[1u8; 32]).unwrap();
        let person = FaceTemplate::of_person(42);
        let capture = SimulatorCapture::with_document(
            &person.live_capture(1),
            true,
            DocumentCapture::sample_passport(&person),
        );
        let v = decide(&capture, "", &sealer, 0.8);
        assert_eq!(v.status, "approved");
        let output = v.output.unwrap();
        let token = output[EBT_KEY].as_str().unwrap().to_owned();
        assert_eq!(output["identity"]["family_name"], "Doe");

        let again = SimulatorCapture::face_only(&person.live_capture(2), true);
        let v = decide(&again, &token, &sealer, 0.8);
        assert_eq!(v.status, "approved");
        assert!(v.output.unwrap().get(EBT_KEY).is_none());

        let stranger = SimulatorCapture::face_only(&FaceTemplate::of_person(43), true);
        let v = decide(&stranger, &token, &sealer, 0.8);
        assert_eq!(
            (v.status, v.reasons[0].as_str()),
            ("declined", "face_mismatch")
        );

        let spoof = SimulatorCapture::face_only(&person.live_capture(3), false);
        let v = decide(&spoof, &token, &sealer, 0.8);
        assert_eq!(
            (v.status, v.reasons[0].as_str()),
            ("declined", "liveness_failed")
        );

        let v = decide(&again, "garbage", &sealer, 0.8);
        assert_eq!(
            (v.status, v.reasons[0].as_str()),
            ("declined", "invalid_biometric_token")
        );
    }

    #[test]
    fn registration_with_someone_elses_document_is_declined() {
        let sealer = EbtSealer::new(&[1u8; 32]).unwrap();
        let capture = SimulatorCapture::with_document(
            &FaceTemplate::of_person(1).live_capture(1),
            true,
            DocumentCapture::sample_passport(&FaceTemplate::of_person(2)),
        );
        let v = decide(&capture, "", &sealer, 0.8);
        assert_eq!(
            (v.status, v.reasons[0].as_str()),
            ("declined", "face_mismatch")
        );
    }
}
