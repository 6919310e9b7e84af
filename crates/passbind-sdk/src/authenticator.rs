//! A software authenticator: a scriptable "device" holding device-bound passkeys in memory.
//!
//! Built on the passkey-rs crates (`passkey-client` for the WebAuthn client steps: origin and
//! RP ID checks, clientDataJSON, CTAP2 mapping; `passkey-authenticator` for the CTAP2
//! authenticator: key generation, authenticator data, signatures, signature counter). Keys are
//! real ES256 (P-256) keys, assertions are real signatures, and the per-credential signature
//! counter increments on every assertion.
//!
//! passkey-authenticator 0.6 only produces `none` attestation; when
//! [`SoftwareAttestation::PackedSelf`] is selected (the default), the attestation object is
//! re-issued as `packed` self attestation: the same authenticator data, signed with the new
//! credential's private key over `authenticatorData || SHA-256(clientDataJSON)`
//! (WebAuthn L3 §8.2).
//!
//! Each [`SoftwareAuthenticator`] value is one device: clones share the device (its
//! credential store), [`SoftwareAuthenticator::new_device`] makes an independent one.

use async_trait::async_trait;
use base64::Engine as _;
use passkey_authenticator::{
    Authenticator, CredentialStore, DiscoverabilitySupport, StoreInfo, UiHint, UserCheck,
    UserValidationMethod,
};
use passkey_client::{Client, DefaultClientData};
use passkey_crypto::rust_crypto::{RustCryptoBackend, RustCryptoSecretKey};
use passkey_crypto::{iana, SecretKeyT};
use passkey_types::ctap2::make_credential::{
    Options, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use passkey_types::ctap2::{Aaguid, Ctap2Error, StatusCode};
use passkey_types::webauthn::{
    CredentialCreationOptions, CredentialRequestOptions, PublicKeyCredentialDescriptor,
};
use passkey_types::Passkey;
use std::sync::{Arc, Mutex};

/// The AAGUID used when none is configured ("Passbind software authenticator").
pub const DEFAULT_AAGUID: [u8; 16] = [
    0x70, 0x61, 0x73, 0x73, 0x62, 0x69, 0x6e, 0x64, 0x2d, 0x73, 0x77, 0x2d, 0x61, 0x75, 0x74, 0x68,
];

/// Errors of the software authenticator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthenticatorError {
    /// The origin is not an absolute `https://` (or `http://localhost`) URL.
    #[error("invalid origin {0:?}")]
    InvalidOrigin(String),
    /// The options JSON is not `{"publicKey": {...}}` in the WebAuthn JSON encoding.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// The WebAuthn client or the authenticator refused the operation (RP ID not valid for
    /// the origin, no matching credential, excluded credential, unsupported algorithm, UV
    /// requested from a device without UV...).
    #[error("client/authenticator error: {0}")]
    Refused(String),
    /// Producing the attestation failed.
    #[error("attestation error: {0}")]
    Attestation(String),
}

/// What attestation statement [`SoftwareAuthenticator::create`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SoftwareAttestation {
    /// `fmt: "none"`.
    None,
    /// `fmt: "packed"` self attestation (signed with the credential key).
    #[default]
    PackedSelf,
}

/// Device settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSettings {
    /// The authenticator AAGUID.
    pub aaguid: [u8; 16],
    /// Whether the device can verify its user (sets UV when asked). A device without UV
    /// cannot satisfy `userVerification: "required"`.
    pub user_verification: bool,
    /// Attestation returned on registration.
    pub attestation: SoftwareAttestation,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        DeviceSettings {
            aaguid: DEFAULT_AAGUID,
            user_verification: true,
            attestation: SoftwareAttestation::PackedSelf,
        }
    }
}

/// The credential store of one device: every credential is discoverable (stores the user
/// handle), scoped to its RP ID.
#[derive(Default)]
struct DeviceStore {
    credentials: Vec<Passkey>,
}

#[derive(Clone, Default)]
struct SharedStore(Arc<Mutex<DeviceStore>>);

impl SharedStore {
    fn with<R>(&self, f: impl FnOnce(&mut DeviceStore) -> R) -> Result<R, StatusCode> {
        match self.0.lock() {
            Ok(mut guard) => Ok(f(&mut guard)),
            Err(_) => Err(Ctap2Error::Other.into()),
        }
    }
}

#[async_trait]
impl CredentialStore for SharedStore {
    type PasskeyItem = Passkey;

    async fn find_credentials(
        &self,
        ids: Option<&[PublicKeyCredentialDescriptor]>,
        rp_id: &str,
        _user_handle: Option<&[u8]>,
    ) -> Result<Vec<Passkey>, StatusCode> {
        let found = self.with(|s| {
            s.credentials
                .iter()
                .filter(|p| p.rp_id == rp_id)
                .filter(|p| match ids {
                    Some(list) if !list.is_empty() => {
                        list.iter().any(|d| *d.id == *p.credential_id)
                    }
                    // Empty allow list: discoverable credentials of this RP (newest first).
                    _ => p.user_handle.is_some(),
                })
                .rev()
                .cloned()
                .collect::<Vec<_>>()
        })?;
        if found.is_empty() {
            Err(Ctap2Error::NoCredentials.into())
        } else {
            Ok(found)
        }
    }

    async fn save_credential(
        &mut self,
        cred: Passkey,
        _user: PublicKeyCredentialUserEntity,
        _rp: PublicKeyCredentialRpEntity,
        _options: Options,
    ) -> Result<(), StatusCode> {
        self.with(|s| {
            // CTAP2: a new discoverable credential for the same RP ID and user replaces the old.
            s.credentials.retain(|p| {
                !(p.rp_id == cred.rp_id
                    && p.user_handle.is_some()
                    && p.user_handle == cred.user_handle)
            });
            s.credentials.push(cred);
        })
    }

    async fn update_credential(&mut self, cred: &Passkey) -> Result<(), StatusCode> {
        self.with(|s| {
            if let Some(p) = s
                .credentials
                .iter_mut()
                .find(|p| p.credential_id == cred.credential_id)
            {
                *p = cred.clone();
            }
        })
    }

    async fn get_info(&self) -> StoreInfo {
        StoreInfo {
            discoverability: DiscoverabilitySupport::ForcedDiscoverable,
        }
    }
}

/// The "user" of the device: always present; verified when the device has UV.
struct DeviceUser {
    can_verify: bool,
}

#[async_trait]
impl UserValidationMethod for DeviceUser {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        hint: UiHint<'a, Passkey>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        // passkey-authenticator 0.6 only "informs" the user when an excluded credential is
        // present and then carries on; CTAP2 requires CTAP2_ERR_CREDENTIAL_EXCLUDED (after
        // user presence), so the device's user refuses here.
        if let UiHint::InformExcludedCredentialFound(_) = hint {
            return Err(Ctap2Error::CredentialExcluded);
        }
        Ok(UserCheck {
            presence,
            verification: verification && self.can_verify,
        })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        self.can_verify.then_some(true)
    }
}

struct Device {
    settings: DeviceSettings,
    store: SharedStore,
}

/// A software authenticator (one device). `Clone` shares the device.
#[derive(Clone)]
pub struct SoftwareAuthenticator {
    device: Arc<Device>,
}

impl std::fmt::Debug for SoftwareAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareAuthenticator")
            .field("settings", &self.device.settings)
            .finish_non_exhaustive()
    }
}

impl Default for SoftwareAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn parse_origin(origin: &str) -> Result<url::Url, AuthenticatorError> {
    let url =
        url::Url::parse(origin).map_err(|_| AuthenticatorError::InvalidOrigin(origin.into()))?;
    match url.scheme() {
        "https" | "http" if url.host().is_some() => Ok(url),
        _ => Err(AuthenticatorError::InvalidOrigin(origin.into())),
    }
}

impl SoftwareAuthenticator {
    /// A new device with default settings (UV capable, packed self attestation,
    /// [`DEFAULT_AAGUID`]).
    pub fn new() -> Self {
        Self::with_settings(DeviceSettings::default())
    }

    /// A new device with these settings.
    pub fn with_settings(settings: DeviceSettings) -> Self {
        SoftwareAuthenticator {
            device: Arc::new(Device {
                settings,
                store: SharedStore::default(),
            }),
        }
    }

    /// A new device with the given AAGUID (other settings default).
    pub fn with_aaguid(aaguid: [u8; 16]) -> Self {
        Self::with_settings(DeviceSettings {
            aaguid,
            ..DeviceSettings::default()
        })
    }

    /// A second, independent device with the same settings and no credentials.
    pub fn new_device(&self) -> Self {
        Self::with_settings(self.device.settings)
    }

    /// This device's settings.
    pub fn settings(&self) -> DeviceSettings {
        self.device.settings
    }

    /// This device's AAGUID.
    pub fn aaguid(&self) -> [u8; 16] {
        self.device.settings.aaguid
    }

    /// Number of credentials held by this device.
    pub fn credential_count(&self) -> usize {
        self.device
            .store
            .with(|s| s.credentials.len())
            .unwrap_or_default()
    }

    fn authenticator(
        &self,
    ) -> Result<Authenticator<SharedStore, DeviceUser, RustCryptoBackend>, AuthenticatorError> {
        let settings = self.device.settings;
        let mut authenticator = Authenticator::new(
            Aaguid::from(settings.aaguid),
            self.device.store.clone(),
            DeviceUser {
                can_verify: settings.user_verification,
            },
            RustCryptoBackend,
        );
        // Real ES256 keys only, with a per-credential signature counter.
        authenticator
            .set_algorithms(&[iana::Algorithm::ES256])
            .map_err(|e| AuthenticatorError::Refused(format!("{e:?}")))?;
        authenticator.set_make_credentials_with_signature_counter(true);
        Ok(authenticator)
    }

    /// `navigator.credentials.create()`: registers a new credential for `origin` from
    /// `PublicKeyCredentialCreationOptions` JSON (`{"publicKey": {...}}`) and returns the
    /// `RegistrationResponseJSON` a browser would send (`id`, `rawId`, `type`,
    /// `response{clientDataJSON, attestationObject, authenticatorData, transports,
    /// publicKeyAlgorithm}`, `authenticatorAttachment`, `clientExtensionResults`).
    pub async fn create(
        &self,
        origin: &str,
        creation_options: &serde_json::Value,
    ) -> Result<serde_json::Value, AuthenticatorError> {
        let origin_url = parse_origin(origin)?;
        let options: CredentialCreationOptions =
            serde_json::from_value(creation_options.clone())
                .map_err(|e| AuthenticatorError::InvalidOptions(e.to_string()))?;
        let mut client = Client::new(self.authenticator()?)
            .allows_insecure_localhost(true)
            .user_verification_when_preferred(self.device.settings.user_verification);
        let created = client
            .register(&origin_url, options, DefaultClientData)
            .await
            .map_err(|e| AuthenticatorError::Refused(format!("{e:?}")))?;
        let response = &created.response;
        let attestation_object = match self.device.settings.attestation {
            SoftwareAttestation::None => response.attestation_object.to_vec(),
            SoftwareAttestation::PackedSelf => self.packed_self_attestation(
                &created.raw_id,
                &response.authenticator_data,
                &response.client_data_json,
            )?,
        };
        let transports =
            serde_json::to_value(&response.transports).unwrap_or(serde_json::Value::Null);
        let extensions = serde_json::to_value(&created.client_extension_results)
            .unwrap_or_else(|_| serde_json::json!({}));
        Ok(serde_json::json!({
            "id": b64url(&created.raw_id),
            "rawId": b64url(&created.raw_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(&response.client_data_json),
                "attestationObject": b64url(&attestation_object),
                "authenticatorData": b64url(&response.authenticator_data),
                "publicKeyAlgorithm": response.public_key_algorithm,
                "transports": if transports.is_null() { serde_json::json!([]) } else { transports },
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": extensions,
        }))
    }

    /// `navigator.credentials.get()`: signs an assertion for `origin` from
    /// `PublicKeyCredentialRequestOptions` JSON (`{"publicKey": {...}}`; an empty or missing
    /// `allowCredentials` uses a discoverable credential of the RP) and returns the
    /// `AuthenticationResponseJSON` a browser would send.
    pub async fn get(
        &self,
        origin: &str,
        request_options: &serde_json::Value,
    ) -> Result<serde_json::Value, AuthenticatorError> {
        let origin_url = parse_origin(origin)?;
        let options: CredentialRequestOptions = serde_json::from_value(request_options.clone())
            .map_err(|e| AuthenticatorError::InvalidOptions(e.to_string()))?;
        let mut client = Client::new(self.authenticator()?)
            .allows_insecure_localhost(true)
            .user_verification_when_preferred(self.device.settings.user_verification);
        let assertion = client
            .authenticate(&origin_url, options, DefaultClientData)
            .await
            .map_err(|e| AuthenticatorError::Refused(format!("{e:?}")))?;
        let response = &assertion.response;
        let user_handle = response
            .user_handle
            .as_ref()
            .map(|u| serde_json::Value::String(b64url(u)))
            .unwrap_or(serde_json::Value::Null);
        let extensions = serde_json::to_value(&assertion.client_extension_results)
            .unwrap_or_else(|_| serde_json::json!({}));
        Ok(serde_json::json!({
            "id": b64url(&assertion.raw_id),
            "rawId": b64url(&assertion.raw_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(&response.client_data_json),
                "authenticatorData": b64url(&response.authenticator_data),
                "signature": b64url(&response.signature),
                "userHandle": user_handle,
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": extensions,
        }))
    }

    /// Builds a `packed` self-attestation object (L3 §8.2) for a credential just created.
    fn packed_self_attestation(
        &self,
        credential_id: &[u8],
        auth_data: &[u8],
        client_data_json: &[u8],
    ) -> Result<Vec<u8>, AuthenticatorError> {
        use ciborium::value::Value;
        let att = |m: &str| AuthenticatorError::Attestation(m.to_string());
        let passkey = self
            .device
            .store
            .with(|s| {
                s.credentials
                    .iter()
                    .find(|p| *p.credential_id == *credential_id)
                    .cloned()
            })
            .map_err(|_| att("credential store unavailable"))?
            .ok_or_else(|| att("new credential not found in the store"))?;
        let mut key = RustCryptoSecretKey::from_cose_key(&passkey.key)
            .map_err(|e| att(&format!("credential key: {e:?}")))?;
        let client_data_hash = ring::digest::digest(&ring::digest::SHA256, client_data_json);
        let mut signed = auth_data.to_vec();
        signed.extend_from_slice(client_data_hash.as_ref());
        let sig = key.sign(&signed);
        // Canonical CTAP2 order: "fmt", "attStmt", "authData"; "alg", "sig".
        let object = Value::Map(vec![
            (Value::Text("fmt".into()), Value::Text("packed".into())),
            (
                Value::Text("attStmt".into()),
                Value::Map(vec![
                    (
                        Value::Text("alg".into()),
                        Value::Integer((iana::Algorithm::ES256 as i64).into()),
                    ),
                    (Value::Text("sig".into()), Value::Bytes(sig)),
                ]),
            ),
            (
                Value::Text("authData".into()),
                Value::Bytes(auth_data.to_vec()),
            ),
        ]);
        let mut out = Vec::new();
        ciborium::ser::into_writer(&object, &mut out).map_err(|e| att(&e.to_string()))?;
        Ok(out)
    }
}
