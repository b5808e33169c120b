//! Styles, numbering and relationships, and resolving headings and lists from them.

use std::collections::HashMap;

use quick_xml::events::BytesStart;

use super::body::RunProps;
use super::xml::{attr, local, on_off, walk};
use super::*;

#[derive(Debug, Default, Clone)]
pub(super) struct StyleInfo {
    name: Option<String>,
    based_on: Option<String>,
    outline: Option<u8>,
    num_id: Option<String>,
    ilvl: Option<u8>,
    /// Run properties of the style's `w:rPr`.
    run: RunProps,
}

/// Whether `w:rFonts` names a monospace font (`None` when it names none).
pub(super) fn fonts_mono(e: &BytesStart<'_>) -> Option<bool> {
    let font = attr(e, "ascii").or_else(|| attr(e, "hAnsi"))?;
    Some(is_mono_font(&font))
}

/// Monospace fonts by name: the usual families of code and terminals.
pub(super) fn is_mono_font(name: &str) -> bool {
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
pub(super) fn style_chain<'s>(styles: &'s HashMap<String, StyleInfo>, id: &str) -> Vec<(&'s str, &'s StyleInfo)> {
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
pub(super) fn style_run_props(styles: &HashMap<String, StyleInfo>, id: &str) -> RunProps {
    style_chain(styles, id).iter().fold(RunProps::default(), |acc, (_, info)| acc.or(info.run))
}

/// A style's id or name reduced to compare: lower case, letters and digits only.
pub(super) fn style_key(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// Paragraph styles of preformatted text, by id or name.
pub(super) fn is_code_style(key: &str) -> bool {
    key.starts_with("code")
        || matches!(
            key,
            "sourcecode" | "htmlpreformatted" | "preformatted" | "preformattedtext" | "macrotext" | "verbatim"
        )
}

/// Paragraph styles of block quotes, by id or name.
pub(super) fn is_quote_style(key: &str) -> bool {
    matches!(key, "quote" | "intensequote" | "blocktext" | "blockquote" | "quotation" | "quotations")
}

pub(super) fn parse_styles(xml: &str) -> Result<HashMap<String, StyleInfo>, String> {
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
pub(super) struct Numbering {
    /// `w:num` id → abstract numbering id.
    nums: HashMap<String, String>,
    /// (abstract id, level) → (ordered, start).
    levels: HashMap<(String, u8), (bool, u32)>,
    /// (num id, level) → start override.
    overrides: HashMap<(String, u8), u32>,
}

pub(super) fn parse_numbering(xml: &str) -> Result<Numbering, String> {
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

/// A part's relationships: id to target (hyperlinks, images, headers, footers).
pub(super) fn parse_rels(part: &str, xml: &str) -> Result<HashMap<String, String>, String> {
    let mut rels = HashMap::new();
    walk(part, xml, |_, e| {
        if local(e) == "Relationship" {
            if let (Some(id), Some(target)) = (attr(e, "Id"), attr(e, "Target")) {
                rels.insert(id, target);
            }
        }
    })?;
    Ok(rels)
}

// ---------------------------------------------------------------- resolving headings and lists

/// Heading level of a style by its name or id (`heading 2`, `Heading2`, `Title`).
pub(super) fn heading_from_name(name: &str) -> Option<u8> {
    let lower = name.to_ascii_lowercase();
    if lower == "title" {
        return Some(1);
    }
    let rest = lower.strip_prefix("heading")?.trim_start();
    let n: u8 = rest.parse().ok()?;
    (1..=9).contains(&n).then_some(n.min(6))
}

pub(super) struct Resolver<'a> {
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

pub(super) fn resolve(doc: &mut Document, styles: &HashMap<String, StyleInfo>, numbering: &Numbering) {
    let mut r = Resolver { styles, numbering, counters: HashMap::new() };
    r.blocks(&mut doc.blocks);
    for note in &mut doc.footnotes {
        r.blocks(note);
    }
    r.blocks(&mut doc.header);
    r.blocks(&mut doc.footer);
}
