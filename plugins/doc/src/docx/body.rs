//! The body of `word/document.xml` (and of headers, footers and footnotes), read into blocks.
//! One event-driven state machine (a little over 500 lines): its `start` and `end`
//! handlers share every flag, so they stay together; reading a part is in `part.rs`.

use std::collections::HashMap;

use quick_xml::events::BytesStart;

use super::part::resolve_target;
use super::styles::{StyleInfo, fonts_mono, style_run_props};
use super::xml::{Ns, attr, local, on_off};
use super::*;

pub(super) enum Container {
    Para(ParaBuilder),
    Table(TableBuilder),
}

#[derive(Default)]
pub(super) struct ParaBuilder {
    para: Para,
    /// Blocks met inside this paragraph (text boxes), written after it.
    after: Vec<Block>,
}

#[derive(Default)]
pub(super) struct TableBuilder {
    table: Table,
    row: Option<Vec<Cell>>,
    cell: Option<Cell>,
}

impl TableBuilder {
    fn cell_mut(&mut self) -> &mut Cell {
        self.cell.get_or_insert_with(|| Cell { paras: Vec::new(), span: 1, merge: VMerge::None })
    }
}

/// Run properties as written: `None` where the run says nothing.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RunProps {
    pub(super) bold: Option<bool>,
    pub(super) italic: Option<bool>,
    pub(super) strike: Option<bool>,
    pub(super) underline: Option<bool>,
    pub(super) mono: Option<bool>,
}

impl RunProps {
    /// These, falling back to `under` where unset.
    pub(super) fn or(self, under: RunProps) -> RunProps {
        RunProps {
            bold: self.bold.or(under.bold),
            italic: self.italic.or(under.italic),
            strike: self.strike.or(under.strike),
            underline: self.underline.or(under.underline),
            mono: self.mono.or(under.mono),
        }
    }
}

/// A field (`w:fldChar` begin … separate … end): its instruction, and
/// whether its cached result is being read.
#[derive(Default)]
struct Field {
    instr: String,
    in_result: bool,
}

impl Field {
    /// The inline a field becomes, if Kiln lays it out itself.
    fn inline(&self) -> Option<Inline> {
        field_inline(&self.instr)
    }
}

fn field_inline(instr: &str) -> Option<Inline> {
    match instr.split_whitespace().next()?.to_ascii_uppercase().as_str() {
        "PAGE" => Some(Inline::PageNumber),
        "NUMPAGES" | "SECTIONPAGES" => Some(Inline::PageCount),
        _ => None,
    }
}

/// What the body refers to outside itself, gathered while reading.
#[derive(Default)]
pub(super) struct Refs {
    /// Archive paths of images, by the index [`Inline::Image`] names.
    pub(super) images: Vec<String>,
    /// `w:id` of footnotes, by the index [`Inline::Footnote`] names.
    pub(super) footnotes: Vec<String>,
    /// Relationship ids of the default header and footer (`w:sectPr`).
    pub(super) header: Option<String>,
    pub(super) footer: Option<String>,
}

#[derive(Default)]
pub(super) struct DocParser<'a> {
    rels: Option<&'a HashMap<String, String>>,
    /// The folder relationship targets are relative to (`word/`).
    base: &'a str,
    pub(super) refs: Refs,
    /// Footnotes read from `word/footnotes.xml`, by `w:id`.
    pub(super) notes: HashMap<String, Vec<Block>>,
    note_id: Option<String>,
    fields: Vec<Field>,
    pub(super) in_instr: bool,
    /// The size of the drawing being read (`wp:extent`), in points.
    extent: Option<(f32, f32)>,
    /// Paragraphs and table cells met, against [`MAX_PARSED_BLOCKS`].
    pub(super) blocks_seen: usize,
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
    pub(super) in_text: bool,
}

impl<'a> DocParser<'a> {
    pub(super) fn new(
        rels: &'a HashMap<String, String>,
        base: &'a str,
        styles: &'a HashMap<String, StyleInfo>,
        refs: Refs,
    ) -> Self {
        DocParser { rels: Some(rels), base, styles: Some(styles), refs, ..Default::default() }
    }

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

    pub(super) fn push_text(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        if self.in_instr {
            if let Some(f) = self.fields.last_mut() {
                f.instr.push_str(s);
            }
            return;
        }
        // The cached result of a field Kiln lays out itself (the page number).
        if self.fields.iter().any(|f| f.in_result && f.inline().is_some()) {
            return;
        }
        let in_run = self.in_run;
        let format = self.run_format.clone();
        if let Some(p) = self.para() {
            match p.para.runs.last_mut() {
                Some(run) if in_run && run.format == format && run.inline.is_none() => run.text.push_str(s),
                _ => p.para.runs.push(Run { text: s.to_string(), format, inline: None }),
            }
        }
    }

    /// Place an image, a footnote mark, a break or a field in the paragraph.
    pub(super) fn push_inline(&mut self, inline: Inline) {
        let format = self.run_format.clone();
        if let Some(p) = self.para() {
            p.para.runs.push(Run { text: String::new(), format, inline: Some(inline) });
        }
    }

    /// `a:blip r:embed` of a drawing: the image it shows, at the drawing's size.
    pub(super) fn image(&mut self, rel_id: &str) {
        let Some(target) = self.rels.and_then(|r| r.get(rel_id)) else { return };
        let path = resolve_target(self.base, target);
        let index = match self.refs.images.iter().position(|p| *p == path) {
            Some(i) => i,
            None => {
                self.refs.images.push(path);
                self.refs.images.len() - 1
            }
        };
        let (width_pt, height_pt) = self.extent.take().unwrap_or((0.0, 0.0));
        self.push_inline(Inline::Image { index, width_pt, height_pt });
    }

    /// `wp:extent`: the size of the drawing, in EMU (12,700 to the point).
    pub(super) fn extent(&mut self, e: &BytesStart<'_>) {
        let emu = |name| attr(e, name).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0);
        if let (Some(cx), Some(cy)) = (emu("cx"), emu("cy")) {
            self.extent = Some(((cx / 12_700.0).min(14_400.0) as f32, (cy / 12_700.0).min(14_400.0) as f32));
        }
    }

    /// `w:fldSimple`: a field given whole in one element.
    pub(super) fn simple_field(&mut self, e: &BytesStart<'_>) -> bool {
        match attr(e, "instr").as_deref().and_then(field_inline) {
            Some(inline) => {
                self.push_inline(inline);
                true
            }
            None => false,
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
                            para.runs.push(Run { text, format: Format::default(), inline: None });
                        }
                        t.cell_mut().paras.push(para);
                    }
                }
            },
            None => self.blocks.push(block),
        }
    }

    pub(super) fn start(&mut self, ns: Ns, e: &BytesStart<'_>, empty: bool) {
        if ns != Ns::W {
            return;
        }
        match local(e).as_str() {
            "p" => {
                self.blocks_seen += 1;
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
                    p.para.runs.push(Run { text: String::new(), format, inline: None });
                }
            }
            "rPr" if self.in_run && !self.in_ppr && !empty => self.in_rpr = true,
            "rStyle" if self.in_rpr => {
                let styled = attr(e, "val").and_then(|id| Some(style_run_props(self.styles?, &id)));
                self.run_styled = styled.unwrap_or_default();
                self.apply_run_props();
            }
            "u" if self.in_rpr => {
                self.run_direct.underline = Some(!matches!(attr(e, "val").as_deref(), Some("none" | "0" | "false")));
                self.apply_run_props();
            }
            "pageBreakBefore" if self.in_ppr => {
                let on = on_off(e);
                if let Some(p) = self.para() {
                    p.para.break_before = on;
                }
            }
            "fldChar" if self.in_run => match attr(e, "fldCharType").as_deref() {
                Some("begin") => self.fields.push(Field::default()),
                Some("separate") => {
                    let inline = self.fields.last_mut().and_then(|f| {
                        f.in_result = true;
                        f.inline()
                    });
                    if let Some(inline) = inline {
                        self.push_inline(inline);
                    }
                }
                Some("end") => {
                    let field = self.fields.pop();
                    // A field with no cached result still shows its value.
                    if let Some(inline) = field.filter(|f| !f.in_result).and_then(|f| f.inline()) {
                        self.push_inline(inline);
                    }
                }
                _ => {}
            },
            "instrText" if self.in_run && !empty => self.in_instr = true,
            "footnoteReference" if self.in_run => {
                if let Some(id) = attr(e, "id") {
                    let index = self.refs.footnotes.len();
                    self.refs.footnotes.push(id);
                    self.push_inline(Inline::Footnote(index));
                }
            }
            "footnote" if !empty && self.stack.is_empty() => {
                // Separators are Word's own chrome, not notes.
                let kind = attr(e, "type");
                self.note_id = attr(e, "id").filter(|_| kind.is_none() || kind.as_deref() == Some("normal"));
                self.blocks.clear();
            }
            "headerReference" | "footerReference" => {
                let default = matches!(attr(e, "type").as_deref(), None | Some("default"));
                if let (true, Some(id)) = (default, attr(e, "id")) {
                    if local(e) == "headerReference" {
                        self.refs.header = Some(id);
                    } else {
                        self.refs.footer = Some(id);
                    }
                }
            }
            "vMerge" if self.in_tcpr => {
                let merge = match attr(e, "val").as_deref() {
                    Some("restart") => VMerge::Restart,
                    _ => VMerge::Continue,
                };
                if let Some(t) = self.table() {
                    t.cell_mut().merge = merge;
                }
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
            "br" if self.in_run && !self.in_rpr && attr(e, "type").as_deref() == Some("page") => {
                self.push_inline(Inline::PageBreak)
            }
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
                self.blocks_seen += 1;
                if let Some(t) = self.table() {
                    t.cell = Some(Cell { paras: Vec::new(), span: 1, merge: VMerge::None });
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
        self.run_format.underline = props.underline.unwrap_or(false);
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

    pub(super) fn end(&mut self, ns: Ns, name: &str) {
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
            "instrText" => self.in_instr = false,
            "footnote" => {
                if let Some(id) = self.note_id.take() {
                    self.stack.clear();
                    let blocks = std::mem::take(&mut self.blocks);
                    self.notes.insert(id, blocks);
                }
            }
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
            p.para.runs.retain(|r| !r.text.is_empty() || r.inline.is_some());
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
    pub(super) fn finish(mut self) -> Vec<Block> {
        while let Some(top) = self.stack.last() {
            match top {
                Container::Para(_) => self.end_para(),
                Container::Table(_) => self.end(Ns::W, "tbl"),
            }
        }
        self.blocks
    }
}

pub(super) fn end_cell(t: &mut TableBuilder) {
    if let Some(cell) = t.cell.take() {
        t.row.get_or_insert_with(Vec::new).push(cell);
    }
}

pub(super) fn end_row(t: &mut TableBuilder) {
    end_cell(t);
    if let Some(row) = t.row.take() {
        t.table.rows.push(row);
    }
}

impl DocParser<'_> {
    /// The DrawingML elements of an image: its size, then the picture.
    pub(super) fn drawing(&mut self, ns: Ns, e: &BytesStart<'_>) {
        if ns != Ns::Other || !self.in_run {
            return;
        }
        match local(e).as_str() {
            "extent" => self.extent(e),
            "blip" => {
                if let Some(id) = attr(e, "embed") {
                    self.image(&id);
                }
            }
            _ => {}
        }
    }
}
