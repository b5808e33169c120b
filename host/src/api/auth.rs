//! Bearer-token authentication: every API call but health carries
//! `Authorization: Bearer TOKEN`, which names the admin or one tenant.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::AppState;
use super::problem::Problem;
use crate::auth::{Principal, token_digest};

/// The authenticated caller of a request.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing `Authorization: Bearer TOKEN` header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the `Authorization` header must be `Bearer TOKEN`"))?;
        let digest = token_digest(token);
        if state.admin_digest.as_str() == digest {
            return Ok(Caller(Principal::Admin));
        }
        let found = state.jobs.store().call(move |s| s.find_token(&digest)).await?;
        match found {
            Some(t) => Ok(Caller(t.tenant.map_or(Principal::Admin, Principal::Tenant))),
            None => Err(unauthorized("unknown or revoked token")),
        }
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).field("Authorization")
}

impl Caller {
    /// Refuse anyone but the admin.
    pub fn admin_only(&self, action: &str) -> Result<(), Problem> {
        if self.0.is_admin() {
            Ok(())
        } else {
            Err(Problem::new(StatusCode::FORBIDDEN, "forbidden", format!("only the admin may {action}")))
        }
    }
}
