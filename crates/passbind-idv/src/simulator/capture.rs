//! What the device posts to the simulator's `POST /sdk/captures`: the stand-in for a real
//! SDK's document photos and live selfie video, reduced to face templates and document fields.

use crate::face::{FaceTemplate, TEMPLATE_DIMS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A capture: a live face, and for a new user's registration the identity document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorCapture {
    pub face: FaceCapture,
    /// Required when the run's input `encrypted_biometric_token` is empty (new-user
    /// registration); ignored otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentCapture>,
    /// **Test control, not part of any real provider's protocol**: forces the run's outcome so
    /// integrators can exercise every branch. One of `review`, `abandoned`, `error`,
    /// `declined`, `approved_without_token` (see [`Simulate`]). With it set, a registration
    /// capture needs no document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulate: Option<String>,
}

/// The live face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceCapture {
    /// Exactly [`TEMPLATE_DIMS`] finite values, not all zero.
    #[serde(deserialize_with = "f32_values")]
    pub template: Vec<f32>,
    /// Whether the (simulated) liveness check passed.
    pub liveness: bool,
}

/// The identity document as the (simulated) document check reads it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentCapture {
    /// e.g. `passport`, `driving_licence`, `national_identity_card`.
    pub document_type: String,
    /// ISO 3166-1 country code, upper case (`GBR`, or `GB`).
    pub issuing_country: String,
    pub document_number: String,
    pub given_names: String,
    pub family_name: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// The face on the document: [`TEMPLATE_DIMS`] finite values, not all zero.
    #[serde(deserialize_with = "f32_values")]
    pub face_template: Vec<f32>,
}

impl fmt::Debug for DocumentCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentCapture")
            .field("document_type", &self.document_type)
            .field("issuing_country", &self.issuing_country)
            .finish_non_exhaustive()
    }
}

/// The outcomes a capture can force through [`SimulatorCapture::simulate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulate {
    Review,
    Abandoned,
    Error,
    Declined,
    /// `approved`, but without `output.encrypted_biometric_token`.
    ApprovedWithoutToken,
}

impl Simulate {
    pub const ALL: [Simulate; 5] = [
        Self::Review,
        Self::Abandoned,
        Self::Error,
        Self::Declined,
        Self::ApprovedWithoutToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Review => "review",
            Self::Abandoned => "abandoned",
            Self::Error => "error",
            Self::Declined => "declined",
            Self::ApprovedWithoutToken => "approved_without_token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Onfido-style field errors: field path -> messages.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

impl SimulatorCapture {
    /// A face-only capture (step-up, recovery, prior-biometric registration).
    pub fn face_only(face: &FaceTemplate, liveness: bool) -> Self {
        Self {
            face: FaceCapture {
                template: face.as_slice().to_vec(),
                liveness,
            },
            document: None,
            simulate: None,
        }
    }

    /// A registration capture: live face plus document.
    pub fn with_document(face: &FaceTemplate, liveness: bool, document: DocumentCapture) -> Self {
        Self {
            document: Some(document),
            ..Self::face_only(face, liveness)
        }
    }

    /// The same capture, forcing `outcome`.
    pub fn simulating(mut self, outcome: Simulate) -> Self {
        self.simulate = Some(outcome.as_str().to_owned());
        self
    }

    /// The forced outcome, if any (None also for an unknown value: see [`Self::validate`]).
    pub fn simulated(&self) -> Option<Simulate> {
        self.simulate.as_deref().and_then(Simulate::parse)
    }

    /// Checks templates, document fields and `simulate`.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        check_template("face.template", &self.face.template, &mut errors);
        if let Some(doc) = &self.document {
            doc.check(&mut errors);
        }
        if let Some(s) = &self.simulate {
            if Simulate::parse(s).is_none() {
                let allowed: Vec<&str> = Simulate::ALL.iter().map(|v| v.as_str()).collect();
                push(
                    &mut errors,
                    "simulate",
                    format!("must be one of {}", allowed.join(", ")),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl DocumentCapture {
    /// A synthetic passport of the person whose document photo is `face`.
    pub fn sample_passport(face: &FaceTemplate) -> Self {
        Self {
            document_type: "passport".into(),
            issuing_country: "GBR".into(),
            document_number: "123456789".into(),
            given_names: "Jane".into(),
            family_name: "Doe".into(),
            date_of_birth: "1990-01-01".into(),
            face_template: face.as_slice().to_vec(),
        }
    }

    fn check(&self, errors: &mut FieldErrors) {
        for (field, value, max) in [
            ("document.document_type", &self.document_type, 64),
            ("document.document_number", &self.document_number, 64),
            ("document.given_names", &self.given_names, 256),
            ("document.family_name", &self.family_name, 256),
        ] {
            if value.trim().is_empty() {
                push(errors, field, "must not be blank".into());
            } else if value.chars().count() > max {
                push(errors, field, format!("must be at most {max} characters"));
            } else if value.chars().any(char::is_control) {
                push(errors, field, "must not contain control characters".into());
            }
        }
        let country = &self.issuing_country;
        if !(2..=3).contains(&country.len()) || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            push(
                errors,
                "document.issuing_country",
                "must be an upper-case ISO 3166-1 alpha-2 or alpha-3 code".into(),
            );
        }
        let iso_date = time::format_description::well_known::Iso8601::DATE;
        if self.date_of_birth.len() != 10
            || time::Date::parse(&self.date_of_birth, &iso_date).is_err()
        {
            push(
                errors,
                "document.date_of_birth",
                "must be a date as YYYY-MM-DD".into(),
            );
        }
        check_template("document.face_template", &self.face_template, errors);
    }
}

/// Template values as JSON numbers of any size: read as doubles and narrowed, so that a value
/// beyond `f32` becomes infinite and is refused by validation with the field's name (a 422),
/// whatever the JSON parser does with out-of-range `f32`s.
fn f32_values<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    let wide = Vec::<f64>::deserialize(d)?;
    // Narrowing is the point: out-of-range values become infinite, and are refused.
    #[allow(clippy::cast_possible_truncation)]
    Ok(wide.into_iter().map(|v| v as f32).collect())
}

fn check_template(field: &str, template: &[f32], errors: &mut FieldErrors) {
    if template.len() != TEMPLATE_DIMS {
        push(
            errors,
            field,
            format!("must have exactly {TEMPLATE_DIMS} values"),
        );
    } else if !template.iter().all(|v| v.is_finite()) {
        push(errors, field, "must contain only finite numbers".into());
    } else if template.iter().all(|v| *v == 0.0) {
        push(errors, field, "must not be all zeros".into());
    }
}

fn push(errors: &mut FieldErrors, field: &str, message: String) {
    errors.entry(field.to_owned()).or_default().push(message);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_good_capture_validates_and_round_trips() {
        let face = FaceTemplate::of_person(1);
        let capture = SimulatorCapture::with_document(
            &face.live_capture(2),
            true,
            DocumentCapture::sample_passport(&face),
        );
        capture.validate().unwrap();
        let json = serde_json::to_string(&capture).unwrap();
        let back: SimulatorCapture = serde_json::from_str(&json).unwrap();
        assert_eq!(back, capture);
        assert!(!format!("{capture:?}").contains("Jane"));
    }

    #[test]
    fn bad_captures_name_the_field() {
        let face = FaceTemplate::of_person(1);
        let mut capture = SimulatorCapture::face_only(&face, true);
        capture.face.template.pop();
        assert!(capture
            .validate()
            .unwrap_err()
            .contains_key("face.template"));
        let mut capture = SimulatorCapture::face_only(&face, true);
        capture.face.template[3] = f32::INFINITY;
        assert!(capture
            .validate()
            .unwrap_err()
            .contains_key("face.template"));
        let capture = SimulatorCapture::face_only(&FaceTemplate(vec![0.0; 128]), true);
        assert!(capture
            .validate()
            .unwrap_err()
            .contains_key("face.template"));
        let mut doc = DocumentCapture::sample_passport(&face);
        doc.date_of_birth = "1990-13-01".into();
        doc.issuing_country = "gbr".into();
        doc.given_names = " ".into();
        let errors = SimulatorCapture::with_document(&face, true, doc)
            .validate()
            .unwrap_err();
        assert!(errors.contains_key("document.date_of_birth"));
        assert!(errors.contains_key("document.issuing_country"));
        assert!(errors.contains_key("document.given_names"));
        let mut capture = SimulatorCapture::face_only(&face, true);
        capture.simulate = Some("maybe".into());
        assert!(capture.validate().unwrap_err().contains_key("simulate"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<SimulatorCapture, _> =
            serde_json::from_str(r#"{"face":{"template":[],"liveness":true},"extra":1}"#);
        assert!(r.is_err());
    }
}
