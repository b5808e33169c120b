//! Reading a DOCX: the zip container, the XML parts, and the document model.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use crate::MAX_PART;

/// The document body, in order.
#[derive(Debug, Default)]
pub struct Document {
    pub blocks: Vec<Block>,
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
    // Raw properties, resolved into `kind` once the whole body is read.
    style: Option<String>,
    num_id: Option<String>,
    ilvl: Option<u8>,
    outline: Option<u8>,
}

impl Para {
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
    pub link: Option<String>,
    /// In a monospace font (direct or through the character style).
    pub mono: bool,
}

#[derive(Debug, Default)]
pub struct Run {
    pub text: String,
    pub format: Format,
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
}

const NS_W: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const NS_W_STRICT: &str = "http://purl.oclc.org/ooxml/wordprocessingml/main";
const NS_MC: &str = "http://schemas.openxmlformats.org/markup-compatibility/2006";

/// Read a DOCX held in memory. Errors are messages for `unsupported-input`.
pub fn read(bytes: Vec<u8>) -> Result<Document, String> {
    if bytes.is_empty() {
        return Err("the object is empty, not a DOCX".into());
    }
    if !bytes.starts_with(b"PK") {
        return Err("not a DOCX: not a zip archive (no `PK` signature)".into());
    }
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a DOCX: corrupt zip archive: {e}"))?;
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
    let rels = match part(&mut zip, "word/_rels/document.xml.rels")? {
        Some(xml) => parse_rels(&xml)?,
        None => HashMap::new(),
    };
    let mut doc = parse_document(&document, &rels, &styles)?;
    resolve(&mut doc, &styles, &numbering);
    Ok(doc)
}

/// One XML part as text, or `None` if the archive lacks it. The size is
/// capped whatever the zip headers claim.
fn part(zip: &mut zip::ZipArchive<Cursor<Vec<u8>>>, name: &str) -> Result<Option<String>, String> {
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

/// Namespace class of an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    W,
    Mc,
    Other,
}

fn ns_of(r: &ResolveResult<'_>) -> Ns {
    match r {
        ResolveResult::Bound(ns) => {
            let uri: &str = ns.as_ref();
            if uri == NS_W || uri == NS_W_STRICT {
                Ns::W
            } else if uri == NS_MC {
                Ns::Mc
            } else {
                Ns::Other
            }
        }
        _ => Ns::Other,
    }
}

/// The value of the attribute with this local name (any prefix).
fn attr(e: &BytesStart<'_>, local: &str) -> Option<String> {
    for a in e.attributes().with_checks(false).flatten() {
        let key = a.key.local_name();
        let k: &str = key.as_ref();
        if k == local {
            return a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned());
        }
    }
    None
}

fn local(e: &BytesStart<'_>) -> String {
    let name = e.local_name();
    let s: &str = name.as_ref();
    s.to_string()
}

/// Line and column (from 1; the column in characters) of a byte offset.
fn line_col(xml: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(xml.len());
    while !xml.is_char_boundary(at) {
        at -= 1;
    }
    let before = &xml[..at];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    (line, column)
}

/// The `unsupported-input` message for XML that is not well-formed.
fn malformed(part: &str, xml: &str, at: usize, what: impl std::fmt::Display) -> String {
    let (line, column) = line_col(xml, at);
    format!("malformed XML in {part} at line {line}, column {column}: {what}")
}

/// Read a part as one well-formed XML document, handing each event to `f`
/// with its element's namespace. Whatever is not well-formed stops the
/// reading with an error naming the part and the line and column: a syntax
/// error, an end tag that does not match, an element still open at the end
/// (a truncated part), no root element or more than one, text outside the
/// root, an undefined entity, a malformed or repeated attribute, or an
/// undeclared namespace prefix.
fn read_xml<'x>(
    part: &str,
    xml: &'x str,
    mut f: impl FnMut(&ResolveResult<'_>, Event<'x>) -> Result<(), String>,
) -> Result<(), String> {
    let mut reader = NsReader::from_str(xml);
    // Open elements: name and where each starts.
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut root_done = false;
    loop {
        let pos = reader.buffer_position() as usize;
        let (resolved, event) = match reader.read_resolved_event() {
            Ok(r) => r,
            Err(e) => {
                let mut what = e.to_string();
                if what.contains("end of input") {
                    what.push_str(" (the part is cut short or damaged)");
                }
                return Err(malformed(part, xml, reader.error_position() as usize, what));
            }
        };
        let outside = open.is_empty();
        match &event {
            Event::Eof => {
                if let Some((name, at)) = open.last() {
                    let (line, column) = line_col(xml, *at);
                    let what = format!(
                        "the part ends inside the element `{name}` opened at line {line}, column {column} (it is cut short or damaged)"
                    );
                    return Err(malformed(part, xml, xml.len(), what));
                }
                if !root_done {
                    return Err(malformed(part, xml, xml.len(), "no root element (the part is empty)"));
                }
                return Ok(());
            }
            Event::Start(e) | Event::Empty(e) => {
                let name: String = e.name().as_ref().to_owned();
                if outside && root_done {
                    return Err(malformed(part, xml, pos, format!("a second root element `{name}`")));
                }
                if let ResolveResult::Unknown(prefix) = &resolved {
                    return Err(malformed(
                        part,
                        xml,
                        pos,
                        format!("undeclared namespace prefix `{prefix}` in `{name}`"),
                    ));
                }
                for a in e.attributes() {
                    if let Err(err) = a {
                        return Err(malformed(part, xml, pos, format!("in the attributes of `{name}`: {err}")));
                    }
                }
                if matches!(event, Event::Start(_)) {
                    open.push((name, pos));
                } else if outside {
                    root_done = true;
                }
            }
            Event::End(_) => {
                open.pop();
                if open.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(t) if outside && !t.chars().all(|c| c.is_ascii_whitespace()) => {
                return Err(malformed(part, xml, pos, "text outside the root element"));
            }
            Event::CData(_) if outside => return Err(malformed(part, xml, pos, "CDATA outside the root element")),
            Event::GeneralRef(r) => {
                if outside {
                    return Err(malformed(part, xml, pos, "text outside the root element"));
                }
                let name = r.xml10_content();
                if reference(&name).is_none() {
                    return Err(malformed(
                        part,
                        xml,
                        pos,
                        format!("undefined entity or bad character reference `&{name};`"),
                    ));
                }
            }
            _ => {}
        }
        f(&resolved, event)?;
    }
}

/// `w:val` of an on/off property: absent or true-ish means on.
fn on_off(e: &BytesStart<'_>) -> bool {
    !matches!(attr(e, "val").as_deref(), Some("0" | "false" | "off" | "none"))
}

/// Text of a general reference (`&amp;`, `&#169;`): quick-xml reports them apart from text.
fn reference(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse::<u32>().ok()?,
            };
            char::from_u32(code).filter(|c| *c != '\0')
        }
    }
}

// ---------------------------------------------------------------- document.xml

enum Container {
    Para(ParaBuilder),
    Table(TableBuilder),
}

#[derive(Default)]
struct ParaBuilder {
    para: Para,
    /// Blocks met inside this paragraph (text boxes), written after it.
    after: Vec<Block>,
}

#[derive(Default)]
struct TableBuilder {
    table: Table,
    row: Option<Vec<Cell>>,
    cell: Option<Cell>,
}

impl TableBuilder {
    fn cell_mut(&mut self) -> &mut Cell {
        self.cell.get_or_insert_with(|| Cell { paras: Vec::new(), span: 1 })
    }
}

/// Run properties as written: `None` where the run says nothing.
#[derive(Debug, Default, Clone, Copy)]
struct RunProps {
    bold: Option<bool>,
    italic: Option<bool>,
    strike: Option<bool>,
    mono: Option<bool>,
}

impl RunProps {
    /// These, falling back to `under` where unset.
    fn or(self, under: RunProps) -> RunProps {
        RunProps {
            bold: self.bold.or(under.bold),
            italic: self.italic.or(under.italic),
            strike: self.strike.or(under.strike),
            mono: self.mono.or(under.mono),
        }
    }
}

#[derive(Default)]
struct DocParser<'a> {
    rels: Option<&'a HashMap<String, String>>,
    styles: Option<&'a HashMap<String, StyleInfo>>,
    /// The run's direct properties, and those of its character style (`w:rStyle`).
    run_direct: RunProps,
    run_styled: RunProps,
    blocks: Vec<Block>,
    stack: Vec<Container>,
    links: Vec<Option<String>>,
    in_run: bool,
    run_format: Format,
    in_rpr: bool,
    in_ppr: bool,
    in_numpr: bool,
    in_tcpr: bool,
    in_text: bool,
}

impl DocParser<'_> {
    fn para(&mut self) -> Option<&mut ParaBuilder> {
        match self.stack.last_mut() {
            Some(Container::Para(p)) => Some(p),
            _ => None,
        }
    }

    fn table(&mut self) -> Option<&mut TableBuilder> {
        match self.stack.last_mut() {
            Some(Container::Table(t)) => Some(t),
            _ => None,
        }
    }

    fn push_text(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        let in_run = self.in_run;
        let format = self.run_format.clone();
        if let Some(p) = self.para() {
            match p.para.runs.last_mut() {
                Some(run) if in_run && run.format == format => run.text.push_str(s),
                _ => p.para.runs.push(Run { text: s.to_string(), format }),
            }
        }
    }

    /// Place a finished block in the innermost open container, or the body.
    fn place(&mut self, block: Block) {
        match self.stack.last_mut() {
            Some(Container::Para(p)) => p.after.push(block),
            Some(Container::Table(t)) => match block {
                Block::Para(para) => t.cell_mut().paras.push(para),
                // A nested table is flattened into the cell, one paragraph per row.
                Block::Table(inner) => {
                    for row in inner.rows {
                        let mut para = Para::default();
                        for (i, cell) in row.into_iter().enumerate() {
                            let text = cell.paras.iter().map(Para::text).collect::<Vec<_>>().join(" ");
                            let text = if i > 0 { format!(" | {text}") } else { text };
                            para.runs.push(Run { text, format: Format::default() });
                        }
                        t.cell_mut().paras.push(para);
                    }
                }
            },
            None => self.blocks.push(block),
        }
    }

    fn start(&mut self, ns: Ns, e: &BytesStart<'_>, empty: bool) {
        if ns != Ns::W {
            return;
        }
        match local(e).as_str() {
            "p" => {
                self.stack.push(Container::Para(ParaBuilder::default()));
                if empty {
                    self.end_para();
                }
            }
            "pPr" if !empty => self.in_ppr = true,
            "pStyle" if self.in_ppr => {
                let v = attr(e, "val");
                if let Some(p) = self.para() {
                    p.para.style = v;
                }
            }
            "numPr" if self.in_ppr && !empty => self.in_numpr = true,
            "numId" if self.in_numpr => {
                let v = attr(e, "val");
                if let Some(p) = self.para() {
                    p.para.num_id = v;
                }
            }
            "ilvl" if self.in_numpr => {
                let v = attr(e, "val").and_then(|v| v.parse::<u8>().ok());
                if let Some(p) = self.para() {
                    p.para.ilvl = v;
                }
            }
            "outlineLvl" if self.in_ppr => {
                let v = attr(e, "val").and_then(|v| v.parse::<u8>().ok());
                if let Some(p) = self.para() {
                    p.para.outline = v;
                }
            }
            "r" if !empty => {
                self.in_run = true;
                self.run_direct = RunProps::default();
                self.run_styled = RunProps::default();
                self.run_format = Format { link: self.links.last().cloned().flatten(), ..Format::default() };
                self.apply_run_props();
                // Start a new run so formatting changes split runs.
                let format = self.run_format.clone();
                if let Some(p) = self.para() {
                    p.para.runs.push(Run { text: String::new(), format });
                }
            }
            "rPr" if self.in_run && !self.in_ppr && !empty => self.in_rpr = true,
            "rStyle" if self.in_rpr => {
                let styled = attr(e, "val").and_then(|id| Some(style_run_props(self.styles?, &id)));
                self.run_styled = styled.unwrap_or_default();
                self.apply_run_props();
            }
            "b" if self.in_rpr => {
                self.run_direct.bold = Some(on_off(e));
                self.apply_run_props();
            }
            "i" if self.in_rpr => {
                self.run_direct.italic = Some(on_off(e));
                self.apply_run_props();
            }
            "strike" | "dstrike" if self.in_rpr => {
                self.run_direct.strike = Some(on_off(e));
                self.apply_run_props();
            }
            "rFonts" if self.in_rpr => {
                self.run_direct.mono = fonts_mono(e);
                self.apply_run_props();
            }
            "t" if self.in_run && !empty => self.in_text = true,
            "tab" if self.in_run && !self.in_rpr => self.push_text("\t"),
            "br" | "cr"
                if self.in_run
                    && !self.in_rpr
                    && attr(e, "type").as_deref() != Some("page")
                    && attr(e, "type").as_deref() != Some("column") =>
            {
                self.push_text("\n");
            }
            "noBreakHyphen" if self.in_run => self.push_text("-"),
            "hyperlink" if !empty => {
                // `r:id` names the target (which may carry its own `#fragment`);
                // `w:anchor` is a bookmark: in this document, or in the target.
                let anchor = attr(e, "anchor").filter(|a| !a.is_empty());
                let target = match (attr(e, "id").and_then(|id| self.rels.and_then(|r| r.get(&id)).cloned()), anchor) {
                    (Some(url), Some(a)) if !url.contains('#') => Some(format!("{url}#{a}")),
                    (Some(url), _) => Some(url),
                    (None, Some(a)) => Some(format!("#{a}")),
                    (None, None) => None,
                };
                self.links.push(target);
            }
            "tbl" if !empty => self.stack.push(Container::Table(TableBuilder::default())),
            "tr" if !empty => {
                if let Some(t) = self.table() {
                    t.row = Some(Vec::new());
                }
            }
            "tc" if !empty => {
                if let Some(t) = self.table() {
                    t.cell = Some(Cell { paras: Vec::new(), span: 1 });
                }
            }
            "tcPr" if !empty => self.in_tcpr = true,
            "gridSpan" if self.in_tcpr => {
                let span = attr(e, "val").and_then(|v| v.parse::<u32>().ok()).unwrap_or(1).clamp(1, 64);
                if let Some(t) = self.table() {
                    t.cell_mut().span = span;
                }
            }
            _ => {}
        }
    }

    /// The run's format from its direct properties over its character style's.
    fn apply_run_props(&mut self) {
        let props = self.run_direct.or(self.run_styled);
        self.run_format.bold = props.bold.unwrap_or(false);
        self.run_format.italic = props.italic.unwrap_or(false);
        self.run_format.strike = props.strike.unwrap_or(false);
        self.run_format.mono = match props.mono {
            Some(mono) => mono,
            // The paragraph style's font.
            None => {
                let style = self.para().and_then(|p| p.para.style.clone());
                match (self.styles, style) {
                    (Some(styles), Some(id)) => style_run_props(styles, &id).mono.unwrap_or(false),
                    _ => false,
                }
            }
        };
        let format = self.run_format.clone();
        if let Some(p) = self.para()
            && let Some(run) = p.para.runs.last_mut()
            && run.text.is_empty()
        {
            run.format = format;
        }
    }

    fn end(&mut self, ns: Ns, name: &str) {
        if ns != Ns::W {
            return;
        }
        match name {
            "p" => self.end_para(),
            "pPr" => self.in_ppr = false,
            "numPr" => self.in_numpr = false,
            "r" => {
                self.in_run = false;
                self.in_text = false;
            }
            "rPr" => self.in_rpr = false,
            "t" => self.in_text = false,
            "hyperlink" => {
                self.links.pop();
            }
            "tbl" => {
                if matches!(self.stack.last(), Some(Container::Table(_)))
                    && let Some(Container::Table(mut t)) = self.stack.pop()
                {
                    end_row(&mut t);
                    self.place(Block::Table(t.table));
                }
            }
            "tr" => {
                if let Some(t) = self.table() {
                    end_row(t);
                }
            }
            "tc" => {
                if let Some(t) = self.table() {
                    end_cell(t);
                }
            }
            "tcPr" => self.in_tcpr = false,
            _ => {}
        }
    }

    fn end_para(&mut self) {
        if !matches!(self.stack.last(), Some(Container::Para(_))) {
            return;
        }
        if let Some(Container::Para(mut p)) = self.stack.pop() {
            p.para.runs.retain(|r| !r.text.is_empty());
            self.in_run = false;
            self.in_text = false;
            self.in_ppr = false;
            self.in_numpr = false;
            let after = std::mem::take(&mut p.after);
            self.place(Block::Para(p.para));
            for block in after {
                self.place(block);
            }
        }
    }

    /// The blocks read (a well-formed part leaves nothing open).
    fn finish(mut self) -> Vec<Block> {
        while let Some(top) = self.stack.last() {
            match top {
                Container::Para(_) => self.end_para(),
                Container::Table(_) => self.end(Ns::W, "tbl"),
            }
        }
        self.blocks
    }
}

fn end_cell(t: &mut TableBuilder) {
    if let Some(cell) = t.cell.take() {
        t.row.get_or_insert_with(Vec::new).push(cell);
    }
}

fn end_row(t: &mut TableBuilder) {
    end_cell(t);
    if let Some(row) = t.row.take() {
        t.table.rows.push(row);
    }
}

/// Elements whose whole content is left out: deleted text, the fallback copy
/// of alternate content, property-change history and content-control chrome.
fn skipped(ns: Ns, name: &str) -> bool {
    match ns {
        Ns::W => matches!(
            name,
            "del"
                | "moveFrom"
                | "pPrChange"
                | "rPrChange"
                | "sdtPr"
                | "sdtEndPr"
                | "tblPr"
                | "tblGrid"
                | "trPr"
                | "instrText"
        ),
        Ns::Mc => name == "Fallback",
        Ns::Other => false,
    }
}

fn parse_document(
    xml: &str,
    rels: &HashMap<String, String>,
    styles: &HashMap<String, StyleInfo>,
) -> Result<Document, String> {
    let mut p = DocParser { rels: Some(rels), styles: Some(styles), ..Default::default() };
    let mut skip_depth = 0usize;
    read_xml("word/document.xml", xml, |resolved, event| {
        let ns = ns_of(resolved);
        match event {
            Event::Start(e) => {
                if skip_depth > 0 {
                    skip_depth += 1;
                } else if skipped(ns, &local(&e)) {
                    skip_depth = 1;
                } else {
                    p.start(ns, &e, false);
                }
            }
            Event::Empty(e) if skip_depth == 0 && !skipped(ns, &local(&e)) => {
                p.start(ns, &e, true);
            }
            Event::End(e) => {
                if skip_depth > 0 {
                    skip_depth -= 1;
                } else {
                    let name = e.local_name();
                    let name: &str = name.as_ref();
                    p.end(ns, name);
                }
            }
            Event::Text(t) if skip_depth == 0 && p.in_text => {
                let s = t.xml10_content();
                p.push_text(&s);
            }
            Event::CData(t) if skip_depth == 0 && p.in_text => {
                let s = t.xml10_content();
                p.push_text(&s);
            }
            Event::GeneralRef(r) if skip_depth == 0 && p.in_text => {
                let name = r.xml10_content();
                if let Some(c) = reference(&name) {
                    p.push_text(c.encode_utf8(&mut [0; 4]));
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(Document { blocks: p.finish() })
}

// ---------------------------------------------------------------- styles, numbering, relationships

#[derive(Debug, Default, Clone)]
struct StyleInfo {
    name: Option<String>,
    based_on: Option<String>,
    outline: Option<u8>,
    num_id: Option<String>,
    ilvl: Option<u8>,
    /// Run properties of the style's `w:rPr`.
    run: RunProps,
}

/// Whether `w:rFonts` names a monospace font (`None` when it names none).
fn fonts_mono(e: &BytesStart<'_>) -> Option<bool> {
    let font = attr(e, "ascii").or_else(|| attr(e, "hAnsi"))?;
    Some(is_mono_font(&font))
}

/// Monospace fonts by name: the usual families of code and terminals.
fn is_mono_font(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "mono",
        "courier",
        "consolas",
        "menlo",
        "monaco",
        "lucida console",
        "lucida sans typewriter",
        "inconsolata",
        "code",
        "andale",
        "fixedsys",
        "terminal",
        "typewriter",
        "ocr a",
        "letter gothic",
        "hack",
    ]
    .iter()
    .any(|f| n.contains(f))
}

/// The style and its ancestors (`basedOn`), loops cut.
fn style_chain<'s>(styles: &'s HashMap<String, StyleInfo>, id: &str) -> Vec<(&'s str, &'s StyleInfo)> {
    let mut out: Vec<(&str, &StyleInfo)> = Vec::new();
    let mut cur = Some(id);
    while let Some(id) = cur {
        if out.len() >= 16 || out.iter().any(|(seen, _)| *seen == id) {
            break;
        }
        match styles.get_key_value(id) {
            Some((k, info)) => {
                out.push((k.as_str(), info));
                cur = info.based_on.as_deref();
            }
            None => break,
        }
    }
    out
}

/// The run properties a style gives, through its `basedOn` ancestors.
fn style_run_props(styles: &HashMap<String, StyleInfo>, id: &str) -> RunProps {
    style_chain(styles, id).iter().fold(RunProps::default(), |acc, (_, info)| acc.or(info.run))
}

/// A style's id or name reduced to compare: lower case, letters and digits only.
fn style_key(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// Paragraph styles of preformatted text, by id or name.
fn is_code_style(key: &str) -> bool {
    key.starts_with("code")
        || matches!(
            key,
            "sourcecode" | "htmlpreformatted" | "preformatted" | "preformattedtext" | "macrotext" | "verbatim"
        )
}

/// Paragraph styles of block quotes, by id or name.
fn is_quote_style(key: &str) -> bool {
    matches!(key, "quote" | "intensequote" | "blocktext" | "blockquote" | "quotation" | "quotations")
}

/// Walk the simple parts (styles, numbering, rels) element by element: only
/// names, attributes and nesting matter there.
fn walk(part: &str, xml: &str, mut f: impl FnMut(&[String], &BytesStart<'_>)) -> Result<(), String> {
    let mut path: Vec<String> = Vec::new();
    read_xml(part, xml, |_, event| {
        match event {
            Event::Start(e) => {
                f(&path, &e);
                path.push(local(&e));
            }
            Event::Empty(e) => f(&path, &e),
            Event::End(_) => {
                path.pop();
            }
            _ => {}
        }
        Ok(())
    })
}

fn parse_styles(xml: &str) -> Result<HashMap<String, StyleInfo>, String> {
    let mut styles: HashMap<String, StyleInfo> = HashMap::new();
    let mut current: Option<String> = None;
    walk("word/styles.xml", xml, |path, e| {
        let name = local(e);
        if name == "style" {
            current = attr(e, "styleId");
            if let Some(id) = &current {
                styles.entry(id.clone()).or_default();
            }
            return;
        }
        let Some(id) = &current else { return };
        if !path.iter().any(|p| p == "style") {
            return;
        }
        let Some(info) = styles.get_mut(id) else { return };
        let parent = path.last().map(String::as_str);
        // The style's own `w:rPr` (not that of a table style's parts).
        let in_style_rpr = parent == Some("rPr") && path.iter().rev().nth(1).map(String::as_str) == Some("style");
        match (parent, name.as_str()) {
            (_, "b") if in_style_rpr => info.run.bold = Some(on_off(e)),
            (_, "i") if in_style_rpr => info.run.italic = Some(on_off(e)),
            (_, "strike" | "dstrike") if in_style_rpr => info.run.strike = Some(on_off(e)),
            (_, "rFonts") if in_style_rpr => info.run.mono = fonts_mono(e),
            (Some("style"), "name") => info.name = attr(e, "val"),
            (Some("style"), "basedOn") => info.based_on = attr(e, "val"),
            (Some("pPr"), "outlineLvl") => info.outline = attr(e, "val").and_then(|v| v.parse().ok()),
            (Some("numPr"), "numId") => info.num_id = attr(e, "val"),
            (Some("numPr"), "ilvl") => info.ilvl = attr(e, "val").and_then(|v| v.parse().ok()),
            _ => {}
        }
    })?;
    Ok(styles)
}

#[derive(Debug, Default)]
struct Numbering {
    /// `w:num` id → abstract numbering id.
    nums: HashMap<String, String>,
    /// (abstract id, level) → (ordered, start).
    levels: HashMap<(String, u8), (bool, u32)>,
    /// (num id, level) → start override.
    overrides: HashMap<(String, u8), u32>,
}

fn parse_numbering(xml: &str) -> Result<Numbering, String> {
    let mut n = Numbering::default();
    let mut abstract_id: Option<String> = None;
    let mut num_id: Option<String> = None;
    let mut level: Option<u8> = None;
    walk("word/numbering.xml", xml, |path, e| {
        let parent = path.last().map(String::as_str);
        match (parent, local(e).as_str()) {
            (_, "abstractNum") => abstract_id = attr(e, "abstractNumId"),
            (_, "num") => num_id = attr(e, "numId"),
            (Some("abstractNum"), "lvl") | (Some("lvlOverride"), "lvl") => {
                level = attr(e, "ilvl").and_then(|v| v.parse().ok())
            }
            (Some("num"), "lvlOverride") => level = attr(e, "ilvl").and_then(|v| v.parse().ok()),
            (Some("num"), "abstractNumId") => {
                if let (Some(num), Some(abs)) = (&num_id, attr(e, "val")) {
                    n.nums.insert(num.clone(), abs);
                }
            }
            (Some("lvlOverride"), "startOverride") => {
                if let (Some(num), Some(l), Some(v)) = (&num_id, level, attr(e, "val").and_then(|v| v.parse().ok())) {
                    n.overrides.insert((num.clone(), l), v);
                }
            }
            (Some("lvl"), "numFmt") if path.iter().any(|p| p == "abstractNum") => {
                if let (Some(abs), Some(l)) = (&abstract_id, level) {
                    let ordered = !matches!(attr(e, "val").as_deref(), Some("bullet" | "none") | None);
                    n.levels.entry((abs.clone(), l)).or_insert((false, 1)).0 = ordered;
                }
            }
            (Some("lvl"), "start") if path.iter().any(|p| p == "abstractNum") => {
                if let (Some(abs), Some(l), Some(v)) =
                    (&abstract_id, level, attr(e, "val").and_then(|v| v.parse().ok()))
                {
                    n.levels.entry((abs.clone(), l)).or_insert((false, 1)).1 = v;
                }
            }
            _ => {}
        }
    })?;
    Ok(n)
}

fn parse_rels(xml: &str) -> Result<HashMap<String, String>, String> {
    let mut rels = HashMap::new();
    walk("word/_rels/document.xml.rels", xml, |_, e| {
        if local(e) == "Relationship" {
            let hyperlink = attr(e, "Type").is_some_and(|t| t.ends_with("/hyperlink"));
            if let (true, Some(id), Some(target)) = (hyperlink, attr(e, "Id"), attr(e, "Target")) {
                rels.insert(id, target);
            }
        }
    })?;
    Ok(rels)
}

// ---------------------------------------------------------------- resolving headings and lists

/// Heading level of a style by its name or id (`heading 2`, `Heading2`, `Title`).
fn heading_from_name(name: &str) -> Option<u8> {
    let lower = name.to_ascii_lowercase();
    if lower == "title" {
        return Some(1);
    }
    let rest = lower.strip_prefix("heading")?.trim_start();
    let n: u8 = rest.parse().ok()?;
    (1..=9).contains(&n).then_some(n.min(6))
}

struct Resolver<'a> {
    styles: &'a HashMap<String, StyleInfo>,
    numbering: &'a Numbering,
    counters: HashMap<String, [u32; 9]>,
}

impl Resolver<'_> {
    fn chain(&self, id: &str) -> Vec<(&str, &StyleInfo)> {
        style_chain(self.styles, id)
    }

    /// Preformatted: by the style's name or font, or every run in a monospace font.
    fn code(&self, para: &Para) -> bool {
        let chain = para.style.as_deref().map(|s| self.chain(s)).unwrap_or_default();
        if chain.iter().any(|(id, info)| {
            is_code_style(&style_key(id)) || info.name.as_deref().is_some_and(|n| is_code_style(&style_key(n)))
        }) {
            return true;
        }
        // Each run's font is its own, else its character style's, else the paragraph style's.
        let mut runs = para.runs.iter().filter(|r| !r.text.trim().is_empty()).peekable();
        if runs.peek().is_none() {
            return chain.iter().find_map(|(_, info)| info.run.mono).unwrap_or(false);
        }
        runs.all(|r| r.format.mono)
    }

    fn quote(&self, para: &Para) -> bool {
        let Some(style) = para.style.as_deref() else { return false };
        self.chain(style).iter().any(|(id, info)| {
            is_quote_style(&style_key(id)) || info.name.as_deref().is_some_and(|n| is_quote_style(&style_key(n)))
        })
    }

    fn heading(&self, para: &Para) -> Option<u8> {
        if let Some(o) = para.outline.filter(|o| *o < 9) {
            return Some(o.min(5) + 1);
        }
        let style = para.style.as_deref()?;
        if let Some(h) = heading_from_name(style) {
            return Some(h);
        }
        for (id, info) in self.chain(style) {
            if let Some(h) = info.name.as_deref().and_then(heading_from_name).or_else(|| heading_from_name(id)) {
                return Some(h);
            }
            if let Some(o) = info.outline.filter(|o| *o < 9) {
                return Some(o.min(5) + 1);
            }
        }
        None
    }

    fn list(&mut self, para: &Para) -> Option<ParaKind> {
        let chain = para.style.as_deref().map(|s| self.chain(s)).unwrap_or_default();
        let num_id = para.num_id.clone().or_else(|| chain.iter().find_map(|(_, i)| i.num_id.clone()))?;
        if num_id == "0" {
            return None;
        }
        let level = para.ilvl.or_else(|| chain.iter().find_map(|(_, i)| i.ilvl)).unwrap_or(0).min(8);
        let abs = self.numbering.nums.get(&num_id);
        let (ordered, start) =
            abs.and_then(|a| self.numbering.levels.get(&(a.clone(), level)).copied()).unwrap_or((false, 1));
        let start = self.numbering.overrides.get(&(num_id.clone(), level)).copied().unwrap_or(start);
        let counters = self.counters.entry(num_id).or_insert([0; 9]);
        let l = level as usize;
        counters[l] = if counters[l] == 0 { start.max(1) } else { counters[l].saturating_add(1) };
        for deeper in &mut counters[l + 1..] {
            *deeper = 0;
        }
        Some(ParaKind::ListItem { level, number: ordered.then_some(counters[l].min(999_999_999)) })
    }

    fn para(&mut self, para: &mut Para) {
        para.kind = match self.heading(para) {
            Some(h) => ParaKind::Heading(h),
            None => match self.list(para) {
                Some(item) => item,
                None if self.code(para) => ParaKind::Code,
                None if self.quote(para) => ParaKind::Quote,
                None => ParaKind::Normal,
            },
        };
    }

    fn blocks(&mut self, blocks: &mut [Block]) {
        for block in blocks {
            match block {
                Block::Para(p) => self.para(p),
                Block::Table(t) => {
                    for cell in t.rows.iter_mut().flatten() {
                        for p in &mut cell.paras {
                            self.para(p);
                        }
                    }
                }
            }
        }
    }
}

fn resolve(doc: &mut Document, styles: &HashMap<String, StyleInfo>, numbering: &Numbering) {
    let mut r = Resolver { styles, numbering, counters: HashMap::new() };
    r.blocks(&mut doc.blocks);
}
