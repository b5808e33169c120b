//! The host functions of `kiln:plugin@0.2.0`: what 0.1.0 has (shared with
//! `host_impl`), plus `input.size`, `input.read-at` under the task's read
//! cap, and `outputs.open` with options.

use wasmtime::component::{ComponentType, Lift, Linker, Resource, WasmList, WasmStr};
use wasmtime::{AsContext, StoreContextMut};

use super::MAX_READ;
use super::TaskState;
use super::bindings::v2::kiln::plugin::{host, types};
use super::host_impl::{
    MAX_CONTENT_TYPE, MAX_EXTENSION, MAX_VARIABLE_NAME, MAX_VARIABLE_VALUE, MAX_VARIABLES, OpenRequest, bad_extension,
};
use super::limits::LimitHit;
use super::streams::{InputHandle, OutputHandle, OutputsHandle};
use super::text::{bounded, bounded_wasm};

impl types::Host for TaskState {}

impl types::HostInput for TaskState {
    async fn read(&mut self, _input: Resource<InputHandle>, max: u32) -> wasmtime::Result<Result<Vec<u8>, String>> {
        Ok(self.read_input(max).await)
    }

    async fn size(&mut self, _input: Resource<InputHandle>) -> wasmtime::Result<Option<u64>> {
        Ok(self.input.as_ref().and_then(|i| i.size()))
    }

    async fn read_at(
        &mut self,
        _input: Resource<InputHandle>,
        offset: u64,
        len: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let Some(source) = self.input.as_mut() else {
            return Ok(Ok(Vec::new()));
        };
        let len = len.min(MAX_READ);
        // What the plugin asks for counts against the cap, before any byte moves.
        let wanted = source.size().map_or(len as u64, |size| size.saturating_sub(offset).min(len as u64));
        if let Some(cap) = self.read_cap {
            let asked = source.consumed + wanted;
            if asked > cap {
                // Trap, as at the output cap: the plugin must not go on reading.
                let hit = LimitHit::Reads { cap, size: source.size().unwrap_or(0), asked };
                self.hit = Some(hit.clone());
                return Err(wasmtime::Error::msg(hit.to_string()));
            }
        }
        match source.read_at(offset, len as usize).await {
            Ok(bytes) => Ok(Ok(bytes.to_vec())),
            Err(e) => {
                let msg = format!("reading the source object at byte {offset}: {e}");
                // A source that is a stream cannot be read at an offset: the
                // plugin may fall back to `read`, so that is not a host failure.
                if e.kind() != std::io::ErrorKind::Other || source.size().is_some() {
                    self.host_error = Some(msg.clone());
                }
                Ok(Err(msg))
            }
        }
    }

    async fn drop(&mut self, input: Resource<InputHandle>) -> wasmtime::Result<()> {
        self.table.delete(input)?;
        Ok(())
    }
}

impl types::HostOutputs for TaskState {
    async fn open(
        &mut self,
        _outputs: Resource<OutputsHandle>,
        options: types::OutputOptions,
    ) -> wasmtime::Result<Result<Resource<OutputHandle>, String>> {
        let request = OpenRequest {
            extension: options.extension,
            content_type: options.content_type,
            variables: options.variables,
        };
        self.open_output(request).await
    }

    async fn drop(&mut self, outputs: Resource<OutputsHandle>) -> wasmtime::Result<()> {
        self.table.delete(outputs)?;
        Ok(())
    }
}

impl types::HostOutput for TaskState {
    async fn write(&mut self, output: Resource<OutputHandle>, bytes: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.write_output(output, bytes).await
    }

    async fn drop(&mut self, output: Resource<OutputHandle>) -> wasmtime::Result<()> {
        self.drop_output(output)
    }
}

super::host_impl::host_log!(host);

impl TaskState {
    /// The options of 0.2.0's `outputs.open`, checked: a content type of
    /// printable ASCII, and only variables the plugin's `info` declares, each
    /// within its caps. A value is checked again as a key segment when the key is rendered.
    pub(super) fn check_open_options(&self, request: &OpenRequest) -> Result<(), String> {
        if let Some(ct) = &request.content_type
            && (ct.is_empty() || ct.len() > MAX_CONTENT_TYPE || !ct.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            return Err(format!(
                "invalid content type `{}`: 1 to {MAX_CONTENT_TYPE} printable ASCII characters",
                bounded(ct, MAX_CONTENT_TYPE)
            ));
        }
        check_variable_count(request.variables.len())?;
        for (name, value) in &request.variables {
            if !self.declared_variables.iter().any(|d| d == name) {
                let declared =
                    if self.declared_variables.is_empty() { "none".into() } else { self.declared_variables.join(", ") };
                return Err(format!(
                    "output variable `{}` is not one the plugin declares in info() (declared: {declared})",
                    bounded(name, MAX_VARIABLE_NAME)
                ));
            }
            if value.len() > MAX_VARIABLE_VALUE {
                return Err(format!("output variable `{name}`: a value holds at most {MAX_VARIABLE_VALUE} bytes"));
            }
        }
        Ok(())
    }
}

fn check_variable_count(n: usize) -> Result<(), String> {
    if n > MAX_VARIABLES {
        return Err(format!("{n} output variables: an output sets at most {MAX_VARIABLES}"));
    }
    Ok(())
}

/// 0.2.0's `output-options`, read in place (views into the plugin's memory,
/// valid for the call): only what fits the caps is copied.
#[derive(ComponentType, Lift)]
#[component(record)]
struct RawOutputOptions {
    extension: Option<WasmStr>,
    #[component(name = "content-type")]
    content_type: Option<WasmStr>,
    variables: WasmList<(WasmStr, WasmStr)>,
}

/// Redefine 0.2.0's imports that take a plugin's strings (`log`,
/// `outputs.open`) so that they read them in place, as `host_impl` does for 0.1.0.
pub(crate) fn link_bounded_imports(linker: &mut Linker<TaskState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    super::host_impl::link_bounded_log::<host::Level>(linker, "kiln:plugin/host@0.2.0")?;
    let mut types_iface = linker.instance("kiln:plugin/types@0.2.0")?;
    types_iface.func_wrap_async(
        "[method]outputs.open",
        |mut store: StoreContextMut<'_, TaskState>, (_outputs, raw): (Resource<OutputsHandle>, RawOutputOptions)| {
            Box::new(async move {
                let request = match read_options(&mut store, &raw) {
                    Ok(request) => request,
                    Err(refusal) => return Ok((Err(store.data_mut().refuse_open(refusal)),)),
                };
                let opened = store.data_mut().open_output(request).await?;
                Ok((opened,))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Copy the options out of the plugin's memory, refusing any string past its
/// cap without copying it whole. `Err` is the refusal, for the plugin.
fn read_options(store: &mut StoreContextMut<'_, TaskState>, raw: &RawOutputOptions) -> Result<OpenRequest, String> {
    // Before any is copied: the list's length is the plugin's to choose.
    check_variable_count(raw.variables.len())?;
    let pairs: Vec<(WasmStr, WasmStr)> =
        raw.variables.iter(&mut *store).and_then(|i| i.collect::<wasmtime::Result<_>>()).map_err(|e| e.to_string())?;
    let store = &*store;
    let text = |s: &WasmStr, cap: usize, what: &str| -> Result<String, String> {
        let whole = s.to_str(store.as_context()).map_err(|e| format!("{what}: not UTF-8: {e}"))?;
        if whole.len() > cap {
            return Err(format!("{what} `{}`: at most {cap} bytes", bounded(&whole, cap)));
        }
        Ok(whole.into_owned())
    };
    let extension = match &raw.extension {
        None => None,
        Some(e) => Some(
            text(e, MAX_EXTENSION, "extension").map_err(|_| bad_extension(&bounded_wasm(store, e, MAX_EXTENSION)))?,
        ),
    };
    let content_type = raw.content_type.as_ref().map(|c| text(c, MAX_CONTENT_TYPE, "content type")).transpose()?;
    let mut variables = Vec::with_capacity(pairs.len());
    for (name, value) in &pairs {
        let name = text(name, MAX_VARIABLE_NAME, "output variable name")?;
        let value = text(value, MAX_VARIABLE_VALUE, &format!("output variable `{name}`"))?;
        variables.push((name, value));
    }
    Ok(OpenRequest { extension, content_type, variables })
}
