//! Operator sign-in with the operator's own OpenID Connect provider: Authorization Code with
//! PKCE (S256), a `state` bound to the browser by a cookie, a `nonce` bound to the ID token.
//!
//! The ID token is verified with `jsonwebtoken`: the signature against the provider's JWKS
//! (asymmetric algorithms only; `none` and HMAC are refused), then `iss` (the configured
//! issuer, exactly), `aud` (the configured audience, by default the client id), `exp` (and
//! `nbf`, with 60 s of leeway), and the nonce (constant-time). Why `jsonwebtoken` 9: it is the
//! most used and maintained JOSE crate for Rust, it parses JWKs directly into verification
//! keys, and its 9.x line verifies on `ring`, the crypto backend Passbind already builds on
//! (no second RSA/ECDSA implementation, no C build of aws-lc on small machines).

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;
use url::Url;

/// How long the discovery document and the JWKS are kept before they are read again.
const CACHE_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the OIDC provider could not be reached: {0}")]
    Unavailable(String),
    #[error("the OIDC provider answered something unexpected: {0}")]
    Provider(String),
    #[error("the ID token was refused: {0}")]
    Token(String),
}

/// The settings of the OIDC client.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// The `aud` the ID token must carry.
    pub audience: String,
    pub scopes: String,
    pub redirect_uri: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

struct Cached {
    discovery: Discovery,
    jwks: JwkSet,
    fetched: Instant,
}

pub struct OidcClient {
    config: OidcConfig,
    http: reqwest::Client,
    cache: RwLock<Option<Cached>>,
}

/// What Passbind keeps of a verified ID token.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    pub sub: String,
    pub display_name: String,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

const ALLOWED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

impl OidcClient {
    pub fn new(config: OidcConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            config,
            http,
            cache: RwLock::new(None),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider(format!(
                "{url} answered {}",
                resp.status()
            )));
        }
        resp.json()
            .await
            .map_err(|e| OidcError::Provider(format!("{url}: {}", e.without_url())))
    }

    /// The discovery document and JWKS, from the cache or the provider (`refresh` forces it).
    async fn load(&self, refresh: bool) -> Result<(Discovery, JwkSet), OidcError> {
        if !refresh {
            if let Some(c) = &*self.cache.read().await {
                if c.fetched.elapsed() < CACHE_TTL {
                    return Ok((c.discovery.clone(), c.jwks.clone()));
                }
            }
        }
        let issuer = self.config.issuer.as_str().trim_end_matches('/');
        let discovery: Discovery = self
            .get_json(&format!("{issuer}/.well-known/openid-configuration"))
            .await?;
        // OIDC Discovery §4.3: the document's issuer must be the one it was read from.
        if discovery.issuer.trim_end_matches('/') != issuer {
            return Err(OidcError::Provider(format!(
                "the discovery document names issuer {}, not {issuer}",
                discovery.issuer
            )));
        }
        let jwks: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        *self.cache.write().await = Some(Cached {
            discovery: discovery.clone(),
            jwks: jwks.clone(),
            fetched: Instant::now(),
        });
        Ok((discovery, jwks))
    }

    /// The provider's authorization URL for this sign-in.
    pub async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        code_challenge: &str,
    ) -> Result<String, OidcError> {
        let (d, _) = self.load(false).await?;
        let mut url = Url::parse(&d.authorization_endpoint)
            .map_err(|e| OidcError::Provider(format!("authorization_endpoint: {e}")))?;
        let mut scopes: Vec<&str> = self.config.scopes.split_whitespace().collect();
        if !scopes.contains(&"openid") {
            scopes.insert(0, "openid");
        }
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges the code (with the PKCE verifier) and verifies the ID token.
    pub async fn finish(
        &self,
        code: &str,
        code_verifier: &str,
        nonce: &str,
    ) -> Result<VerifiedIdentity, OidcError> {
        let (d, _) = self.load(false).await?;
        let form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("code_verifier", code_verifier),
            ("client_id", self.config.client_id.as_str()),
        ];
        let mut req = self.http.post(&d.token_endpoint);
        // client_secret_basic, the default authentication method of OIDC Core §9; a public
        // client authenticates by PKCE alone.
        if let Some(secret) = &self.config.client_secret {
            req = req.basic_auth(&self.config.client_id, Some(secret));
        }
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider(format!(
                "the token endpoint answered {}",
                resp.status()
            )));
        }
        let body: TokenResponse = resp
            .json()
            .await
            .map_err(|e| OidcError::Provider(format!("token response: {}", e.without_url())))?;
        let id_token = body
            .id_token
            .ok_or_else(|| OidcError::Provider("the token response has no id_token".into()))?;
        self.verify_id_token(&id_token, nonce).await
    }

    /// Verifies an ID token's signature and claims.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<VerifiedIdentity, OidcError> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| OidcError::Token(format!("header: {e}")))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(OidcError::Token(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let (_, jwks) = self.load(false).await?;
        let jwk = match find_key(&jwks, header.kid.as_deref()) {
            Some(k) => k,
            // An unknown key id: the provider may have rotated its keys.
            None => {
                let (_, jwks) = self.load(true).await?;
                find_key(&jwks, header.kid.as_deref())
                    .ok_or_else(|| OidcError::Token("no provider key matches the token".into()))?
            }
        };
        if let Some(alg) = jwk.common.key_algorithm {
            if format!("{alg:?}") != format!("{:?}", header.alg) {
                return Err(OidcError::Token(
                    "the token's algorithm is not its key's".into(),
                ));
            }
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| OidcError::Token(format!("key: {e}")))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[
            self.config.issuer.as_str(),
            self.config.issuer.as_str().trim_end_matches('/'),
        ]);
        v.set_audience(&[self.config.audience.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_exp = true;
        v.validate_nbf = true;
        v.leeway = 60;
        let data = jsonwebtoken::decode::<Claims>(id_token, &key, &v)
            .map_err(|e| OidcError::Token(e.to_string()))?;
        let c = data.claims;
        let presented = c.nonce.as_deref().unwrap_or("");
        if !passbind_core::crypto::ct_eq(presented.as_bytes(), nonce.as_bytes()) {
            return Err(OidcError::Token("the nonce does not match".into()));
        }
        let display_name = c
            .preferred_username
            .or(c.name)
            .or(c.email)
            .unwrap_or_else(|| c.sub.clone());
        Ok(VerifiedIdentity {
            sub: c.sub,
            display_name,
        })
    }
}

/// The signing key for `kid` (or the only signing key when the token names none).
fn find_key(jwks: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    let signing = |k: &&Jwk| {
        !matches!(k.algorithm, AlgorithmParameters::OctetKey(_))
            && k.common
                .public_key_use
                .as_ref()
                .is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature)
    };
    match kid {
        Some(kid) => jwks
            .keys
            .iter()
            .filter(signing)
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned(),
        None => {
            let mut keys = jwks.keys.iter().filter(signing);
            match (keys.next(), keys.next()) {
                (Some(k), None) => Some(k.clone()),
                _ => None,
            }
        }
    }
}
