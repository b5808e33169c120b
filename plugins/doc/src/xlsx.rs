//! Reading an XLSX (Office Open XML spreadsheet): each sheet's cells as Excel
//! shows them (numbers and dates through their number format, formulas as
//! their cached values), as CSV or as the tables of a document.

use std::collections::HashMap;
use std::io::Cursor;

use quick_xml::events::Event;

use crate::docx::xml::{attr, local, read_xml};
use crate::docx::{self, Block, Cell, Document, Para, ParaKind, Run, Table, VMerge, Zip};
use crate::numfmt;

/// Most cells holding a value, over all sheets: a workbook is held in memory whole.
pub const MAX_CELLS: usize = 500_000;
/// Most cells of one sheet's used range (rows × columns), empty ones included:
/// one value in `XFD1048576` would otherwise make 17 billion.
pub const MAX_GRID: usize = 2_000_000;
/// Most sheets.
pub const MAX_SHEETS: usize = 1_000;

pub struct Workbook {
    pub sheets: Vec<Sheet>,
}

pub struct Sheet {
    pub name: String,
    /// The used range from `A1`, row by row, every row as wide as the widest.
    pub rows: Vec<Vec<String>>,
}

pub fn read(bytes: Vec<u8>) -> Result<Workbook, String> {
    let mut zip = Zip::new(Cursor::new(bytes)).map_err(|e| format!("not an XLSX: corrupt zip archive: {e}"))?;
    let Some(workbook) = docx::part(&mut zip, "xl/workbook.xml")? else {
        return Err("not an XLSX: the zip archive has no xl/workbook.xml".into());
    };
    let mut sheets_listed: Vec<(String, String)> = Vec::new();
    let mut date1904 = false;
    read_xml("xl/workbook.xml", &workbook, |_, event| {
        if let Event::Start(e) | Event::Empty(e) = event {
            match local(&e).as_str() {
                "sheet" => {
                    if let (Some(name), Some(id)) = (attr(&e, "name"), attr(&e, "id")) {
                        sheets_listed.push((name, id));
                    }
                }
                "workbookPr" => date1904 = matches!(attr(&e, "date1904").as_deref(), Some("1" | "true")),
                _ => {}
            }
        }
        Ok(())
    })?;
    if sheets_listed.len() > MAX_SHEETS {
        return Err(format!("the workbook has {} sheets, over the limit of {MAX_SHEETS}", sheets_listed.len()));
    }
    let rels = docx::rels_of(&mut zip, "xl/workbook.xml")?;
    let strings = match docx::part(&mut zip, "xl/sharedStrings.xml")? {
        Some(xml) => shared_strings(&xml)?,
        None => Vec::new(),
    };
    let formats = match docx::part(&mut zip, "xl/styles.xml")? {
        Some(xml) => cell_formats(&xml)?,
        None => Vec::new(),
    };
    let mut cells_seen = 0usize;
    let mut sheets = Vec::new();
    for (name, id) in sheets_listed {
        let Some(target) = rels.get(&id) else { continue };
        let path = match target.strip_prefix('/') {
            Some(abs) => abs.to_string(),
            None => format!("xl/{target}"),
        };
        let Some(xml) = docx::part(&mut zip, &path)? else { continue };
        let context = Context { strings: &strings, formats: &formats, date1904 };
        let rows = sheet(&path, &xml, &context, &mut cells_seen)?;
        sheets.push(Sheet { name, rows });
    }
    Ok(Workbook { sheets })
}

/// `xl/sharedStrings.xml`: each `si`'s text (its runs joined, phonetic guides left out).
fn shared_strings(xml: &str) -> Result<Vec<String>, String> {
    let mut strings = Vec::new();
    let (mut in_t, mut in_phonetic) = (false, false);
    read_xml("xl/sharedStrings.xml", xml, |_, event| {
        match event {
            Event::Start(e) => match local(&e).as_str() {
                "si" => strings.push(String::new()),
                "t" => in_t = true,
                "rPh" => in_phonetic = true,
                _ => {}
            },
            Event::Empty(e) if local(&e) == "si" => strings.push(String::new()),
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_t = false,
                "rPh" => in_phonetic = false,
                _ => {}
            },
            Event::Text(t) if in_t && !in_phonetic => {
                if let Some(s) = strings.last_mut() {
                    s.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) if in_t && !in_phonetic => {
                if let (Some(s), Some(c)) = (strings.last_mut(), docx::xml::reference(&r.xml10_content())) {
                    s.push(c);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(strings)
}

/// `xl/styles.xml`: each cell format's number format code, by the index `s` names.
fn cell_formats(xml: &str) -> Result<Vec<String>, String> {
    let mut custom: HashMap<u32, String> = HashMap::new();
    let mut ids: Vec<u32> = Vec::new();
    let mut in_xfs = false;
    read_xml("xl/styles.xml", xml, |_, event| {
        match event {
            Event::Start(e) | Event::Empty(e) => match local(&e).as_str() {
                "numFmt" => {
                    if let (Some(id), Some(code)) =
                        (attr(&e, "numFmtId").and_then(|v| v.parse().ok()), attr(&e, "formatCode"))
                    {
                        custom.insert(id, code);
                    }
                }
                "cellXfs" => in_xfs = true,
                "xf" if in_xfs => ids.push(attr(&e, "numFmtId").and_then(|v| v.parse().ok()).unwrap_or(0)),
                _ => {}
            },
            Event::End(e) if e.local_name().as_ref() == "cellXfs" => in_xfs = false,
            _ => {}
        }
        Ok(())
    })?;
    Ok(ids
        .into_iter()
        .map(|id| {
            custom
                .get(&id)
                .cloned()
                .or_else(|| numfmt::builtin(id).map(str::to_string))
                .unwrap_or_else(|| "General".into())
        })
        .collect())
}

struct Context<'a> {
    strings: &'a [String],
    formats: &'a [String],
    date1904: bool,
}

/// A cell reference (`C5`) as (row, column), from 0.
fn cell_ref(r: &str) -> Option<(usize, usize)> {
    let letters = r.chars().take_while(|c| c.is_ascii_alphabetic()).count();
    let col = r[..letters]
        .chars()
        .try_fold(0usize, |acc, c| Some(acc.checked_mul(26)? + (c.to_ascii_uppercase() as usize - 'A' as usize + 1)))?;
    let row: usize = r[letters..].parse().ok()?;
    (col >= 1 && row >= 1).then(|| (row - 1, col - 1))
}

/// One worksheet's cells, as shown, in a grid from `A1`.
fn sheet(path: &str, xml: &str, context: &Context<'_>, cells_seen: &mut usize) -> Result<Vec<Vec<String>>, String> {
    let mut cells: Vec<(usize, usize, String)> = Vec::new();
    // The cell being read: position, type, style, and its value's text.
    let mut current: Option<(usize, usize, Option<String>, usize)> = None;
    let mut value = String::new();
    let (mut in_v, mut in_t, mut next_row, mut next_col) = (false, false, 0usize, 0usize);
    read_xml(path, xml, |_, event| {
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => match local(&e).as_str() {
                "row" => {
                    next_row =
                        attr(&e, "r").and_then(|r| r.parse::<usize>().ok()).map_or(next_row, |r| r.saturating_sub(1));
                    next_col = 0;
                }
                "c" => {
                    let (row, col) = attr(&e, "r").and_then(|r| cell_ref(&r)).unwrap_or((next_row, next_col));
                    next_col = col + 1;
                    let style = attr(&e, "s").and_then(|s| s.parse().ok()).unwrap_or(0);
                    if !empty {
                        current = Some((row, col, attr(&e, "t"), style));
                        value.clear();
                    }
                }
                "v" if !empty => in_v = true,
                "t" if !empty && current.is_some() => in_t = true,
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "row" => next_row += 1,
                "v" => in_v = false,
                "t" => in_t = false,
                "c" => {
                    if let Some((row, col, kind, style)) = current.take() {
                        let shown = show(&value, kind.as_deref(), style, context);
                        if !shown.is_empty() {
                            *cells_seen += 1;
                            if *cells_seen > MAX_CELLS {
                                return Err(format!(
                                    "the workbook holds more than {MAX_CELLS} cells with a value, over the limit"
                                ));
                            }
                            cells.push((row, col, shown));
                        }
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_v || in_t => value.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_v || in_t => {
                if let Some(c) = docx::xml::reference(&r.xml10_content()) {
                    value.push(c);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    let rows = cells.iter().map(|c| c.0 + 1).max().unwrap_or(0);
    let cols = cells.iter().map(|c| c.1 + 1).max().unwrap_or(0);
    if rows.saturating_mul(cols) > MAX_GRID {
        return Err(format!(
            "{path} spans {rows} rows by {cols} columns ({} cells), over the limit of {MAX_GRID}",
            rows.saturating_mul(cols)
        ));
    }
    let mut grid = vec![vec![String::new(); cols]; rows];
    for (r, c, v) in cells {
        grid[r][c] = v;
    }
    Ok(grid)
}

/// A cell's value as Excel shows it.
fn show(raw: &str, kind: Option<&str>, style: usize, context: &Context<'_>) -> String {
    match kind {
        Some("s") => raw.trim().parse::<usize>().ok().and_then(|i| context.strings.get(i)).cloned().unwrap_or_default(),
        Some("b") => if raw.trim() == "1" { "TRUE" } else { "FALSE" }.into(),
        Some("inlineStr" | "str" | "e" | "d") => raw.to_string(),
        _ => match raw.trim().parse::<f64>() {
            Ok(v) => {
                let code = context.formats.get(style).map_or("General", String::as_str);
                numfmt::format(v, code, context.date1904)
            }
            Err(_) => raw.to_string(),
        },
    }
}

impl Sheet {
    /// The sheet as CSV (RFC 4180, `\r\n` line ends, as Excel writes it).
    pub fn csv(&self) -> Result<Vec<u8>, String> {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
        for row in &self.rows {
            w.write_record(row).map_err(|e| format!("writing CSV: {e}"))?;
        }
        w.into_inner().map_err(|e| format!("writing CSV: {e}"))
    }
}

impl Workbook {
    /// The workbook as a document: per sheet, its name as a heading and its
    /// cells as a table, each sheet from a new page.
    pub fn document(&self) -> Document {
        let mut doc = Document::default();
        let plain = |text: &str| Run { text: text.to_string(), ..Run::default() };
        for (i, sheet) in self.sheets.iter().enumerate() {
            let mut heading = Para::new(ParaKind::Heading(1), vec![plain(&sheet.name)]);
            heading.break_before = i > 0;
            doc.blocks.push(Block::Para(heading));
            if sheet.rows.is_empty() {
                continue;
            }
            let rows = sheet
                .rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|v| {
                            let runs = if v.is_empty() { vec![] } else { vec![plain(v)] };
                            Cell { paras: vec![Para::new(ParaKind::Normal, runs)], span: 1, merge: VMerge::None }
                        })
                        .collect()
                })
                .collect();
            doc.blocks.push(Block::Table(Table { rows }));
        }
        doc.meta.sheets = self.sheets.iter().map(|s| s.name.clone()).collect();
        doc
    }
}
