//! ISO BMFF / QuickTime boxes: the top level of a file read through
//! `read-at` (so the `mdat` is never read to find the `moov` after it), and a
//! small in-memory tree of the `moov`.
//!
//! Boxes that the remux does not change stay as their payload bytes and are
//! written back byte for byte: the safest way to be lossless for boxes this
//! crate does not know.

use kiln_plugin_sdk::Input;

use crate::MediaError;

/// Deeper than any real `moov` (moov/trak/mdia/minf/stbl/stsd/entry/wave/esds
/// is 9): a file nesting deeper is hostile or corrupt.
const MAX_DEPTH: usize = 24;
/// Top-level boxes in a file: real files have a handful (fragmented ones,
/// refused at their first `moof`, thousands); a file of millions of empty
/// boxes would only burn the task's deadline, one host call per header.
const MAX_TOP_BOXES: usize = 10_000;
/// Boxes inside a `moov`, all levels: bounds the tree's bookkeeping.
const MAX_MOOV_BOXES: usize = 2_000_000;

pub type FourCc = [u8; 4];

/// Boxes an MP4 or QuickTime file starts with.
const FIRST_BOXES: &[&FourCc] = &[
    b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot", b"PICT", b"uuid", b"junk", b"meta", b"styp",
    b"sidx", b"moof",
];

/// `moov` as text, for messages.
pub fn name(kind: FourCc) -> String {
    kind.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' }).collect()
}

/// The source object with the bytes read counted (`media/info` reports them).
pub struct Source<'i, 'a> {
    input: &'i mut Input<'a>,
    pub size: u64,
    pub bytes_read: u64,
}

impl<'i, 'a> Source<'i, 'a> {
    pub fn new(input: &'i mut Input<'a>) -> Result<Self, MediaError> {
        let size = input.size().ok_or(MediaError::NoSize)?;
        Ok(Source { input, size, bytes_read: 0 })
    }

    /// Exactly `len` bytes at `offset`, in as many host calls as it takes.
    pub fn read_exact_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, MediaError> {
        let mut out = Vec::with_capacity(len);
        self.read_into(offset, len, &mut out)?;
        Ok(out)
    }

    /// Append exactly `len` bytes at `offset` to `out`.
    pub fn read_into(&mut self, offset: u64, len: usize, out: &mut Vec<u8>) -> Result<(), MediaError> {
        let mut done = 0usize;
        while done < len {
            let at = offset + done as u64;
            // One call reads at most 4 MiB: the wire carries a u32 and the
            // host may answer with less anyway.
            let want = (len - done).min(4 << 20);
            let chunk = self.input.read_at(at, want).map_err(MediaError::Read)?;
            if chunk.is_empty() {
                return Err(MediaError::Truncated { offset: at, size: self.size });
            }
            self.bytes_read += chunk.len() as u64;
            done += chunk.len();
            out.extend_from_slice(&chunk);
        }
        Ok(())
    }
}

/// One top-level box, located but not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopBox {
    pub kind: FourCc,
    pub offset: u64,
    pub header: u64,
    pub size: u64,
}

impl TopBox {
    pub fn payload_start(&self) -> u64 {
        self.offset + self.header
    }
    pub fn end(&self) -> u64 {
        self.offset + self.size
    }
}

/// The top-level boxes of the file, from their headers only.
pub fn scan_top(src: &mut Source) -> Result<Vec<TopBox>, MediaError> {
    let mut boxes = Vec::new();
    let mut offset = 0u64;
    while offset < src.size {
        if boxes.len() >= MAX_TOP_BOXES {
            return Err(MediaError::Corrupt(format!("more than {MAX_TOP_BOXES} top-level boxes")));
        }
        let left = src.size - offset;
        if left < 8 {
            // A few stray bytes at the end (some writers pad): ignored.
            break;
        }
        let head = src.read_exact_at(offset, left.min(16) as usize)?;
        // Known first boxes only: anything else is another format, whatever
        // its first bytes would say as a box size.
        if boxes.is_empty() && !FIRST_BOXES.iter().any(|k| head[4..8] == k[..]) {
            return Err(MediaError::NotMp4);
        }
        let (kind, header, size) = header_at(&head, 0, left)?;
        if &kind == b"moof" {
            return Err(MediaError::Fragmented);
        }
        boxes.push(TopBox { kind, offset, header, size });
        offset += size;
    }
    if boxes.is_empty() {
        return Err(MediaError::NotMp4);
    }
    Ok(boxes)
}

/// Parse the header at `at` of a box that may extend at most `room` bytes:
/// (type, header length, total size). Size 0 means "to the end of the room"
/// and size 1 a 64-bit size after the type.
fn header_at(bytes: &[u8], at: usize, room: u64) -> Result<(FourCc, u64, u64), MediaError> {
    let b = bytes.get(at..at + 8).ok_or(MediaError::Corrupt("a box header is cut short".into()))?;
    let size32 = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let kind = [b[4], b[5], b[6], b[7]];
    let (header, size) = match size32 {
        0 => (8, room),
        1 => {
            let l = bytes
                .get(at + 8..at + 16)
                .ok_or(MediaError::Corrupt(format!("box `{}` has a 64-bit size that is cut short", name(kind))))?;
            (16, u64::from_be_bytes([l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]]))
        }
        n => (8, u64::from(n)),
    };
    if size < header {
        return Err(MediaError::Corrupt(format!("box `{}` claims {size} bytes, less than its header", name(kind))));
    }
    if size > room {
        return Err(MediaError::PastEnd { kind: name(kind), size, room });
    }
    Ok((kind, header, size))
}

/// A box in memory: either its payload as it is, or (for the containers the
/// remux walks into) the bytes before its children and the children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: FourCc,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Leaf(Vec<u8>),
    /// `prefix`: a full box's version and flags, an `stsd`'s entry count, a
    /// sample entry's fixed fields.
    Tree {
        prefix: Vec<u8>,
        children: Vec<Node>,
    },
}

/// How many bytes precede the children of a container box, or `None` if the
/// remux keeps `kind` as opaque bytes.
fn container_prefix(kind: &FourCc, parent: Option<&FourCc>) -> Option<usize> {
    match kind {
        b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" | b"dinf" | b"mvex" | b"tref" => Some(0),
        // Version/flags + entry count before the sample entries.
        b"stsd" | b"dref" => Some(8),
        _ if parent == Some(b"stsd") => None, // sample entries: see `entry_prefix`
        _ => None,
    }
}

/// Parse a box payload known to hold child boxes from `at` on.
pub fn parse_children(bytes: &[u8], depth: usize, budget: &mut usize) -> Result<Vec<Node>, MediaError> {
    parse_children_in(bytes, None, depth, budget)
}

fn parse_children_in(
    bytes: &[u8],
    parent: Option<&FourCc>,
    depth: usize,
    budget: &mut usize,
) -> Result<Vec<Node>, MediaError> {
    if depth > MAX_DEPTH {
        return Err(MediaError::Corrupt(format!("boxes nest deeper than {MAX_DEPTH} levels")));
    }
    let mut children = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let left = bytes.len() - at;
        if left < 8 {
            // QuickTime ends some atom lists with a 32-bit zero terminator.
            if bytes[at..].iter().all(|&b| b == 0) {
                break;
            }
            return Err(MediaError::Corrupt("a box header is cut short".into()));
        }
        *budget = budget
            .checked_sub(1)
            .ok_or_else(|| MediaError::Corrupt(format!("more than {MAX_MOOV_BOXES} boxes in the index")))?;
        let (kind, header, size) = header_at(bytes, at, left as u64)?;
        // `size <= left`, which fits in usize.
        let payload = &bytes[at + header as usize..at + size as usize];
        let node = match container_prefix(&kind, parent) {
            Some(prefix) if payload.len() >= prefix => Node {
                kind,
                body: Body::Tree {
                    prefix: payload[..prefix].to_vec(),
                    children: parse_children_in(&payload[prefix..], Some(&kind), depth + 1, budget)?,
                },
            },
            Some(_) => {
                return Err(MediaError::Corrupt(format!("box `{}` is too short ({} bytes)", name(kind), size)));
            }
            None => Node { kind, body: Body::Leaf(payload.to_vec()) },
        };
        children.push(node);
        at += size as usize;
    }
    Ok(children)
}

/// Parse a whole `moov` box payload.
pub fn parse_moov(payload: &[u8]) -> Result<Node, MediaError> {
    let mut budget = MAX_MOOV_BOXES;
    let children = parse_children_in(payload, Some(b"moov"), 1, &mut budget)?;
    Ok(Node { kind: *b"moov", body: Body::Tree { prefix: Vec::new(), children } })
}

impl Node {
    pub fn leaf(kind: &FourCc, payload: Vec<u8>) -> Self {
        Node { kind: *kind, body: Body::Leaf(payload) }
    }

    pub fn children(&self) -> &[Node] {
        match &self.body {
            Body::Tree { children, .. } => children,
            Body::Leaf(_) => &[],
        }
    }

    pub fn children_mut(&mut self) -> Option<&mut Vec<Node>> {
        match &mut self.body {
            Body::Tree { children, .. } => Some(children),
            Body::Leaf(_) => None,
        }
    }

    /// The first child of this kind.
    pub fn child(&self, kind: &FourCc) -> Option<&Node> {
        self.children().iter().find(|n| &n.kind == kind)
    }

    pub fn child_mut(&mut self, kind: &FourCc) -> Option<&mut Node> {
        self.children_mut()?.iter_mut().find(|n| &n.kind == kind)
    }

    /// The first box at this path of kinds below this one.
    pub fn find(&self, path: &[&FourCc]) -> Option<&Node> {
        path.iter().try_fold(self, |node, kind| node.child(kind))
    }

    pub fn find_mut(&mut self, path: &[&FourCc]) -> Option<&mut Node> {
        let mut node = self;
        for kind in path {
            node = node.child_mut(kind)?;
        }
        Some(node)
    }

    /// A leaf's payload (empty for a tree).
    pub fn payload(&self) -> &[u8] {
        match &self.body {
            Body::Leaf(p) => p,
            Body::Tree { .. } => &[],
        }
    }

    /// The payload's length, children included.
    fn body_len(&self) -> u64 {
        match &self.body {
            Body::Leaf(p) => p.len() as u64,
            Body::Tree { prefix, children } => prefix.len() as u64 + children.iter().map(Node::size).sum::<u64>(),
        }
    }

    /// The size this box takes when written: a 64-bit header only when needed.
    pub fn size(&self) -> u64 {
        let body = self.body_len();
        if needs_large(body) { body + 16 } else { body + 8 }
    }

    /// Append the box, header included, to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let body = self.body_len();
        write_header(out, &self.kind, body);
        match &self.body {
            Body::Leaf(p) => out.extend_from_slice(p),
            Body::Tree { prefix, children } => {
                out.extend_from_slice(prefix);
                for child in children {
                    child.write(out);
                }
            }
        }
    }
}

/// Whether a box with `body` bytes of payload needs a 64-bit size.
pub fn needs_large(body: u64) -> bool {
    body + 8 > u64::from(u32::MAX)
}

/// A box header for `body` bytes of payload: 8 bytes, or 16 with a 64-bit size.
pub fn write_header(out: &mut Vec<u8>, kind: &FourCc, body: u64) {
    if needs_large(body) {
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(&(body + 16).to_be_bytes());
    } else {
        // Fits: checked just above.
        out.extend_from_slice(&((body + 8) as u32).to_be_bytes());
        out.extend_from_slice(kind);
    }
}

/// Big-endian readers over a payload that fail with a message, never panic.
pub struct Cursor<'b> {
    pub bytes: &'b [u8],
    pub at: usize,
    what: &'static str,
}

impl<'b> Cursor<'b> {
    pub fn new(bytes: &'b [u8], what: &'static str) -> Self {
        Cursor { bytes, at: 0, what }
    }

    pub fn take(&mut self, n: usize) -> Result<&'b [u8], MediaError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| MediaError::Corrupt(format!("box `{}` is cut short", self.what)))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, MediaError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, MediaError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Result<u32, MediaError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, MediaError> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
    pub fn fourcc(&mut self) -> Result<FourCc, MediaError> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    /// An entry count, checked against the bytes left for `entry` bytes each,
    /// before anything is allocated for it (a table claiming 2^32 entries).
    pub fn count(&mut self, entry: usize) -> Result<usize, MediaError> {
        let n = self.u32()? as usize;
        let left = self.bytes.len() - self.at;
        if n.checked_mul(entry).is_none_or(|need| need > left) {
            return Err(MediaError::Corrupt(format!(
                "box `{}` claims {n} entries but holds only {left} bytes",
                self.what
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_headers_round_trip() {
        // An `mdat` of 5 GiB needs the 64-bit size; the header says so.
        let body = 5u64 << 30;
        assert!(needs_large(body) && !needs_large(u64::from(u32::MAX) - 8));
        let mut head = Vec::new();
        write_header(&mut head, b"mdat", body);
        assert_eq!(head.len(), 16);
        let (kind, header, size) = header_at(&head, 0, u64::MAX).unwrap();
        assert_eq!((&kind, header, size), (b"mdat", 16, body + 16));
        // Size 0: to the end of the container.
        let (_, header, size) = header_at(&[0, 0, 0, 0, b'm', b'd', b'a', b't'], 0, 1000).unwrap();
        assert_eq!((header, size), (8, 1000));
    }

    #[test]
    fn trees_write_back_byte_for_byte() {
        let leaf = |kind: &FourCc, n: u8| {
            let mut v = Vec::new();
            Node::leaf(kind, vec![n; 5]).write(&mut v);
            v
        };
        let mut stbl = Vec::new();
        stbl.extend(leaf(b"stts", 1));
        stbl.extend(leaf(b"zzzz", 2)); // unknown: kept as it is
        let mut moov = Vec::new();
        write_header(&mut moov, b"stbl", stbl.len() as u64);
        moov.extend(&stbl);
        let tree = parse_moov(&moov).unwrap();
        let mut back = Vec::new();
        for child in tree.children() {
            child.write(&mut back);
        }
        assert_eq!(back, moov);
    }
}
