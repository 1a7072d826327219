// Login with a vostok token (or a JWT of the server's OpenID Connect issuer, which the server
// accepts in the same place), or at the issuer itself: authorization code + PKCE (S256) in the
// browser, the code exchanged at the issuer's token endpoint by the page. The token is kept in
// this tab's sessionStorage only (never in localStorage, never in a URL) and sent as
// `Authorization: Bearer` by `authFetch`.

const KEY = "vostok.token";
const PENDING = "vostok.oidc";

// The issuer's answer in this page's address (?code=…&state=…), read before the page rewrites
// its URL.
const answer = (() => {
  const p = new URLSearchParams(location.search);
  return p.get("state") && (p.get("code") || p.get("error"))
    ? { code: p.get("code"), state: p.get("state"), error: p.get("error"), description: p.get("error_description") }
    : null;
})();

// Who is logged in: null, or the server's answer to portal/api/me ({user, groups, home, …}).
let who = null;
// The server's answer for an anonymous caller (whether it has VOSpace, its authority, OIDC).
let server = null;

export function token() {
  try {
    return sessionStorage.getItem(KEY) || null;
  } catch {
    return null;
  }
}

export function user() {
  return who;
}

export function serverInfo() {
  return server;
}

// fetch() with the token, when logged in.
export function authFetch(url, options = {}) {
  const t = token();
  if (!t) return fetch(url, options);
  const headers = new Headers(options.headers || {});
  headers.set("Authorization", `Bearer ${t}`);
  return fetch(url, { ...options, headers });
}

async function ask(t) {
  const headers = t ? { Authorization: `Bearer ${t}` } : {};
  const r = await fetch("portal/api/me", { headers, cache: "no-store" });
  let body = {};
  try {
    body = await r.json();
  } catch {
    body = { error: `HTTP ${r.status}` };
  }
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

// Checks `t` with the server and keeps it; the user's description, or an Error thrown.
export async function login(t) {
  t = (t || "").trim();
  if (!t) throw new Error("paste your token first");
  const me = await ask(t);
  if (!me.user) throw new Error("the server did not recognise the token");
  try {
    sessionStorage.setItem(KEY, t);
  } catch {
    throw new Error("this browser refuses to keep the token (sessionStorage is disabled)");
  }
  who = me;
  return me;
}

export function logout() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // Nothing kept.
  }
  who = null;
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function discovery(issuer) {
  const r = await fetch(`${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`, { cache: "no-store" });
  if (!r.ok) throw new Error(`the issuer's discovery document could not be read (${r.status})`);
  const d = await r.json();
  if (!d.authorization_endpoint || !d.token_endpoint) throw new Error("the issuer offers no authorization-code login");
  return d;
}

// Whether this page is the issuer's answer (its address is then put back as it was before the
// login, once the login is done).
export const returning = answer !== null;

// Leaves for the issuer's login page (authorization code with PKCE); the page comes back to
// this address with ?code=…&state=….
export async function startIssuerLogin() {
  const o = server && server.oidc;
  if (!o || !o.client_id) throw new Error("this server has no OpenID Connect client configured");
  if (!crypto.subtle) throw new Error("this page is not in a secure context (https or localhost): PKCE needs WebCrypto");
  const d = await discovery(o.issuer);
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const redirect = `${location.origin}${location.pathname}`;
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, redirect, token_endpoint: d.token_endpoint, back: location.search }));
  const q = new URLSearchParams({
    response_type: "code", client_id: o.client_id, redirect_uri: redirect, scope: "openid profile",
    code_challenge: challenge, code_challenge_method: "S256", state,
  });
  location.assign(`${d.authorization_endpoint}${d.authorization_endpoint.includes("?") ? "&" : "?"}${q}`);
}

// Back from the issuer: the code exchanged (with the PKCE verifier) for tokens, the access
// token (else the ID token) checked by the server and kept.
async function finishIssuerLogin() {
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  } catch {
    pending = null;
  }
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", `${location.pathname}${pending ? pending.back : ""}`);
  if (!pending || pending.state !== answer.state) throw new Error("the issuer's answer does not match a login of this tab");
  if (answer.error) throw new Error(`the issuer refused: ${answer.description || answer.error}`);
  const r = await fetch(pending.token_endpoint, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "authorization_code", code: answer.code, redirect_uri: pending.redirect,
      client_id: server.oidc.client_id, code_verifier: pending.verifier,
    }),
  });
  const t = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`the issuer did not give a token: ${t.error_description || t.error || r.status}`);
  let last = new Error("the issuer gave no token");
  for (const candidate of [t.access_token, t.id_token]) {
    if (!candidate) continue;
    try {
      return await login(candidate);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

// At start: the issuer's answer handled, or the kept token checked again (a token the server
// no longer knows is dropped). Throws what went wrong with a login at the issuer.
export async function restore() {
  try {
    server = await ask(null);
  } catch {
    server = null;
  }
  if (answer && sessionStorage.getItem(PENDING) !== null) {
    if (!server || !server.oidc) throw new Error("this server has no OpenID Connect issuer");
    return finishIssuerLogin();
  }
  const t = token();
  if (!t) return null;
  try {
    who = await ask(t);
    if (!who.user) logout();
  } catch {
    logout();
  }
  return who;
}
