//! The management API over HTTP: operator enrolment with the one-time setup link, passkey
//! sign-in, sessions and CSRF, every dashboard action and its audit event.

use crate::both_backends;
use crate::common::{register, TestApp};
use passbind_sdk::device::{Device, Person};
use reqwest::Method;
use serde_json::{json, Value};

const M: &str = "/api/management/v1";

/// A signed-in operator: the session cookie and its CSRF token.
pub struct Op {
    pub cookie: String,
    pub csrf: String,
    pub subject: String,
}

/// The session cookie (`name=value`) a response sets, if any.
pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("passbind_operator=") && !c.starts_with("passbind_operator=;"))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

/// The token of the setup link printed at start.
pub fn setup_token(app: &TestApp) -> String {
    let link = app
        .server
        .operator_setup_link
        .clone()
        .expect("a setup link while no operator exists");
    assert!(
        link.starts_with(&format!("{}/dashboard/setup#token=pbs_", app.origin())),
        "{link}"
    );
    link.split("#token=").nth(1).unwrap().to_owned()
}

/// A request to the management API, as the dashboard's script sends it.
pub async fn call(
    app: &TestApp,
    op: Option<&Op>,
    csrf: bool,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method, format!("{}{M}{path}", app.base))
        .header("accept", "application/json");
    if let Some(op) = op {
        req = req.header("cookie", &op.cookie);
        if csrf {
            req = req.header("x-csrf-token", &op.csrf);
        }
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn post_raw(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.http
        .post(format!("{}{M}{path}", app.base))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Enrols an operator's passkey (the software authenticator plays the browser) with a setup
/// token, and returns the signed-in session.
pub async fn enrol_with(app: &TestApp, token: &str, name: &str, device: &Device) -> Op {
    let begun = post_raw(
        app,
        "/auth/setup/begin",
        json!({ "setup_token": token, "name": name }),
    )
    .await;
    assert_eq!(begun.status(), 200);
    let begun: Value = begun.json().await.unwrap();
    assert_eq!(
        begun["options"]["publicKey"]["authenticatorSelection"]["residentKey"],
        "required"
    );
    let credential = device
        .authenticator
        .create(&app.origin(), &begun["options"])
        .await
        .unwrap();
    let resp = post_raw(
        app,
        "/auth/setup/finish",
        json!({ "challenge_id": begun["challenge_id"], "credential": credential }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let set = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    let cookie = session_cookie(&resp).expect("a session cookie");
    let line = set
        .iter()
        .find(|c| c.starts_with("passbind_operator="))
        .unwrap();
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict"),
        "{line}"
    );
    assert!(
        !line.contains("Secure"),
        "plain-HTTP loopback dev: no Secure flag"
    );
    let body: Value = resp.json().await.unwrap();
    Op {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        subject: body["operator"]["subject"].as_str().unwrap().to_owned(),
    }
}

pub async fn enrol(app: &TestApp, name: &str) -> (Op, Device) {
    let device = Device::new();
    let op = enrol_with(app, &setup_token(app), name, &device).await;
    (op, device)
}

/// Passkey sign-in with a discoverable credential of `device`.
pub async fn sign_in(app: &TestApp, device: &Device) -> Op {
    let begun: Value = post_raw(app, "/auth/passkey/begin", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let assertion = device
        .authenticator
        .get(&app.origin(), &begun["options"])
        .await
        .unwrap();
    let resp = post_raw(
        app,
        "/auth/passkey/finish",
        json!({ "challenge_id": begun["challenge_id"], "credential": assertion }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let cookie = session_cookie(&resp).unwrap();
    let body: Value = resp.json().await.unwrap();
    Op {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        subject: body["operator"]["subject"].as_str().unwrap().to_owned(),
    }
}

/// Audit events of a type (newest first), through the management API.
pub async fn events(app: &TestApp, op: &Op, event_type: &str) -> Vec<Value> {
    let r = call(
        app,
        Some(op),
        false,
        Method::GET,
        &format!("/audit/events?event_type={event_type}&limit=500"),
        None,
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    r.1["events"].as_array().unwrap().clone()
}

/// Exactly one event of this type, caused by this operator.
async fn audited(app: &TestApp, op: &Op, event_type: &str) -> Value {
    audited_by(app, op, &op.subject, event_type).await
}

/// Exactly one event of this type, caused by the operator `subject` (read as `reader`).
async fn audited_by(app: &TestApp, reader: &Op, subject: &str, event_type: &str) -> Value {
    let list: Vec<Value> = events(app, reader, event_type)
        .await
        .into_iter()
        .filter(|e| e["actor_kind"] == "operator" && e["actor_id"] == subject)
        .collect();
    assert_eq!(list.len(), 1, "{event_type}: {list:?}");
    list[0].clone()
}

fn assert_code(r: &(u16, Value), status: u16, code: &str) {
    assert_eq!(r.0, status, "{}", r.1);
    assert_eq!(r.1["error"]["code"], code, "{}", r.1);
}

async fn refused_without_a_session_or_csrf(app: TestApp) {
    let status = call(&app, None, false, Method::GET, "/auth/status", None).await;
    assert_eq!(status.0, 200);
    assert_eq!(status.1["signed_in"], false);
    assert_eq!(status.1["setup_pending"], true);
    assert!(status.1.get("csrf_token").is_none());

    let reads = [
        "/overview",
        "/users",
        "/users/alice",
        "/sessions",
        "/sessions/reg_abc",
        "/api-keys",
        "/settings",
        "/audit/events",
        "/audit/export",
    ];
    let writes: [(Method, &str, Option<Value>); 7] = [
        (Method::DELETE, "/users/alice/credentials/AAAA", None),
        (
            Method::POST,
            "/users/alice/erase",
            Some(json!({"confirm_external_user_id": "alice"})),
        ),
        (
            Method::POST,
            "/api-keys",
            Some(json!({"name": "x", "scopes": ["flows"]})),
        ),
        (Method::DELETE, "/api-keys/0123456789abcdef", None),
        (Method::POST, "/audit/verify", None),
        (Method::POST, "/operators/invitations", None),
        (Method::POST, "/auth/sign-out", None),
    ];
    // No session at all, or a cookie that is not a session: 401.
    let forged = Op {
        cookie: "passbind_operator=not-a-session".into(),
        csrf: "x".into(),
        subject: String::new(),
    };
    for op in [None, Some(&forged)] {
        for p in reads {
            assert_code(
                &call(&app, op, true, Method::GET, p, None).await,
                401,
                "unauthorized",
            );
        }
        for (m, p, b) in &writes {
            assert_code(
                &call(&app, op, true, m.clone(), p, b.clone()).await,
                401,
                "unauthorized",
            );
        }
    }

    // A real session without (or with a wrong) CSRF token: reads pass, writes are refused 403.
    let (op, _) = enrol(&app, "alice").await;
    for p in [
        "/overview",
        "/users",
        "/sessions",
        "/api-keys",
        "/settings",
        "/audit/events",
    ] {
        assert_eq!(
            call(&app, Some(&op), false, Method::GET, p, None).await.0,
            200,
            "{p}"
        );
    }
    let wrong = Op {
        csrf: "AAAA".into(),
        cookie: op.cookie.clone(),
        subject: op.subject.clone(),
    };
    for (m, p, b) in &writes {
        for (who, with) in [(&op, false), (&wrong, true)] {
            let r = call(&app, Some(who), with, m.clone(), p, b.clone()).await;
            assert_code(&r, 403, "forbidden");
            assert_eq!(r.1["error"]["details"]["reason"], "csrf");
        }
    }
    // Another origin, even with the token: 403.
    let r = app
        .http
        .post(format!("{}{M}/audit/verify", app.base))
        .header("cookie", &op.cookie)
        .header("x-csrf-token", &op.csrf)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nothing above changed anything: no key was created, no operator invited.
    assert!(events(&app, &op, "api_key.created")
        .await
        .iter()
        .all(|e| e["actor_kind"] != "operator"));
    assert_eq!(
        events(&app, &op, "operator.setup_link_issued").await.len(),
        1
    );
}
both_backends!(refused_without_a_session_or_csrf);

async fn setup_link_works_once_then_passkey_sign_in(app: TestApp) {
    let token = setup_token(&app);
    let device = Device::new();
    let op = enrol_with(&app, &token, "alice", &device).await;
    assert_eq!(op.subject, "local:alice");
    let s = call(&app, Some(&op), false, Method::GET, "/auth/status", None).await;
    assert_eq!(s.1["signed_in"], true);
    assert_eq!(s.1["csrf_token"], op.csrf.as_str());
    assert_eq!(s.1["setup_pending"], false);

    // The link is single-use.
    let again = post_raw(
        &app,
        "/auth/setup/begin",
        json!({ "setup_token": token, "name": "mallory" }),
    )
    .await;
    assert_eq!(again.status(), 401);
    let garbage = post_raw(
        &app,
        "/auth/setup/begin",
        json!({ "setup_token": "pbs_x", "name": "m" }),
    )
    .await;
    assert_eq!(garbage.status(), 401);

    // Sign out ends the session server-side.
    let out = call(&app, Some(&op), true, Method::POST, "/auth/sign-out", None).await;
    assert_eq!(out.0, 204);
    assert_code(
        &call(&app, Some(&op), false, Method::GET, "/overview", None).await,
        401,
        "unauthorized",
    );

    // Sign in again with the passkey (discoverable: no name needed).
    let op2 = sign_in(&app, &device).await;
    assert_eq!(op2.subject, "local:alice");
    assert_ne!(op2.cookie, op.cookie);
    // A ceremony works once.
    let begun: Value = post_raw(&app, "/auth/passkey/begin", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let assertion = device
        .authenticator
        .get(&app.origin(), &begun["options"])
        .await
        .unwrap();
    let body = json!({ "challenge_id": begun["challenge_id"], "credential": assertion });
    assert_eq!(
        post_raw(&app, "/auth/passkey/finish", body.clone())
            .await
            .status(),
        200
    );
    assert_eq!(
        post_raw(&app, "/auth/passkey/finish", body).await.status(),
        401
    );
    // A passkey of another device is refused.
    let stranger = Device::new();
    let begun: Value = post_raw(&app, "/auth/passkey/begin", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(stranger
        .authenticator
        .get(&app.origin(), &begun["options"])
        .await
        .is_err());

    // An invitation enrols a second operator; each action is audited with its subject.
    let inv = call(
        &app,
        Some(&op2),
        true,
        Method::POST,
        "/operators/invitations",
        None,
    )
    .await;
    assert_eq!(inv.0, 201, "{}", inv.1);
    // The invitation takes no body: nothing or `{}`; anything else is refused, not ignored.
    for (content_type, body, status, code) in [
        ("application/json", "{", 400, "malformed_json"),
        (
            "application/json",
            r#"{"role":"admin"}"#,
            400,
            "validation_failed",
        ),
        ("text/plain", "hello", 415, "unsupported_media_type"),
    ] {
        let resp = app
            .http
            .post(format!("{}{M}/operators/invitations", app.base))
            .header("cookie", &op2.cookie)
            .header("x-csrf-token", &op2.csrf)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let got = (resp.status().as_u16(), resp.json::<Value>().await.unwrap());
        crate::common::assert_error(&got, status, code);
    }
    let empty = call(
        &app,
        Some(&op2),
        true,
        Method::POST,
        "/operators/invitations",
        Some(json!({})),
    )
    .await;
    assert_eq!(empty.0, 201, "{}", empty.1);
    let url = inv.1["setup_url"].as_str().unwrap();
    let bob_token = url.split("#token=").nth(1).unwrap();
    let bob = enrol_with(&app, bob_token, "bob", &Device::new()).await;
    assert_eq!(bob.subject, "local:bob");
    // Names are unique.
    let inv = call(
        &app,
        Some(&bob),
        true,
        Method::POST,
        "/operators/invitations",
        None,
    )
    .await;
    let t = inv.1["setup_url"]
        .as_str()
        .unwrap()
        .split("#token=")
        .nth(1)
        .unwrap()
        .to_owned();
    let dup = post_raw(
        &app,
        "/auth/setup/begin",
        json!({ "setup_token": t, "name": "alice" }),
    )
    .await;
    assert_eq!(dup.status(), 400);

    let enrolled = events(&app, &op2, "operator.enrolled").await;
    assert_eq!(enrolled.len(), 2);
    assert_eq!(enrolled[1]["actor_id"], "local:alice");
    assert_eq!(enrolled[0]["actor_id"], "local:bob");
    assert_eq!(events(&app, &op2, "operator.signed_in").await.len(), 4);
    audited_by(&app, &op2, "local:alice", "operator.signed_out").await;
    // Three links, and the one asked for with `{}`; none for the refused bodies.
    let issued = events(&app, &op2, "operator.setup_link_issued").await;
    assert_eq!(issued.len(), 4);
    assert_eq!(issued.last().unwrap()["actor_kind"], "system");
    // No secret in the log: neither the setup token nor the cookie.
    let export = app
        .http
        .get(format!("{}{M}/audit/export", app.base))
        .header("cookie", &op2.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in [
        token.as_str(),
        &op.cookie["passbind_operator=".len()..],
        op2.csrf.as_str(),
    ] {
        assert!(!export.contains(secret), "a secret is in the audit log");
    }
}
both_backends!(setup_link_works_once_then_passkey_sign_in);

async fn every_action_is_audited(app: TestApp) {
    let (op, _) = enrol(&app, "ops").await;
    let person = Person::new(77);
    register(&app, "cust-1", &person, &Device::new()).await;
    register(&app, "cust-1", &person, &Device::new()).await;
    register(&app, "other-9", &Person::new(78), &Device::new()).await;

    // Overview.
    let o = call(
        &app,
        Some(&op),
        false,
        Method::GET,
        "/overview?bucket_seconds=10",
        None,
    )
    .await;
    assert_code(&o, 400, "validation_failed");
    let o = call(&app, Some(&op), false, Method::GET, "/overview", None).await;
    assert_eq!(o.0, 200, "{}", o.1);
    assert_eq!(o.1["totals"]["users"], 2);
    assert_eq!(o.1["totals"]["active_credentials"], 3);
    assert_eq!(o.1["flows"][0]["completed"], 3);
    assert_eq!(o.1["idv"]["passed"], 3);
    assert_eq!(o.1["idv"]["pass_rate"], 1.0);
    let series = o.1["series"].as_array().unwrap();
    assert!(series
        .iter()
        .any(|p| p["flow"] == "registration" && p["outcome"] == "completed" && p["count"] == 3));

    // Users: search by prefix, detail, no biometric data.
    let found = call(
        &app,
        Some(&op),
        false,
        Method::GET,
        "/users?prefix=cust",
        None,
    )
    .await;
    assert_eq!(found.0, 200);
    let users = found.1["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["external_user_id"], "cust-1");
    assert_eq!(users[0]["active_credentials"], 2);
    assert_eq!(users[0]["has_biometric_reference"], true);
    let page = call(&app, Some(&op), false, Method::GET, "/users?limit=1", None).await;
    assert_eq!(page.1["users"].as_array().unwrap().len(), 1);
    assert_eq!(page.1["next_after"], "cust-1");
    let page2 = call(
        &app,
        Some(&op),
        false,
        Method::GET,
        "/users?limit=1&after=cust-1",
        None,
    )
    .await;
    assert_eq!(page2.1["users"][0]["external_user_id"], "other-9");
    assert!(page2.1.get("next_after").is_none());
    assert_code(
        &call(
            &app,
            Some(&op),
            false,
            Method::GET,
            "/users?prefix=a%20b",
            None,
        )
        .await,
        400,
        "validation_failed",
    );

    let d = call(&app, Some(&op), false, Method::GET, "/users/cust-1", None).await;
    assert_eq!(d.0, 200, "{}", d.1);
    assert_eq!(d.1["user"]["has_biometric_reference"], true);
    let creds = d.1["user"]["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 2);
    assert_eq!(creds[0]["device_label"], "test phone");
    assert!(creds[0]["aaguid"].is_string() && creds[0]["created_at"].is_string());
    assert_eq!(d.1["sessions"].as_array().unwrap().len(), 2);
    let text = d.1.to_string();
    assert!(!text.contains("encrypted_biometric_token") && !text.contains("ciphertext"));
    assert_code(
        &call(&app, Some(&op), false, Method::GET, "/users/nobody", None).await,
        404,
        "user_not_found",
    );

    // Sessions: filters, pagination, timeline.
    let s = call(
        &app,
        Some(&op),
        false,
        Method::GET,
        "/sessions?flow=registration&state=completed&limit=2",
        None,
    )
    .await;
    assert_eq!(s.0, 200, "{}", s.1);
    assert_eq!(s.1["sessions"].as_array().unwrap().len(), 2);
    let before = s.1["next_before"].as_str().unwrap().to_owned();
    let s2 = call(
        &app,
        Some(&op),
        false,
        Method::GET,
        &format!("/sessions?flow=registration&state=completed&before={before}"),
        None,
    )
    .await;
    assert_eq!(s2.1["sessions"].as_array().unwrap().len(), 1);
    let none = call(
        &app,
        Some(&op),
        false,
        Method::GET,
        "/sessions?state=expired",
        None,
    )
    .await;
    assert!(none.1["sessions"].as_array().unwrap().is_empty());
    let future = call(
        &app,
        Some(&op),
        false,
        Method::GET,
        "/sessions?since_ms=99999999999999",
        None,
    )
    .await;
    assert!(future.1["sessions"].as_array().unwrap().is_empty());
    assert_code(
        &call(
            &app,
            Some(&op),
            false,
            Method::GET,
            "/sessions?flow=nope",
            None,
        )
        .await,
        400,
        "validation_failed",
    );
    assert_code(
        &call(
            &app,
            Some(&op),
            false,
            Method::GET,
            "/sessions?before=garbage",
            None,
        )
        .await,
        400,
        "validation_failed",
    );
    let sid = s.1["sessions"][0]["id"].as_str().unwrap();
    let detail = call(
        &app,
        Some(&op),
        false,
        Method::GET,
        &format!("/sessions/{sid}"),
        None,
    )
    .await;
    assert_eq!(detail.0, 200);
    let timeline = detail.1["timeline"].as_array().unwrap();
    assert!(timeline.len() >= 3, "{timeline:?}");
    assert!(timeline
        .windows(2)
        .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    assert_code(
        &call(
            &app,
            Some(&op),
            false,
            Method::GET,
            "/sessions/reg_nothing",
            None,
        )
        .await,
        404,
        "session_not_found",
    );

    // Revoke a credential.
    let cid = creds[0]["credential_id"].as_str().unwrap();
    let r = call(
        &app,
        Some(&op),
        true,
        Method::DELETE,
        &format!("/users/cust-1/credentials/{cid}"),
        None,
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert!(r.1["credentials"][0]["revoked_at"].is_string());
    let e = audited(&app, &op, "credential.revoked").await;
    assert_eq!(e["details"]["credential_id"], cid);

    // API keys: create (secret once), list (never secrets), revoke.
    let k = call(
        &app,
        Some(&op),
        true,
        Method::POST,
        "/api-keys",
        Some(json!({"name": "backend", "scopes": ["flows", "users"]})),
    )
    .await;
    assert_eq!(k.0, 201, "{}", k.1);
    let token = k.1["token"].as_str().unwrap().to_owned();
    let id = k.1["key"]["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("pbk_{id}_")));
    let works = app
        .raw(
            Method::GET,
            "/v1/users/cust-1",
            None,
            Some(&format!("Bearer {token}")),
        )
        .await;
    assert_eq!(works.0, 200);
    let list = call(&app, Some(&op), false, Method::GET, "/api-keys", None).await;
    assert!(!list.1.to_string().contains(&token[20..]));
    assert!(list.1["scopes"]["audit"].is_string());
    audited(&app, &op, "api_key.created").await;
    let bad = call(
        &app,
        Some(&op),
        true,
        Method::POST,
        "/api-keys",
        Some(json!({"name": "x", "scopes": ["root"]})),
    )
    .await;
    assert_code(&bad, 400, "validation_failed");
    let rv = call(
        &app,
        Some(&op),
        true,
        Method::DELETE,
        &format!("/api-keys/{id}"),
        None,
    )
    .await;
    assert_eq!(rv.0, 200, "{}", rv.1);
    assert!(rv.1["revoked_at"].is_string());
    audited(&app, &op, "api_key.revoked").await;
    let refused = app
        .raw(
            Method::GET,
            "/v1/users/cust-1",
            None,
            Some(&format!("Bearer {token}")),
        )
        .await;
    assert_eq!(refused.0, 401);
    assert_code(
        &call(
            &app,
            Some(&op),
            true,
            Method::DELETE,
            &format!("/api-keys/{id}"),
            None,
        )
        .await,
        400,
        "validation_failed",
    );

    // Erase a user: the confirmation must repeat the id.
    let wrong = call(
        &app,
        Some(&op),
        true,
        Method::POST,
        "/users/cust-1/erase",
        Some(json!({"confirm_external_user_id": "cust-2"})),
    )
    .await;
    assert_code(&wrong, 400, "validation_failed");
    let er = call(
        &app,
        Some(&op),
        true,
        Method::POST,
        "/users/cust-1/erase",
        Some(json!({"confirm_external_user_id": "cust-1"})),
    )
    .await;
    assert_eq!(er.0, 200, "{}", er.1);
    assert!(er.1["erased_at"].is_string());
    assert_eq!(er.1["has_biometric_reference"], false);
    audited(&app, &op, "user.erased").await;

    // Settings: the effective configuration, no secret.
    let st = call(&app, Some(&op), false, Method::GET, "/settings", None).await;
    assert_eq!(st.0, 200);
    let text = st.1.to_string();
    for name in [
        "PASSBIND_RP_ID",
        "PASSBIND_RP_ORIGINS",
        "PASSBIND_IDV_PROVIDER",
        "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
        "PASSBIND_SESSION_TTL_SECONDS",
    ] {
        assert!(text.contains(name), "{name}");
    }
    let keys = std::fs::read_to_string(app.dir.path().join("dev-keys.json")).unwrap();
    let keys: Value = serde_json::from_str(&keys).unwrap();
    for secret in [
        &keys["user_ref_key"],
        &keys["simulator"]["api_token"],
        &keys["simulator"]["webhook_token"],
    ] {
        assert!(
            !text.contains(secret.as_str().unwrap()),
            "a secret is on the settings page"
        );
    }

    // Audit: verification (audited), export (audited), filters.
    let v = call(&app, Some(&op), true, Method::POST, "/audit/verify", None).await;
    assert_eq!(v.0, 200, "{}", v.1);
    assert_eq!(v.1["ok"], true, "{}", v.1);
    assert!(v.1["events_verified"].as_u64().unwrap() > 10);
    audited(&app, &op, "management.audit_verified").await;
    let export = app
        .http
        .get(format!("{}{M}/audit/export", app.base))
        .header("cookie", &op.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert!(export.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let text = export.text().await.unwrap();
    assert!(text.lines().count() > 10);
    let audit_key = app
        .raw(Method::GET, "/v1/audit/public-key", None, None)
        .await;
    let key =
        passbind_audit::parse_public_key(audit_key.1["public_key"].as_str().unwrap()).unwrap();
    assert!(passbind_audit::verify_text(&text, &key).is_ok());
    audited(&app, &op, "management.audit_exported").await;
    let page = call(
        &app,
        Some(&op),
        false,
        Method::GET,
        "/audit/events?limit=2",
        None,
    )
    .await;
    assert_eq!(page.1["events"].as_array().unwrap().len(), 2);
    let next = page.1["next_before_seq"].as_u64().unwrap();
    let page2 = call(
        &app,
        Some(&op),
        false,
        Method::GET,
        &format!("/audit/events?limit=2&before_seq={next}"),
        None,
    )
    .await;
    assert!(page2.1["events"][0]["seq"].as_u64().unwrap() < next);
}
both_backends!(every_action_is_audited);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_management_api() {
    let app = TestApp::sqlite().await;
    let doc = app.raw(Method::GET, "/openapi.json", None, None).await;
    let paths = doc.1["paths"].as_object().unwrap();
    for p in [
        "/api/management/v1/auth/status",
        "/api/management/v1/auth/setup/begin",
        "/api/management/v1/auth/passkey/finish",
        "/api/management/v1/auth/oidc/start",
        "/api/management/v1/overview",
        "/api/management/v1/users",
        "/api/management/v1/users/{external_user_id}/credentials/{credential_id}",
        "/api/management/v1/sessions/{id}",
        "/api/management/v1/api-keys",
        "/api/management/v1/settings",
        "/api/management/v1/audit/verify",
        "/api/management/v1/audit/export",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    // Dashboard pages: a strict policy, the shell for every page, assets by name only.
    let page = app
        .http
        .get(format!("{}/dashboard/users/alice", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let js = app
        .http
        .get(format!("{}/dashboard/assets/app.js", app.base))
        .send()
        .await
        .unwrap();
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let missing = app
        .http
        .get(format!("{}/dashboard/assets/nope.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
