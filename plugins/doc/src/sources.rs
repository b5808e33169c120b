//! Markdown (CommonMark + GFM) and plain text read into the same document
//! model as a DOCX, so that one typesetter lays out all three.

use comrak::nodes::{ListType, NodeValue};
use comrak::{Arena, Node, Options};

use crate::docx::{Block, Cell, Document, Format, Para, ParaKind, Run, Table, VMerge};

fn options() -> Options<'static> {
    let mut o = Options::default();
    o.extension.table = true;
    o.extension.tasklist = true;
    o.extension.strikethrough = true;
    o.extension.autolink = true;
    o
}

/// A Markdown document. Its title is its first heading.
pub fn markdown(source: &str) -> Document {
    let arena = Arena::new();
    let root = comrak::parse_document(&arena, source, &options());
    let mut doc = Document::default();
    blocks(root, 0, &mut doc.blocks);
    doc.meta.title = doc.blocks.iter().find_map(|b| match b {
        Block::Para(p) if matches!(p.kind, ParaKind::Heading(_)) => {
            Some(p.text().split_whitespace().collect::<Vec<_>>().join(" ")).filter(|t| !t.is_empty())
        }
        _ => None,
    });
    doc
}

/// Plain text: paragraphs between blank lines, each line kept as a line.
pub fn text(source: &str) -> Document {
    let mut doc = Document::default();
    let normalized = source.replace("\r\n", "\n");
    for chunk in normalized.split("\n\n") {
        let chunk = chunk.trim_matches('\n');
        if chunk.trim().is_empty() {
            continue;
        }
        doc.blocks.push(Block::Para(para(ParaKind::Normal, vec![plain(chunk)])));
    }
    doc
}

fn plain(text: &str) -> Run {
    Run { text: text.to_string(), format: Format::default(), inline: None }
}

fn para(kind: ParaKind, runs: Vec<Run>) -> Para {
    Para::new(kind, runs)
}

/// The block children of `node`, `level` deep in lists.
fn blocks<'a>(node: Node<'a>, level: u8, out: &mut Vec<Block>) {
    for child in node.children() {
        block(child, level, out);
    }
}

/// One block node.
fn block<'a>(node: Node<'a>, level: u8, out: &mut Vec<Block>) {
    let value = node.data().value.clone();
    match value {
        NodeValue::Paragraph => out.push(Block::Para(para(ParaKind::Normal, runs_of(node)))),
        NodeValue::Heading(h) => out.push(Block::Para(para(ParaKind::Heading(h.level.clamp(1, 6)), runs_of(node)))),
        NodeValue::CodeBlock(code) => {
            let literal = code.literal.trim_end_matches('\n');
            out.push(Block::Para(para(ParaKind::Code, vec![plain(literal)])));
        }
        NodeValue::BlockQuote => {
            let mut inner = Vec::new();
            blocks(node, level, &mut inner);
            for b in inner {
                match b {
                    Block::Para(mut p) if p.kind == ParaKind::Normal => {
                        p.kind = ParaKind::Quote;
                        out.push(Block::Para(p));
                    }
                    other => out.push(other),
                }
            }
        }
        NodeValue::List(list) => {
            let ordered = list.list_type == ListType::Ordered;
            for (i, item) in node.children().enumerate() {
                let number = ordered.then(|| (list.start + i).min(999_999_999) as u32);
                let mut first = true;
                for part in item.children() {
                    let is_para = matches!(part.data().value, NodeValue::Paragraph);
                    if is_para && first {
                        let mut runs = runs_of(part);
                        if let NodeValue::TaskItem(task) = &item.data().value {
                            let mark = if task.symbol.is_some() { "☒ " } else { "☐ " };
                            runs.insert(0, plain(mark));
                        }
                        out.push(Block::Para(para(ParaKind::ListItem { level: level.min(8), number }, runs)));
                        first = false;
                    } else {
                        block(part, level.saturating_add(1), out);
                    }
                }
            }
        }
        NodeValue::Table(_) => {
            let mut table = Table::default();
            for row in node.children() {
                let cells = row
                    .children()
                    .map(|cell| Cell {
                        paras: vec![para(ParaKind::Normal, runs_of(cell))],
                        span: 1,
                        merge: VMerge::None,
                    })
                    .collect();
                table.rows.push(cells);
            }
            out.push(Block::Table(table));
        }
        NodeValue::ThematicBreak => out.push(Block::Para(Para::default())),
        // Raw HTML is not laid out.
        NodeValue::HtmlBlock(_) => {}
        _ => blocks(node, level, out),
    }
}

/// The inline children of a paragraph, heading or cell as runs.
fn runs_of<'a>(node: Node<'a>) -> Vec<Run> {
    let mut runs = Vec::new();
    inlines(node, &Format::default(), &mut runs);
    runs
}

fn inlines<'a>(node: Node<'a>, format: &Format, out: &mut Vec<Run>) {
    for child in node.children() {
        let value = child.data().value.clone();
        let mut push = |text: &str, f: &Format| match out.last_mut() {
            Some(last) if last.format == *f && last.inline.is_none() => last.text.push_str(text),
            _ => out.push(Run { text: text.to_string(), format: f.clone(), inline: None }),
        };
        match value {
            NodeValue::Text(t) => push(&t, format),
            NodeValue::Code(c) => push(&c.literal, &Format { mono: true, ..format.clone() }),
            NodeValue::SoftBreak => push(" ", format),
            NodeValue::LineBreak => push("\n", format),
            NodeValue::Emph => inlines(child, &Format { italic: true, ..format.clone() }, out),
            NodeValue::Strong => inlines(child, &Format { bold: true, ..format.clone() }, out),
            NodeValue::Strikethrough => inlines(child, &Format { strike: true, ..format.clone() }, out),
            NodeValue::Link(link) => {
                inlines(child, &Format { link: Some(link.url.to_string()), ..format.clone() }, out)
            }
            // No network in the sandbox: an image by address is shown as its description.
            NodeValue::Image(_) => {
                let mut alt = Vec::new();
                inlines(child, format, &mut alt);
                let alt: String = alt.iter().map(|r| r.text.as_str()).collect();
                if !alt.is_empty() {
                    push(&format!("[{alt}]"), format);
                }
            }
            NodeValue::HtmlInline(_) => {}
            _ => inlines(child, format, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_keeps_structure_and_takes_its_title_from_the_first_heading() {
        let doc = markdown(
            "# Report\n\nSome **bold** text.\n\n1. one\n   - inner\n2. two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert_eq!(doc.meta.title.as_deref(), Some("Report"));
        let kinds: Vec<_> = doc
            .blocks
            .iter()
            .map(|b| match b {
                Block::Para(p) => format!("{:?}", p.kind),
                Block::Table(t) => format!("table {}x{}", t.rows.len(), t.rows[0].len()),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Heading(1)",
                "Normal",
                "ListItem { level: 0, number: Some(1) }",
                "ListItem { level: 1, number: None }",
                "ListItem { level: 0, number: Some(2) }",
                "table 2x2"
            ]
        );
    }

    #[test]
    fn text_paragraphs_are_split_at_blank_lines() {
        let doc = text("one\ntwo\r\n\r\nthree\n");
        assert_eq!(doc.blocks.len(), 2);
    }
}
