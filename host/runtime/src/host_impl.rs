//! The host functions of the contract: stream resources and `log`, for
//! `kiln:plugin@0.1.0`, and the logic that 0.2.0's (`host_v2`) shares.

use bytes::Bytes;
use wasmtime::component::{ComponentType, Lift, Linker, Resource, WasmStr};
use wasmtime::{AsContext, StoreContextMut};

use super::bindings::v1::kiln::plugin::{host, types};
use super::limits::LimitHit;
use super::streams::{InputHandle, OutputHandle, OutputsHandle};
use super::text::{bounded, bounded_wasm};
use super::{MAX_OUTPUTS, MAX_READ, OpenOutput, TaskState};

impl types::Host for TaskState {}

impl types::HostInput for TaskState {
    async fn read(&mut self, _input: Resource<InputHandle>, max: u32) -> wasmtime::Result<Result<Vec<u8>, String>> {
        Ok(self.read_input(max).await)
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
        extension: Option<String>,
    ) -> wasmtime::Result<Result<Resource<OutputHandle>, String>> {
        self.open_output(OpenRequest { extension, ..OpenRequest::default() }).await
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

impl TaskState {
    /// `output.write`: bytes to an open output, within the task's output cap.
    pub(super) async fn write_output(
        &mut self,
        output: Resource<OutputHandle>,
        bytes: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        let slot = self.table.get(&output)?.slot;
        let total = self.bytes_out + bytes.len() as u64;
        if total > self.max_output {
            // Trap rather than return an error: the plugin must not go on
            // computing output that will never be kept.
            let hit = LimitHit::Output(self.max_output);
            self.hit = Some(hit.clone());
            return Err(wasmtime::Error::msg(hit.to_string()));
        }
        self.bytes_out = total;
        let out = &mut self.outputs[slot];
        out.bytes += bytes.len() as u64;
        let Some(writer) = out.writer.as_mut() else {
            return Ok(Err("output already closed".into()));
        };
        match writer.write(Bytes::from(bytes)).await {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                let msg = format!("writing output {}: {e}", slot + 1);
                self.host_error = Some(msg.clone());
                Ok(Err(msg))
            }
        }
    }

    pub(super) fn drop_output(&mut self, output: Resource<OutputHandle>) -> wasmtime::Result<()> {
        // The output stays open until the task ends: it is committed only if
        // the whole task succeeds.
        self.table.delete(output)?;
        Ok(())
    }
}

/// A log level of either contract version.
#[derive(Clone, Copy)]
pub(super) enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// `host.log` of one contract version: its generated `Level` becomes ours.
/// (Each version's bindings generate their own, identical, enum.)
macro_rules! host_log {
    ($host:ident) => {
        impl From<$host::Level> for $crate::host_impl::Level {
            fn from(level: $host::Level) -> Self {
                use $crate::host_impl::Level;
                match level {
                    $host::Level::Trace => Level::Trace,
                    $host::Level::Debug => Level::Debug,
                    $host::Level::Info => Level::Info,
                    $host::Level::Warn => Level::Warn,
                    $host::Level::Error => Level::Error,
                }
            }
        }

        impl $host::Host for TaskState {
            async fn log(&mut self, level: $host::Level, message: String) -> wasmtime::Result<()> {
                self.log_line(level.into(), &message);
                Ok(())
            }
        }
    };
}
pub(super) use host_log;

host_log!(host);

/// Redefine `log` of the host interface `iface` so that it reads the message
/// in place, up to its cap (the bindings' version copies it whole first).
pub(super) fn link_bounded_log<L>(linker: &mut Linker<TaskState>, iface: &str) -> wasmtime::Result<()>
where
    L: ComponentType + Lift + Into<Level> + Send + Sync + 'static,
{
    linker.instance(iface)?.func_wrap(
        "log",
        |mut store: StoreContextMut<'_, TaskState>, (level, message): (L, WasmStr)| {
            let cap = store.data().text.max_log_line;
            let message = bounded_wasm(&store, &message, cap);
            store.data_mut().log_line(level.into(), &message);
            Ok(())
        },
    )
}

/// What a plugin asks of `outputs.open` (0.1.0 gives only the extension).
#[derive(Debug, Default)]
pub(super) struct OpenRequest {
    pub extension: Option<String>,
    pub content_type: Option<String>,
    pub variables: Vec<(String, String)>,
}

/// Longest content type an output may carry.
pub(super) const MAX_CONTENT_TYPE: usize = 256;
/// Output variables one output may set, and the longest name and value.
pub(super) const MAX_VARIABLES: usize = 16;
pub(super) const MAX_VARIABLE_NAME: usize = 32;
pub(super) const MAX_VARIABLE_VALUE: usize = 255;

impl TaskState {
    /// `input.read`: the next chunk, empty at the end.
    pub(super) async fn read_input(&mut self, max: u32) -> Result<Vec<u8>, String> {
        let Some(source) = self.input.as_mut() else {
            return Ok(Vec::new());
        };
        match source.read(max.clamp(1, MAX_READ) as usize).await {
            Ok(chunk) => Ok(chunk.to_vec()),
            Err(e) => {
                let msg = format!("reading the source object: {e}");
                self.host_error = Some(msg.clone());
                Err(msg)
            }
        }
    }

    /// `outputs.open`: start output `{index}` = the next number, with `{autoext}` = its extension.
    pub(super) async fn open_output(
        &mut self,
        request: OpenRequest,
    ) -> wasmtime::Result<Result<Resource<OutputHandle>, String>> {
        if let Some(ext) = &request.extension
            && let Err(e) = check_extension(ext)
        {
            return Ok(Err(self.refuse_open(e)));
        }
        if let Err(e) = self.check_open_options(&request) {
            return Ok(Err(self.refuse_open(e)));
        }
        let extension = request.extension.as_deref();
        if self.outputs.len() >= MAX_OUTPUTS {
            return Ok(Err(self.refuse_open(format!("a task may write at most {MAX_OUTPUTS} outputs"))));
        }
        let Some(target) = self.target.as_mut() else {
            return Ok(Err(self.refuse_open("this call cannot write outputs".to_string())));
        };
        let index = self.outputs.len() as u32 + 1;
        let spec = super::OutputSpec {
            extension,
            content_type: request.content_type.as_deref(),
            variables: &request.variables,
        };
        match target.open_with(index, spec).await {
            Ok(writer) => {
                self.outputs.push(OpenOutput {
                    writer: Some(writer),
                    extension: extension.map(str::to_string),
                    bytes: 0,
                });
                let handle = self.table.push(OutputHandle { slot: self.outputs.len() - 1 })?;
                Ok(Ok(handle))
            }
            Err(e) => {
                let msg = format!("opening output {index}: {e}");
                self.host_error = Some(msg.clone());
                Ok(Err(msg))
            }
        }
    }

    /// Record a refused `outputs.open` (the task fails whatever the plugin
    /// returns) and give the message back for the plugin.
    pub(super) fn refuse_open(&mut self, message: String) -> String {
        self.open_refused.get_or_insert_with(|| message.clone());
        message
    }

    /// `log`: one line into the daemon's log, cut to its cap, and none past
    /// the task's line budget, so a chatty plugin cannot flood the log.
    pub(super) fn log_line(&mut self, level: Level, message: &str) {
        self.log_lines += 1;
        if self.log_lines > self.text.max_log_lines {
            return;
        }
        let message = bounded(message, self.text.max_log_line);
        let (plugin, key) = (&*self.plugin, &*self.key);
        match level {
            Level::Trace => tracing::trace!(target: "kiln::plugin", plugin, key, "{message}"),
            Level::Debug => tracing::debug!(target: "kiln::plugin", plugin, key, "{message}"),
            Level::Info => tracing::info!(target: "kiln::plugin", plugin, key, "{message}"),
            Level::Warn => tracing::warn!(target: "kiln::plugin", plugin, key, "{message}"),
            Level::Error => tracing::error!(target: "kiln::plugin", plugin, key, "{message}"),
        }
    }
}

/// Longest `{autoext}` a plugin may declare.
pub(super) const MAX_EXTENSION: usize = 16;

pub(super) fn check_extension(ext: &str) -> Result<(), String> {
    if ext.is_empty() || ext.len() > MAX_EXTENSION || !ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad_extension(&bounded(ext, MAX_EXTENSION)));
    }
    Ok(())
}

pub(super) fn bad_extension(shown: &str) -> String {
    format!("invalid extension `{shown}`: 1 to {MAX_EXTENSION} ASCII letters or digits, without the dot")
}

/// Redefine the two imports that take a plugin's string (`log`, `outputs.open`)
/// so that they read it in place: the bindings' versions copy the whole string
/// into the host before any cap applies. The bindings' trait methods stay as
/// the same logic for the typed path.
pub(crate) fn link_bounded_imports(linker: &mut Linker<TaskState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    link_bounded_log::<host::Level>(linker, "kiln:plugin/host@0.1.0")?;
    let mut types_iface = linker.instance("kiln:plugin/types@0.1.0")?;
    types_iface.func_wrap_async(
        "[method]outputs.open",
        |mut store: StoreContextMut<'_, TaskState>,
         (_outputs, extension): (Resource<OutputsHandle>, Option<WasmStr>)| {
            Box::new(async move {
                let extension = match extension {
                    None => None,
                    Some(ext) => {
                        // Only an extension within its cap is copied; a longer one is refused as it stands.
                        let (fits, text) = {
                            let text = ext.to_str(store.as_context())?;
                            if text.len() > MAX_EXTENSION {
                                (false, bounded(&text, MAX_EXTENSION))
                            } else {
                                (true, text.into_owned())
                            }
                        };
                        if !fits {
                            return Ok((Err(store.data_mut().refuse_open(bad_extension(&text))),));
                        }
                        Some(text)
                    }
                };
                let opened = store.data_mut().open_output(OpenRequest { extension, ..OpenRequest::default() }).await?;
                Ok((opened,))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
