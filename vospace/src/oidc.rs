//! OpenID Connect login: JSON Web Tokens issued by one configured OIDC issuer (`[vospace.oidc]`),
//! verified against the issuer's published keys (its JWKS).
//!
//! * Keys: `jwks_url` when configured, else the `jwks_uri` of
//!   `{issuer}/.well-known/openid-configuration` (whose `issuer` must be the configured one).
//!   They are cached for an hour; a token whose `kid` is not in the cache makes one refetch, at
//!   most once a minute (key rotation). When a refetch fails the previous keys stay in use.
//! * Tokens: compact JWS (`header.payload.signature`, base64url without padding), at most
//!   16 KiB. `alg` must be `RS256` (RSA of 2048 to 8192 bits, PKCS#1 v1.5) or `ES256` (P-256),
//!   both verified with ring;
//!   `none`, `HS*` and every other algorithm are refused, as is a `crit` header. The header's
//!   `jwk`, `jku`, `x5u`, `x5c` are ignored: only the issuer's keys are trusted. `kid` selects
//!   the key; without `kid`, the only key of the algorithm's type.
//! * Claims: `iss` equal to the issuer (exactly); `aud` (a string or an array) containing
//!   `audience`, which must be configured; `sub` present; `exp` present and not past, `nbf`
//!   and `iat` (when present) not in the future, each with `leeway` seconds.
//! * Identity: the login is (`iss`, `sub`), linked to a local user at its first login
//!   ([`login`]); later tokens of the same subject are that user whatever their name claim
//!   says. The name at the first login is the string claim `username_claim` (default
//!   `preferred_username`), or `sub` when the token has no such claim. It must be a valid
//!   vostok user name (a letter, then letters, digits, `_`, `-`, `.`; at most 64 characters):
//!   other names (e-mail addresses, UUIDs) are refused, not rewritten, because a rewriting
//!   (`a@b` → `a_b`) could give one person another's folder; and a name that is already an
//!   account (`vostok user add`, or another subject's) is refused.
//! * Groups: the claim `groups_claim` when configured (an array of strings, or one string),
//!   taken verbatim (at most 1000, each at most 256 bytes; others are ignored).
//!
//! [`login`] is what the HTTP binding calls for a bearer token that [`looks_like_jwt`]: it
//! verifies it and creates the user on the first login (home `/NAME`, `default_quota`).
//!
//! Faults: `NotAuthenticated` for every token that does not pass, `InternalFault` when the
//! issuer's keys cannot be fetched (and none were ever fetched).

// Until src/vospace/http.rs calls [`login`] (the wiring): remove then.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::Fault;
use super::store::{User, VoStore};

/// How long fetched keys are used before they are fetched again.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// Fewest seconds between two fetches of the keys (unknown `kid`s, failed fetches).
const MIN_REFETCH: Duration = Duration::from_secs(60);
/// Timeout of one fetch (discovery document or JWKS).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest discovery document or JWKS.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Largest token.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Most groups taken from a token, and the longest group name.
const MAX_GROUPS: usize = 1000;
const MAX_GROUP_BYTES: usize = 256;

/// `[vospace.oidc]`: accept JWTs of this OpenID Connect issuer.
#[derive(Deserialize, Serialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer (`iss`) exactly as in its tokens, e.g. `https://login.example.org/realms/vo`.
    pub issuer: String,
    /// When set, tokens must have it in `aud` (the client id registered for vostok).
    #[serde(default)]
    pub audience: Option<String>,
    /// The issuer's key set; default: the `jwks_uri` of its discovery document.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The claim holding the user name (default `preferred_username`; `sub` when absent).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The claim holding the user's groups (e.g. `groups`): an array of strings.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Clock skew allowed for `exp`, `nbf` and `iat`, seconds.
    #[serde(default = "default_leeway")]
    pub leeway: u64,
}

fn default_username_claim() -> String {
    "preferred_username".into()
}

fn default_leeway() -> u64 {
    60
}

impl OidcConfig {
    /// A configuration with the defaults and this issuer.
    #[cfg(test)]
    pub fn new(issuer: &str) -> Self {
        OidcConfig {
            issuer: issuer.into(),
            audience: None,
            jwks_url: None,
            username_claim: default_username_claim(),
            groups_claim: None,
            leeway: default_leeway(),
        }
    }
}

/// Who a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The issuer (`iss`).
    pub issuer: String,
    /// The subject (`sub`): with the issuer, who the login is, whatever its name claim says.
    pub subject: String,
    /// The name it claims (`username_claim`), a valid vostok user name: the local user's name
    /// at the first login, and only then.
    pub username: String,
    /// The groups of `groups_claim` (empty when not configured or absent).
    pub groups: Vec<String>,
}

/// Whether `token` has the shape of a compact JWS: three non-empty base64url parts (vostok's
/// own tokens are hexadecimal, without dots).
pub fn looks_like_jwt(token: &str) -> bool {
    let b64url = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut n = 0;
    for p in token.split('.') {
        n += 1;
        if n > 3 || !b64url(p) {
            return false;
        }
    }
    n == 3
}

/// The verifier: configuration and cached keys. One per server.
pub struct Oidc {
    cfg: OidcConfig,
    /// Keys given at construction ([`Oidc::with_keys`]): never fetched.
    fixed: bool,
    http: Option<reqwest::Client>,
    cache: Mutex<Cache>,
    /// Held while fetching, so that concurrent requests make one fetch.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cache {
    keys: Arc<Vec<Jwk>>,
    /// When the keys were fetched (None: never).
    fetched: Option<Instant>,
    /// When a fetch was last started.
    attempted: Option<Instant>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc").field("cfg", &self.cfg).finish()
    }
}

impl Oidc {
    /// A verifier fetching the issuer's keys when first needed.
    pub fn new(cfg: OidcConfig) -> Self {
        let loopback = url::Url::parse(&cfg.issuer)
            .ok()
            .is_some_and(|u| matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")));
        if !cfg.issuer.starts_with("https://") && !loopback {
            tracing::warn!(
                "OIDC issuer {} is not https: its keys can be forged on the way",
                cfg.issuer
            );
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            // Fetches are rare, and made from whichever runtime (actix worker) asks: no
            // connection outlives its request.
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| tracing::error!("OIDC: cannot make an HTTP client: {e}"))
            .ok();
        Oidc {
            cfg,
            fixed: false,
            http,
            cache: Mutex::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// A verifier with a fixed key set (a JWKS document), never fetched: for tests, and for
    /// issuers whose keys are configured by hand.
    #[cfg(test)]
    pub fn with_keys(cfg: OidcConfig, jwks_json: &str) -> Result<Self, Fault> {
        let keys = parse_jwks(jwks_json.as_bytes())
            .map_err(|e| Fault::InvalidArgument(format!("OIDC key set: {e}")))?;
        Ok(Oidc {
            cfg,
            fixed: true,
            http: None,
            cache: Mutex::new(Cache {
                keys: Arc::new(keys),
                fetched: Some(Instant::now()),
                attempted: None,
            }),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The configuration.
    #[allow(dead_code)] // for diagnostics
    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    /// Verifies `token` (signature and claims) and returns whom it names.
    pub async fn verify(&self, token: &str) -> Result<OidcIdentity, Fault> {
        let jws = Jws::parse(token)?;
        let mut keys = self.keys(false).await?;
        if select_key(&jws, &keys).is_err() && !self.fixed {
            // Perhaps the issuer rotated its keys.
            keys = self.keys(true).await?;
        }
        let key = select_key(&jws, &keys)?;
        self.check(&jws, key, now_secs())
    }

    /// Verifies with the keys in hand and the clock at `now` (Unix seconds), never fetching.
    #[cfg(test)]
    fn verify_at(&self, token: &str, now: i64) -> Result<OidcIdentity, Fault> {
        let jws = Jws::parse(token)?;
        let keys = self.lock().keys.clone();
        let key = select_key(&jws, &keys)?;
        self.check(&jws, key, now)
    }

    fn check(&self, jws: &Jws, key: &Jwk, now: i64) -> Result<OidcIdentity, Fault> {
        key.verify(jws.alg, jws.signing_input.as_bytes(), &jws.signature)?;
        self.check_claims(&jws.claims, now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keys: cached while fresh (always, for fixed keys), else fetched; `refetch` asks for
    /// a fetch even of fresh keys. Fetches are at least [`MIN_REFETCH`] apart; when one fails
    /// the previous keys are used.
    async fn keys(&self, refetch: bool) -> Result<Arc<Vec<Jwk>>, Fault> {
        let fresh_or_recent = |c: &Cache, refetch: bool| -> Option<Result<Arc<Vec<Jwk>>, Fault>> {
            let fresh = c.fetched.is_some_and(|t| t.elapsed() < KEYS_TTL);
            let recent = c.attempted.is_some_and(|t| t.elapsed() < MIN_REFETCH);
            if self.fixed || (fresh && !refetch) {
                Some(Ok(c.keys.clone()))
            } else if recent {
                Some(if c.fetched.is_some() {
                    Ok(c.keys.clone())
                } else {
                    Err(unavailable("the last fetch failed less than a minute ago"))
                })
            } else {
                None
            }
        };
        if let Some(r) = fresh_or_recent(&self.lock(), refetch) {
            return r;
        }
        let _fetching = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(r) = fresh_or_recent(&self.lock(), refetch) {
            return r;
        }
        self.lock().attempted = Some(Instant::now());
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::info!("OIDC: {} keys of {}", keys.len(), self.cfg.issuer);
                let keys = Arc::new(keys);
                let mut c = self.lock();
                c.keys = keys.clone();
                c.fetched = Some(Instant::now());
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!("OIDC: fetching the keys of {}: {e}", self.cfg.issuer);
                let c = self.lock();
                if c.fetched.is_some() {
                    Ok(c.keys.clone())
                } else {
                    Err(unavailable(&e))
                }
            }
        }
    }

    async fn fetch_keys(&self) -> Result<Vec<Jwk>, String> {
        let jwks_url = match &self.cfg.jwks_url {
            Some(u) => u.clone(),
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.cfg.issuer.trim_end_matches('/')
                );
                let doc: Value = serde_json::from_slice(&self.get(&url).await?)
                    .map_err(|e| format!("{url}: {e}"))?;
                if doc.get("issuer").and_then(Value::as_str) != Some(self.cfg.issuer.as_str()) {
                    return Err(format!(
                        "{url}: its issuer is {}, not {}",
                        doc.get("issuer").unwrap_or(&Value::Null),
                        self.cfg.issuer
                    ));
                }
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{url}: no jwks_uri"))?
                    .to_string()
            }
        };
        let body = self.get(&jwks_url).await?;
        parse_jwks(&body).map_err(|e| format!("{jwks_url}: {e}"))
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let http = self.http.as_ref().ok_or("no HTTP client")?;
        let mut resp = http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn check_claims(
        &self,
        claims: &serde_json::Map<String, Value>,
        now: i64,
    ) -> Result<OidcIdentity, Fault> {
        let cfg = &self.cfg;
        if claims.get("iss").and_then(Value::as_str) != Some(cfg.issuer.as_str()) {
            return Err(refused("it is not from the configured issuer"));
        }
        // Without an audience any token of the issuer, made for any service, would do.
        let aud = cfg
            .audience
            .as_deref()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| refused("the service has no OIDC audience configured"))?;
        let ok = match claims.get("aud") {
            Some(Value::String(s)) => s == aud,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(aud)),
            _ => false,
        };
        if !ok {
            return Err(refused(&format!("it is not for the audience {aud}")));
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .ok_or_else(|| refused("it has no subject ('sub')"))?
            .to_string();
        let now = now as f64;
        let leeway = cfg.leeway as f64;
        let time = |name: &str| -> Result<Option<f64>, Fault> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|t| t.is_finite())
                    .map(Some)
                    .ok_or_else(|| refused(&format!("'{name}' is not a number"))),
            }
        };
        match time("exp")? {
            None => return Err(refused("it has no expiry time ('exp')")),
            Some(exp) if now > exp + leeway => return Err(refused("it has expired")),
            Some(_) => {}
        }
        if time("nbf")?.is_some_and(|t| t > now + leeway) {
            return Err(refused("it is not valid yet ('nbf')"));
        }
        if time("iat")?.is_some_and(|t| t > now + leeway) {
            return Err(refused("it was issued in the future ('iat')"));
        }
        let (claim, name) = match claims.get(&cfg.username_claim) {
            Some(v) => (cfg.username_claim.as_str(), v),
            None => match claims.get("sub") {
                Some(v) => ("sub", v),
                None => {
                    return Err(refused(&format!(
                        "it has neither '{}' nor 'sub'",
                        cfg.username_claim
                    )))
                }
            },
        };
        let username = name
            .as_str()
            .filter(|n| valid_user_name(n))
            .ok_or_else(|| {
                refused(&format!(
                    "its '{claim}' is not a valid user name (a letter, then letters, digits, \
                     '_', '-', '.'; at most 64 characters)"
                ))
            })?
            .to_string();
        let groups = match cfg.groups_claim.as_ref().and_then(|g| claims.get(g)) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .filter(|g| !g.is_empty() && g.len() <= MAX_GROUP_BYTES)
                .take(MAX_GROUPS)
                .map(str::to_string)
                .collect(),
            Some(Value::String(g)) if !g.is_empty() && g.len() <= MAX_GROUP_BYTES => {
                vec![g.clone()]
            }
            _ => Vec::new(),
        };
        Ok(OidcIdentity {
            issuer: cfg.issuer.clone(),
            subject,
            username,
            groups,
        })
    }
}

/// The user a JWT names, for the HTTP binding: the token verified by `oidc`, then the local
/// user its login (`iss`, `sub`) was linked to at its first login. On the first login the user
/// is created under the token's name claim (home `/NAME`, quota `default_quota`, 0: none) and
/// linked; a name that is already an account of the service is refused (a login never takes
/// an account over, even when the issuer lets people rename themselves). The token's groups
/// are added to the user's own (`vostok user add --group`).
pub async fn login(
    oidc: &Oidc,
    store: &VoStore,
    token: &str,
    default_quota: u64,
) -> Result<User, Fault> {
    let id = oidc.verify(token).await?;
    let name = match store.oidc_user(&id.issuer, &id.subject).await? {
        Some(n) => n,
        None => {
            let quota = (default_quota > 0).then_some(default_quota);
            store
                .add_oidc_user(&id.issuer, &id.subject, &id.username, quota)
                .await?
        }
    };
    let mut user = store
        .user(&name)
        .await?
        .ok_or_else(|| Fault::NotAuthenticated(format!("the user {name} no longer exists")))?;
    for g in id.groups {
        if !user.groups.contains(&g) {
            user.groups.push(g);
        }
    }
    Ok(user)
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn refused(why: &str) -> Fault {
    Fault::NotAuthenticated(format!("the token is not accepted: {why}"))
}

fn unavailable(why: &str) -> Fault {
    Fault::InternalFault(format!("the login service's keys are unavailable: {why}"))
}

/// vostok user names: a letter, then letters, digits, `_`, `-`, `.`; at most 64 bytes.
fn valid_user_name(n: &str) -> bool {
    n.len() <= 64
        && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Es256,
}

/// A parsed (not yet verified) compact JWS.
struct Jws {
    alg: Alg,
    kid: Option<String>,
    /// `header.payload`, what the signature signs.
    signing_input: String,
    signature: Vec<u8>,
    claims: serde_json::Map<String, Value>,
}

impl Jws {
    fn parse(token: &str) -> Result<Jws, Fault> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(refused("it is too long"));
        }
        if !looks_like_jwt(token) {
            return Err(refused("it is not a JSON Web Token"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(refused("it is not a JSON Web Token"));
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| refused(&format!("its {what} is not base64url")))
        };
        let header: Value = serde_json::from_slice(&decode(h, "header")?)
            .map_err(|_| refused("its header is not JSON"))?;
        let header = header
            .as_object()
            .ok_or_else(|| refused("its header is not a JSON object"))?;
        let alg = match header.get("alg").and_then(Value::as_str) {
            Some("RS256") => Alg::Rs256,
            Some("ES256") => Alg::Es256,
            Some(a) => {
                let a: String = a.chars().take(20).collect();
                return Err(refused(&format!(
                    "its algorithm {a:?} is not accepted (RS256, ES256)"
                )));
            }
            None => return Err(refused("its header has no 'alg'")),
        };
        if header.contains_key("crit") {
            return Err(refused("its header has critical extensions ('crit')"));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(refused("its 'kid' is not a string")),
        };
        let claims: Value = serde_json::from_slice(&decode(p, "payload")?)
            .map_err(|_| refused("its payload is not JSON"))?;
        let Value::Object(claims) = claims else {
            return Err(refused("its payload is not a JSON object"));
        };
        let signature = decode(s, "signature")?;
        Ok(Jws {
            alg,
            kid,
            signing_input: token[..h.len() + 1 + p.len()].to_string(),
            signature,
            claims,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

/// A usable key of the issuer.
#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    /// The key's `alg`, when it names one.
    alg: Option<String>,
    key: PublicKey,
}

#[derive(Debug, Clone)]
enum PublicKey {
    /// Modulus (2048 to 8192 bits) and public exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// P-256, uncompressed point (0x04 || x || y).
    P256(Vec<u8>),
}

impl Jwk {
    fn fits(&self, alg: Alg) -> bool {
        let (kty_ok, name) = match alg {
            Alg::Rs256 => (matches!(self.key, PublicKey::Rsa { .. }), "RS256"),
            Alg::Es256 => (matches!(self.key, PublicKey::P256(_)), "ES256"),
        };
        kty_ok && self.alg.as_deref().is_none_or(|a| a == name)
    }

    fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> Result<(), Fault> {
        let ok = match (&self.key, alg) {
            (PublicKey::Rsa { n, e }, Alg::Rs256) => ring::signature::RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                message,
                signature,
            )
            .is_ok(),
            (PublicKey::P256(point), Alg::Es256) => ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(message, signature)
            .is_ok(),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(refused("its signature is not valid"))
        }
    }
}

/// The key for `jws`: the one of its `kid`, else the only one of its algorithm.
fn select_key<'a>(jws: &Jws, keys: &'a [Jwk]) -> Result<&'a Jwk, Fault> {
    match &jws.kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid.as_str()) && k.fits(jws.alg))
            .ok_or_else(|| refused("its key ('kid') is not one of the issuer's")),
        None => {
            let mut fitting = keys.iter().filter(|k| k.fits(jws.alg));
            match (fitting.next(), fitting.next()) {
                (Some(k), None) => Ok(k),
                (None, _) => Err(refused("the issuer has no key for its algorithm")),
                (Some(_), Some(_)) => Err(refused(
                    "it names no key ('kid') and the issuer has several",
                )),
            }
        }
    }
}

/// The usable keys of a JWKS document; keys of other types or with bad fields are skipped.
fn parse_jwks(body: &[u8]) -> Result<Vec<Jwk>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let mut out = Vec::new();
    for k in keys {
        match parse_jwk(k) {
            Ok(Some(jwk)) => out.push(jwk),
            Ok(None) => {}
            Err(e) => {
                let kid = k.get("kid").map(Value::to_string).unwrap_or_default();
                tracing::warn!("OIDC: key {kid} skipped: {e}")
            }
        }
    }
    Ok(out)
}

/// A key; None for keys not meant for signatures or of a type vostok does not verify.
fn parse_jwk(k: &Value) -> Result<Option<Jwk>, String> {
    let s = |name: &str| -> Result<Option<&str>, String> {
        match k.get(name) {
            None => Ok(None),
            Some(Value::String(v)) => Ok(Some(v)),
            Some(_) => Err(format!("'{name}' is not a string")),
        }
    };
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let v = s(name)?.ok_or_else(|| format!("no '{name}'"))?;
        URL_SAFE_NO_PAD
            .decode(v)
            .map_err(|_| format!("'{name}' is not base64url"))
    };
    if s("use")?.is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if let Some(ops) = k.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o.as_str() == Some("verify")));
        if !verify {
            return Ok(None);
        }
    }
    let key = match s("kty")? {
        Some("RSA") => {
            let strip = |v: Vec<u8>| -> Vec<u8> {
                let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
                v[first..].to_vec()
            };
            let (n, e) = (strip(bytes("n")?), strip(bytes("e")?));
            let bits = n
                .first()
                .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
            if !(2048..=8192).contains(&bits) {
                return Err(format!(
                    "an RSA modulus of {bits} bits (2048 to 8192 accepted)"
                ));
            }
            // What ring accepts: 3 <= e < 2^33, odd.
            let e_bits = e
                .first()
                .map_or(0, |b| e.len() * 8 - b.leading_zeros() as usize);
            if !(2..=33).contains(&e_bits) || e.last().is_none_or(|b| b & 1 == 0) {
                return Err("an unusable RSA exponent".into());
            }
            PublicKey::Rsa { n, e }
        }
        Some("EC") => {
            if s("crv")? != Some("P-256") {
                return Ok(None);
            }
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates are 32 bytes".into());
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::P256(point)
        }
        _ => return Ok(None),
    };
    Ok(Some(Jwk {
        kid: s("kid")?.map(str::to_string),
        alg: s("alg")?.map(str::to_string),
        key,
    }))
}

#[cfg(test)]
mod tests {
    //! Test vectors made with Python `cryptography` 50 (~/.cache/vostok/venv) by this script:
    //!
    //! ```python
    //! import base64, hashlib, hmac, json
    //! from cryptography.hazmat.primitives import hashes
    //! from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    //! from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    //!
    //! b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    //! part = lambda o: b64(json.dumps(o, separators=(",", ":")).encode())
    //! big = lambda i: b64(i.to_bytes((i.bit_length() + 7) // 8, "big"))
    //!
    //! def rsa_jwk(k, kid):
    //!     n = k.public_key().public_numbers()
    //!     return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": big(n.n), "e": big(n.e)}
    //!
    //! def ec_jwk(k, kid):
    //!     n = k.public_key().public_numbers()
    //!     j = {"kty": "EC", "crv": "P-256", "x": b64(n.x.to_bytes(32, "big")), "y": b64(n.y.to_bytes(32, "big"))}
    //!     return dict(j, kid=kid) if kid else j
    //!
    //! def rs256(key, claims, kid="rsa1"):
    //!     h = {"alg": "RS256", "typ": "JWT"} | ({"kid": kid} if kid else {})
    //!     si = f"{part(h)}.{part(claims)}"
    //!     return si + "." + b64(key.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256()))
    //!
    //! def es256(key, claims, kid="ec1"):
    //!     h = {"alg": "ES256", "typ": "JWT"} | ({"kid": kid} if kid else {})
    //!     si = f"{part(h)}.{part(claims)}"
    //!     r, s = decode_dss_signature(key.sign(si.encode(), ec.ECDSA(hashes.SHA256())))
    //!     return si + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    //!
    //! ISS, Y2100 = "https://issuer.example/realms/vo", 4102444800
    //! base = {"iss": ISS, "aud": "vostok", "sub": "f81d4fae", "preferred_username": "dana",
    //!         "groups": ["team", "survey-x"], "iat": 1700000000, "nbf": 1700000000, "exp": Y2100}
    //! rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    //! other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    //! small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    //! ec1 = ec.generate_private_key(ec.SECP256R1())
    //! jwks = {"keys": [rsa_jwk(rsa1, "rsa1"), ec_jwk(ec1, "ec1"), rsa_jwk(small, "small")]}
    //! out = {
    //!     "JWKS": json.dumps(jwks),
    //!     "RS256_OK": rs256(rsa1, base),
    //!     "ES256_OK": es256(ec1, {k: v for k, v in base.items() if k not in ("preferred_username", "groups")}
    //!                       | {"sub": "erin", "aud": ["other", "vostok"]}),
    //!     "EXPIRED": rs256(rsa1, base | {"exp": 1000000000}),
    //!     "WRONG_ISS": rs256(rsa1, base | {"iss": ISS + "/"}),
    //!     "WRONG_AUD": rs256(rsa1, base | {"aud": ["other", "vostok2"]}),
    //!     "NOT_YET": rs256(rsa1, base | {"nbf": 4000000000}),
    //!     "NO_EXP": rs256(rsa1, {k: v for k, v in base.items() if k != "exp"}),
    //!     "UNKNOWN_KID": rs256(rsa1, base, kid="rsa2"),
    //!     "OTHER_KEY": rs256(other, base),
    //!     "SMALL_KEY": rs256(small, base, kid="small"),
    //!     "BAD_NAME": rs256(rsa1, base | {"preferred_username": "dana@example.org"}),
    //! }
    //! si = f"{part({'alg': 'HS256', 'kid': 'rsa1'})}.{part(base)}"
    //! out["HS256"] = si + "." + b64(hmac.new(json.dumps(jwks['keys'][0]).encode(), si.encode(), hashlib.sha256).digest())
    //! # ES256 without kid: the only EC key of the set
    //! out["ES256_NO_KID"] = es256(ec1, base, kid=None)
    //! for k, v in out.items():
    //!     print(f"const {k}: &str = r#\"{v}\"#;")
    //! ```

    use super::*;

    const JWKS: &str = r#"{"keys": [{"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256", "n": "y9FoGaasl0YGHPKWc9dwt0irQ28Hpx_g0cDlcc7IP_bZdEAHTZXqbhJEB35m0Tc-eNRPbievMgR0MHqhl7_b8eOO3ww5nyfg1w4ChhMBNKi7nc50XdTlUE8oflvJBOV6VBnnp7bGlWFr0QXoq5678c2PmJ8BLW57Z5eniHU7qXDwRZtm6lpUwwkGdysjCZfOL7T86jTxIOjB54m3gQkYWkzuKylwVbtCGgL1rf3L0B8C5cKdLKE0AwGy8pINPOXA3w_7HON6MTe01r11VLDF0TGYvIetN2rUl1u4oYXyDQ560KLo6eBDAAP4tbADEySmrIs163IyGY2cttmB2PKXAw", "e": "AQAB"}, {"kty": "EC", "crv": "P-256", "x": "RvoPUTsGonRuTltUTMCGUBSLrOtkrMS8ajNTnuCzs-k", "y": "RX64yZwQR30H0kBjEbJ997GEShzr4u83WJJdlejXHFY", "kid": "ec1"}, {"kty": "RSA", "kid": "small", "use": "sig", "alg": "RS256", "n": "smOZsSCMYxdm1faLk-iMx2WXy4Ts56GVCAVgUejSYcd0NMz6QZGYIrx4VyrjqgmvljtuycyThXClofi3xcv4-qGPxX3LbJZJB3v1Ru8nG1VsoLn36Oy2tZ8vySWaLpl1KTUXn1-E2eI0HVIgDEW7ysAK1wMt_c20n53L6407zCU", "e": "AQAB"}]}"#;
    const RS256_OK: &str = r#"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6InZvc3RvayIsInN1YiI6ImY4MWQ0ZmFlIiwicHJlZmVycmVkX3VzZXJuYW1lIjoiZGFuYSIsImdyb3VwcyI6WyJ0ZWFtIiwic3VydmV5LXgiXSwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.wQYiZq2r0t1odLpVAa8UrAozAbAxEXWTuCCboylPx0thCuxvuhNgSD368MajUZqdknEMztK2Gx1IhAzrC8-j8YVAJXJIBIwIRNqlGIEBk5Dbf35ppUyJo4Q_t0fEAaG9gvlKIftuz2t8DdZLknk21trJ1H1xVByWqtZTgcH0DQXbCbuG6c2cDTtfAA6BVZpW0A3JW_4r9RCmdkGuhQqUk6gj0KZRza3FZBVIlELdG4EKwH3UuUykKsRvjDyBQ2wpFIO6DiVzYSJTbh7htIsdRIV7KrZmjtZiwpq3h01_9vdql40k7TQORqyw7P7EE5Iw3Y5maR4eEjU51z0N23S-TQ"#;
    const ES256_OK: &str = r#"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImVjMSJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6WyJvdGhlciIsInZvc3RvayJdLCJzdWIiOiJlcmluIiwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.UyMRYCND18K22Um54YJPSfsbe8LXtRZbUbkU3U4sMjtuFQcUolXtCaAqlWzzZYZx_W9P0F8NSu7g19EeWzpqvA"#;
    const EXPIRED: &str = r#"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6InZvc3RvayIsInN1YiI6ImY4MWQ0ZmFlIiwicHJlZmVycmVkX3VzZXJuYW1lIjoiZGFuYSIsImdyb3VwcyI6WyJ0ZWFtIiwic3VydmV5LXgiXSwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MTAwMDAwMDAwMH0.n-xEjQlEeGnTaa4_2SpD7Qbb9OT1dl80poUFLpBj20ALhO22JnPVP6662qFtEhLjUHOJ2KXxvgarptbfl16DLUFHctAyH2tMFEb1ab0TFaZAodMwgarOH6SsaTGUWWw_UOApLDJB7kYX1GxK63H6ion99OsDSR3_U5vVxL9DFGYXY3KwrU8ZYhptj6LlAQObV_mHJDo3NNlNM6pwyN4QXnVbyyt86u9gj8pyQhchokd9012cJ7PtGWJLpimz2ARTY2_bpRVkTSa7X7VA-YOF4rCxVtumalfvZ8eOwJ7fMvnjlIJLXXyyovKFvG9ygMwG5GdXmzFUu1ASTEcR0oqy7w"#;
    const WRONG_ISS: &str = r#"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92by8iLCJhdWQiOiJ2b3N0b2siLCJzdWIiOiJmODFkNGZhZSIsInByZWZlcnJlZF91c2VybmFtZSI6ImRhbmEiLCJncm91cHMiOlsidGVhbSIsInN1cnZleS14Il0sImlhdCI6MTcwMDAwMDAwMCwibmJmIjoxNzAwMDAwMDAwLCJleHAiOjQxMDI0NDQ4MDB9.UUzVjwsGZeCewxGrRSDmR0fE5iGt1gloZ9-Hn5wkAVby82c6inAkdOt8kXXyt2x87O1DNiQpVxLdd6HoypiVOBoUkF2QTQh8x5f2th3S4bTQU2rT8R3VJoaBEiMTrWGuJY4AbK2CZJPYRsQkOJmWBWhaHUucrisGuRJ6YaCvX20wxJKaWgA1bB2Tv1EzEvT2Rsv_rPevWchaBF0M9bxMI2zPV0a2ilEtodWcNwX22goIp-F0V5sH1usxXLm1kI6Tte_bRseA6vie_GX4R2KEFcUqDZh0BAdLpjOVgXmu5J55l8xW73AR-o9II6Y5JHufKWILmBhkSXfsYpiO2EJ8pw"#;
    const WRONG_AUD: &str = r#"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6WyJvdGhlciIsInZvc3RvazIiXSwic3ViIjoiZjgxZDRmYWUiLCJwcmVmZXJyZWRfdXNlcm5hbWUiOiJkYW5hIiwiZ3JvdXBzIjpbInRlYW0iLCJzdXJ2ZXkteCJdLCJpYXQiOjE3MDAwMDAwMDAsIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.aJ4FqcjG8ikHygivay9vIfJhNOKPWfu-tGRrivLpNKMSztkaSo0YuMk3zVkRrjAe6mqCIXUQvrQXuJmaOSBXwL7khAMujzHgyl_UONbIubfoANEN7busoYxzOVt8OrH24vPP3o8OJgYpBsr2egiWhgK1dWzxsyHC24BXXeeYUGnlYQ8XlH1FbXOnJ6Ns6QdxYp3UxSaZ5cITe3C76R6tpOzpVueO-Zajdct0T6MjIDn8JPcVzCsZjvEDdk1n8EI-tn8_oqkjm28yBV89_y7nvE92vf_9sagXBJC50XwWs5NFw3XHQlhjSbJxw5HkBHRcNGff5eDh2az4NjEN8AzLtg"#;
    const NOT_YET: &str = r#"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6InZvc3RvayIsInN1YiI6ImY4MWQ0ZmFlIiwicHJlZmVycmVkX3VzZXJuYW1lIjoiZGFuYSIsImdyb3VwcyI6WyJ0ZWFtIiwic3VydmV5LXgiXSwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjQwMDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.ZLgMIEf2OgCTyg8v_g40bqhvT7k4lrW0E15QeUgGnYHhoQBwrdsQF4EwI6u1BJ1BkEOM_s48MUSkrDF6DMp6Kh9Y2r-yc8jWbcD_mOEYddjG9cIMUR3xLXV7FHg4Sm-FscsnXYhEz1sOAOCmG2OPZ6ybvUHQd8XUCzZRKX7XGxZ1PE5A4KdZKsWz0hfVMxL7k2fJKYCnE2kkCYrMsVBk-7YHezs6NQ-Epfv-6FKaIu8YEqPiBbhwVOIpZySLR94KFD-ZYnzWlaHm6DibJXoa1mhhDUNyIiLv-ImwYlmedAcwhwK3_4Z6hI1Fxh8o7q59P-Fqu8DLPPXeOa34CQWK-g"#;
    const NO_EXP: &str = r#"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6InZvc3RvayIsInN1YiI6ImY4MWQ0ZmFlIiwicHJlZmVycmVkX3VzZXJuYW1lIjoiZGFuYSIsImdyb3VwcyI6WyJ0ZWFtIiwic3VydmV5LXgiXSwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDB9.FQNi9FjoQglAAKF7-3M3P0Eh31RCOvBjm8dn7057cwmE_NNHPAQZQIyL1Ww5rr5w3hr_ZYMSADJTkiDR0ZjroGfx0yXlQ_fp9ObNIMuWbH0it1kL08BqkJkwbqVpyE1JhBDIYoyPf_aVYnO1dnFzRiTAO3j2tHG1SZoI53tRIBK2WQ4m3uUriKgIz0PRB1r7H19zDTziH5ABr2du8aCvjM_yxZ4ZAtd1Gucj4W_Rc1gan5sgbgzSwvXQmB3gzNnZiRbvSjF8ftMGiTaZgN2jOIc2peiWj_f_HV4VOvV9DC1toE9dlCyml4UooqZbNE2sqZhSHs-cDEPUR2oet5XkCQ"#;
    const UNKNOWN_KID: &str = r#"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTIifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6InZvc3RvayIsInN1YiI6ImY4MWQ0ZmFlIiwicHJlZmVycmVkX3VzZXJuYW1lIjoiZGFuYSIsImdyb3VwcyI6WyJ0ZWFtIiwic3VydmV5LXgiXSwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.C_R5NM3iNL9dm_k8XrCuMtvQDT31abbObF55sJ8Hn5PEvugE-g2MnR3vF37iPir_jlWAtc4OkqR37A9gqHYURi_xTFoQ8IxBBteOjovl65gkPkXf7-htp-yBlCWyWcbmS_N5Oi0vMaIOnS3dlSx76C30b_Wg2PU6dFOevGp5VeERRJLxpywFlqyR5b5I15tqULYfUMBuU4Bdj1j59j-0xF9sWHwVF8cpANuKV6Fj4r59hjHCcdmR5sjTv6Ihr-9-7OVKyXJJ1DGejWfqh3M1ypzrQzTLrpTzuLJ6gGYwn1KfrOfw-Gk5qDpeORvc2QWZIHSOJl9PmXy3BLwm4RLwiw"#;
    const OTHER_KEY: &str = r#"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6InZvc3RvayIsInN1YiI6ImY4MWQ0ZmFlIiwicHJlZmVycmVkX3VzZXJuYW1lIjoiZGFuYSIsImdyb3VwcyI6WyJ0ZWFtIiwic3VydmV5LXgiXSwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.mnFub-kMgoVUe5sKlvQ3qf4VVId1ECgTy1JKw6b1hKMz_BorhcPYVVx5W5G8kWq9xY7cEXKfjwmzJCCdXsawOaqggiaYlLgNLRxW7lGihSD75EIXnqhSt48KYnAemeAo9ssTo95BBlFffxqwHzlyAFL6F-z7EkyJnYG4Af0cSO9G5O5Npvk-DxdvCDrQGVmFb-fnwUFF7ho40T1D4tIKqvvuXqrtmKigzecB1FmSew85aeQ9A2-IgWjCpP1velHYgC1jADxsMbRVVwX4Rj6fSpkBJeFvI6yVew3v9OrIb_37mI66xpxuPimCTzo7h9LYgdujgxfQkBDUi1Ka2MtU4w"#;
    const SMALL_KEY: &str = r#"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNtYWxsIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6InZvc3RvayIsInN1YiI6ImY4MWQ0ZmFlIiwicHJlZmVycmVkX3VzZXJuYW1lIjoiZGFuYSIsImdyb3VwcyI6WyJ0ZWFtIiwic3VydmV5LXgiXSwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.P9urq4zYAmgDEXzD0zzOvNAzDrKY1jzsFUS5W_de0akYTqdxXj0PwaFPZhNeGtBNWChAaMb3YROlfpAhDjqL9ar4wCjN9gMjpFB_pME5LkIIN9Gd8nTMSYLQw6OuvTV0IfcTxrAx9-R5M7Gz2uIdCexYu1By5n6JclTqkxwO4qA"#;
    const BAD_NAME: &str = r#"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6InZvc3RvayIsInN1YiI6ImY4MWQ0ZmFlIiwicHJlZmVycmVkX3VzZXJuYW1lIjoiZGFuYUBleGFtcGxlLm9yZyIsImdyb3VwcyI6WyJ0ZWFtIiwic3VydmV5LXgiXSwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.p8Vb-5pW9R8O7fKuxTGvzU-dytPStqjol7bteYXw7kOkFVzcD-QoMCiw2BdGM_7Ugsw2Ui_pPz_CxpSMTACTvuPzgqkIKFYWAcqkglGwz2P9F9_a6iSCvYJHbZtT_fWdAoXpNfuyfnYm5ipo5hh3_H7JfTHXghLEEhtsG3-MVHIHSKsMVjsq6jiNXVg0DlABlPSyBEm3lyt74nH8bd5uXBOxcGR9rn6YMbfoTIUHeqz1jSmze5HePblPcKk_DSxujPk0pfVOvB6lFBJoer2CsJ8Awjq-PcCPkm2woNH8YtU54xuR545uliP_r1N7TC2G-5JLeEx6A-1MJsyNbcSlmw"#;
    const HS256: &str = r#"eyJhbGciOiJIUzI1NiIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6InZvc3RvayIsInN1YiI6ImY4MWQ0ZmFlIiwicHJlZmVycmVkX3VzZXJuYW1lIjoiZGFuYSIsImdyb3VwcyI6WyJ0ZWFtIiwic3VydmV5LXgiXSwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.4b2UczrkCz5VSHxQ1lHwOLRKbVxCQLHcQQ4qKFWdIU0"#;
    const ES256_NO_KID: &str = r#"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlL3JlYWxtcy92byIsImF1ZCI6InZvc3RvayIsInN1YiI6ImY4MWQ0ZmFlIiwicHJlZmVycmVkX3VzZXJuYW1lIjoiZGFuYSIsImdyb3VwcyI6WyJ0ZWFtIiwic3VydmV5LXgiXSwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.uPSfje6FaDBdP7ZRU-HXnL-sK0K2boTz8p1q0jWHT2n14737gwd0xq0ft4z6T2BTCfJtXoJ4irkquQBQSatwAg"#;

    const ISS: &str = "https://issuer.example/realms/vo";

    fn cfg() -> OidcConfig {
        OidcConfig {
            audience: Some("vostok".into()),
            groups_claim: Some("groups".into()),
            ..OidcConfig::new(ISS)
        }
    }

    fn oidc() -> Oidc {
        Oidc::with_keys(cfg(), JWKS).unwrap()
    }

    /// 2030-01-01, between the tokens' `nbf` (2023) and `exp` (2100).
    const NOW: i64 = 1_893_456_000;

    fn refusal(o: &Oidc, token: &str) -> String {
        match o.verify_at(token, NOW) {
            Ok(id) => panic!("accepted: {id:?}"),
            Err(Fault::NotAuthenticated(why)) => why,
            Err(f) => panic!("not NotAuthenticated: {f:?}"),
        }
    }

    #[test]
    fn keys_parsed() {
        // The 1024-bit RSA key is skipped.
        let keys = parse_jwks(JWKS.as_bytes()).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["rsa1", "ec1"]);
    }

    #[test]
    fn valid_rs256() {
        let id = oidc().verify_at(RS256_OK, NOW).unwrap();
        assert_eq!(id.username, "dana");
        assert_eq!(id.groups, ["team", "survey-x"]);
    }

    #[test]
    fn valid_es256_with_sub_and_audience_array() {
        let id = oidc().verify_at(ES256_OK, NOW).unwrap();
        assert_eq!(
            id,
            OidcIdentity {
                issuer: ISS.into(),
                subject: "erin".into(),
                username: "erin".into(),
                groups: vec![]
            }
        );
        // Without kid: the only EC key.
        assert_eq!(
            oidc().verify_at(ES256_NO_KID, NOW).unwrap().username,
            "dana"
        );
    }

    #[tokio::test]
    async fn verify_uses_the_clock() {
        let o = oidc();
        assert_eq!(o.verify(RS256_OK).await.unwrap().username, "dana");
        assert!(matches!(
            o.verify(EXPIRED).await,
            Err(Fault::NotAuthenticated(_))
        ));
        assert!(matches!(
            o.verify(UNKNOWN_KID).await,
            Err(Fault::NotAuthenticated(_))
        ));
    }

    #[test]
    fn no_audience_configured_accepts_nothing() {
        // Without an audience, tokens made for any service of the issuer would do.
        let o = Oidc::with_keys(OidcConfig::new(ISS), JWKS).unwrap();
        for t in [RS256_OK, WRONG_AUD] {
            assert!(refusal(&o, t).contains("no OIDC audience"));
        }
    }

    #[test]
    fn identity_is_issuer_and_subject() {
        let id = oidc().verify_at(RS256_OK, NOW).unwrap();
        assert_eq!((id.issuer.as_str(), id.subject.as_str()), (ISS, "f81d4fae"));
        // No groups_claim: no groups.
        let o = Oidc::with_keys(
            OidcConfig {
                groups_claim: None,
                ..cfg()
            },
            JWKS,
        )
        .unwrap();
        assert!(o.verify_at(RS256_OK, NOW).unwrap().groups.is_empty());
    }

    #[test]
    fn username_claim() {
        let o = Oidc::with_keys(
            OidcConfig {
                username_claim: "sub".into(),
                ..cfg()
            },
            JWKS,
        )
        .unwrap();
        // "f81d4fae" starts with a letter.
        assert_eq!(o.verify_at(RS256_OK, NOW).unwrap().username, "f81d4fae");
        let o = Oidc::with_keys(
            OidcConfig {
                username_claim: "groups".into(),
                ..cfg()
            },
            JWKS,
        )
        .unwrap();
        assert!(refusal(&o, RS256_OK).contains("'groups' is not a valid user name"));
        assert!(
            refusal(&oidc(), BAD_NAME).contains("'preferred_username' is not a valid user name")
        );
    }

    fn claims(j: &str) -> serde_json::Map<String, Value> {
        match serde_json::from_str::<Value>(j).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn time_claims_with_leeway() {
        let o = oidc();
        assert!(refusal(&o, EXPIRED).contains("expired"));
        assert!(refusal(&o, NOT_YET).contains("not valid yet"));
        assert!(refusal(&o, NO_EXP).contains("no expiry"));
        // RS256_OK: iat = nbf = 1700000000, leeway 60 s.
        assert!(o.verify_at(RS256_OK, 1_699_999_940).is_ok());
        let e = o.verify_at(RS256_OK, 1_699_999_939).unwrap_err();
        assert!(e.detail().contains("not valid yet"), "{e:?}");
        let c = |extra: &str| {
            claims(&format!(
                r#"{{"iss":"{ISS}","aud":"vostok","sub":"s1","preferred_username":"dana",{extra}}}"#
            ))
        };
        let exp = c(r#""exp":1000"#);
        assert!(o.check_claims(&exp, 1000).is_ok());
        assert!(o.check_claims(&exp, 1060).is_ok());
        assert!(o
            .check_claims(&exp, 1061)
            .unwrap_err()
            .detail()
            .contains("expired"));
        // Fractional times are allowed (NumericDate).
        assert!(o.check_claims(&c(r#""exp":1000.5"#), 1060).is_ok());
        let iat = c(r#""exp":5000,"iat":2000"#);
        assert!(o.check_claims(&iat, 1940).is_ok());
        assert!(o
            .check_claims(&iat, 1939)
            .unwrap_err()
            .detail()
            .contains("'iat'"));
        let strict = Oidc::with_keys(OidcConfig { leeway: 0, ..cfg() }, JWKS).unwrap();
        assert!(strict.check_claims(&exp, 1000).is_ok());
        assert!(strict.check_claims(&exp, 1001).is_err());
        assert!(strict
            .check_claims(&c(r#""exp":5000,"nbf":2000"#), 1999)
            .is_err());
        // A huge leeway does not overflow.
        let lax = Oidc::with_keys(
            OidcConfig {
                leeway: u64::MAX,
                ..cfg()
            },
            JWKS,
        )
        .unwrap();
        assert!(lax.check_claims(&exp, i64::MAX).is_ok());
    }

    #[test]
    fn refused_tokens() {
        let o = oidc();
        assert!(refusal(&o, WRONG_ISS).contains("issuer"));
        assert!(refusal(&o, WRONG_AUD).contains("audience"));
        assert!(refusal(&o, UNKNOWN_KID).contains("'kid'"));
        assert!(refusal(&o, OTHER_KEY).contains("signature"));
        assert!(refusal(&o, SMALL_KEY).contains("'kid'"));
        assert!(refusal(&o, HS256).contains("\"HS256\" is not accepted"));
        // An RS256 token claiming the EC key, an ES256 one claiming the RSA key.
        let (h, rest) = RS256_OK.split_once('.').unwrap();
        let header = String::from_utf8(URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
        let swapped = URL_SAFE_NO_PAD.encode(header.replace("rsa1", "ec1"));
        assert!(refusal(&o, &format!("{swapped}.{rest}")).contains("'kid'"));
        // Several RSA keys, no kid: which one?
        let two = format!(
            r#"{{"keys":[{0},{0}]}}"#,
            serde_json::to_string(&serde_json::from_str::<Value>(JWKS).unwrap()["keys"][0])
                .unwrap()
        );
        let o2 = Oidc::with_keys(cfg(), &two).unwrap();
        let nokid = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#);
        assert!(refusal(&o2, &format!("{nokid}.{rest}")).contains("several"));
    }

    #[test]
    fn tampered() {
        let o = oidc();
        let parts: Vec<&str> = RS256_OK.split('.').collect();
        // Payload: another user, same signature.
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["preferred_username"] = "mallory".into();
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert!(refusal(&o, &format!("{}.{payload}.{}", parts[0], parts[2])).contains("signature"));
        // Signature: one bit flipped (first, middle and last byte), truncated, extended.
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        for i in [0, sig.len() / 2, sig.len() - 1] {
            let mut s = sig.clone();
            s[i] ^= 1;
            let t = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&s));
            assert!(refusal(&o, &t).contains("signature"), "byte {i}");
        }
        for s in [
            &sig[1..],
            &[&sig[..], &[0u8][..]].concat()[..],
            &[&[0u8][..], &sig[..]].concat()[..],
        ] {
            let t = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(s));
            assert!(refusal(&o, &t).contains("signature"));
        }
        // s >= n: the modulus itself as signature.
        let keys = parse_jwks(JWKS.as_bytes()).unwrap();
        let PublicKey::Rsa { n, .. } = &keys[0].key else {
            unreachable!()
        };
        let t = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(n));
        assert!(refusal(&o, &t).contains("signature"));
        // ES256: one bit flipped, and r = s = 0.
        let parts: Vec<&str> = ES256_OK.split('.').collect();
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 0x80;
        let t = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
        assert!(refusal(&o, &t).contains("signature"));
        let t = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode([0u8; 64])
        );
        assert!(refusal(&o, &t).contains("signature"));
    }

    #[test]
    fn alg_none_and_others() {
        let o = oidc();
        let payload = RS256_OK.split('.').nth(1).unwrap();
        for alg in [
            "none", "None", "HS256", "HS512", "RS512", "PS256", "ES384", "EdDSA", "",
        ] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"rsa1"}}"#));
            for sig in ["", "AAAA"] {
                let t = format!("{h}.{payload}.{sig}");
                assert!(o.verify_at(&t, NOW).is_err(), "{alg}");
            }
        }
        let h = URL_SAFE_NO_PAD.encode(r#"{"kid":"rsa1"}"#);
        assert!(refusal(&o, &format!("{h}.{payload}.AAAA")).contains("no 'alg'"));
        let h =
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"rsa1","crit":["b64"],"b64":false}"#);
        assert!(refusal(&o, &format!("{h}.{payload}.AAAA")).contains("crit"));
    }

    #[test]
    fn malformed() {
        let o = oidc();
        let e = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let big = "A".repeat(20_000);
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            "abc.def.".into(),
            "a b.c.d".into(),
            "!!!.???.***".into(),
            // Padding, standard alphabet.
            format!("{}=.{}.AAAA", e("{}"), e("{}")),
            format!("{}.{}.AA+/", e(r#"{"alg":"RS256"}"#), e("{}")),
            // Not JSON, not objects, wrong types.
            format!("{}.{}.AAAA", e("{"), e("{}")),
            format!("{}.{}.AAAA", e("[]"), e("{}")),
            format!("{}.{}.AAAA", e(r#"{"alg":256}"#), e("{}")),
            format!("{}.{}.AAAA", e(r#"{"alg":"RS256","kid":7}"#), e("{}")),
            format!("{}.{}.AAAA", e(r#"{"alg":"RS256"}"#), e("[1,2]")),
            format!("{}.{}.AAAA", e(r#"{"alg":"RS256"}"#), e("null")),
            format!("{}.{}.AAAA", e(r#"{"alg":"RS256"}"#), e("\u{0}\u{ff}")),
            // Base64 of a non-multiple length (1 char).
            format!("{}.A.AAAA", e(r#"{"alg":"RS256"}"#)),
            format!("{}.{}.A", e(r#"{"alg":"RS256"}"#), e("{}")),
            big.clone(),
            format!("{big}.{big}.{big}"),
            // Huge numbers, deep nesting.
            format!(
                "{}.{}.AAAA",
                e(r#"{"alg":"RS256"}"#),
                e(&format!(r#"{{"exp":1{}}}"#, "0".repeat(400)))
            ),
            format!("{}.{}.AAAA", e(r#"{"alg":"RS256"}"#), e(&"[".repeat(5000))),
        ];
        for t in &cases {
            assert!(
                matches!(o.verify_at(t, NOW), Err(Fault::NotAuthenticated(_))),
                "{t:.80}"
            );
        }
        // Claims of the wrong type, checked after the signature: tested directly.
        let base =
            format!(r#""iss":"{ISS}","aud":"vostok","sub":"s1","preferred_username":"dana""#);
        for (j, why) in [
            (
                format!(r#"{{{base},"exp":"4102444800"}}"#),
                "'exp' is not a number",
            ),
            (
                format!(r#"{{{base},"exp":4102444800,"nbf":null}}"#),
                "'nbf' is not a number",
            ),
            (format!(r#"{{{base},"exp":1e300}}"#), ""),
            (format!(r#"{{{base},"exp":4102444800,"iat":-1e300}}"#), ""),
            (r#"{"iss":["x"],"exp":4102444800}"#.into(), "issuer"),
            (
                format!(r#"{{"iss":"{ISS}","aud":7,"exp":4102444800}}"#),
                "audience",
            ),
            (
                format!(r#"{{"iss":"{ISS}","aud":"vostok","exp":4102444800}}"#),
                "no subject",
            ),
            (
                format!(r#"{{"iss":"{ISS}","aud":"vostok","exp":4102444800,"sub":42}}"#),
                "no subject",
            ),
            (
                format!(r#"{{"iss":"{ISS}","aud":"vostok","exp":4102444800,"sub":"4x"}}"#),
                "'sub' is not a valid",
            ),
            (
                format!(r#"{{{base},"exp":4102444800,"groups":[1,"ok",null,""]}}"#),
                "",
            ),
        ] {
            match o.check_claims(&claims(&j), NOW) {
                Ok(id) => {
                    assert_eq!(why, "", "{j}");
                    assert_eq!(id.username, "dana");
                    assert!(id.groups.is_empty() || id.groups == ["ok"], "{j}");
                }
                Err(f) => assert!(!why.is_empty() && f.detail().contains(why), "{j}: {f:?}"),
            }
        }
    }

    #[test]
    fn jwks_parsing_is_tolerant() {
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"{\"keys\":{}}").is_err());
        assert!(Oidc::with_keys(cfg(), "nope").is_err());
        let jwks: Value = serde_json::from_str(JWKS).unwrap();
        let rsa = jwks["keys"][0].clone();
        let with = |patch: Value| {
            let mut k = rsa.clone();
            for (a, b) in patch.as_object().unwrap() {
                k[a] = b.clone();
            }
            k
        };
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA"},
            7,
            with(serde_json::json!({"use": "enc"})),
            with(serde_json::json!({"key_ops": ["encrypt"]})),
            with(serde_json::json!({"e": "AQ"})),
            with(serde_json::json!({"e": "AAE"})),
            with(serde_json::json!({"e": "AQAB/"})),
            with(serde_json::json!({"kid": 5})),
            with(serde_json::json!({"n": format!("AQ{}", "A".repeat(1400))})),
            rsa.clone(),
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("rsa1"));
        // A key whose alg is not the token's is not used.
        let o = Oidc::with_keys(
            cfg(),
            &serde_json::json!({"keys": [with(serde_json::json!({"alg": "RS512"}))]}).to_string(),
        )
        .unwrap();
        assert!(refusal(&o, RS256_OK).contains("'kid'"));
    }

    #[tokio::test]
    async fn login_provisions_once() {
        let dir = std::env::temp_dir().join(format!("vostok-oidc-login-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let storage = storage::Storage::local(&dir.join("data"), storage::Missing::Create).unwrap();
        let store = VoStore::open(&dir.join("vospace.db"), storage)
            .await
            .unwrap();
        let o = oidc();
        assert!(store.user("dana").await.unwrap().is_none());
        let u = login(&o, &store, RS256_OK, 1000).await.unwrap();
        assert_eq!(u.name, "dana");
        assert_eq!(u.quota_bytes, Some(1000));
        assert_eq!(u.groups, ["team", "survey-x"]);
        // Stored without the token's groups; a second login finds the user.
        assert!(store.user("dana").await.unwrap().unwrap().groups.is_empty());
        let again = login(&o, &store, RS256_OK, 5).await.unwrap();
        assert_eq!(again.quota_bytes, Some(1000));
        assert_eq!(again.groups, ["team", "survey-x"]);
        let erin = login(&o, &store, ES256_OK, 0).await.unwrap();
        assert_eq!((erin.name.as_str(), erin.quota_bytes), ("erin", None));
        // Refused tokens create no one.
        assert!(login(&o, &store, BAD_NAME, 0).await.is_err());
        assert_eq!(store.users().await.unwrap(), ["dana", "erin"]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt(RS256_OK));
        assert!(looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("a.b."));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt(&"0123456789abcdef".repeat(4)));
        assert!(!looks_like_jwt("a.b=.c"));
    }

    #[test]
    fn config_defaults() {
        let c: OidcConfig = toml::from_str("issuer = \"https://x\"").unwrap();
        assert_eq!(c.username_claim, "preferred_username");
        assert_eq!(c.leeway, 60);
        assert!(c.audience.is_none() && c.jwks_url.is_none() && c.groups_claim.is_none());
        assert!(toml::from_str::<OidcConfig>("audience = \"v\"").is_err());
        assert!(toml::from_str::<OidcConfig>("issuer = \"x\"\nisuer = \"y\"").is_err());
    }

    /// A tiny HTTP server on 127.0.0.1 answering discovery and JWKS requests (one response
    /// per connection), counting the JWKS requests.
    fn issuer_server(jwks: Arc<Mutex<String>>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (b, h) = (base.clone(), hits.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&req);
                let path = req.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = match path {
                    "/.well-known/openid-configuration" => (
                        "200 OK",
                        serde_json::json!({"issuer": b, "jwks_uri": format!("{b}/jwks")})
                            .to_string(),
                    ),
                    "/jwks" => {
                        h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        ("200 OK", jwks.lock().unwrap().clone())
                    }
                    _ => ("404 Not Found", String::new()),
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (base, hits)
    }

    #[tokio::test]
    async fn discovery_cache_and_rotation() {
        use std::sync::atomic::Ordering::SeqCst;
        // First only the EC key is published.
        let all: Value = serde_json::from_str(JWKS).unwrap();
        let ec_only = serde_json::json!({"keys": [all["keys"][1]]}).to_string();
        let jwks = Arc::new(Mutex::new(ec_only));
        let (base, hits) = issuer_server(jwks.clone());
        // The issuer of the test tokens is not this server's address: the discovery document
        // would not match. So: jwks_url given, and a second verifier through discovery below.
        let o = Oidc::new(OidcConfig {
            jwks_url: Some(format!("{base}/jwks")),
            ..cfg()
        });
        assert_eq!(o.verify(ES256_OK).await.unwrap().username, "erin");
        assert_eq!(o.verify(ES256_OK).await.unwrap().username, "erin");
        assert_eq!(hits.load(SeqCst), 1, "keys are cached");
        // The RSA key appears; the first fetch was less than a minute ago: no refetch yet.
        *jwks.lock().unwrap() = JWKS.to_string();
        assert!(o.verify(RS256_OK).await.is_err());
        assert_eq!(hits.load(SeqCst), 1);
        // A minute later (pretend), an unknown kid refetches once.
        o.lock().attempted = Instant::now().checked_sub(MIN_REFETCH);
        assert_eq!(o.verify(RS256_OK).await.unwrap().username, "dana");
        assert!(o.verify(UNKNOWN_KID).await.is_err());
        assert_eq!(hits.load(SeqCst), 2);

        // Discovery: a verifier whose issuer is the server; its document names it.
        let d = Oidc::new(OidcConfig::new(&base));
        // Tokens of another issuer: keys fetched, signature fine, issuer refused.
        assert!(d
            .verify(ES256_OK)
            .await
            .unwrap_err()
            .detail()
            .contains("issuer"));
        assert_eq!(hits.load(SeqCst), 3);
        // A discovery document naming another issuer is refused.
        let d = Oidc::new(OidcConfig::new(&format!("{base}/")));
        assert!(matches!(
            d.verify(ES256_OK).await,
            Err(Fault::InternalFault(_))
        ));
        // And the failure is not retried for a minute.
        assert!(d
            .verify(ES256_OK)
            .await
            .unwrap_err()
            .detail()
            .contains("less than a minute"));
        assert_eq!(hits.load(SeqCst), 3);
        // Nothing listening.
        let down = Oidc::new(OidcConfig {
            jwks_url: Some("http://127.0.0.1:9/jwks".into()),
            ..cfg()
        });
        assert!(matches!(
            down.verify(ES256_OK).await,
            Err(Fault::InternalFault(_))
        ));
        // Malformed tokens fetch nothing.
        let lazy = Oidc::new(OidcConfig {
            jwks_url: Some(format!("{base}/jwks")),
            ..cfg()
        });
        assert!(matches!(
            lazy.verify("a.b.c").await,
            Err(Fault::NotAuthenticated(_))
        ));
        assert_eq!(hits.load(SeqCst), 3);
    }
}
