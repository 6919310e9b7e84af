//! Dashboard sign-in with the operator's OIDC provider, against a small issuer started by the
//! test on 127.0.0.1:0 with its own P-256 key and JWKS: the happy path (PKCE, state, nonce),
//! and every way an ID token or a callback must be refused.

use crate::common::TestApp;
use crate::management::{call, events, session_cookie, Op};
use axum::extract::{Form, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::Method;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How the issuer misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Honest,
    WrongAudience,
    WrongIssuer,
    Expired,
    WrongNonce,
    ForeignKey,
    AlgNone,
}

struct Issuer {
    url: String,
    key: EcdsaKeyPair,
    foreign: EcdsaKeyPair,
    mode: Mode,
    /// code -> (nonce, code_challenge, client_id)
    codes: HashMap<String, (String, String, String)>,
    token_requests: u32,
}

type Shared = Arc<Mutex<Issuer>>;

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn keypair() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

fn jwk(k: &EcdsaKeyPair, kid: &str) -> Value {
    let p = k.public_key().as_ref();
    json!({ "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": b64(&p[1..33]), "y": b64(&p[33..65]) })
}

fn sign(k: &EcdsaKeyPair, kid: &str, claims: &Value) -> String {
    let header = b64(json!({ "alg": "ES256", "typ": "JWT", "kid": kid })
        .to_string()
        .as_bytes());
    let payload = b64(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let sig = k.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64(sig.as_ref()))
}

async fn discovery(State(s): State<Shared>) -> Json<Value> {
    let s = s.lock().unwrap();
    Json(json!({
        "issuer": s.url,
        "authorization_endpoint": format!("{}/authorize", s.url),
        "token_endpoint": format!("{}/token", s.url),
        "jwks_uri": format!("{}/jwks", s.url),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(s): State<Shared>) -> Json<Value> {
    let s = s.lock().unwrap();
    Json(json!({ "keys": [jwk(&s.key, "k1")] }))
}

/// Approves at once: redirects back with a code bound to the nonce and PKCE challenge.
async fn authorize(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Redirect {
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].split(' ').any(|x| x == "openid"));
    let code = format!("code-{}", q["state"].len() + rand_suffix());
    s.lock().unwrap().codes.insert(
        code.clone(),
        (
            q["nonce"].clone(),
            q["code_challenge"].clone(),
            q["client_id"].clone(),
        ),
    );
    axum::response::Redirect::to(&format!(
        "{}?code={code}&state={}",
        q["redirect_uri"], q["state"]
    ))
}

fn rand_suffix() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn token(
    State(s): State<Shared>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Json<Value>, (axum::http::StatusCode, Json<Value>)> {
    let mut s = s.lock().unwrap();
    s.token_requests += 1;
    let bad = || {
        (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_grant" })),
        )
    };
    assert_eq!(f["grant_type"], "authorization_code");
    let (nonce, challenge, client) = s.codes.remove(&f["code"]).ok_or_else(bad)?;
    // PKCE (RFC 7636 §4.6): the verifier must hash to the challenge.
    let verifier = f.get("code_verifier").ok_or_else(bad)?;
    let computed = b64(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    if computed != challenge {
        return Err(bad());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut claims = json!({
        "iss": s.url, "sub": "operator-42", "aud": client, "exp": now + 300, "iat": now,
        "nonce": nonce, "preferred_username": "olivia",
    });
    match s.mode {
        Mode::WrongAudience => claims["aud"] = json!("another-client"),
        Mode::WrongIssuer => claims["iss"] = json!("https://evil.example"),
        Mode::Expired => claims["exp"] = json!(now - 3600),
        Mode::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
        _ => {}
    }
    let id_token = match s.mode {
        Mode::ForeignKey => sign(&s.foreign, "k1", &claims),
        Mode::AlgNone => format!(
            "{}.{}.",
            b64(json!({ "alg": "none", "typ": "JWT" })
                .to_string()
                .as_bytes()),
            b64(claims.to_string().as_bytes())
        ),
        _ => sign(&s.key, "k1", &claims),
    };
    Ok(Json(
        json!({ "access_token": "at", "token_type": "Bearer", "id_token": id_token }),
    ))
}

async fn start_issuer(mode: Mode) -> (String, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shared = Arc::new(Mutex::new(Issuer {
        url: url.clone(),
        key: keypair(),
        foreign: keypair(),
        mode,
        codes: HashMap::new(),
        token_requests: 0,
    }));
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, shared)
}

async fn app_with_issuer(mode: Mode) -> (TestApp, Shared) {
    let (url, shared) = start_issuer(mode).await;
    let app = TestApp::start(
        move |s| {
            s.oidc_issuer = Some(url::Url::parse(&url).unwrap());
            s.oidc_client_id = Some("passbind-dashboard".into());
        },
        false,
    )
    .await;
    (app, shared)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// The browser's round trip: start, the provider's redirect, the callback. Returns the
/// callback's response.
async fn round_trip(app: &TestApp, tamper_state_cookie: bool) -> reqwest::Response {
    let http = no_redirects();
    let start = http
        .get(format!("{}/api/management/v1/auth/oidc/start", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let state_cookie = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("passbind_oidc="))
        .unwrap();
    assert!(state_cookie.contains("HttpOnly") && state_cookie.contains("SameSite=Lax"));
    let state_cookie = state_cookie.split(';').next().unwrap().to_owned();
    let to_provider = location(&start);
    assert!(to_provider.contains("code_challenge=") && to_provider.contains("nonce="));
    let back = http.get(&to_provider).send().await.unwrap();
    assert_eq!(back.status(), 303);
    let callback = location(&back);
    assert!(callback.starts_with(&format!(
        "{}/api/management/v1/auth/oidc/callback?",
        app.origin()
    )));
    // The dashboard's origin is localhost; the test talks to the same server at 127.0.0.1.
    let callback = callback.replace(&app.origin(), &app.base);
    let cookie = if tamper_state_cookie {
        "passbind_oidc=forged".to_owned()
    } else {
        state_cookie
    };
    http.get(&callback)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_with_pkce_state_and_nonce() {
    let (app, issuer) = app_with_issuer(Mode::Honest).await;
    let status = call(&app, None, false, Method::GET, "/auth/status", None).await;
    assert_eq!(status.1["oidc"], true);

    let done = round_trip(&app, false).await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/dashboard/");
    let cookie = session_cookie(&done).expect("signed in");
    let s = app
        .http
        .get(format!("{}/api/management/v1/auth/status", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(s["signed_in"], true, "{s}");
    assert_eq!(s["operator"]["subject"], "oidc:operator-42");
    assert_eq!(s["operator"]["display_name"], "olivia");
    assert_eq!(s["operator"]["method"], "oidc");
    let op = Op {
        cookie,
        csrf: s["csrf_token"].as_str().unwrap().to_owned(),
        subject: "oidc:operator-42".into(),
    };
    // The operator acts, and the audit log names them.
    let k = call(
        &app,
        Some(&op),
        true,
        Method::POST,
        "/api-keys",
        Some(json!({"name": "ci", "scopes": ["flows"]})),
    )
    .await;
    assert_eq!(k.0, 201, "{}", k.1);
    let created = events(&app, &op, "api_key.created").await;
    assert_eq!(created[0]["actor_id"], "oidc:operator-42");
    let signed_in = events(&app, &op, "operator.signed_in").await;
    assert_eq!(signed_in[0]["details"]["method"], "oidc");
    assert_eq!(issuer.lock().unwrap().token_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_refuses_bad_tokens_and_forged_callbacks() {
    for mode in [
        Mode::WrongAudience,
        Mode::WrongIssuer,
        Mode::Expired,
        Mode::WrongNonce,
        Mode::ForeignKey,
        Mode::AlgNone,
    ] {
        let (app, _) = app_with_issuer(mode).await;
        let r = round_trip(&app, false).await;
        assert_eq!(r.status(), 303, "{mode:?}");
        assert_eq!(
            location(&r),
            "/dashboard/sign-in?error=oidc_token",
            "{mode:?}"
        );
        assert!(session_cookie(&r).is_none(), "{mode:?} signed in");
    }
    // The provider's token endpoint checks PKCE: a server that did not send the right verifier
    // would get no token. And a callback whose state is not the browser's is refused before
    // the code is exchanged.
    let (app, issuer) = app_with_issuer(Mode::Honest).await;
    let r = round_trip(&app, true).await;
    assert_eq!(location(&r), "/dashboard/sign-in?error=oidc_state");
    assert!(session_cookie(&r).is_none());
    assert_eq!(issuer.lock().unwrap().token_requests, 0);
    // A provider error comes back as such.
    let http = no_redirects();
    let r = http
        .get(format!(
            "{}/api/management/v1/auth/oidc/callback?error=access_denied&state=x",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/dashboard/sign-in?error=oidc_refused");
    // Without an issuer configured, the start is `not_supported`.
    let plain = TestApp::sqlite().await;
    let r = plain
        .raw(
            Method::GET,
            "/api/management/v1/auth/oidc/start",
            None,
            None,
        )
        .await;
    assert_eq!(r.0, 501, "{}", r.1);
    assert_eq!(r.1["error"]["code"], "not_supported");
}
