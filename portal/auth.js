// Login with a vostok token (or a JWT of the server's OpenID Connect issuer, which the server
// accepts in the same place). The token is kept in this tab's sessionStorage only (never in
// localStorage, never in a URL) and sent as `Authorization: Bearer` by `authFetch`.

const KEY = "vostok.token";

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

// At start: the kept token checked again (a token the server no longer knows is dropped).
export async function restore() {
  try {
    server = await ask(null);
  } catch {
    server = null;
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
