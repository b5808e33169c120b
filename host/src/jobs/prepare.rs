//! Validation of a job before it is stored, and what a running job needs at
//! hand: its plugin, parameters, template and buckets.

use std::sync::Arc;

use crate::auth::{Access, RoleRecord};
use crate::bundled::split_style;
use crate::model::JobSpec;
use crate::objects::{Bucket, Buckets};
use crate::runtime::{Limits, Plugin};
use crate::store::Store;
use crate::template::{RuleContext, Template};

use super::plugins::{Installed, Plugins};

/// Why a job was refused at creation. Each names the field at fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("style `{0}` not found: give a saved style's name or `PLUGIN/params` with an installed plugin")]
    UnknownStyle(String),
    /// The caller may not do this; `field` names what was refused.
    #[error("{field}: {message}")]
    Forbidden { field: &'static str, message: String },
    /// A tenant quota refused it; the message names the quota.
    #[error("quota exceeded: {0}")]
    Quota(String),
    /// The style's plugin was uploaded but is not usable yet (compiling) or
    /// failed to compile (with the reason).
    #[error("style: plugin `{plugin}` {}", match failure {
        Some(why) => format!("failed to compile: {why}"),
        None => "is still compiling: retry in a few seconds".to_string(),
    })]
    PluginNotReady { plugin: String, failure: Option<String> },
    #[error("style: plugin `{plugin}` refused the parameters `{params}`: {message}")]
    RefusedParams { plugin: String, params: String, message: String },
    #[error("job {0} not found")]
    NotFound(u64),
    #[error("job {id} is {state}: cannot {action}")]
    WrongState { id: u64, state: &'static str, action: &'static str },
    #[error("internal error: {0}")]
    Internal(String),
    /// A bucket did not answer (unreachable, refusing, failing): the message names it.
    #[error("{0}")]
    Upstream(String),
    /// The store failed: unavailable (503), a corrupt record, or another error.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<crate::store::RunningJobsFull> for JobError {
    fn from(full: crate::store::RunningJobsFull) -> Self {
        JobError::Quota(full.to_string())
    }
}

impl JobError {
    fn invalid(field: &'static str, message: impl std::fmt::Display) -> Self {
        JobError::Invalid { field, message: message.to_string() }
    }
}

/// Everything a running job needs, resolved once.
pub struct Prepared {
    pub plugin: Plugin,
    /// `owner/name` of the plugin, so a plugin in use is not deleted.
    pub plugin_key: String,
    /// The owner; `None` for the admin.
    pub tenant: Option<String>,
    /// The grants every source and output key is checked against; `None`: unrestricted (the admin's job without a role).
    pub role: Option<RoleRecord>,
    /// Per-task limits: the daemon's, lowered by the tenant's quotas.
    pub limits: Limits,
    /// The digest of the job's definition (see [`JobSpec::definition`]).
    pub definition: String,
    pub params: String,
    pub template: Template,
    pub input: Bucket,
    pub output: Bucket,
    pub spec: JobSpec,
    /// For a listing that writes to the bucket it reads: its selection, so
    /// that no output the selection would take is written (see `worker`).
    pub own_selection: Option<crate::select::Filter>,
}

/// Resolve `style` as `viewer` (a tenant, or `None` for the admin) sees it: its
/// own saved style, then the admin's, then `PLUGIN/params`. A saved style's
/// plugin is found as the style's owner sees it.
pub fn resolve_style(
    store: &Store,
    plugins: &Plugins,
    viewer: Option<&str>,
    style: &str,
) -> Result<(Installed, String), JobError> {
    let saved = match store.get_style(viewer, style).map_err(JobError::Store)? {
        Some(s) => Some(s),
        None if viewer.is_some() => store.get_style(None, style).map_err(JobError::Store)?,
        None => None,
    };
    if let Some(saved) = saved {
        let plugin = ready_plugin(plugins, saved.owner.as_deref(), &saved.plugin, style)?;
        return Ok((plugin, saved.params));
    }
    let (name, params) = split_style(style);
    Ok((ready_plugin(plugins, viewer, name, style)?, params.to_string()))
}

/// The plugin `name` as `viewer` sees it, if it is ready; else why not.
pub fn ready_plugin(plugins: &Plugins, viewer: Option<&str>, name: &str, style: &str) -> Result<Installed, JobError> {
    // The caller's own upload compiling comes before another owner's plugin of the name.
    let own_pending = plugins.get_pending(viewer, name);
    if let Some(installed) = plugins.resolve(viewer, name)
        && (own_pending.is_none() || installed.record.owner.as_deref() == viewer)
    {
        return Ok(installed);
    }
    match plugins.resolve_pending(viewer, name) {
        Some(pending) => Err(JobError::PluginNotReady {
            plugin: name.to_string(),
            failure: (pending.state == crate::model::PluginState::Failed)
                .then(|| pending.error.unwrap_or_else(|| "no reason recorded".into())),
        }),
        None => Err(JobError::UnknownStyle(style.to_string())),
    }
}

/// The role a job runs under: the one it names, which must be granted to its
/// tenant, or the tenant's only role. The admin's jobs may name any role, or none.
pub fn resolve_role(store: &Store, tenant: Option<&str>, wanted: Option<&str>) -> Result<Option<RoleRecord>, JobError> {
    let internal = JobError::Store;
    let name = match tenant {
        None => match wanted {
            None => return Ok(None),
            Some(w) => w.to_string(),
        },
        Some(t) => {
            let record = store.get_tenant(t).map_err(internal)?.ok_or_else(|| JobError::Forbidden {
                field: "tenant",
                message: format!("tenant `{t}` no longer exists"),
            })?;
            match (wanted, record.roles.as_slice()) {
                (Some(w), granted) if granted.iter().any(|g| g == w) => w.to_string(),
                (Some(w), granted) => {
                    return Err(JobError::Forbidden {
                        field: "role",
                        message: format!(
                            "role `{w}` is not granted to tenant `{t}`; granted: {}",
                            list_or_none(granted)
                        ),
                    });
                }
                (None, [only]) => only.clone(),
                (None, granted) => {
                    return Err(JobError::invalid(
                        "role",
                        format!("name the role the job runs under; granted to tenant `{t}`: {}", list_or_none(granted)),
                    ));
                }
            }
        }
    };
    let role = store
        .get_role(&name)
        .map_err(internal)?
        .ok_or_else(|| JobError::invalid("role", format!("role `{name}` does not exist")))?;
    Ok(Some(role))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

/// Refuse a job whose selection or output template can never be inside its grants.
fn check_grants(role: &RoleRecord, spec: &JobSpec, template: &Template) -> Result<(), JobError> {
    let forbidden = |field, e: crate::auth::GrantError| JobError::Forbidden { field, message: e.to_string() };
    if let Some(m) = &spec.input.manifest {
        let bucket = m.bucket.as_deref().unwrap_or(&spec.input.bucket);
        role.allows(bucket, &m.key, Access::Read).map_err(|e| forbidden("input.manifest", e))?;
        role.may_touch(&spec.input.bucket, "", Access::Read, "source").map_err(|e| forbidden("input.bucket", e))?;
    } else if spec.input.keys.is_empty() {
        let prefix = crate::select::listing_prefix(&spec.input).unwrap_or(&spec.input.prefix);
        role.may_touch(&spec.input.bucket, prefix, Access::Read, "source").map_err(|e| forbidden("input.prefix", e))?;
    } else {
        for key in &spec.input.keys {
            role.allows(&spec.input.bucket, key, Access::Read).map_err(|e| forbidden("input.keys", e))?;
        }
    }
    role.may_touch(&spec.output.bucket, template.literal_head(), Access::Write, "output")
        .map_err(|e| forbidden("output.template", e))
}

/// Ask the plugin's own `validate` whether `params` are acceptable.
pub async fn check_params(runtime: &crate::runtime::Runtime, plugin: &Plugin, params: &str) -> Result<(), JobError> {
    match runtime.validate(plugin, params).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => {
            Err(JobError::RefusedParams { plugin: plugin.info.name.clone(), params: params.to_string(), message })
        }
        Err(e) => Err(JobError::invalid("style", format!("plugin `{}` failed to validate: {e}", plugin.info.name))),
    }
}

/// What preparing a job reads.
pub struct PrepareContext<'a> {
    pub store: &'a Store,
    pub buckets: &'a Buckets,
    pub plugins: &'a Plugins,
    pub runtime: &'a crate::runtime::Runtime,
    /// Ask the plugin's `validate`. Off only when a stored job is resumed at
    /// start-up: its parameters were accepted when it was created, and a
    /// daemon must not wait on plugins to come back.
    pub validate_params: bool,
}

/// Check the whole job: selection, buckets, template and path rules, role and
/// grants, style and the plugin's own `validate`. Nothing is stored if any check fails.
pub async fn prepare(spec: &JobSpec, tenant: Option<&str>, cx: &PrepareContext<'_>) -> Result<Arc<Prepared>, JobError> {
    crate::select::check(&spec.input).map_err(|e| JobError::invalid(e.field(), e))?;
    if spec.concurrency == 0 || spec.concurrency > 10_000 {
        return Err(JobError::invalid("concurrency", "must be between 1 and 10000"));
    }
    check_options(spec)?;
    let input = cx.buckets.get(&spec.input.bucket).map_err(|e| JobError::invalid("input.bucket", e))?;
    let output = cx.buckets.get(&spec.output.bucket).map_err(|e| JobError::invalid("output.bucket", e))?;
    if let Some(bucket) = spec.input.manifest.as_ref().and_then(|m| m.bucket.as_deref()) {
        cx.buckets.get(bucket).map_err(|e| JobError::invalid("input.manifest.bucket", e))?;
    }
    let template = Template::parse(&spec.output.template).map_err(|e| JobError::invalid("output.template", e))?;
    // For explicit keys, their longest common prefix stands for the selection.
    let keys_prefix = common_prefix(&spec.input.keys);
    let listing_prefix = crate::select::listing_prefix(&spec.input).map_err(|e| JobError::invalid(e.field(), e))?;
    // The style first: the extensions its plugin writes take part in the path rules.
    let (installed, params) = resolve_style(cx.store, cx.plugins, tenant, &spec.style)?;
    let rules = RuleContext {
        input_bucket: &spec.input.bucket,
        output_bucket: &spec.output.bucket,
        input_prefix: if spec.input.keys.is_empty() { listing_prefix } else { keys_prefix },
        tags: &spec.tags,
        fixed_selection: spec.input.manifest.is_some(),
        name_suffixes: &spec.input.suffixes,
        output_exts: &installed.plugin.info.writes,
        output_variables: &installed.plugin.info.variables,
    };
    template.check_rules(&rules).map_err(|e| JobError::invalid("output.template", e))?;
    let role = resolve_role(cx.store, tenant, spec.role.as_deref())?;
    if let Some(role) = &role {
        check_grants(role, spec, &template)?;
    }
    if let Some(report) = &spec.report {
        super::report::check_spec(report, role.as_ref(), cx.buckets)?;
    }
    let quotas = match tenant {
        Some(t) => cx.store.get_tenant(t).map_err(JobError::Store)?.map(|r| r.quotas),
        None => None,
    };
    let limits = super::limits::job_limits(cx.runtime.config(), quotas.as_ref(), &spec.limits, cx.validate_params)?;
    if cx.validate_params {
        check_params(cx.runtime, &installed.plugin, &params).await?;
    }
    Ok(Arc::new(Prepared {
        plugin_key: installed.key(),
        plugin: installed.plugin,
        tenant: tenant.map(str::to_string),
        role,
        limits,
        definition: spec.definition(),
        params,
        template,
        input,
        output,
        own_selection: (spec.output.bucket == spec.input.bucket
            && spec.input.keys.is_empty()
            && spec.input.manifest.is_none())
        .then(|| crate::select::Filter::for_job(spec).ok())
        .flatten(),
        spec: spec.clone(),
    }))
}

/// At creation (not at every restart): a manifest must exist when the job is created.
pub async fn check_manifest(spec: &JobSpec, buckets: &Buckets) -> Result<(), JobError> {
    let Some(m) = &spec.input.manifest else { return Ok(()) };
    let bucket = buckets
        .get(m.bucket.as_deref().unwrap_or(&spec.input.bucket))
        .map_err(|e| JobError::invalid("input.manifest.bucket", e))?;
    match bucket.head(&m.key).await {
        Ok(_) => Ok(()),
        Err(e @ (crate::objects::ObjectsError::NotFound { .. } | crate::objects::ObjectsError::BadKey { .. })) => {
            Err(JobError::invalid("input.manifest.key", format!("the manifest cannot be read: {e}")))
        }
        Err(e) => Err(JobError::Upstream(format!("reading the manifest: {e}"))),
    }
}

/// Notifications, pacing and follow mode.
fn check_options(spec: &JobSpec) -> Result<(), JobError> {
    if let Some(n) = &spec.notify {
        crate::notify::check_url(&n.url).map_err(|e| JobError::invalid("notify.url", e))?;
        if n.secret.len() < 16 {
            return Err(JobError::invalid(
                "notify.secret",
                "give a secret of at least 16 characters: it signs every request",
            ));
        }
    }
    if spec.max_tasks_per_second == Some(0) {
        return Err(JobError::invalid("max_tasks_per_second", "must be at least 1 (omit it for no cap)"));
    }
    if spec.follow {
        if !spec.input.keys.is_empty() || spec.input.manifest.is_some() {
            return Err(JobError::invalid(
                "follow",
                "a job over explicit keys or a manifest has nothing to watch: follow needs a prefix",
            ));
        }
        if spec.follow_interval < std::time::Duration::from_secs(1) {
            return Err(JobError::invalid("follow_interval", "must be at least 1s"));
        }
    }
    Ok(())
}

/// The longest common prefix of `keys`, on a char boundary.
fn common_prefix(keys: &[String]) -> &str {
    let Some(first) = keys.first() else { return "" };
    let mut len = first.len();
    for k in &keys[1..] {
        len = len.min(first.bytes().zip(k.bytes()).take_while(|(a, b)| a == b).count());
    }
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    &first[..len]
}
