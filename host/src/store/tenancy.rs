//! Tenants, their tokens, roles and uploaded plugins.
//!
//! - `tenants`: name → JSON [`TenantRecord`].
//! - `tokens`: SHA-256 of the token → JSON [`TokenRecord`]. The token itself is never stored.
//! - `roles`: name → JSON [`RoleRecord`].
//! - `plugins`: `owner/name` → JSON [`PluginRecord`]; the component is a file named by its SHA-256.
//! - `plugin_uploads`: the same, for uploads still compiling; each moves to `plugins` once compiled.
//! - `meta.admin_token_sha256`: the generated admin token's digest.

use redb::ReadableTable;

use super::{
    At, META, PLUGIN_UPLOADS, PLUGINS, ROLES, Result, Store, TENANT_JOBS, TENANTS, TOKENS, decode, encode, get_json,
    list_json, owned_key, put_json, remove_key,
};
use crate::auth::{RoleRecord, TenantRecord, TokenRecord};
use crate::model::PluginRecord;

impl Store {
    // ---- the admin token ----

    pub fn admin_token_digest(&self) -> Result<Option<String>> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get("admin_token_sha256")?.map(|v| v.value().to_string()))
    }

    pub fn set_admin_token_digest(&self, digest: &str) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(META)?.insert("admin_token_sha256", digest)?;
        self.commit(txn)?;
        Ok(())
    }

    // ---- tenants ----

    /// Store a new tenant; `false` if the name is taken.
    pub fn create_tenant(&self, tenant: &TenantRecord) -> Result<bool> {
        let txn = self.begin_write()?;
        let created = {
            let mut t = txn.open_table(TENANTS)?;
            if t.get(tenant.name.as_str())?.is_some() {
                false
            } else {
                t.insert(tenant.name.as_str(), encode(tenant).as_slice())?;
                true
            }
        };
        self.commit(txn)?;
        Ok(created)
    }

    pub fn put_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        put_json(self, TENANTS, &tenant.name, tenant)
    }

    pub fn get_tenant(&self, name: &str) -> Result<Option<TenantRecord>> {
        get_json(self, TENANTS, "tenants", name)
    }

    pub fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        list_json(self, TENANTS, "tenants", None)
    }

    /// Whether the tenant owns any job (any state).
    pub fn tenant_has_jobs(&self, name: &str) -> Result<bool> {
        let txn = self.begin_read()?;
        let index = txn.open_table(TENANT_JOBS)?;
        Ok(index.range((name, 0)..=(name, u64::MAX))?.next().is_some())
    }

    /// Delete a tenant with its tokens, so none of them works any more.
    pub fn delete_tenant(&self, name: &str) -> Result<bool> {
        let txn = self.begin_write()?;
        let existed = {
            let existed = txn.open_table(TENANTS)?.remove(name)?.is_some();
            let mut tokens = txn.open_table(TOKENS)?;
            tokens.retain(|k, v| {
                decode::<TokenRecord>("tokens", At::Name(k), v).map_or(true, |t| t.tenant.as_deref() != Some(name))
            })?;
            // Its styles go too: a later tenant of the same name starts empty.
            let (start, end) = (format!("{name}/"), format!("{name}0"));
            txn.open_table(super::STYLES)?.retain_in(start.as_str()..end.as_str(), |_, _| false)?;
            existed
        };
        self.commit(txn)?;
        Ok(existed)
    }

    // ---- tokens ----

    pub fn put_token(&self, digest: &str, token: &TokenRecord) -> Result<()> {
        put_json(self, TOKENS, digest, token)
    }

    pub fn find_token(&self, digest: &str) -> Result<Option<TokenRecord>> {
        get_json(self, TOKENS, "tokens", digest)
    }

    /// A tenant's tokens (without secrets).
    pub fn list_tokens(&self, tenant: &str) -> Result<Vec<TokenRecord>> {
        let all: Vec<TokenRecord> = list_json(self, TOKENS, "tokens", None)?;
        Ok(all.into_iter().filter(|t| t.tenant.as_deref() == Some(tenant)).collect())
    }

    /// Revoke a tenant's token by its id; `false` if it has no such token.
    pub fn revoke_token(&self, tenant: &str, id: &str) -> Result<bool> {
        let txn = self.begin_write()?;
        let revoked = {
            let mut tokens = txn.open_table(TOKENS)?;
            let mut revoked = false;
            tokens.retain(|k, v| {
                let hit = decode::<TokenRecord>("tokens", At::Name(k), v)
                    .is_ok_and(|t| t.tenant.as_deref() == Some(tenant) && t.id == id);
                revoked |= hit;
                !hit
            })?;
            revoked
        };
        self.commit(txn)?;
        Ok(revoked)
    }

    // ---- roles ----

    pub fn put_role(&self, role: &RoleRecord) -> Result<()> {
        put_json(self, ROLES, &role.name, role)
    }

    pub fn get_role(&self, name: &str) -> Result<Option<RoleRecord>> {
        get_json(self, ROLES, "roles", name)
    }

    pub fn list_roles(&self) -> Result<Vec<RoleRecord>> {
        list_json(self, ROLES, "roles", None)
    }

    pub fn delete_role(&self, name: &str) -> Result<bool> {
        remove_key(self, ROLES, name)
    }

    // ---- plugins ----

    pub fn put_plugin(&self, plugin: &PluginRecord) -> Result<()> {
        put_json(self, PLUGINS, &owned_key(plugin.owner.as_deref(), &plugin.name), plugin)
    }

    pub fn get_plugin(&self, owner: Option<&str>, name: &str) -> Result<Option<PluginRecord>> {
        get_json(self, PLUGINS, "plugins", &owned_key(owner, name))
    }

    /// Every uploaded plugin, or only one owner's.
    pub fn list_plugins(&self, owner: Option<Option<&str>>) -> Result<Vec<PluginRecord>> {
        list_json(self, PLUGINS, "plugins", owner)
    }

    /// Store the plugin, and forget any upload of its name still compiling (it is replaced).
    pub fn replace_plugin(&self, plugin: &PluginRecord) -> Result<()> {
        let key = owned_key(plugin.owner.as_deref(), &plugin.name);
        let txn = self.begin_write()?;
        txn.open_table(PLUGINS)?.insert(key.as_str(), encode(plugin).as_slice())?;
        txn.open_table(PLUGIN_UPLOADS)?.remove(key.as_str())?;
        self.commit(txn)?;
        Ok(())
    }

    /// Remove the plugin and any upload of it still compiling.
    pub fn delete_plugin(&self, owner: Option<&str>, name: &str) -> Result<bool> {
        let key = owned_key(owner, name);
        let txn = self.begin_write()?;
        let existed = txn.open_table(PLUGINS)?.remove(key.as_str())?.is_some();
        let pending = txn.open_table(PLUGIN_UPLOADS)?.remove(key.as_str())?.is_some();
        self.commit(txn)?;
        Ok(existed || pending)
    }

    // ---- uploads still compiling ----

    /// Record an upload before its compile starts: a restart compiles it again.
    pub fn put_plugin_upload(&self, plugin: &PluginRecord) -> Result<()> {
        put_json(self, PLUGIN_UPLOADS, &owned_key(plugin.owner.as_deref(), &plugin.name), plugin)
    }

    pub fn list_plugin_uploads(&self) -> Result<Vec<PluginRecord>> {
        list_json(self, PLUGIN_UPLOADS, "plugin_uploads", None)
    }

    /// The upload compiled: it becomes the plugin, in one transaction. `false`
    /// (and nothing written) if the upload is no longer the one recorded
    /// (deleted, or replaced by a newer upload meanwhile).
    pub fn finish_plugin_upload(&self, plugin: &PluginRecord) -> Result<bool> {
        let key = owned_key(plugin.owner.as_deref(), &plugin.name);
        let txn = self.begin_write()?;
        {
            let mut uploads = txn.open_table(PLUGIN_UPLOADS)?;
            let current: Option<PluginRecord> = match uploads.get(key.as_str())? {
                Some(v) => Some(decode("plugin_uploads", At::Name(&key), v.value())?),
                None => None,
            };
            if current.is_none_or(|c| c.sha256 != plugin.sha256 || c.created_at != plugin.created_at) {
                return Ok(false);
            }
            uploads.remove(key.as_str())?;
            txn.open_table(PLUGINS)?.insert(key.as_str(), encode(plugin).as_slice())?;
        }
        self.commit(txn)?;
        Ok(true)
    }

    /// The upload failed to compile: forget it (the plugin it would have replaced stays).
    pub fn drop_plugin_upload(&self, plugin: &PluginRecord) -> Result<()> {
        let key = owned_key(plugin.owner.as_deref(), &plugin.name);
        let txn = self.begin_write()?;
        {
            let mut uploads = txn.open_table(PLUGIN_UPLOADS)?;
            let same = match uploads.get(key.as_str())? {
                Some(v) => decode::<PluginRecord>("plugin_uploads", At::Name(&key), v.value())?.sha256 == plugin.sha256,
                None => false,
            };
            if same {
                uploads.remove(key.as_str())?;
            }
        }
        self.commit(txn)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::auth::{Quotas, TenantRecord, TokenRecord};
    use crate::store::Store;

    #[test]
    fn tenants_tokens_and_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let t = TenantRecord { name: "a".into(), roles: vec![], quotas: Quotas::default(), created_at: 0 };
        assert!(store.create_tenant(&t).unwrap());
        assert!(!store.create_tenant(&t).unwrap(), "a name is taken once");
        let tok = TokenRecord { id: "abc".into(), tenant: Some("a".into()), label: String::new(), created_at: 0 };
        store.put_token("digest1", &tok).unwrap();
        assert_eq!(store.find_token("digest1").unwrap().unwrap().tenant.as_deref(), Some("a"));
        assert_eq!(store.list_tokens("a").unwrap().len(), 1);
        assert!(!store.revoke_token("b", "abc").unwrap(), "only the owner's token is revoked");
        assert!(store.revoke_token("a", "abc").unwrap());
        assert!(store.find_token("digest1").unwrap().is_none());
        store.put_token("digest2", &tok).unwrap();
        assert!(store.delete_tenant("a").unwrap());
        assert!(store.find_token("digest2").unwrap().is_none(), "a deleted tenant's tokens stop working");
    }
}
