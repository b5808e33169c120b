//! `std::io` adapters over the contract's stream resources.
//!
//! Both sides move data in chunks of [`CHUNK`] bytes: the notes measured 64 KiB
//! chunks 3-4x faster than 4 KiB ones, since each chunk is one host call.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;

use crate::wit;

/// Bytes moved per host call.
pub const CHUNK: usize = 64 * 1024;

/// The source object, as a [`Read`]er.
pub struct Input<'a> {
    source: Source<'a>,
    pending: Vec<u8>,
    pos: usize,
    done: bool,
}

enum Source<'a> {
    Host(&'a wit::Input),
    Reader(Box<dyn Read + 'a>),
}

impl<'a> Input<'a> {
    pub(crate) fn host(input: &'a wit::Input) -> Self {
        Input { source: Source::Host(input), pending: Vec::new(), pos: 0, done: false }
    }

    /// An input backed by any reader; used by the [test harness](crate::testing).
    pub fn from_reader(reader: impl Read + 'a) -> Self {
        Input { source: Source::Reader(Box::new(reader)), pending: Vec::new(), pos: 0, done: false }
    }

    /// Read the whole object into memory. Use only for formats that cannot be
    /// streamed, and cap it: the host's memory cap fails the task otherwise.
    pub fn read_all(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        self.take(limit as u64 + 1).read_to_end(&mut all)?;
        if all.len() > limit {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("object is larger than {limit} bytes")));
        }
        Ok(all)
    }
}

impl Read for Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.pending.len() {
            if self.done {
                return Ok(0);
            }
            match &mut self.source {
                Source::Host(input) => {
                    let max = buf.len().max(CHUNK).min(u32::MAX as usize) as u32;
                    self.pending = input.read(max).map_err(io::Error::other)?;
                }
                Source::Reader(reader) => return reader.read(buf),
            }
            self.pos = 0;
            if self.pending.is_empty() {
                self.done = true;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The first error met while flushing an output in `Drop`, kept so that the
/// task fails instead of silently losing bytes.
type ErrorSlot = Rc<RefCell<Option<io::Error>>>;

/// The task's outputs. Each [`Outputs::open`] starts the next one.
pub struct Outputs<'a> {
    sink: OutputsSink<'a>,
    deferred_error: ErrorSlot,
}

enum OutputsSink<'a> {
    Host(&'a wit::Outputs),
    Memory(&'a RefCell<Vec<crate::testing::MemoryOutput>>),
}

impl<'a> Outputs<'a> {
    pub(crate) fn host(outputs: &'a wit::Outputs) -> Self {
        Outputs { sink: OutputsSink::Host(outputs), deferred_error: Rc::default() }
    }

    pub(crate) fn memory(outputs: &'a RefCell<Vec<crate::testing::MemoryOutput>>) -> Self {
        Outputs { sink: OutputsSink::Memory(outputs), deferred_error: Rc::default() }
    }

    /// Start the next output. `extension` (without the dot) becomes `{autoext}`
    /// in the output template. The output is finished when it is dropped, and
    /// becomes visible only if the task succeeds.
    pub fn open(&mut self, extension: Option<&str>) -> io::Result<Output> {
        let sink = match &self.sink {
            OutputsSink::Host(outputs) => OutputSink::Host(outputs.open(extension).map_err(io::Error::other)?),
            OutputsSink::Memory(list) => {
                let bytes = Rc::new(RefCell::new(Vec::new()));
                list.borrow_mut().push(crate::testing::MemoryOutput {
                    extension: extension.map(str::to_string),
                    shared: bytes.clone(),
                    bytes: Vec::new(),
                });
                OutputSink::Memory(bytes)
            }
        };
        Ok(Output { sink, buf: Vec::new(), deferred_error: self.deferred_error.clone() })
    }

    /// The first error from flushing a dropped output, if any.
    pub(crate) fn finish(&self) -> io::Result<()> {
        match self.deferred_error.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// One output object, as a buffered [`Write`]r.
pub struct Output {
    sink: OutputSink,
    buf: Vec<u8>,
    deferred_error: ErrorSlot,
}

enum OutputSink {
    Host(wit::Output),
    Memory(Rc<RefCell<Vec<u8>>>),
}

impl Output {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &self.sink {
            OutputSink::Host(out) => out.write(bytes).map_err(io::Error::other),
            OutputSink::Memory(v) => {
                v.borrow_mut().extend_from_slice(bytes);
                Ok(())
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > CHUNK {
            self.flush()?;
        }
        if data.len() >= CHUNK {
            self.send(data)?;
        } else {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(CHUNK);
            }
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let result = self.send(&buf);
            self.buf = buf;
            self.buf.clear();
            result?;
        }
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            self.deferred_error.borrow_mut().get_or_insert(e);
        }
    }
}
