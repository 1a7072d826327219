//! Who is calling: a vostok token (`Authorization: Bearer TOKEN`, or `X-CADC-DelegationToken`
//! as OpenCADC's `vos` client sends it), a JWT from the configured OpenID Connect issuer (the
//! first login provisions the user), or nobody. Every protocol asks [`caller`]; what a caller
//! may do with a resource is decided by its owner check (`uws::Job::visible_to` for jobs,
//! `vospace::VoStore::access` for nodes), each in one place.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use vospace::oidc::{self, Oidc};
use vospace::{Fault, User, VoStore};

/// What resolves a request's credentials to a user (registered as application data when the
/// server has its user store).
pub struct Identity {
    /// The users and their tokens.
    pub store: Arc<VoStore>,
    /// The OpenID Connect issuer, when configured.
    pub oidc: Option<Arc<Oidc>>,
    /// Quota of a user provisioned at first login.
    pub default_quota: u64,
}

/// The token a request carries, if any.
fn token(req: &HttpRequest) -> Option<&str> {
    let h = req.headers();
    h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let v = v.trim();
            v.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .and_then(|_| v.get(7..))
                .map(str::trim)
        })
        .or_else(|| {
            h.get("X-CADC-DelegationToken")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
}

/// The caller: `None` for anonymous (or a server without users); a fault for a token that
/// names no one.
pub async fn caller(req: &HttpRequest) -> Result<Option<User>, Fault> {
    let Some(t) = token(req) else {
        return Ok(None);
    };
    let Some(id) = req.app_data::<web::Data<Identity>>() else {
        return Ok(None);
    };
    if oidc::looks_like_jwt(t) {
        if let Some(o) = &id.oidc {
            return oidc::login(o, &id.store, t, id.default_quota)
                .await
                .map(Some);
        }
    }
    match id.store.user_for_token(t).await {
        Some(u) => Ok(Some(u)),
        None => Err(Fault::NotAuthenticated("the token is not valid".into())),
    }
}
