//! Calls into a plugin's exports that read what it returns in place.
//!
//! The bindings of `bindgen!` lift every returned string into a host `String`
//! whole: a plugin returning a 100 MB error would make the host copy 100 MB
//! before any cap applies. These calls lift the same types with a bounded
//! copy ([`LiftedStr`], [`LiftedStrList`]: see `lifted`) and keep only what
//! the caps in [`TextLimits`] allow. The world check still comes from the bindings
//! (`ProcessorPre::new`), so the signatures here are checked against the same
//! contract at load, and again by `get_typed_func` at each call.

use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, ComponentType, Instance, Lift, Resource};

use super::bindings::{self, Contract, ProcessError};
use super::lifted::{LiftedStr, LiftedStrList};
use super::streams::{InputHandle, OutputsHandle};
use super::text::{MAX_FORMAT_NAME, TextLimits, bounded_lifted, bounded_list};
use super::{PluginInfo, TaskState};

/// Where the three exports are in a component: looked up once at load.
#[derive(Clone, Copy)]
pub(crate) struct ExportIndices {
    info: ComponentExportIndex,
    validate: ComponentExportIndex,
    process: ComponentExportIndex,
}

impl ExportIndices {
    pub fn find(component: &wasmtime::component::Component) -> Option<ExportIndices> {
        let find = |name: &str| component.get_export_index(None, name);
        Some(ExportIndices { info: find("info")?, validate: find("validate")?, process: find("process")? })
    }
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct RawInfo {
    name: LiftedStr,
    version: LiftedStr,
    description: LiftedStr,
    reads: LiftedStrList,
    writes: LiftedStrList,
}

/// 0.2.0's `plugin-info`.
#[derive(ComponentType, Lift)]
#[component(record)]
struct RawInfoV2 {
    name: LiftedStr,
    version: LiftedStr,
    description: LiftedStr,
    reads: LiftedStrList,
    writes: LiftedStrList,
    variables: LiftedStrList,
    actions: LiftedStr,
}

/// 0.2.0's `checked-style`.
#[derive(ComponentType, Lift)]
#[component(record)]
struct RawChecked {
    extension: Option<LiftedStr>,
}

#[derive(ComponentType, Lift)]
#[component(variant)]
enum RawProcessError {
    #[component(name = "invalid-params")]
    InvalidParams(LiftedStr),
    #[component(name = "unsupported-input")]
    UnsupportedInput(LiftedStr),
    #[component(name = "failed")]
    Failed(LiftedStr),
}

type ProcessParams<'a> = (&'a str, &'a bindings::ObjectInfo, Resource<InputHandle>, Resource<OutputsHandle>);

/// `info()`, with every field cut to its cap. A 0.2.0 plugin whose
/// variables or actions are malformed is refused, with the reason.
pub async fn info(
    store: &mut Store<TaskState>,
    instance: &Instance,
    at: &ExportIndices,
    caps: &TextLimits,
    reserved: &[String],
    contract: Contract,
) -> wasmtime::Result<PluginInfo> {
    let field = |s: &LiftedStr| bounded_lifted(s, caps.max_info_field);
    if contract == Contract::V1 {
        let func = instance.get_typed_func::<(), (RawInfo,)>(&mut *store, &at.info)?;
        let (raw,) = func.call_async(&mut *store, ()).await?;
        let mut info = PluginInfo::default_unknown();
        info.name = field(&raw.name);
        info.version = field(&raw.version);
        info.description = field(&raw.description);
        info.reads = formats(&raw.reads, caps.max_info_formats);
        info.writes = formats(&raw.writes, caps.max_info_formats);
        return Ok(info);
    }
    let func = instance.get_typed_func::<(), (RawInfoV2,)>(&mut *store, &at.info)?;
    let (raw,) = func.call_async(&mut *store, ()).await?;
    if raw.actions.len > raw.actions.head.len() {
        wasmtime::bail!(
            "info().actions is {} bytes: at most {} bytes of JSON",
            raw.actions.len,
            raw.actions.head.len()
        );
    }
    if raw.variables.len > raw.variables.items.len() {
        wasmtime::bail!("info() declares {} output variables", raw.variables.len);
    }
    let variables: Vec<String> = raw.variables.items.iter().map(|v| bounded_lifted(v, 64)).collect();
    super::info::check_variables(&variables, reserved).map_err(wasmtime::Error::msg)?;
    let actions = super::info::parse_actions(&raw.actions.head).map_err(wasmtime::Error::msg)?;
    // Each field is cut as it is lifted, as for 0.1.0; the actions here.
    Ok(PluginInfo {
        name: field(&raw.name),
        version: field(&raw.version),
        description: field(&raw.description),
        reads: formats(&raw.reads, caps.max_info_formats),
        writes: formats(&raw.writes, caps.max_info_formats),
        contract,
        variables,
        actions: super::info::bounded_actions(actions, caps),
    })
}

/// The first `max` entries of a list of formats, each cut to [`MAX_FORMAT_NAME`].
fn formats(list: &LiftedStrList, max: usize) -> Vec<String> {
    bounded_list(list.len, list.items.iter().map(|s| bounded_lifted(s, MAX_FORMAT_NAME)), max)
}

/// `validate(params)`: `Ok(Err(message))` is the plugin's refusal, cut to
/// its cap; `Ok(Ok(Some(ext)))` the extension a 0.2.0 style says it writes.
pub async fn validate(
    store: &mut Store<TaskState>,
    instance: &Instance,
    at: &ExportIndices,
    caps: &TextLimits,
    contract: Contract,
    params: &str,
) -> wasmtime::Result<Result<Option<String>, String>> {
    let refusal = |message: LiftedStr| bounded_lifted(&message, caps.max_message);
    if contract == Contract::V1 {
        let func = instance.get_typed_func::<(&str,), (Result<(), LiftedStr>,)>(&mut *store, &at.validate)?;
        let (verdict,) = func.call_async(&mut *store, (params,)).await?;
        return Ok(verdict.map(|()| None).map_err(refusal));
    }
    let func = instance.get_typed_func::<(&str,), (Result<RawChecked, LiftedStr>,)>(&mut *store, &at.validate)?;
    let (verdict,) = func.call_async(&mut *store, (params,)).await?;
    Ok(match verdict {
        Err(message) => Err(refusal(message)),
        Ok(RawChecked { extension: None }) => Ok(None),
        Ok(RawChecked { extension: Some(ext) }) => {
            let ext = bounded_lifted(&ext, super::host_impl::MAX_EXTENSION + 16);
            match super::host_impl::check_extension(&ext) {
                Ok(()) => Ok(Some(ext)),
                Err(e) => Err(format!("validate() named {e}")),
            }
        }
    })
}

/// `process(...)`: the plugin's error, if any, with its message cut to its
/// cap; or the result a 0.2.0 plugin returned (its first bytes and its length).
pub async fn process(
    store: &mut Store<TaskState>,
    instance: &Instance,
    at: &ExportIndices,
    caps: &TextLimits,
    contract: Contract,
    params: ProcessParams<'_>,
) -> wasmtime::Result<Result<Option<LiftedStr>, ProcessError>> {
    let verdict = if contract == Contract::V1 {
        let func =
            instance.get_typed_func::<ProcessParams<'_>, (Result<(), RawProcessError>,)>(&mut *store, &at.process)?;
        func.call_async(&mut *store, params).await?.0.map(|()| None)
    } else {
        let func = instance.get_typed_func::<ProcessParams<'_>, (Result<Option<LiftedStr>, RawProcessError>,)>(
            &mut *store,
            &at.process,
        )?;
        func.call_async(&mut *store, params).await?.0
    };
    let cut = |s: &LiftedStr| bounded_lifted(s, caps.max_message);
    Ok(verdict.map_err(|e| match e {
        RawProcessError::InvalidParams(m) => ProcessError::InvalidParams(cut(&m)),
        RawProcessError::UnsupportedInput(m) => ProcessError::UnsupportedInput(cut(&m)),
        RawProcessError::Failed(m) => ProcessError::Failed(cut(&m)),
    }))
}
