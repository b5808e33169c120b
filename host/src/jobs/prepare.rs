//! Validation of a job before it is stored, and what a running job needs at
//! hand: its plugin, parameters, template and buckets.

use std::sync::Arc;

use crate::bundled::split_style;
use crate::model::JobSpec;
use crate::objects::{Bucket, Buckets};
use crate::runtime::Plugin;
use crate::store::Store;
use crate::template::{RuleContext, Template};

use super::plugins::Plugins;

/// Why a job was refused at creation. Each names the field at fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("style `{0}` not found: give a saved style's name or `PLUGIN/params` with an installed plugin")]
    UnknownStyle(String),
    #[error("style: plugin `{plugin}` refused the parameters `{params}`: {message}")]
    RefusedParams { plugin: String, params: String, message: String },
    #[error("job {0} not found")]
    NotFound(u64),
    #[error("job {id} is {state}: cannot {action}")]
    WrongState { id: u64, state: &'static str, action: &'static str },
    #[error("internal error: {0}")]
    Internal(String),
}

impl JobError {
    fn invalid(field: &'static str, message: impl std::fmt::Display) -> Self {
        JobError::Invalid { field, message: message.to_string() }
    }
}

/// Everything a running job needs, resolved once.
pub struct Prepared {
    pub plugin: Plugin,
    pub params: String,
    pub template: Template,
    pub input: Bucket,
    pub output: Bucket,
    pub spec: JobSpec,
}

/// Resolve `style` to a plugin and its parameters: a saved style by name, or `PLUGIN/params`.
pub fn resolve_style(store: &Store, plugins: &Plugins, style: &str) -> Result<(Plugin, String), JobError> {
    if let Some(saved) = store.get_style(style).map_err(|e| JobError::Internal(e.to_string()))? {
        let plugin = plugins.get(&saved.plugin).ok_or_else(|| JobError::UnknownStyle(style.to_string()))?;
        return Ok((plugin, saved.params));
    }
    let (name, params) = split_style(style);
    let plugin = plugins.get(name).ok_or_else(|| JobError::UnknownStyle(style.to_string()))?;
    Ok((plugin, params.to_string()))
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

/// Check the whole job: selection, buckets, template and path rules, style
/// and the plugin's own `validate`. Nothing is stored if any check fails.
pub async fn prepare(
    spec: &JobSpec,
    store: &Store,
    buckets: &Buckets,
    plugins: &Plugins,
    runtime: &crate::runtime::Runtime,
) -> Result<Arc<Prepared>, JobError> {
    crate::select::check(&spec.input).map_err(|e| JobError::invalid("input", e))?;
    if spec.concurrency == 0 || spec.concurrency > 10_000 {
        return Err(JobError::invalid("concurrency", "must be between 1 and 10000"));
    }
    let input = buckets.get(&spec.input.bucket).map_err(|e| JobError::invalid("input.bucket", e))?;
    let output = buckets.get(&spec.output.bucket).map_err(|e| JobError::invalid("output.bucket", e))?;
    let template = Template::parse(&spec.output.template).map_err(|e| JobError::invalid("output.template", e))?;
    // For explicit keys, their longest common prefix stands for the selection.
    let keys_prefix = common_prefix(&spec.input.keys);
    let rules = RuleContext {
        input_bucket: &spec.input.bucket,
        output_bucket: &spec.output.bucket,
        input_prefix: if spec.input.keys.is_empty() { &spec.input.prefix } else { keys_prefix },
        tags: &spec.tags,
    };
    template.check_rules(&rules).map_err(|e| JobError::invalid("output.template", e))?;
    let (plugin, params) = resolve_style(store, plugins, &spec.style)?;
    check_params(runtime, &plugin, &params).await?;
    Ok(Arc::new(Prepared { plugin, params, template, input, output, spec: spec.clone() }))
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
