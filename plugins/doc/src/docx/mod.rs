//! Reading a DOCX: the zip container, the XML parts, and the document model.

use std::collections::HashMap;

use part::parse_part;
use std::io::{Cursor, Read};
use styles::{Numbering, parse_numbering, parse_rels, parse_styles, resolve};

use crate::MAX_PART;

pub(crate) mod body;
mod meta;
pub(crate) mod part;
mod styles;
pub(crate) mod xml;

pub use meta::Meta;
pub(crate) use meta::parse_core;

/// A document: its body in order, and what is laid out around it.
#[derive(Debug, Default)]
pub struct Document {
    pub blocks: Vec<Block>,
    /// Footnotes by the index an [`Inline::Footnote`] names.
    pub footnotes: Vec<Vec<Block>>,
    /// The default page header and footer (of the last section).
    pub header: Vec<Block>,
    pub footer: Vec<Block>,
    /// Images by the index an [`Inline::Image`] names.
    pub images: Vec<Image>,
    pub meta: Meta,
}

/// An image of the document, as stored in the container.
#[derive(Debug, Clone)]
pub struct Image {
    /// Empty for an image the archive lacks (a linked one).
    pub bytes: Vec<u8>,
}

/// What a run holds besides text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Inline {
    /// An image at its size in points.
    Image {
        index: usize,
        width_pt: f32,
        height_pt: f32,
    },
    Footnote(usize),
    PageBreak,
    /// The `PAGE` and `NUMPAGES` fields.
    PageNumber,
    PageCount,
}

#[derive(Debug)]
pub enum Block {
    Para(Para),
    Table(Table),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParaKind {
    #[default]
    Normal,
    /// Level 1..=6.
    Heading(u8),
    /// Nesting level from 0, and the item's number for ordered lists.
    ListItem { level: u8, number: Option<u32> },
    /// Preformatted text: a code paragraph style (`Code`, `HTML Preformatted`,
    /// `Source Code`, …), a paragraph style in a monospace font, or every run
    /// in a monospace font.
    Code,
    /// A block quote: paragraph style `Quote`, `Intense Quote` or `Block Text`.
    Quote,
}

#[derive(Debug, Default)]
pub struct Para {
    pub kind: ParaKind,
    pub runs: Vec<Run>,
    /// `w:pageBreakBefore`.
    pub break_before: bool,
    // Raw properties, resolved into `kind` once the whole body is read.
    style: Option<String>,
    num_id: Option<String>,
    ilvl: Option<u8>,
    outline: Option<u8>,
}

impl Para {
    pub fn new(kind: ParaKind, runs: Vec<Run>) -> Para {
        Para { kind, runs, ..Para::default() }
    }

    /// The text of all runs.
    pub fn text(&self) -> String {
        self.runs.iter().map(|r| r.text.as_str()).collect()
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Format {
    pub bold: bool,
    pub italic: bool,
    pub strike: bool,
    pub underline: bool,
    pub link: Option<String>,
    /// In a monospace font (direct or through the character style).
    pub mono: bool,
}

#[derive(Debug, Default)]
pub struct Run {
    pub text: String,
    pub format: Format,
    /// An image, a footnote mark, a break or a field, in place of text.
    pub inline: Option<Inline>,
}

#[derive(Debug, Default)]
pub struct Table {
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Debug)]
pub struct Cell {
    pub paras: Vec<Para>,
    /// Grid columns covered (`w:gridSpan`).
    pub span: u32,
    /// `w:vMerge`: this cell starts a vertical merge, or continues the one above.
    pub merge: VMerge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VMerge {
    #[default]
    None,
    Restart,
    Continue,
}

const NS_W: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const NS_W_STRICT: &str = "http://purl.oclc.org/ooxml/wordprocessingml/main";
const NS_MC: &str = "http://schemas.openxmlformats.org/markup-compatibility/2006";

/// Largest image read from a document, compressed, and most pixels decoded
/// for one image and for all of them: a hostile document fails fast here
/// instead of exhausting the task's memory in the renderer.
pub const MAX_IMAGE_BYTES: u64 = 32 << 20;
pub const MAX_IMAGE_PIXELS: u64 = 40_000_000;
pub const MAX_TOTAL_PIXELS: u64 = 120_000_000;
/// Most images in one document.
pub const MAX_IMAGES: usize = 2_000;

pub(crate) type Zip = zip::ZipArchive<Cursor<Vec<u8>>>;

/// Read a DOCX held in memory, with its images (for layout) or without (for
/// text). Errors are messages for `unsupported-input`.
pub fn read_with(bytes: Vec<u8>, with_images: bool) -> Result<Document, String> {
    if bytes.is_empty() {
        return Err("the object is empty, not a DOCX".into());
    }
    if !bytes.starts_with(b"PK") {
        return Err("not a DOCX: not a zip archive (no `PK` signature)".into());
    }
    let mut zip = Zip::new(Cursor::new(bytes)).map_err(|e| format!("not a DOCX: corrupt zip archive: {e}"))?;
    let document = match part(&mut zip, "word/document.xml")? {
        Some(xml) => xml,
        None => return Err("not a DOCX: the zip archive has no word/document.xml".into()),
    };
    let styles = match part(&mut zip, "word/styles.xml")? {
        Some(xml) => parse_styles(&xml)?,
        None => HashMap::new(),
    };
    let numbering = match part(&mut zip, "word/numbering.xml")? {
        Some(xml) => parse_numbering(&xml)?,
        None => Numbering::default(),
    };
    let rels = rels_of(&mut zip, "word/document.xml")?;
    let body = parse_part("word/document.xml", &document, &rels, &styles, body::Refs::default())?;
    let mut refs = body.refs;
    let mut doc = Document { blocks: body.blocks, ..Document::default() };

    // Footnotes, in the order the body refers to them.
    if !refs.footnotes.is_empty()
        && let Some(xml) = part(&mut zip, "word/footnotes.xml")?
    {
        let note_rels = rels_of(&mut zip, "word/footnotes.xml")?;
        let mut read = parse_part("word/footnotes.xml", &xml, &note_rels, &styles, refs)?;
        refs = read.refs;
        doc.footnotes = refs.footnotes.iter().map(|id| read.notes.remove(id).unwrap_or_default()).collect();
    }
    // The default header and footer.
    for which in [true, false] {
        let id = if which { refs.header.clone() } else { refs.footer.clone() };
        let Some(target) = id.and_then(|id| rels.get(&id).cloned()) else { continue };
        let path = part::resolve_target("word/", &target);
        let Some(xml) = part(&mut zip, &path)? else { continue };
        let own_rels = rels_of(&mut zip, &path)?;
        let read = parse_part(&path, &xml, &own_rels, &styles, refs)?;
        refs = read.refs;
        if which {
            doc.header = read.blocks;
        } else {
            doc.footer = read.blocks;
        }
    }
    if with_images {
        doc.images = read_images(&mut zip, &refs.images)?;
    }
    doc.meta = match part(&mut zip, "docProps/core.xml")? {
        Some(xml) => meta::parse_core(&xml)?,
        None => Meta::default(),
    };
    resolve(&mut doc, &styles, &numbering);
    Ok(doc)
}

/// The relationships of a part (`word/_rels/document.xml.rels` for `word/document.xml`).
pub(crate) fn rels_of(zip: &mut Zip, part_path: &str) -> Result<HashMap<String, String>, String> {
    let (dir, file) = part_path.rsplit_once('/').unwrap_or(("", part_path));
    let path = format!("{dir}/_rels/{file}.rels");
    match part(zip, &path)? {
        Some(xml) => parse_rels(&path, &xml),
        None => Ok(HashMap::new()),
    }
}

/// The images the document shows, checked against the limits before anything
/// decodes them. An image the archive lacks (a linked one) is left empty.
pub(crate) fn read_images(zip: &mut Zip, paths: &[String]) -> Result<Vec<Image>, String> {
    if paths.len() > MAX_IMAGES {
        return Err(format!("the document shows {} images, over the limit of {MAX_IMAGES}", paths.len()));
    }
    let mut total_pixels = 0u64;
    let mut images = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = match zip.by_name(path) {
            Ok(file) => {
                if file.size() > MAX_IMAGE_BYTES {
                    return Err(format!(
                        "the image {path} is {} bytes, over the limit of {MAX_IMAGE_BYTES} bytes",
                        file.size()
                    ));
                }
                let mut bytes = Vec::new();
                file.take(MAX_IMAGE_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("cannot read {path}: {e}"))?;
                bytes
            }
            Err(_) => Vec::new(),
        };
        if !bytes.is_empty() {
            let size = imagesize::blob_size(&bytes).map_err(|e| format!("the image {path} cannot be read: {e}"))?;
            let pixels = size.width as u64 * size.height as u64;
            if pixels > MAX_IMAGE_PIXELS {
                return Err(format!(
                    "the image {path} is {}×{} pixels ({:.0} MP), over the limit of {} MP",
                    size.width,
                    size.height,
                    pixels as f64 / 1e6,
                    MAX_IMAGE_PIXELS / 1_000_000
                ));
            }
            total_pixels += pixels;
            if total_pixels > MAX_TOTAL_PIXELS {
                return Err(format!(
                    "the document's images hold more than {} MP together, over the limit",
                    MAX_TOTAL_PIXELS / 1_000_000
                ));
            }
        }
        images.push(Image { bytes });
    }
    Ok(images)
}

/// One XML part as text, or `None` if the archive lacks it. The size is
/// capped whatever the zip headers claim.
pub(crate) fn part(zip: &mut Zip, name: &str) -> Result<Option<String>, String> {
    let file = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(format!("cannot read {name} from the DOCX: {e}")),
    };
    if file.size() > MAX_PART {
        return Err(format!("{name} is {} bytes uncompressed, over the limit of {MAX_PART} bytes", file.size()));
    }
    let mut bytes = Vec::with_capacity(file.size() as usize);
    file.take(MAX_PART + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot decompress {name}: {e}"))?;
    if bytes.len() as u64 > MAX_PART {
        return Err(format!("{name} decompresses to more than {MAX_PART} bytes"));
    }
    // UTF-8 (with or without BOM) is what Word writes; UTF-16 is allowed by XML.
    let text = if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        let le = bytes[0] == 0xff;
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| if le { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) })
            .collect();
        String::from_utf16(&units).map_err(|_| format!("{name} is not valid UTF-16"))?
    } else {
        let s = String::from_utf8(bytes)
            .map_err(|e| format!("{name} is not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()))?;
        match s.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => s,
        }
    };
    // The XML declaration may name UTF-16 while we already decoded it: blank
    // it out (same length, so that lines and columns in errors stay true).
    Ok(Some(blank_declaration(text)))
}

fn blank_declaration(mut text: String) -> String {
    if text.starts_with("<?xml")
        && let Some(end) = text.find("?>")
    {
        let blank: String = text[..end + 2].chars().map(|c| if c == '\n' || c == '\r' { c } else { ' ' }).collect();
        text.replace_range(..end + 2, &blank);
    }
    text
}
