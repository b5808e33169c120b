//! Roles and grants: which bucket prefixes a job may read and write, in the
//! way a cloud service role does. Checked at job creation (can the job ever
//! be inside its grants?) and per key while it runs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

impl Access {
    fn allows(self, wanted: Access) -> bool {
        self == Access::ReadWrite || self == wanted
    }
}

/// Access to the keys of one bucket under one prefix (`""`: the whole bucket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[schema(min_length = 1)]
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    pub access: Access,
}

/// A named set of grants that the admin assigns to tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "thumbnailer",
    "grants": [{"bucket": "photos", "prefix": "in/", "access": "read"}, {"bucket": "thumbs", "prefix": "", "access": "write"}]
}))]
pub struct RoleRecord {
    /// 1-64 of lowercase letters, digits, `-`, `_`, `.`, starting with a letter or digit.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub name: String,
    pub grants: Vec<Grant>,
    #[serde(with = "crate::timefmt::secs", default)]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// Why a key or a job is outside its role's grants. Each names the role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("role `{role}` does not grant {access} on `{bucket}/{key}`")]
    Key { role: String, access: &'static str, bucket: String, key: String },
    #[error(
        "role `{role}` grants no {access} in bucket `{bucket}` under `{prefix}`: no {what} of this job can be inside its grants"
    )]
    Never { role: String, access: &'static str, bucket: String, prefix: String, what: &'static str },
}

fn verb(access: Access) -> &'static str {
    match access {
        Access::Read => "read",
        Access::Write => "write",
        Access::ReadWrite => "read-write",
    }
}

/// Role names follow the same rule as tenant names.
pub fn check_role_name(name: &str) -> Result<(), String> {
    super::check_name("role", name)
}

impl RoleRecord {
    /// Checks the grants themselves: a bucket name each.
    pub fn check(&self) -> Result<(), String> {
        check_role_name(&self.name)?;
        for (i, g) in self.grants.iter().enumerate() {
            if g.bucket.is_empty() {
                return Err(format!("grants[{i}].bucket: must not be empty"));
            }
        }
        Ok(())
    }

    /// May a task read (or write) `key` of `bucket`?
    pub fn allows(&self, bucket: &str, key: &str, access: Access) -> Result<(), GrantError> {
        let ok =
            self.grants.iter().any(|g| g.bucket == bucket && g.access.allows(access) && key.starts_with(&g.prefix));
        if ok {
            Ok(())
        } else {
            Err(GrantError::Key {
                role: self.name.clone(),
                access: verb(access),
                bucket: bucket.into(),
                key: key.into(),
            })
        }
    }

    /// Can any key starting with `prefix` be inside a grant? Either a grant
    /// covers the whole prefix, or the prefix is wider than some grant.
    pub fn may_touch(&self, bucket: &str, prefix: &str, access: Access, what: &'static str) -> Result<(), GrantError> {
        let ok = self.grants.iter().any(|g| {
            g.bucket == bucket
                && g.access.allows(access)
                && (prefix.starts_with(&g.prefix) || g.prefix.starts_with(prefix))
        });
        if ok {
            Ok(())
        } else {
            Err(GrantError::Never {
                role: self.name.clone(),
                access: verb(access),
                bucket: bucket.into(),
                prefix: prefix.into(),
                what,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role() -> RoleRecord {
        RoleRecord {
            name: "thumbs".into(),
            grants: vec![
                Grant { bucket: "photos".into(), prefix: "in/".into(), access: Access::Read },
                Grant { bucket: "photos".into(), prefix: "out/".into(), access: Access::Write },
                Grant { bucket: "scratch".into(), prefix: "".into(), access: Access::ReadWrite },
            ],
            created_at: 0,
        }
    }

    #[test]
    fn keys_are_checked_against_bucket_prefix_and_access() {
        let r = role();
        assert!(r.allows("photos", "in/a.jpg", Access::Read).is_ok());
        assert!(r.allows("photos", "out/a.jpg", Access::Write).is_ok());
        assert!(r.allows("scratch", "any/thing", Access::Write).is_ok());
        let e = r.allows("photos", "out/a.jpg", Access::Read).unwrap_err().to_string();
        assert_eq!(e, "role `thumbs` does not grant read on `photos/out/a.jpg`");
        assert!(r.allows("photos", "inbox/a", Access::Read).is_err(), "a prefix is matched as a string, like S3");
        assert!(r.allows("other", "in/a", Access::Read).is_err());
    }

    #[test]
    fn a_selection_or_template_that_can_never_fit_is_found() {
        let r = role();
        assert!(r.may_touch("photos", "in/2024/", Access::Read, "source").is_ok());
        // Wider than the grant: some keys may fit, the others fail per task.
        assert!(r.may_touch("photos", "", Access::Read, "source").is_ok());
        let e = r.may_touch("photos", "out/", Access::Read, "source").unwrap_err().to_string();
        assert!(e.contains("no source of this job"), "{e}");
        assert!(r.may_touch("photos", "elsewhere/", Access::Write, "output").is_err());
    }
}
