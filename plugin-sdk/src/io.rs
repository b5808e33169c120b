//! `std::io` adapters over the contract's stream resources.
//!
//! Both sides move data in chunks of [`CHUNK`] bytes: the notes measured 64 KiB
//! chunks 3-4x faster than 4 KiB ones, since each chunk is one host call.

use std::cell::RefCell;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use crate::wit;

/// Bytes moved per host call.
pub const CHUNK: usize = 64 * 1024;

/// Where an [`Input`]'s bytes come from: the host's `input` resource, or
/// memory and readers under the [test harness](crate::testing).
trait Source {
    /// Up to `max` bytes from where the last `read` stopped; empty at the end.
    fn read(&mut self, max: usize) -> io::Result<Vec<u8>>;
    /// The object's size, when known.
    fn size(&mut self) -> Option<u64>;
    /// Up to `len` bytes from `offset`: fewer at the end, none past it.
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

fn wit_len(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

struct Host<'a>(&'a wit::Input);

impl Source for Host<'_> {
    fn read(&mut self, max: usize) -> io::Result<Vec<u8>> {
        self.0.read(wit_len(max)).map_err(io::Error::other)
    }
    fn size(&mut self) -> Option<u64> {
        self.0.size()
    }
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.0.read_at(offset, wit_len(len)).map_err(io::Error::other)
    }
}

/// Bytes in memory, streamed and read at any offset (the harness's default).
struct Bytes<'a> {
    bytes: &'a [u8],
    next: usize,
    sized: bool,
    read_at_calls: Rc<std::cell::Cell<u64>>,
}

impl Source for Bytes<'_> {
    fn read(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let end = self.bytes.len().min(self.next.saturating_add(max));
        let chunk = self.bytes[self.next..end].to_vec();
        self.next = end;
        Ok(chunk)
    }
    fn size(&mut self) -> Option<u64> {
        self.sized.then_some(self.bytes.len() as u64)
    }
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        // As the host: random access needs the size.
        if !self.sized {
            return Err(io::Error::other("this source can only be read in order (it is a stream, such as stdin)"));
        }
        self.read_at_calls.set(self.read_at_calls.get() + 1);
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.bytes.len());
        let end = self.bytes.len().min(start.saturating_add(len));
        Ok(self.bytes[start..end].to_vec())
    }
}

/// Any reader: streamed only.
struct Reader<'a>(Box<dyn Read + 'a>);

impl Source for Reader<'_> {
    fn read(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let mut chunk = vec![0; max];
        loop {
            match self.0.read(&mut chunk) {
                Ok(n) => {
                    chunk.truncate(n);
                    return Ok(chunk);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
    fn size(&mut self) -> Option<u64> {
        None
    }
    fn read_at(&mut self, _: u64, _: usize) -> io::Result<Vec<u8>> {
        Err(io::Error::other("this source can only be read in order (the harness was given a reader, not bytes)"))
    }
}

/// The source object, as a [`Read`]er that can also [`Seek`].
///
/// Reading front to back streams the object with the host's `read`, one
/// 64 KiB chunk per call. Seeking elsewhere switches to `read-at`, still a chunk
/// per call, from the new position; seeking within the chunk in hand costs
/// nothing. [`SeekFrom::End`] needs the object's size ([`Input::size`]); when
/// the host does not know it (a stream such as stdin), every seek that moves
/// the position fails with an error saying so. Seeking past the end is
/// allowed, and reads nothing there.
pub struct Input<'a> {
    source: Box<dyn Source + 'a>,
    /// Bytes of the object from offset `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
    /// The next byte to read is `buf[buf_pos]`, at offset `buf_start + buf_pos`.
    buf_pos: usize,
    /// The offset the host's `read` continues from, and whether it has ended.
    stream_next: u64,
    stream_done: bool,
    size: Option<Option<u64>>,
}

impl<'a> Input<'a> {
    fn new(source: Box<dyn Source + 'a>) -> Self {
        Input { source, buf: Vec::new(), buf_start: 0, buf_pos: 0, stream_next: 0, stream_done: false, size: None }
    }

    pub(crate) fn host(input: &'a wit::Input) -> Self {
        Self::new(Box::new(Host(input)))
    }

    /// An input backed by any reader, read in order only (no size, no
    /// seeking); used by the [test harness](crate::testing).
    pub fn from_reader(reader: impl Read + 'a) -> Self {
        Self::new(Box::new(Reader(Box::new(reader))))
    }

    /// An input over bytes in memory, with random access; `sized: false`
    /// plays a host that does not know the size. Used by the [test harness](crate::testing).
    pub fn from_bytes(bytes: &'a [u8], sized: bool) -> Self {
        Self::from_bytes_counted(bytes, sized, Rc::default())
    }

    pub(crate) fn from_bytes_counted(bytes: &'a [u8], sized: bool, read_at_calls: Rc<std::cell::Cell<u64>>) -> Self {
        Self::new(Box::new(Bytes { bytes, next: 0, sized, read_at_calls }))
    }

    /// The object's size in bytes, when the host knows it.
    pub fn size(&mut self) -> Option<u64> {
        *self.size.get_or_insert_with(|| self.source.size())
    }

    /// The position of the next byte [`Read::read`] gives.
    pub fn position(&self) -> u64 {
        self.buf_start + self.buf_pos as u64
    }

    /// Up to `len` bytes from `offset` (fewer at the end, none past it), in
    /// one host call, without moving the position. For a few scattered
    /// reads; [`Seek`] and [`Read`] buffer for you.
    pub fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.source.read_at(offset, len)
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

    /// Fetch the chunk at the position into `buf`; false at the end.
    fn refill(&mut self, want: usize) -> io::Result<bool> {
        let pos = self.position();
        let max = want.max(CHUNK);
        let chunk = if pos == self.stream_next {
            if self.stream_done {
                return Ok(false);
            }
            let chunk = self.source.read(max)?;
            self.stream_next += chunk.len() as u64;
            self.stream_done = chunk.is_empty();
            chunk
        } else {
            self.source.read_at(pos, max)?
        };
        self.buf = chunk;
        self.buf_start = pos;
        self.buf_pos = 0;
        Ok(!self.buf.is_empty())
    }
}

impl Read for Input<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.buf_pos >= self.buf.len() && !self.refill(out.len())? {
            return Ok(0);
        }
        let n = out.len().min(self.buf.len() - self.buf_pos);
        out[..n].copy_from_slice(&self.buf[self.buf_pos..self.buf_pos + n]);
        self.buf_pos += n;
        Ok(n)
    }
}

impl Seek for Input<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = self.position();
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => pos.checked_add_signed(d),
            SeekFrom::End(d) => match self.size() {
                Some(size) => size.checked_add_signed(d),
                None => return Err(no_size()),
            },
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek to a negative or overflowing position"))?;
        if target == pos {
            return Ok(pos);
        }
        if self.size().is_none() {
            return Err(no_size());
        }
        let end = self.buf_start + self.buf.len() as u64;
        if (self.buf_start..=end).contains(&target) {
            self.buf_pos = (target - self.buf_start) as usize;
        } else {
            self.buf.clear();
            self.buf_start = target;
            self.buf_pos = 0;
        }
        Ok(target)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.position())
    }
}

fn no_size() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "the host does not know the object's size (it is a stream, such as stdin), so the input can only be read in order, not seeked",
    )
}

/// How to open an output: its extension (`{autoext}`), content type, and the
/// values of output variables for the key template (each one the plugin
/// declares with [`PluginInfo::variables`](crate::PluginInfo::variables)).
///
/// ```
/// # use kiln_plugin_sdk::OutputOptions;
/// let options = OutputOptions::extension("txt").content_type("text/plain; charset=utf-8").variable("page", 3);
/// assert_eq!(options.variables, [("page".to_string(), "3".to_string())]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// `{autoext}` of the output, without a dot.
    pub extension: Option<String>,
    /// The object's content type, stored where the bucket keeps one.
    pub content_type: Option<String>,
    /// `(name, value)` of output variables, e.g. `("page", "3")`.
    pub variables: Vec<(String, String)>,
}

impl OutputOptions {
    /// Options with no extension, content type or variables.
    pub fn new() -> Self {
        Self::default()
    }
    /// Options with this extension (without the dot).
    pub fn extension(extension: &str) -> Self {
        OutputOptions { extension: Some(extension.to_string()), ..Self::default() }
    }
    /// The content type stored with the object, e.g. `image/webp`.
    pub fn content_type(mut self, content_type: &str) -> Self {
        self.content_type = Some(content_type.to_string());
        self
    }
    /// Set an output variable that `info` declares.
    pub fn variable(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        self.variables.push((name.to_string(), value.to_string()));
        self
    }
}

impl From<Option<&str>> for OutputOptions {
    fn from(extension: Option<&str>) -> Self {
        OutputOptions { extension: extension.map(str::to_string), ..Self::default() }
    }
}

/// The first error met while flushing an output in `Drop`, kept so that the
/// task fails instead of silently losing bytes.
type ErrorSlot = Rc<RefCell<Option<io::Error>>>;

/// The task's outputs. Each [`Outputs::open`] or [`Outputs::open_with`] starts the next one.
pub struct Outputs<'a> {
    sink: OutputsSink<'a>,
    deferred_error: ErrorSlot,
}

enum OutputsSink<'a> {
    Host(&'a wit::Outputs),
    Memory { list: &'a RefCell<Vec<crate::testing::MemoryOutput>>, declared: fn() -> Vec<String> },
}

impl<'a> Outputs<'a> {
    pub(crate) fn host(outputs: &'a wit::Outputs) -> Self {
        Outputs { sink: OutputsSink::Host(outputs), deferred_error: Rc::default() }
    }

    pub(crate) fn memory(list: &'a RefCell<Vec<crate::testing::MemoryOutput>>, declared: fn() -> Vec<String>) -> Self {
        Outputs { sink: OutputsSink::Memory { list, declared }, deferred_error: Rc::default() }
    }

    /// Start the next output. `extension` (without the dot) becomes `{autoext}`
    /// in the output template. The output is finished when it is dropped, and
    /// becomes visible only if the task succeeds.
    pub fn open(&mut self, extension: Option<&str>) -> io::Result<Output> {
        self.open_with(OutputOptions::from(extension))
    }

    /// Start the next output with a content type and output variables too.
    pub fn open_with(&mut self, options: OutputOptions) -> io::Result<Output> {
        let sink = match &self.sink {
            OutputsSink::Host(outputs) => {
                let options = wit::OutputOptions {
                    extension: options.extension,
                    content_type: options.content_type,
                    variables: options.variables,
                };
                OutputSink::Host(outputs.open(&options).map_err(io::Error::other)?)
            }
            OutputsSink::Memory { list, declared } => {
                // As the host does: only variables that `info` declares.
                let declared = if options.variables.is_empty() { Vec::new() } else { declared() };
                for (name, _) in &options.variables {
                    if !declared.contains(name) {
                        let declared = if declared.is_empty() { "none".into() } else { declared.join(", ") };
                        return Err(io::Error::other(format!(
                            "output variable `{name}` is not one the plugin declares in info() (declared: {declared})"
                        )));
                    }
                }
                let bytes = Rc::new(RefCell::new(Vec::new()));
                list.borrow_mut().push(crate::testing::MemoryOutput {
                    extension: options.extension,
                    content_type: options.content_type,
                    variables: options.variables,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn reads_in_order_with_the_stream_and_no_read_at() {
        let bytes = data(3 * CHUNK + 5);
        let calls = Rc::new(std::cell::Cell::new(0));
        let mut input = Input::from_bytes_counted(&bytes, true, calls.clone());
        let mut got = Vec::new();
        input.read_to_end(&mut got).unwrap();
        assert!(got == bytes);
        assert_eq!(calls.get(), 0, "front-to-back reading streams");
        assert_eq!(input.read(&mut [0; 4]).unwrap(), 0);
    }

    #[test]
    fn seeks_from_start_current_and_end() {
        let bytes = data(200_000);
        let calls = Rc::new(std::cell::Cell::new(0));
        let mut input = Input::from_bytes_counted(&bytes, true, calls.clone());
        assert_eq!(input.size(), Some(200_000));
        let mut four = [0; 4];
        assert_eq!(input.seek(SeekFrom::End(-4)).unwrap(), 199_996);
        input.read_exact(&mut four).unwrap();
        assert_eq!(four, bytes[199_996..]);
        assert_eq!(input.read(&mut four).unwrap(), 0, "at the end");
        assert_eq!(input.seek(SeekFrom::Start(10)).unwrap(), 10);
        input.read_exact(&mut four).unwrap();
        assert_eq!(four, bytes[10..14]);
        assert_eq!(input.seek(SeekFrom::Current(-2)).unwrap(), 12);
        input.read_exact(&mut four).unwrap();
        assert_eq!(four, bytes[12..16]);
        assert_eq!(input.stream_position().unwrap(), 16);
        assert!(input.seek(SeekFrom::Current(-17)).is_err(), "before the start");
        // The stream continues where it stopped, after random reads elsewhere.
        let mut rest = Vec::new();
        input.read_to_end(&mut rest).unwrap();
        assert!(rest == bytes[16..]);
    }

    #[test]
    fn random_reads_are_buffered_by_the_chunk() {
        let bytes = data(4 * CHUNK);
        let calls = Rc::new(std::cell::Cell::new(0));
        let mut input = Input::from_bytes_counted(&bytes, true, calls.clone());
        input.seek(SeekFrom::Start(CHUNK as u64)).unwrap();
        let mut one = [0; 1];
        for i in 0..1000u64 {
            input.seek(SeekFrom::Start(CHUNK as u64 + i * 3)).unwrap();
            input.read_exact(&mut one).unwrap();
            assert_eq!(one[0], bytes[CHUNK + i as usize * 3]);
        }
        assert_eq!(calls.get(), 1, "one read-at for a chunk's worth of small reads");
    }

    #[test]
    fn a_seek_past_the_end_reads_nothing() {
        let bytes = data(100);
        let mut input = Input::from_bytes(&bytes, true);
        assert_eq!(input.seek(SeekFrom::Start(1000)).unwrap(), 1000);
        assert_eq!(input.read(&mut [0; 8]).unwrap(), 0);
        assert_eq!(input.seek(SeekFrom::End(5)).unwrap(), 105);
        assert_eq!(input.read(&mut [0; 8]).unwrap(), 0);
        assert_eq!(input.read_at(98, 10).unwrap(), bytes[98..]);
        assert!(input.read_at(100, 10).unwrap().is_empty());
    }

    #[test]
    #[allow(clippy::seek_from_current)] // `seek(Current(0))` is what is tested
    fn without_a_size_only_reading_in_order_works() {
        let bytes = data(100);
        let mut input = Input::from_bytes(&bytes, false);
        assert_eq!(input.size(), None);
        let err = input.seek(SeekFrom::End(0)).unwrap_err();
        assert!(err.to_string().contains("does not know the object's size"), "{err}");
        assert!(input.seek(SeekFrom::Start(3)).is_err());
        assert_eq!(input.seek(SeekFrom::Current(0)).unwrap(), 0, "asking the position works");
        let mut all = Vec::new();
        input.read_to_end(&mut all).unwrap();
        assert!(all == bytes);

        let mut reader = Input::from_reader(&bytes[..]);
        assert!(reader.seek(SeekFrom::Start(1)).is_err());
        assert!(reader.read_at(0, 1).is_err());
    }
}
