//! The host functions of the contract: stream resources and `log`.

use bytes::Bytes;
use wasmtime::component::Resource;

use super::bindings::kiln::plugin::{host, types};
use super::limits::LimitHit;
use super::streams::{InputHandle, OutputHandle, OutputsHandle};
use super::{MAX_OUTPUTS, MAX_READ, OpenOutput, TaskState};

/// Lines a plugin may log per task, and bytes per line: a chatty plugin must
/// not flood the daemon's log.
const MAX_LOG_LINES: u32 = 1000;
const MAX_LOG_LINE: usize = 2048;

impl types::Host for TaskState {}

impl types::HostInput for TaskState {
    async fn read(&mut self, _input: Resource<InputHandle>, max: u32) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let Some(source) = self.input.as_mut() else {
            return Ok(Ok(Vec::new()));
        };
        match source.read(max.clamp(1, MAX_READ) as usize).await {
            Ok(chunk) => Ok(Ok(chunk.to_vec())),
            Err(e) => {
                let msg = format!("reading the source object: {e}");
                self.host_error = Some(msg.clone());
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
        extension: Option<String>,
    ) -> wasmtime::Result<Result<Resource<OutputHandle>, String>> {
        if let Some(ext) = &extension {
            if ext.is_empty() || ext.len() > 16 || !ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Ok(Err(format!("invalid extension `{ext}`: 1 to 16 ASCII letters or digits, without the dot")));
            }
        }
        if self.outputs.len() >= MAX_OUTPUTS {
            return Ok(Err(format!("a task may write at most {MAX_OUTPUTS} outputs")));
        }
        let Some(target) = self.target.as_mut() else {
            return Ok(Err("this call cannot write outputs".to_string()));
        };
        let index = self.outputs.len() as u32 + 1;
        match target.open(index, extension.as_deref()).await {
            Ok(writer) => {
                self.outputs.push(OpenOutput { writer: Some(writer), extension, bytes: 0 });
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

    async fn drop(&mut self, outputs: Resource<OutputsHandle>) -> wasmtime::Result<()> {
        self.table.delete(outputs)?;
        Ok(())
    }
}

impl types::HostOutput for TaskState {
    async fn write(&mut self, output: Resource<OutputHandle>, bytes: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
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

    async fn drop(&mut self, output: Resource<OutputHandle>) -> wasmtime::Result<()> {
        // The output stays open until the task ends: it is committed only if
        // the whole task succeeds.
        self.table.delete(output)?;
        Ok(())
    }
}

impl host::Host for TaskState {
    async fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return Ok(());
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (plugin, key) = (&*self.plugin, &*self.key);
        match level {
            host::Level::Trace => tracing::trace!(target: "kiln::plugin", plugin, key, "{message}"),
            host::Level::Debug => tracing::debug!(target: "kiln::plugin", plugin, key, "{message}"),
            host::Level::Info => tracing::info!(target: "kiln::plugin", plugin, key, "{message}"),
            host::Level::Warn => tracing::warn!(target: "kiln::plugin", plugin, key, "{message}"),
            host::Level::Error => tracing::error!(target: "kiln::plugin", plugin, key, "{message}"),
        }
        Ok(())
    }
}
