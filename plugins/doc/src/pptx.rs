//! Reading a PPTX (Office Open XML presentation): each slide in order, its
//! title as a heading, its text (bulleted in the body placeholders, by level),
//! its pictures at their size and its tables, each slide from a new page.

use std::collections::HashMap;
use std::io::Cursor;

use quick_xml::events::{BytesStart, Event};

use crate::docx::part::resolve_target;
use crate::docx::xml::{attr, local, read_xml, reference};
use crate::docx::{self, Block, Cell, Document, Inline, Para, ParaKind, Run, Table, VMerge, Zip};

/// Most slides.
pub const MAX_SLIDES: usize = 2_000;
/// Most paragraphs and table cells over all slides.
pub const MAX_BLOCKS: usize = 200_000;

pub fn read(bytes: Vec<u8>, with_images: bool) -> Result<Document, String> {
    let mut zip = Zip::new(Cursor::new(bytes)).map_err(|e| format!("not a PPTX: corrupt zip archive: {e}"))?;
    let Some(presentation) = docx::part(&mut zip, "ppt/presentation.xml")? else {
        return Err("not a PPTX: the zip archive has no ppt/presentation.xml".into());
    };
    let mut ids = Vec::new();
    read_xml("ppt/presentation.xml", &presentation, |_, event| {
        if let Event::Start(e) | Event::Empty(e) = event
            && local(&e) == "sldId"
            && let Some(id) = rel_id(&e)
        {
            ids.push(id);
        }
        Ok(())
    })?;
    if ids.len() > MAX_SLIDES {
        return Err(format!("the presentation has {} slides, over the limit of {MAX_SLIDES}", ids.len()));
    }
    let rels = docx::rels_of(&mut zip, "ppt/presentation.xml")?;
    let mut doc = Document::default();
    let mut images: Vec<String> = Vec::new();
    let mut slides = 0usize;
    for id in ids {
        let Some(target) = rels.get(&id) else { continue };
        let path = resolve_target("ppt/", target);
        let Some(xml) = docx::part(&mut zip, &path)? else { continue };
        let slide_rels = docx::rels_of(&mut zip, &path)?;
        let base = path.rsplit_once('/').map_or(String::new(), |(dir, _)| format!("{dir}/"));
        let mut reader = SlideReader::new(&slide_rels, &base, &mut images);
        reader.read(&path, &xml)?;
        let mut blocks = reader.finish();
        if slides > 0
            && let Some(Block::Para(first)) = blocks.first_mut()
        {
            first.break_before = true;
        } else if slides > 0 {
            // A slide of tables or nothing still starts its own page.
            let mut blank = Para::new(ParaKind::Normal, Vec::new());
            blank.break_before = true;
            blocks.insert(0, Block::Para(blank));
        }
        doc.blocks.extend(blocks);
        slides += 1;
        if doc.blocks.len() > MAX_BLOCKS {
            return Err(format!("the presentation holds more than {MAX_BLOCKS} paragraphs and tables, over the limit"));
        }
    }
    if with_images {
        doc.images = docx::read_images(&mut zip, &images)?;
    }
    doc.meta = match docx::part(&mut zip, "docProps/core.xml")? {
        Some(xml) => docx::parse_core(&xml)?,
        None => docx::Meta::default(),
    };
    doc.meta.slides = Some(slides);
    Ok(doc)
}

/// `r:id` of an element (the relationship it names).
fn rel_id(e: &BytesStart<'_>) -> Option<String> {
    e.attributes().with_checks(false).flatten().find_map(|a| {
        let key: &str = a.key.as_ref();
        key.ends_with(":id").then(|| a.value.to_string())
    })
}

struct SlideReader<'a> {
    rels: &'a HashMap<String, String>,
    base: &'a str,
    images: &'a mut Vec<String>,
    title: Vec<Para>,
    body: Vec<Block>,
    /// The shape being read: a title, a body placeholder (bulleted), or other text.
    shape: Option<ShapeKind>,
    para: Option<(Para, u8)>,
    in_t: bool,
    /// The picture's size (`a:ext` in `p:spPr`), in points.
    extent: Option<(f32, f32)>,
    /// The picture being read (`a:blip`), shown when its `p:pic` ends.
    pending_image: Option<usize>,
    table: Option<Table>,
    row: Option<Vec<Cell>>,
    cell: Option<Cell>,
    cell_covered: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ShapeKind {
    Title,
    Body,
    Text,
}

impl<'a> SlideReader<'a> {
    fn new(rels: &'a HashMap<String, String>, base: &'a str, images: &'a mut Vec<String>) -> Self {
        SlideReader {
            rels,
            base,
            images,
            title: Vec::new(),
            body: Vec::new(),
            shape: None,
            para: None,
            in_t: false,
            extent: None,
            pending_image: None,
            table: None,
            row: None,
            cell: None,
            cell_covered: false,
        }
    }

    fn read(&mut self, path: &str, xml: &str) -> Result<(), String> {
        read_xml(path, xml, |_, event| {
            match event {
                Event::Start(e) => self.start(&e, false),
                Event::Empty(e) => self.start(&e, true),
                Event::End(e) => self.end(e.local_name().as_ref()),
                Event::Text(t) if self.in_t => self.text(&t.xml10_content()),
                Event::GeneralRef(r) if self.in_t => {
                    if let Some(c) = reference(&r.xml10_content()) {
                        self.text(c.encode_utf8(&mut [0; 4]));
                    }
                }
                _ => {}
            }
            Ok(())
        })
    }

    fn start(&mut self, e: &BytesStart<'_>, empty: bool) {
        match local(e).as_str() {
            "sp" if !empty => self.shape = Some(ShapeKind::Text),
            "pic" if !empty => {
                self.extent = None;
                self.pending_image = None;
            }
            "ph" => {
                if self.shape.is_some() {
                    self.shape = Some(match attr(e, "type").as_deref() {
                        Some("title" | "ctrTitle") => ShapeKind::Title,
                        Some("body") | None => ShapeKind::Body,
                        _ => ShapeKind::Text,
                    });
                }
            }
            "p" if !empty => {
                if self.shape.is_some() || self.cell.is_some() {
                    self.para = Some((Para::default(), 0));
                }
            }
            "pPr" => {
                let level = attr(e, "lvl").and_then(|v| v.parse::<u8>().ok()).unwrap_or(0).min(8);
                if let Some((_, l)) = &mut self.para {
                    *l = level;
                }
            }
            "t" if !empty && self.para.is_some() => self.in_t = true,
            "br" => self.text("\n"),
            "ext" => {
                let emu =
                    |name| attr(e, name).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0);
                if let (Some(cx), Some(cy)) = (emu("cx"), emu("cy")) {
                    self.extent = Some(((cx / 12_700.0).min(14_400.0) as f32, (cy / 12_700.0).min(14_400.0) as f32));
                }
            }
            "blip" => {
                if let Some(target) = attr(e, "embed").and_then(|id| self.rels.get(&id)) {
                    let path = resolve_target(self.base, target);
                    let index = self.images.iter().position(|p| *p == path).unwrap_or_else(|| {
                        self.images.push(path);
                        self.images.len() - 1
                    });
                    self.pending_image = Some(index);
                }
            }
            "tbl" if !empty => self.table = Some(Table::default()),
            "tr" if !empty && self.table.is_some() => self.row = Some(Vec::new()),
            "tc" if self.row.is_some() => {
                let span = attr(e, "gridSpan").and_then(|v| v.parse::<u32>().ok()).unwrap_or(1).clamp(1, 64);
                let merge = if matches!(attr(e, "vMerge").as_deref(), Some("1" | "true")) {
                    VMerge::Continue
                } else if attr(e, "rowSpan").and_then(|v| v.parse::<u32>().ok()).unwrap_or(1) > 1 {
                    VMerge::Restart
                } else {
                    VMerge::None
                };
                // A cell covered by the one to its left takes no place of its own.
                let covered = matches!(attr(e, "hMerge").as_deref(), Some("1" | "true"));
                let cell = Cell { paras: Vec::new(), span, merge };
                if empty {
                    if !covered && let Some(row) = &mut self.row {
                        row.push(cell);
                    }
                } else {
                    self.cell = Some(cell);
                    self.cell_covered = covered;
                }
            }
            _ => {}
        }
    }

    fn text(&mut self, s: &str) {
        if let Some((para, _)) = &mut self.para {
            match para.runs.last_mut() {
                Some(run) if run.inline.is_none() => run.text.push_str(s),
                _ => para.runs.push(Run { text: s.to_string(), ..Run::default() }),
            }
        }
    }

    fn end(&mut self, name: &str) {
        match name {
            "t" => self.in_t = false,
            "p" => {
                let Some((mut para, level)) = self.para.take() else { return };
                if let Some(cell) = &mut self.cell {
                    cell.paras.push(para);
                    return;
                }
                if para.runs.iter().all(|r| r.text.trim().is_empty()) {
                    return;
                }
                match self.shape {
                    Some(ShapeKind::Title) => {
                        para.kind = ParaKind::Heading(1);
                        self.title.push(para);
                    }
                    Some(ShapeKind::Body) => {
                        para.kind = ParaKind::ListItem { level, number: None };
                        self.body.push(Block::Para(para));
                    }
                    _ => self.body.push(Block::Para(para)),
                }
            }
            "sp" => self.shape = None,
            "pic" => {
                if let Some(index) = self.pending_image.take() {
                    let (width_pt, height_pt) = self.extent.take().unwrap_or((0.0, 0.0));
                    let run = Run { inline: Some(Inline::Image { index, width_pt, height_pt }), ..Run::default() };
                    self.body.push(Block::Para(Para::new(ParaKind::Normal, vec![run])));
                }
            }
            "tc" => {
                if let Some(cell) = self.cell.take()
                    && !std::mem::take(&mut self.cell_covered)
                    && let Some(row) = &mut self.row
                {
                    row.push(cell);
                }
            }
            "tr" => {
                if let (Some(row), Some(table)) = (self.row.take(), &mut self.table) {
                    table.rows.push(row);
                }
            }
            "tbl" => {
                if let Some(table) = self.table.take() {
                    self.body.push(Block::Table(table));
                }
            }
            _ => {}
        }
    }

    /// The slide's blocks: its title first, then the rest in document order.
    fn finish(self) -> Vec<Block> {
        let mut blocks: Vec<Block> = self.title.into_iter().map(Block::Para).collect();
        blocks.extend(self.body);
        blocks
    }
}
