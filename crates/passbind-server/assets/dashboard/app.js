// Passbind management dashboard. Plain JavaScript, no framework, no build step: served from
// the binary under a Content-Security-Policy that allows only this file as script. Every value
// from the server is put in the page as text (textContent), never as HTML.
"use strict";

const API = "/api/management/v1";
const BASE = "/dashboard";
let status = null; // GET /auth/status

// ---- small helpers ---------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function main() { return document.getElementById("main"); }

function show(...nodes) {
  const m = main();
  m.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
  window.scrollTo(0, 0);
}

function fmtTime(t) {
  if (!t) return "—";
  const d = new Date(t);
  return isNaN(d) ? t : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function badge(text, cls) { return h("span", { class: "badge " + (cls || text) }, text); }

function notice(text, kind) { return h("div", { class: "notice " + (kind || ""), role: "status" }, text); }

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || ("HTTP " + status));
    this.status = status;
    this.code = e.code;
    this.details = e.details;
  }
}

async function api(method, path, body) {
  const headers = { "accept": "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && status && status.csrf_token) headers["x-csrf-token"] = status.csrf_token;
  const resp = await fetch(API + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 204) return null;
  let data = null;
  try { data = await resp.json(); } catch (_) { data = null; }
  if (!resp.ok) {
    if (resp.status === 401 && !path.startsWith("/auth/")) {
      status = null;
      navigate(BASE + "/sign-in", true);
    }
    throw new ApiError(resp.status, data);
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

function errorBox(e) { return notice(e instanceof Error ? e.message : String(e), "error"); }

// ---- WebAuthn: JSON options <-> browser objects -----------------------------------------------

function b64uToBuf(s) {
  const pad = "=".repeat((4 - (s.length % 4)) % 4);
  const bin = atob((s + pad).replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function bufToB64u(buf) {
  const bytes = new Uint8Array(buf);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function creationOptions(o) {
  const pk = Object.assign({}, o.publicKey);
  pk.challenge = b64uToBuf(pk.challenge);
  pk.user = Object.assign({}, pk.user, { id: b64uToBuf(pk.user.id) });
  pk.excludeCredentials = (pk.excludeCredentials || []).map((c) => Object.assign({}, c, { id: b64uToBuf(c.id) }));
  return { publicKey: pk };
}

function requestOptions(o) {
  const pk = Object.assign({}, o.publicKey);
  pk.challenge = b64uToBuf(pk.challenge);
  pk.allowCredentials = (pk.allowCredentials || []).map((c) => Object.assign({}, c, { id: b64uToBuf(c.id) }));
  return { publicKey: pk };
}

function credentialJSON(c) {
  if (typeof c.toJSON === "function") return c.toJSON();
  const r = c.response;
  const response = { clientDataJSON: bufToB64u(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = bufToB64u(r.attestationObject);
    response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
  } else {
    response.authenticatorData = bufToB64u(r.authenticatorData);
    response.signature = bufToB64u(r.signature);
    if (r.userHandle) response.userHandle = bufToB64u(r.userHandle);
  }
  return {
    id: c.id, rawId: bufToB64u(c.rawId), type: c.type, response,
    clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
    authenticatorAttachment: c.authenticatorAttachment || undefined,
  };
}

// ---- routing ---------------------------------------------------------------------------------

function navigate(path, replace) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const href = a.getAttribute("href");
  if (href.startsWith(BASE) && !ev.metaKey && !ev.ctrlKey && !ev.shiftKey) {
    ev.preventDefault();
    navigate(href);
  }
});
window.addEventListener("popstate", () => route());

async function refreshStatus() {
  status = await api("GET", "/auth/status");
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  nav.hidden = !status.signed_in;
  who.hidden = !status.signed_in;
  if (status.signed_in) {
    document.getElementById("who-name").textContent =
      status.operator.display_name + " (" + status.operator.method + ")";
  }
}

function setActive(page) {
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
}

async function route() {
  const path = location.pathname.replace(/\/+$/, "") || BASE;
  const rest = path.startsWith(BASE) ? path.slice(BASE.length) : "";
  try {
    if (!status) await refreshStatus();
  } catch (e) {
    show(errorBox(e));
    return;
  }
  if (rest === "/setup") return pageSetup();
  if (!status.signed_in) {
    if (rest !== "/sign-in") history.replaceState(null, "", BASE + "/sign-in");
    return pageSignIn();
  }
  if (rest === "/sign-in") { history.replaceState(null, "", BASE + "/"); return route(); }
  const parts = rest.split("/").filter(Boolean).map(decodeURIComponent);
  const page = parts[0] || "overview";
  setActive(page);
  try {
    switch (page) {
      case "overview": return await pageOverview();
      case "users": return parts[1] ? await pageUser(parts[1]) : await pageUsers();
      case "sessions": return parts[1] ? await pageSession(parts[1]) : await pageSessions();
      case "audit": return await pageAudit();
      case "api-keys": return await pageApiKeys();
      case "settings": return await pageSettings();
      default: show(h("h1", {}, "Not found"), h("p", {}, h("a", { href: BASE + "/" }, "Back to the overview")));
    }
  } catch (e) {
    show(errorBox(e));
  }
}

// ---- sign-in and first-operator enrolment ----------------------------------------------------

function pageSetup() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  const name = h("input", { id: "operator-name", autocomplete: "username", placeholder: "e.g. alice", required: true });
  const msg = h("div");
  const button = h("button", { id: "enrol", type: "submit" }, "Create my passkey");
  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      button.disabled = true;
      msg.replaceChildren(notice("Follow your browser's prompt to create a passkey…"));
      try {
        const begun = await api("POST", "/auth/setup/begin", { setup_token: token, name: name.value.trim() });
        const cred = await navigator.credentials.create(creationOptions(begun.options));
        await api("POST", "/auth/setup/finish", { challenge_id: begun.challenge_id, credential: credentialJSON(cred) });
        status = null;
        await refreshStatus();
        // The fragment (the used token) leaves the address bar and the history.
        history.replaceState(null, "", BASE + "/?welcome=1");
        route();
      } catch (e) {
        button.disabled = false;
        msg.replaceChildren(errorBox(e));
      }
    },
  }, h("label", { for: "operator-name" }, "Your operator name"), name,
    h("p", { class: "muted small" }, "Letters, digits and . _ - @. Audit events of your actions carry it as local:<name>."),
    button);
  show(h("div", { class: "panel narrow" },
    h("h1", {}, "Enrol as an operator"),
    token ? h("p", {}, "This one-time link lets you create a passkey for the Passbind dashboard on this device. ",
      "You will sign in with it from now on; the link stops working once used.")
      : notice("This page needs the setup link printed by `passbind serve` (it ends in #token=…).", "error"),
    form, msg));
  name.focus();
}

function pageSignIn() {
  const params = new URLSearchParams(location.search);
  const msg = h("div");
  if (params.get("error")) {
    const why = {
      oidc_refused: "The identity provider refused the sign-in.",
      oidc_state: "The sign-in expired or was started in another browser; try again.",
      oidc_token: "The identity provider's answer could not be verified.",
      oidc_invalid: "The identity provider's answer was incomplete.",
    }[params.get("error")] || "Sign-in failed.";
    msg.append(notice(why, "error"));
  }
  const passkey = h("button", {
    id: "sign-in-passkey", type: "button",
    onclick: async () => {
      passkey.disabled = true;
      msg.replaceChildren(notice("Follow your browser's prompt to use your passkey…"));
      try {
        const begun = await api("POST", "/auth/passkey/begin");
        const cred = await navigator.credentials.get(requestOptions(begun.options));
        await api("POST", "/auth/passkey/finish", { challenge_id: begun.challenge_id, credential: credentialJSON(cred) });
        status = null;
        await refreshStatus();
        navigate(BASE + "/", true);
      } catch (e) {
        passkey.disabled = false;
        msg.replaceChildren(errorBox(e));
      }
    },
  }, "Sign in with a passkey");
  show(h("div", { class: "panel narrow" },
    h("h1", {}, "Sign in to Passbind"),
    status.setup_pending ? notice("No operator has enrolled yet. Open the one-time setup link that `passbind serve` printed at start (or, in production, logged) to create the first operator's passkey.") : null,
    h("p", { class: "row" },
      status.passkey ? passkey : null,
      status.oidc ? h("a", { id: "sign-in-oidc", class: "button secondary", href: API + "/auth/oidc/start" }, "Sign in with your organisation (OIDC)") : null),
    msg));
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try { await api("POST", "/auth/sign-out"); } catch (_) { /* signed out anyway */ }
  status = null;
  navigate(BASE + "/sign-in", true);
});

// ---- overview --------------------------------------------------------------------------------

const OUTCOMES = ["completed", "failed", "expired", "cancelled", "pending"];
const COLORS = { completed: "#1b8a4b", failed: "#c62d3a", expired: "#c77d0a", cancelled: "#8a94a6", pending: "#3b82f6" };
const FLOWS = ["registration", "authentication", "step_up", "cross_platform", "recovery"];
const STATES = ["created", "idv_pending", "capture_failed", "idv_passed", "idv_failed", "completed", "cancelled", "expired"];

function pct(x) { return (x * 100).toFixed(1) + "%"; }

async function pageOverview() {
  const params = new URLSearchParams(location.search);
  const period = params.get("period") || "7d";
  const periods = { "24h": [86400, 3600], "7d": [7 * 86400, 86400], "30d": [30 * 86400, 86400] };
  const [span, bucket] = periods[period] || periods["7d"];
  const now = Date.now();
  const until = Math.ceil(now / (bucket * 1000)) * bucket * 1000;
  const since = until - span * 1000;
  const o = await api("GET", "/overview" + query({ since_ms: since, until_ms: until, bucket_seconds: bucket }));
  const t = o.totals;
  const all = o.flows[0] || {};
  const card = (n, l, id) => h("div", { class: "card", id }, h("div", { class: "n" }, n), h("div", { class: "l" }, l));
  const select = h("select", { id: "period", onchange: () => navigate(BASE + "/?period=" + select.value) },
    ...Object.keys(periods).map((p) => h("option", { value: p, selected: p === period }, "last " + p)));
  const flowSel = h("select", { id: "chart-flow" }, h("option", { value: "" }, "all flows"),
    ...FLOWS.map((f) => h("option", { value: f }, f)));
  const chartBox = h("div");
  const draw = () => chartBox.replaceChildren(chart(o, since, until, bucket * 1000, flowSel.value));
  flowSel.addEventListener("change", draw);
  draw();
  const reasons = Object.entries(all.failed_by_reason || {});
  show(
    params.get("welcome") ? notice("Welcome, " + status.operator.display_name + ". You are signed in with your new passkey; use it to sign in next time.", "ok") : null,
    h("div", { class: "row head" }, h("h1", {}, "Overview"), h("span", { class: "muted" }, "sessions opened in the"), select),
    h("div", { class: "cards", id: "totals" },
      card(t.users, "users", "total-users"),
      card(t.active_credentials, "active credentials", "total-credentials"),
      card(all.total || 0, "sessions in period", "total-sessions"),
      card(all.completed || 0, "completed"),
      card(all.failed || 0, "failed"),
      card(all.expired || 0, "expired"),
      card(o.idv.decided ? pct(o.idv.pass_rate) : "—", "identity verification pass rate", "idv-pass-rate"),
      card(o.idv.decided ? pct(o.idv.mismatch_rate) : "—", "biometric mismatch rate", "idv-mismatch-rate")),
    h("div", { class: "panel" },
      h("div", { class: "row" }, h("h2", {}, "Sessions over time, by outcome"), flowSel),
      chartBox,
      h("div", { class: "legend" }, ...OUTCOMES.map((k) => h("span", { class: "sw-" + k }, k)))),
    h("div", { class: "grid2" },
      h("div", { class: "panel" }, h("h2", {}, "By flow"),
        h("table", {}, h("thead", {}, h("tr", {}, ...["flow", "total", "completed", "failed", "expired", "cancelled", "live"].map((x) => h("th", {}, x)))),
          h("tbody", {}, ...o.flows.slice(1).map((f) => h("tr", {},
            h("td", {}, h("a", { href: BASE + "/sessions?flow=" + f.flow }, f.flow)), h("td", {}, f.total), h("td", {}, f.completed),
            h("td", {}, f.failed), h("td", {}, f.expired), h("td", {}, f.cancelled), h("td", {}, f.pending)))))),
      h("div", { class: "panel" }, h("h2", {}, "Failures by reason"),
        reasons.length ? h("table", {}, h("tbody", {}, ...reasons.map(([r, n]) => h("tr", {}, h("td", {}, r === "declined" ? "declined (biometric or document mismatch)" : r), h("td", {}, n)))))
          : h("p", { class: "muted" }, "No failed sessions in this period."),
        h("p", { class: "muted small" }, "Identity verification: ", o.idv.passed, " passed, ", o.idv.mismatched, " mismatched, of ", o.idv.decided, " decided."),
        h("p", { class: "muted small" }, t.erased_users, " erased users · ", t.revoked_credentials, " revoked credentials · ", t.active_api_keys, " active API keys · ", t.operators, " operators"))));
}

function chart(o, since, until, bucketMs, flow) {
  const n = Math.max(1, Math.round((until - since) / bucketMs));
  const buckets = Array.from({ length: n }, () => Object.fromEntries(OUTCOMES.map((k) => [k, 0])));
  for (const p of o.series) {
    if (flow && p.flow !== flow) continue;
    const i = Math.floor((p.bucket_start_ms - since) / bucketMs);
    if (i >= 0 && i < n) buckets[i][OUTCOMES.includes(p.outcome) ? p.outcome : "pending"] += p.count;
  }
  const max = Math.max(1, ...buckets.map((b) => OUTCOMES.reduce((s, k) => s + b[k], 0)));
  const W = 900, H = 240, L = 40, B = 28, T = 10;
  const bw = (W - L - 10) / n;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const el = svg("svg", { class: "chart", id: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "sessions per period by outcome" });
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    el.append(svg("line", { x1: L, x2: W - 10, y1: y(v), y2: y(v), stroke: "#dde3ee" }),
      svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#5b6678" }, v));
  }
  const labelEvery = Math.ceil(n / 10);
  buckets.forEach((b, i) => {
    let acc = 0;
    const x = L + i * bw + bw * 0.15;
    for (const k of OUTCOMES) {
      if (!b[k]) continue;
      const top = y(acc + b[k]);
      el.append(svg("rect", { x, y: top, width: Math.max(1, bw * 0.7), height: y(acc) - top, fill: COLORS[k] },
        svg("title", {}, `${b[k]} ${k}`)));
      acc += b[k];
    }
    if (i % labelEvery === 0) {
      const d = new Date(since + i * bucketMs);
      const label = bucketMs < 86400000 ? d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
        : d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
      el.append(svg("text", { x: x + bw * 0.35, y: H - 8, "text-anchor": "middle", "font-size": 11, fill: "#5b6678" }, label));
    }
  });
  return el;
}

// ---- users -----------------------------------------------------------------------------------

async function pageUsers() {
  const params = new URLSearchParams(location.search);
  const prefix = params.get("prefix") || "";
  const input = h("input", { id: "user-search", placeholder: "external user id or its beginning", value: prefix, size: 36 });
  const results = h("div");
  const form = h("form", { class: "row", onsubmit: (ev) => { ev.preventDefault(); navigate(BASE + "/users" + query({ prefix: input.value.trim() })); } },
    h("div", {}, h("label", { for: "user-search" }, "Find a user"), input), h("button", { id: "user-search-go", type: "submit" }, "Search"));
  show(h("h1", {}, "Users"), form, results);
  let after = null;
  const table = h("table", { id: "user-results" }, h("thead", {}, h("tr", {}, ...["external user id", "created", "active credentials", "biometric reference", "status"].map((x) => h("th", {}, x)))));
  const body = h("tbody");
  table.append(body);
  const more = h("button", { class: "secondary", type: "button" }, "Load more");
  const load = async () => {
    const page = await api("GET", "/users" + query({ prefix, after, limit: 50 }));
    for (const u of page.users) {
      body.append(h("tr", { class: "clickable", "data-user": u.external_user_id, onclick: () => navigate(BASE + "/users/" + encodeURIComponent(u.external_user_id)) },
        h("td", {}, h("a", { href: BASE + "/users/" + encodeURIComponent(u.external_user_id) }, u.external_user_id)),
        h("td", {}, fmtTime(u.created_at)), h("td", {}, u.active_credentials),
        h("td", {}, u.has_biometric_reference ? "held (encrypted)" : "none"),
        h("td", {}, u.erased_at ? badge("erased", "bad") : badge("active", "ok"))));
    }
    after = page.next_after || null;
    more.hidden = !after;
    if (!body.children.length) results.replaceChildren(h("p", { class: "muted" }, prefix ? "No user id starts with “" + prefix + "”." : "No users yet."));
  };
  more.addEventListener("click", () => load().catch((e) => results.append(errorBox(e))));
  results.replaceChildren(table, more);
  await load();
  input.focus();
}

async function pageUser(id) {
  const d = await api("GET", "/users/" + encodeURIComponent(id));
  const u = d.user;
  const msg = h("div", { id: "user-message" });
  const rerender = async (text) => { await pageUser(id); if (text) document.getElementById("user-message").replaceChildren(notice(text, "ok")); };
  const credRows = u.credentials.map((c) => {
    const cell = h("td");
    if (!c.revoked_at && !u.erased_at) {
      const revoke = h("button", { class: "danger revoke", type: "button", "data-credential": c.credential_id }, "Revoke");
      revoke.addEventListener("click", () => {
        const confirm = h("button", { class: "danger confirm-revoke", type: "button", id: "confirm-revoke" }, "Confirm revoke");
        const cancel = h("button", { class: "secondary", type: "button" }, "Keep");
        confirm.addEventListener("click", async () => {
          confirm.disabled = true;
          try {
            await api("DELETE", "/users/" + encodeURIComponent(id) + "/credentials/" + encodeURIComponent(c.credential_id));
            await rerender("Credential revoked: it can no longer sign in or step up.");
          } catch (e) { msg.replaceChildren(errorBox(e)); confirm.disabled = false; }
        });
        cancel.addEventListener("click", () => cell.replaceChildren(revoke));
        cell.replaceChildren(h("span", { class: "small" }, "Revoke this credential? "), confirm, " ", cancel);
      });
      cell.append(revoke);
    }
    return h("tr", { "data-credential": c.credential_id },
      h("td", {}, h("div", { class: "mono" }, c.credential_id), c.device_label ? h("div", { class: "muted small" }, c.device_label) : null),
      h("td", {}, fmtTime(c.created_at)), h("td", {}, fmtTime(c.last_used_at)),
      h("td", { class: "mono" }, c.aaguid || "—"),
      h("td", {}, c.backup_eligible ? (c.backed_up ? "eligible, backed up" : "eligible, not backed up") : "device-bound"),
      h("td", {}, c.revoked_at ? badge("revoked") : badge("active", "ok"), c.revoked_at ? h("div", { class: "muted small" }, fmtTime(c.revoked_at)) : null),
      cell);
  });
  const erase = h("div");
  if (!u.erased_at) {
    const start = h("button", { class: "danger", id: "erase-user", type: "button" }, "Erase user…");
    start.addEventListener("click", () => {
      const confirmInput = h("input", { id: "erase-confirm", placeholder: u.external_user_id, size: 30 });
      const go = h("button", { class: "danger", id: "erase-go", type: "button" }, "Erase permanently");
      go.addEventListener("click", async () => {
        go.disabled = true;
        try {
          await api("POST", "/users/" + encodeURIComponent(id) + "/erase", { confirm_external_user_id: confirmInput.value.trim() });
          await rerender("User erased: biometric token crypto-shredded, credentials revoked, live sessions cancelled.");
        } catch (e) { msg.replaceChildren(errorBox(e)); go.disabled = false; }
      });
      erase.replaceChildren(h("p", {}, "Erasing destroys the user's encrypted biometric token (crypto-shredding), revokes every credential and cancels live sessions. It cannot be undone. Type the external user id to confirm:"),
        h("div", { class: "row" }, confirmInput, go));
    });
    erase.append(start);
  }
  show(
    h("p", {}, h("a", { href: BASE + "/users" }, "← Users")),
    h("h1", {}, "User ", h("span", { class: "mono", id: "user-id" }, u.external_user_id)), msg,
    h("div", { class: "panel" }, h("dl", { class: "kv" },
      h("dt", {}, "created"), h("dd", {}, fmtTime(u.created_at)),
      h("dt", {}, "biometric reference"), h("dd", { id: "user-ebt" }, u.has_biometric_reference ? "held, encrypted at rest (never shown)" : "none"),
      h("dt", {}, "status"), h("dd", {}, u.erased_at ? badge("erased " + fmtTime(u.erased_at), "bad") : badge("active", "ok")))),
    h("h2", {}, "Credentials"),
    u.credentials.length ? h("table", { id: "credentials" }, h("thead", {}, h("tr", {}, ...["credential", "created", "last used", "AAGUID", "backup", "status", ""].map((x) => h("th", {}, x)))), h("tbody", {}, ...credRows))
      : h("p", { class: "muted" }, "No credentials."),
    h("h2", {}, "Sessions"), sessionTable(d.sessions),
    u.erased_at ? null : h("div", { class: "panel" }, h("h2", {}, "Erase"), erase));
}

function sessionTable(sessions) {
  if (!sessions.length) return h("p", { class: "muted" }, "No sessions.");
  return h("table", { class: "sessions" }, h("thead", {}, h("tr", {}, ...["session", "flow", "state", "user", "created", "failure"].map((x) => h("th", {}, x)))),
    h("tbody", {}, ...sessions.map((s) => h("tr", { class: "clickable", onclick: () => navigate(BASE + "/sessions/" + s.id) },
      h("td", {}, h("a", { class: "mono", href: BASE + "/sessions/" + s.id }, s.id)), h("td", {}, s.flow), h("td", {}, badge(s.state)),
      h("td", { class: "mono" }, s.external_user_id), h("td", {}, fmtTime(s.created_at)), h("td", {}, s.idv_failure || "")))));
}

// ---- sessions --------------------------------------------------------------------------------

function toMs(v) { return v ? new Date(v).getTime() : ""; }

async function pageSessions() {
  const params = new URLSearchParams(location.search);
  const flow = h("select", { id: "filter-flow" }, h("option", { value: "" }, "any flow"), ...FLOWS.map((f) => h("option", { value: f, selected: params.get("flow") === f }, f)));
  const state = h("select", { id: "filter-state" }, h("option", { value: "" }, "any state"), ...STATES.map((s) => h("option", { value: s, selected: params.get("state") === s }, s)));
  const since = h("input", { id: "filter-since", type: "datetime-local", value: params.get("since") || "" });
  const until = h("input", { id: "filter-until", type: "datetime-local", value: params.get("until") || "" });
  const form = h("form", { class: "row", onsubmit: (ev) => { ev.preventDefault(); navigate(BASE + "/sessions" + query({ flow: flow.value, state: state.value, since: since.value, until: until.value })); } },
    h("div", {}, h("label", {}, "Flow"), flow), h("div", {}, h("label", {}, "State"), state),
    h("div", {}, h("label", {}, "Created from"), since), h("div", {}, h("label", {}, "to"), until),
    h("button", { type: "submit", id: "filter-go" }, "Filter"));
  const box = h("div");
  show(h("h1", {}, "Sessions"), form, box);
  let before = null;
  const rows = [];
  const more = h("button", { class: "secondary", type: "button" }, "Load more");
  const load = async () => {
    const page = await api("GET", "/sessions" + query({ flow: flow.value, state: state.value, since_ms: toMs(params.get("since")), until_ms: toMs(params.get("until")), before, limit: 50 }));
    rows.push(...page.sessions);
    before = page.next_before || null;
    box.replaceChildren(sessionTable(rows), more);
    more.hidden = !before;
  };
  more.addEventListener("click", () => load().catch((e) => box.append(errorBox(e))));
  await load();
}

function eventRow(e) {
  return h("li", {},
    h("div", {}, h("strong", {}, e.event_type), " ", badge(e.outcome), e.reason ? h("span", { class: "muted" }, " · " + e.reason) : null),
    h("div", { class: "muted small" }, fmtTime(e.time), " · #", e.seq, " · ", e.actor_kind, e.actor_id ? " " + e.actor_id : ""),
    Object.keys(e.details || {}).length ? h("div", { class: "mono muted" }, JSON.stringify(e.details)) : null);
}

async function pageSession(id) {
  const d = await api("GET", "/sessions/" + encodeURIComponent(id));
  const s = d.session;
  show(h("p", {}, h("a", { href: BASE + "/sessions" }, "← Sessions")),
    h("h1", {}, "Session ", h("span", { class: "mono" }, s.id)),
    h("div", { class: "panel" }, h("dl", { class: "kv" },
      h("dt", {}, "flow"), h("dd", {}, s.flow), h("dt", {}, "state"), h("dd", {}, badge(s.state)),
      h("dt", {}, "user"), h("dd", {}, h("a", { class: "mono", href: BASE + "/users/" + encodeURIComponent(s.external_user_id) }, s.external_user_id)),
      h("dt", {}, "created"), h("dd", {}, fmtTime(s.created_at)), h("dt", {}, "updated"), h("dd", {}, fmtTime(s.updated_at)),
      h("dt", {}, "expires"), h("dd", {}, fmtTime(s.expires_at)),
      h("dt", {}, "identity verification"), h("dd", {}, s.idv_provider || "—", s.idv_failure ? " · failed: " + s.idv_failure : ""),
      h("dt", {}, "credential"), h("dd", { class: "mono" }, s.credential_id || "—"))),
    h("h2", {}, "Timeline"),
    d.timeline.length ? h("ul", { class: "timeline", id: "timeline" }, ...d.timeline.map(eventRow)) : h("p", { class: "muted" }, "No audit events for this session."));
}

// ---- audit -----------------------------------------------------------------------------------

async function pageAudit() {
  const params = new URLSearchParams(location.search);
  const type = h("input", { id: "audit-type", placeholder: "e.g. credential.revoked", value: params.get("event_type") || "" });
  const session = h("input", { id: "audit-session", placeholder: "session id", value: params.get("session_id") || "" });
  const form = h("form", { class: "row", onsubmit: (ev) => { ev.preventDefault(); navigate(BASE + "/audit" + query({ event_type: type.value.trim(), session_id: session.value.trim() })); } },
    h("div", {}, h("label", {}, "Event type"), type), h("div", {}, h("label", {}, "Session"), session), h("button", { type: "submit" }, "Filter"));
  const result = h("div", { id: "verify-result" });
  const verify = h("button", { id: "verify-audit", type: "button" }, "Verify the chain");
  verify.addEventListener("click", async () => {
    verify.disabled = true;
    result.replaceChildren(notice("Verifying every event and signed checkpoint…"));
    try {
      const r = await api("POST", "/audit/verify");
      result.replaceChildren(h("div", { class: "notice " + (r.ok ? "ok" : "error"), id: r.ok ? "verify-ok" : "verify-broken" },
        h("strong", {}, r.ok ? "Intact. " : "BROKEN. "),
        r.ok ? `All ${r.events_verified} events hash-chain correctly; ${r.checkpoints_verified} signed checkpoints verify (they anchor the first ${r.anchored_size} events).`
          : `The log is not provably intact from line ${r.first_break.line} (${r.first_break.kind}): ${r.first_break.message}.`,
        r.ok && r.unanchored_tail ? h("div", { class: "small" }, `${r.unanchored_tail} newer events are chained but not yet covered by a signed checkpoint.`) : null,
        h("div", { class: "small muted" }, "Verified at " + fmtTime(r.verified_at))));
    } catch (e) { result.replaceChildren(errorBox(e)); }
    verify.disabled = false;
  });
  const list = h("div");
  show(h("h1", {}, "Audit log"),
    h("div", { class: "panel" },
      h("p", {}, "Every state change and security event is appended to a hash chain with Ed25519-signed checkpoints. Verify it here, or download the export and verify it offline with ", h("code", {}, "passbind audit verify"), "."),
      h("div", { class: "row" }, verify, h("a", { class: "button secondary", id: "audit-export", href: API + "/audit/export", download: "passbind-audit.jsonl" }, "Download export (JSON Lines)")),
      result),
    form, list);
  let before = null;
  const rows = [];
  const more = h("button", { class: "secondary", type: "button" }, "Load more");
  const load = async () => {
    const page = await api("GET", "/audit/events" + query({ event_type: params.get("event_type"), session_id: params.get("session_id"), before_seq: before, limit: 100 }));
    rows.push(...page.events);
    before = page.next_before_seq || null;
    list.replaceChildren(h("table", { id: "audit-events" }, h("thead", {}, h("tr", {}, ...["#", "time", "event", "outcome", "actor", "session", "details"].map((x) => h("th", {}, x)))),
      h("tbody", {}, ...rows.map((e) => h("tr", {},
        h("td", {}, e.seq), h("td", {}, fmtTime(e.time)), h("td", {}, e.event_type), h("td", {}, badge(e.outcome), e.reason ? " " + e.reason : ""),
        h("td", {}, e.actor_kind, e.actor_id ? h("div", { class: "mono small" }, e.actor_id) : null),
        h("td", {}, e.session_id ? h("a", { class: "mono", href: BASE + "/sessions/" + e.session_id }, e.session_id) : ""),
        h("td", { class: "mono small" }, Object.keys(e.details || {}).length ? JSON.stringify(e.details) : ""))))), more);
    more.hidden = !before;
  };
  more.addEventListener("click", () => load().catch((e) => list.append(errorBox(e))));
  await load();
}

// ---- API keys --------------------------------------------------------------------------------

async function pageApiKeys(created) {
  const d = await api("GET", "/api-keys");
  const name = h("input", { id: "key-name", placeholder: "e.g. backend-prod", required: true });
  const boxes = Object.entries(d.scopes).map(([s, what]) =>
    h("label", { class: "small" }, h("input", { type: "checkbox", value: s, checked: s === "flows", class: "key-scope" }), " ", s, h("span", { class: "muted" }, " — " + what)));
  const msg = h("div");
  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const scopes = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
      try {
        const k = await api("POST", "/api-keys", { name: name.value.trim(), scopes });
        await pageApiKeys(k);
      } catch (e) { msg.replaceChildren(errorBox(e)); }
    },
  }, h("div", { class: "row" }, h("div", {}, h("label", { for: "key-name" }, "Name"), name), h("button", { type: "submit", id: "key-create" }, "Create key")), ...boxes, msg);
  const rows = d.keys.map((k) => {
    const cell = h("td");
    if (!k.revoked_at) {
      const b = h("button", { class: "danger", type: "button", "data-key": k.id }, "Revoke");
      b.addEventListener("click", async () => {
        b.disabled = true;
        try { await api("DELETE", "/api-keys/" + k.id); await pageApiKeys(); } catch (e) { msg.replaceChildren(errorBox(e)); b.disabled = false; }
      });
      cell.append(b);
    }
    return h("tr", {}, h("td", { class: "mono" }, k.id), h("td", {}, k.name), h("td", {}, k.scopes.join(", ")), h("td", {}, fmtTime(k.created_at)),
      h("td", {}, k.revoked_at ? badge("revoked") : badge("active", "ok")), cell);
  });
  show(h("h1", {}, "API keys"),
    created ? h("div", { class: "panel" }, notice("Key created. Copy the secret now: it is shown only this once and stored only as a hash.", "ok"),
      h("div", { class: "secret-once", id: "new-key-token" }, created.token)) : null,
    h("div", { class: "panel" }, h("h2", {}, "New key"), form),
    h("table", { id: "api-keys" }, h("thead", {}, h("tr", {}, ...["id", "name", "scopes", "created", "status", ""].map((x) => h("th", {}, x)))), h("tbody", {}, ...rows)));
}

// ---- settings --------------------------------------------------------------------------------

async function pageSettings() {
  const d = await api("GET", "/settings");
  const invite = h("button", { id: "invite", type: "button", class: "secondary" }, "Create a setup link for another operator");
  const out = h("div");
  invite.addEventListener("click", async () => {
    try {
      const i = await api("POST", "/operators/invitations");
      out.replaceChildren(notice("Send this one-time link to the new operator (valid until " + fmtTime(i.expires_at) + "); they enrol their own passkey with it:"),
        h("div", { class: "secret-once" }, i.setup_url));
    } catch (e) { out.replaceChildren(errorBox(e)); }
  });
  show(h("h1", {}, "Settings"),
    h("p", { class: "muted" }, "The configuration in effect (flags or environment variables of `passbind serve`). Secrets are never shown: only whether they are set."),
    ...d.groups.map((g) => h("div", { class: "panel" }, h("h2", {}, g.title),
      h("table", { class: "settings" }, h("tbody", {}, ...g.settings.map((s) => h("tr", {},
        h("td", { class: "mono" }, s.name),
        h("td", {}, s.value === undefined || s.value === null ? h("span", { class: "muted" }, "unset") : (s.secret ? badge("set, redacted") : h("span", { class: "mono" }, s.value))))))))),
    h("div", { class: "panel" }, h("h2", {}, "Operators"), h("p", {}, "You are ", h("span", { class: "mono" }, status.operator.subject), "."), invite, out));
}

route();
