//! Writing the document model as plain text or Markdown.

use crate::docx::{Block, Cell, Document, Format, Para, ParaKind, Run, Table};

/// A rendered block; list items are kept together, other blocks are separated
/// by a blank line.
struct Piece {
    text: String,
    list_item: bool,
}

fn join(pieces: Vec<Piece>) -> String {
    let mut out = String::new();
    let mut prev_list = false;
    for (i, p) in pieces.into_iter().filter(|p| !p.text.trim().is_empty()).enumerate() {
        if i > 0 {
            out.push_str(if prev_list && p.list_item { "\n" } else { "\n\n" });
        }
        out.push_str(&p.text);
        prev_list = p.list_item;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn list_marker(level: u8, number: Option<u32>, indent_width: usize) -> (String, String) {
    let indent = " ".repeat(indent_width * level as usize);
    let marker = match number {
        Some(n) => format!("{n}. "),
        None => "- ".to_string(),
    };
    let continuation = " ".repeat(indent.len() + marker.len());
    (format!("{indent}{marker}"), continuation)
}

/// Indent every line after the first.
fn hang(text: &str, continuation: &str) -> String {
    text.lines().collect::<Vec<_>>().join(&format!("\n{continuation}"))
}

// ---------------------------------------------------------------- plain text

/// The blocks, with each run of consecutive paragraphs of kind `kind` (code,
/// quote) handed to `group` together and every other block to `single`.
fn grouped<'d>(
    blocks: &'d [Block],
    is_grouped: impl Fn(&Para) -> bool,
    mut group: impl FnMut(&[&'d Para]) -> Piece,
    mut single: impl FnMut(&'d Block) -> Piece,
) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut run: Vec<&Para> = Vec::new();
    let mut kind = None;
    for block in blocks {
        let this = match block {
            Block::Para(p) if is_grouped(p) => Some(p.kind),
            _ => None,
        };
        if !run.is_empty() && this != kind {
            pieces.push(group(&run));
            run.clear();
        }
        kind = this;
        match block {
            Block::Para(p) if this.is_some() => run.push(p),
            other => pieces.push(single(other)),
        }
    }
    if !run.is_empty() {
        pieces.push(group(&run));
    }
    pieces
}

/// The lines of consecutive code paragraphs, blank ones at either end dropped.
fn code_lines(paras: &[&Para]) -> Vec<String> {
    let mut lines: Vec<String> =
        paras.iter().flat_map(|p| p.text().split('\n').map(|l| l.trim_end().to_string()).collect::<Vec<_>>()).collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let first = lines.iter().position(|l| !l.is_empty()).unwrap_or(lines.len());
    lines.drain(..first);
    lines
}

pub fn text(doc: &Document) -> String {
    // Consecutive code paragraphs stay together, line by line.
    let pieces = grouped(
        &doc.blocks,
        |p| p.kind == ParaKind::Code,
        |paras| Piece { text: code_lines(paras).join("\n"), list_item: false },
        |block| match block {
            Block::Para(p) => text_para(p),
            Block::Table(t) => Piece { text: text_table(t), list_item: false },
        },
    );
    join(pieces)
}

fn text_para(p: &Para) -> Piece {
    let body = p.text();
    let body = body.trim_end();
    match p.kind {
        ParaKind::ListItem { level, number } => {
            let (marker, cont) = list_marker(level, number, 2);
            Piece { text: format!("{marker}{}", hang(body.trim_start(), &cont)), list_item: true }
        }
        _ => Piece { text: body.to_string(), list_item: false },
    }
}

fn cell_cells(row: &[Cell], render: impl Fn(&Cell) -> String) -> Vec<String> {
    let mut out = Vec::new();
    for cell in row {
        out.push(render(cell));
        for _ in 1..cell.span {
            out.push(String::new());
        }
    }
    out
}

/// Tables without any text are left out.
fn is_blank(t: &Table) -> bool {
    t.rows.iter().flatten().flat_map(|c| &c.paras).all(|p| p.text().trim().is_empty())
}

fn text_table(t: &Table) -> String {
    if is_blank(t) {
        return String::new();
    }
    let lines: Vec<String> = t
        .rows
        .iter()
        .map(|row| {
            cell_cells(row, |cell| {
                let text = cell.paras.iter().map(|p| p.text()).collect::<Vec<_>>().join(" ");
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .join("\t")
        })
        .collect();
    lines.join("\n")
}

// ---------------------------------------------------------------- Markdown

pub fn markdown(doc: &Document) -> String {
    let pieces = grouped(
        &doc.blocks,
        |p| matches!(p.kind, ParaKind::Code | ParaKind::Quote),
        |paras| match paras[0].kind {
            ParaKind::Code => md_code(paras),
            _ => md_quote(paras),
        },
        |block| match block {
            Block::Para(p) => md_para(p),
            Block::Table(t) => Piece { text: md_table(t), list_item: false },
        },
    );
    join(pieces)
}

/// Consecutive code paragraphs as one fenced code block, the text as it is
/// (a fence longer than any run of backticks in it).
fn md_code(paras: &[&Para]) -> Piece {
    let lines = code_lines(paras);
    if lines.is_empty() {
        return Piece { text: String::new(), list_item: false };
    }
    let mut longest = 0;
    for line in &lines {
        let mut run = 0;
        for c in line.chars() {
            run = if c == '`' { run + 1 } else { 0 };
            longest = longest.max(run);
        }
    }
    let fence = "`".repeat((longest + 1).max(3));
    Piece { text: format!("{fence}\n{}\n{fence}", lines.join("\n")), list_item: false }
}

/// Consecutive quote paragraphs as one block quote, a paragraph each.
fn md_quote(paras: &[&Para]) -> Piece {
    let quoted: Vec<String> = paras
        .iter()
        .map(|p| block_safe(&inline(&p.runs, Context::Paragraph)))
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n"))
        .collect();
    Piece { text: quoted.join("\n>\n"), list_item: false }
}

fn md_para(p: &Para) -> Piece {
    match p.kind {
        ParaKind::Heading(level) => {
            let mut text = inline(&p.runs, Context::Heading);
            if text.ends_with('#') {
                text.insert(text.len() - 1, '\\');
            }
            Piece { text: format!("{} {}", "#".repeat(level.clamp(1, 6) as usize), text), list_item: false }
        }
        ParaKind::ListItem { level, number } => {
            let (marker, cont) = list_marker(level, number, 4);
            let text = block_safe(&inline(&p.runs, Context::Paragraph));
            Piece { text: format!("{marker}{}", hang(&text, &cont)), list_item: true }
        }
        ParaKind::Normal | ParaKind::Code | ParaKind::Quote => {
            Piece { text: block_safe(&inline(&p.runs, Context::Paragraph)), list_item: false }
        }
    }
}

fn md_table(t: &Table) -> String {
    if is_blank(t) {
        return String::new();
    }
    let mut rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|row| {
            cell_cells(row, |cell| {
                cell.paras
                    .iter()
                    .map(|p| inline(&p.runs, Context::TableCell))
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("<br>")
            })
        })
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    if columns == 0 {
        return String::new();
    }
    for row in &mut rows {
        row.resize(columns, String::new());
    }
    let line = |cells: &[String]| format!("| {} |", cells.join(" | "));
    let mut out = vec![line(&rows[0]), line(&vec!["---".to_string(); columns])];
    out.extend(rows[1..].iter().map(|r| line(r)));
    out.join("\n")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Paragraph,
    Heading,
    TableCell,
}

/// Escape the characters that Markdown would read as inline syntax.
fn escape(s: &str, ctx: Context) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '~' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => match ctx {
                Context::Paragraph => out.push_str("\\\n"),
                Context::Heading => out.push(' '),
                Context::TableCell => out.push_str("<br>"),
            },
            '\t' if ctx != Context::Paragraph => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Within a paragraph, no line may start a block of its own (heading, list,
/// quote, code, setext underline, thematic break).
fn block_safe(text: &str) -> String {
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| {
            let line = line.trim_start_matches([' ', '\t']);
            let mut chars = line.char_indices();
            match chars.next() {
                Some((_, '#' | '-' | '+' | '=')) => format!("\\{line}"),
                Some((_, d)) if d.is_ascii_digit() => {
                    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
                    match line.as_bytes().get(digits) {
                        Some(b'.' | b')') => format!("{}\\{}", &line[..digits], &line[digits..]),
                        _ => line.to_string(),
                    }
                }
                _ => line.to_string(),
            }
        })
        .collect();
    lines.join("\n")
}

#[derive(Clone, PartialEq, Eq)]
enum Marker {
    Link(String),
    Bold,
    Italic,
    Strike,
}

impl Marker {
    fn open(&self) -> &'static str {
        match self {
            Marker::Link(_) => "[",
            Marker::Bold => "**",
            Marker::Italic => "*",
            Marker::Strike => "~~",
        }
    }
    fn close(&self) -> String {
        match self {
            Marker::Link(url) if url.contains([' ', '(', ')', '<', '>']) => {
                format!("](<{}>)", url.replace('<', "%3C").replace('>', "%3E"))
            }
            Marker::Link(url) => format!("]({url})"),
            m => m.open().to_string(),
        }
    }
}

fn markers(f: &Format) -> Vec<Marker> {
    let mut m = Vec::new();
    if let Some(url) = &f.link {
        m.push(Marker::Link(url.clone()));
    }
    if f.bold {
        m.push(Marker::Bold);
    }
    if f.italic {
        m.push(Marker::Italic);
    }
    if f.strike {
        m.push(Marker::Strike);
    }
    m
}

/// Runs as Markdown inline text: formatting markers open and close as the
/// runs' formats change, properly nested, and never next to whitespace
/// (where Markdown would not see them).
fn inline(runs: &[Run], ctx: Context) -> String {
    let mut out = String::new();
    let mut open: Vec<Marker> = Vec::new();
    let mut pending_ws = String::new();
    let ws = |s: &str| escape(s, ctx);
    for run in runs {
        let text = if ctx == Context::Heading { run.text.replace('\n', " ") } else { run.text.clone() };
        if text.trim().is_empty() {
            pending_ws.push_str(&text);
            continue;
        }
        let core_start = text.len() - text.trim_start().len();
        let core_end = text.trim_end().len();
        pending_ws.push_str(&text[..core_start]);
        let target = markers(&run.format);
        if let Some(first_wrong) = open.iter().position(|m| !target.contains(m)) {
            for m in open.drain(first_wrong..).rev() {
                out.push_str(&m.close());
            }
        }
        out.push_str(&ws(&pending_ws));
        pending_ws.clear();
        for m in target {
            if !open.contains(&m) {
                out.push_str(m.open());
                open.push(m);
            }
        }
        out.push_str(&escape(&text[core_start..core_end], ctx));
        pending_ws.push_str(&text[core_end..]);
    }
    for m in open.drain(..).rev() {
        out.push_str(&m.close());
    }
    out.trim().to_string()
}
