//! Who is calling, and what they may touch: tenants, their bearer tokens,
//! roles made of grants, and per-tenant quotas.
//!
//! Tokens are random, shown once, and kept only as their SHA-256: a copy of
//! the store does not let anyone call the API.

mod grants;
mod quotas;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

pub use grants::{Access, Grant, GrantError, RoleRecord, check_role_name};
pub use quotas::{Quotas, QuotasPatch};

/// The caller of an API request, from its bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The operator: manages tenants, tokens, roles and quotas, and sees everything.
    Admin,
    Tenant(String),
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin)
    }
    /// The tenant that owns what this caller creates; `None` for the admin.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Principal::Admin => None,
            Principal::Tenant(t) => Some(t),
        }
    }
    /// Whether this caller may see a thing owned by `owner` (`None`: the admin's).
    pub fn owns(&self, owner: Option<&str>) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant(t) => owner == Some(t.as_str()),
        }
    }
}

/// A tenant: an isolated owner of jobs, styles and plugins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantRecord {
    pub name: String,
    /// Roles the admin granted; a job of this tenant must name one of them.
    pub roles: Vec<String>,
    pub quotas: Quotas,
    #[serde(with = "crate::timefmt::secs")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A bearer token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenRecord {
    /// Public id of the token, for listing and revoking (the start of its digest).
    pub id: String,
    /// `None` for an admin token.
    pub tenant: Option<String>,
    #[serde(default)]
    pub label: String,
    #[serde(with = "crate::timefmt::secs")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A newly issued token: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    pub id: String,
    pub tenant: Option<String>,
    pub label: String,
    /// The secret. Shown once: Kiln keeps only its SHA-256.
    pub token: String,
    #[serde(with = "crate::timefmt::secs")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A new random token: `kiln_` and 32 random bytes in hex.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    format!("kiln_{}", hex::encode(bytes))
}

/// The digest under which a token is stored and looked up.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The public id of a token: enough of its digest to name it, nothing more.
pub fn token_id(digest: &str) -> String {
    digest[..12].to_string()
}

/// Tenant names: short, and safe in URLs, keys and labels.
pub fn check_tenant_name(name: &str) -> Result<(), String> {
    check_name("tenant", name)?;
    if name == "admin" {
        return Err("tenant name `admin` is reserved".into());
    }
    Ok(())
}

/// Names of tenants, roles, plugins and styles: 1-64 of `a-z 0-9 - _ .`, starting with a letter or digit.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name `{name}`: use 1-64 of lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_stored_as_digests() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.starts_with("kiln_") && a.len() == 5 + 64);
        let d = token_digest(&a);
        assert_eq!(d.len(), 64);
        assert!(!d.contains(&a[5..]));
        assert_eq!(token_id(&d), d[..12]);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_tenant_name("acme-1").is_ok());
        assert!(check_tenant_name("admin").unwrap_err().contains("reserved"));
        assert!(check_tenant_name("Acme").is_err());
        assert!(check_tenant_name("").is_err());
        assert!(check_name("role", "-x").is_err());
        assert!(check_name("role", &"a".repeat(65)).is_err());
    }

    #[test]
    fn tenants_own_only_their_things() {
        let t = Principal::Tenant("a".into());
        assert!(t.owns(Some("a")));
        assert!(!t.owns(Some("b")));
        assert!(!t.owns(None));
        assert!(Principal::Admin.owns(Some("b")));
    }
}
