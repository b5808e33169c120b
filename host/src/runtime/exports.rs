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

use super::bindings::{self, ProcessError};
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

/// `info()`, with every field cut to its cap.
pub async fn info(
    store: &mut Store<TaskState>,
    instance: &Instance,
    at: &ExportIndices,
    caps: &TextLimits,
) -> wasmtime::Result<PluginInfo> {
    let func = instance.get_typed_func::<(), (RawInfo,)>(&mut *store, &at.info)?;
    let (raw,) = func.call_async(&mut *store, ()).await?;
    let field = |s: &LiftedStr| bounded_lifted(s, caps.max_info_field);
    Ok(PluginInfo {
        name: field(&raw.name),
        version: field(&raw.version),
        description: field(&raw.description),
        reads: formats(&raw.reads, caps.max_info_formats),
        writes: formats(&raw.writes, caps.max_info_formats),
    })
}

/// The first `max` entries of a list of formats, each cut to [`MAX_FORMAT_NAME`].
fn formats(list: &LiftedStrList, max: usize) -> Vec<String> {
    bounded_list(list.len, list.items.iter().map(|s| bounded_lifted(s, MAX_FORMAT_NAME)), max)
}

/// `validate(params)`: `Ok(Err(message))` is the plugin's refusal, cut to its cap.
pub async fn validate(
    store: &mut Store<TaskState>,
    instance: &Instance,
    at: &ExportIndices,
    caps: &TextLimits,
    params: &str,
) -> wasmtime::Result<Result<(), String>> {
    let func = instance.get_typed_func::<(&str,), (Result<(), LiftedStr>,)>(&mut *store, &at.validate)?;
    let (verdict,) = func.call_async(&mut *store, (params,)).await?;
    Ok(verdict.map_err(|message| bounded_lifted(&message, caps.max_message)))
}

/// `process(...)`: the plugin's error, if any, with its message cut to its cap.
pub async fn process(
    store: &mut Store<TaskState>,
    instance: &Instance,
    at: &ExportIndices,
    caps: &TextLimits,
    params: ProcessParams<'_>,
) -> wasmtime::Result<Result<(), ProcessError>> {
    let func =
        instance.get_typed_func::<ProcessParams<'_>, (Result<(), RawProcessError>,)>(&mut *store, &at.process)?;
    let (verdict,) = func.call_async(&mut *store, params).await?;
    let cut = |s: &LiftedStr| bounded_lifted(s, caps.max_message);
    Ok(verdict.map_err(|e| match e {
        RawProcessError::InvalidParams(m) => ProcessError::InvalidParams(cut(&m)),
        RawProcessError::UnsupportedInput(m) => ProcessError::UnsupportedInput(cut(&m)),
        RawProcessError::Failed(m) => ProcessError::Failed(cut(&m)),
    }))
}
