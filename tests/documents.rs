//! The bundled `doc` plugin end to end, through jobs of a real daemon: DOCX,
//! XLSX, PPTX, Markdown and text to PDF, page images, sheets to CSV, a PDF
//! read back as text, and document info.
//! Outputs are checked with Debian's poppler-utils (`pdftotext`, `pdfinfo`,
//! `pdffonts`, `pdfimages`, `pdftohtml`; `scripts/test` installs them): the text in
//! order, the header, footer and footnote, the embedded fonts, the image, the
//! outline and the link. A zip bomb fails its task and writes nothing.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Daemon;
use serde_json::json;

const LONG: Duration = Duration::from_secs(600);

fn poppler(tool: &str, args: &[&str], file: &Path) -> String {
    let o = Command::new(tool)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (apt-get install poppler-utils)"));
    assert!(o.status.success(), "{tool} {}: {}", file.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A field of `pdfinfo`'s answer (`Pages:           2`).
fn field<'a>(info: &'a str, name: &str) -> &'a str {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim).unwrap_or_default()
}

/// The PDF's text, pages separated by form feeds.
fn pdftotext(file: &Path) -> String {
    pdftotext_with(file, &[])
}

fn pdftotext_with(file: &Path, args: &[&str]) -> String {
    let o = Command::new("pdftotext").args(["-enc", "UTF-8"]).args(args).arg(file).arg("-").output().unwrap();
    assert!(o.status.success(), "pdftotext {}: {}", file.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships""#;

/// A 40×20 red PNG.
const RED_PNG: &[u8] = &[
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 40, 0, 0, 0, 20, 8, 2, 0, 0, 0, 112, 36,
    232, 236, 0, 0, 0, 36, 73, 68, 65, 84, 120, 218, 99, 56, 33, 39, 55, 32, 136, 97, 212, 226, 81, 139, 71, 45, 30,
    181, 120, 212, 226, 81, 139, 71, 45, 30, 181, 120, 228, 88, 12, 0, 82, 225, 44, 174, 78, 225, 5, 176, 0, 0, 0, 0,
    73, 69, 78, 68, 174, 66, 96, 130,
];

fn zip_of(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in parts {
        zip.start_file(*name, options).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn para(style: &str, text: &str) -> String {
    let ppr = if style.is_empty() { String::new() } else { format!(r#"<w:pPr><w:pStyle w:val="{style}"/></w:pPr>"#) };
    format!(r#"<w:p>{ppr}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>"#)
}

fn item(num: u32, level: u32, text: &str) -> String {
    format!(
        r#"<w:p><w:pPr><w:numPr><w:ilvl w:val="{level}"/><w:numId w:val="{num}"/></w:numPr></w:pPr><w:r><w:t>{text}</w:t></w:r></w:p>"#
    )
}

/// A report as Word writes one: headings, formatting, a footnote, a link, a
/// nested numbered list, an image, a table with merged cells, a page break,
/// a header and a page-number footer, title and author.
fn report_docx() -> Vec<u8> {
    let mut body = String::new();
    body += &para("Heading1", "Introduction");
    body += r#"<w:p><w:r><w:t xml:space="preserve">Plain, </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">bold, </w:t></w:r><w:r><w:rPr><w:i/></w:rPr><w:t xml:space="preserve">italic, </w:t></w:r><w:r><w:rPr><w:u w:val="single"/></w:rPr><w:t>underlined</w:t></w:r><w:r><w:t xml:space="preserve"> and a note</w:t></w:r><w:r><w:footnoteReference w:id="1"/></w:r><w:r><w:t xml:space="preserve">. See </w:t></w:r><w:hyperlink r:id="rId5"><w:r><w:t>the site</w:t></w:r></w:hyperlink><w:r><w:t>.</w:t></w:r></w:p>"#;
    body += &item(2, 0, "First step");
    body += &item(2, 1, "Inner step");
    body += &item(2, 0, "Second step");
    body += r#"<w:p><w:r><w:drawing><wp:inline xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"><wp:extent cx="1524000" cy="762000"/><a:graphic xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><a:graphicData><pic:pic xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture"><pic:blipFill><a:blip r:embed="rId2"/></pic:blipFill></pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>"#;
    body += r#"<w:tbl><w:tr><w:tc><w:tcPr><w:gridSpan w:val="2"/></w:tcPr><w:p><w:r><w:t>Merged across</w:t></w:r></w:p></w:tc></w:tr><w:tr><w:tc><w:tcPr><w:vMerge w:val="restart"/></w:tcPr><w:p><w:r><w:t>Merged down</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Cell B2</w:t></w:r></w:p></w:tc></w:tr><w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc><w:tc><w:p><w:r><w:t>Cell B3</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"#;
    body += r#"<w:p><w:r><w:br w:type="page"/></w:r></w:p>"#;
    body += &para("Heading2", "Second page");
    body += &para("", "Greek αβγ, Cyrillic жзи, and one glyph no embedded font has: 漢.");
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {W}><w:body>{body}<w:sectPr><w:headerReference w:type="default" r:id="rId3"/><w:footerReference w:type="default" r:id="rId4"/></w:sectPr></w:body></w:document>"#
    );
    let styles = format!(
        r#"<w:styles {W}><w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style><w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style></w:styles>"#
    );
    let numbering = format!(
        r#"<w:numbering {W}><w:abstractNum w:abstractNumId="20"><w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/></w:lvl><w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="bullet"/></w:lvl></w:abstractNum><w:num w:numId="2"><w:abstractNumId w:val="20"/></w:num></w:numbering>"#
    );
    let rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" Target="media/red.png"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/header" Target="header1.xml"/><Relationship Id="rId4" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/footer" Target="footer1.xml"/><Relationship Id="rId5" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink" Target="https://example.com/kiln" TargetMode="External"/></Relationships>"#;
    let header = format!(r#"<w:hdr {W}>{}</w:hdr>"#, para("", "Quarterly report header"));
    let footer = format!(
        r#"<w:ftr {W}><w:p><w:r><w:t xml:space="preserve">Page </w:t></w:r><w:fldSimple w:instr=" PAGE "><w:r><w:t>9</w:t></w:r></w:fldSimple></w:p></w:ftr>"#
    );
    let notes = format!(
        r#"<w:footnotes {W}><w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote><w:footnote w:id="1"><w:p><w:r><w:footnoteRef/></w:r><w:r><w:t xml:space="preserve"> Source: the annual survey.</w:t></w:r></w:p></w:footnote></w:footnotes>"#
    );
    let core = r#"<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Quarterly Report</dc:title><dc:creator>Ada Lovelace</dc:creator></cp:coreProperties>"#;
    zip_of(&[
        ("word/document.xml", document.as_bytes()),
        ("word/styles.xml", styles.as_bytes()),
        ("word/numbering.xml", numbering.as_bytes()),
        ("word/_rels/document.xml.rels", rels.as_bytes()),
        ("word/header1.xml", header.as_bytes()),
        ("word/footer1.xml", footer.as_bytes()),
        ("word/footnotes.xml", notes.as_bytes()),
        ("word/media/red.png", RED_PNG),
        ("docProps/core.xml", core.as_bytes()),
    ])
}

/// A DOCX of just this body, with `image` as relationship `rId2` when given.
fn body_docx(body: &str, image: &[u8]) -> Vec<u8> {
    let document = format!(r#"<w:document {W}><w:body>{body}</w:body></w:document>"#);
    let rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" Target="media/picture.png"/></Relationships>"#;
    let mut parts: Vec<(&str, &[u8])> =
        vec![("word/document.xml", document.as_bytes()), ("word/_rels/document.xml.rels", rels.as_bytes())];
    if !image.is_empty() {
        parts.push(("word/media/picture.png", image));
    }
    zip_of(&parts)
}

/// A workbook of two sheets: shared and inline strings, a currency format, a
/// date and a formula's cached value.
fn book_xlsx() -> Vec<u8> {
    let ns = r#"xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships""#;
    let workbook = format!(
        r#"<workbook {ns}><sheets><sheet name="Sales" sheetId="1" r:id="rId1"/><sheet name="Notes" sheetId="2" r:id="rId2"/></sheets></workbook>"#
    );
    let rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="x/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="x/worksheet" Target="worksheets/sheet2.xml"/></Relationships>"#;
    let strings = format!(r#"<sst {ns}><si><t>Region</t></si><si><t>Total</t></si><si><t>North</t></si></sst>"#);
    let styles = format!(
        r#"<styleSheet {ns}><numFmts><numFmt numFmtId="165" formatCode="&quot;$&quot;#,##0.00"/></numFmts><cellXfs><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="165"/></cellXfs></styleSheet>"#
    );
    let sales = format!(
        r#"<worksheet {ns}><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="inlineStr"><is><t>Since</t></is></c></row><row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" s="2"><f>1000*1.2345</f><v>1234.5</v></c><c r="C2" s="1"><v>45000</v></c></row></sheetData></worksheet>"#
    );
    let notes = format!(
        r#"<worksheet {ns}><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Checked, twice</t></is></c></row></sheetData></worksheet>"#
    );
    zip_of(&[
        ("xl/workbook.xml", workbook.as_bytes()),
        ("xl/_rels/workbook.xml.rels", rels.as_bytes()),
        ("xl/sharedStrings.xml", strings.as_bytes()),
        ("xl/styles.xml", styles.as_bytes()),
        ("xl/worksheets/sheet1.xml", sales.as_bytes()),
        ("xl/worksheets/sheet2.xml", notes.as_bytes()),
    ])
}

/// A presentation of two slides: titles, bulleted body text, a picture, a table.
fn deck_pptx() -> Vec<u8> {
    let ns = r#"xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships""#;
    let text = |ph: &str, lines: &[&str]| {
        let paras: String = lines.iter().map(|t| format!("<a:p><a:r><a:t>{t}</a:t></a:r></a:p>")).collect();
        format!(r#"<p:sp><p:nvSpPr><p:nvPr><p:ph type="{ph}"/></p:nvPr></p:nvSpPr><p:txBody>{paras}</p:txBody></p:sp>"#)
    };
    let picture = r#"<p:pic><p:blipFill><a:blip r:embed="rId9"/></p:blipFill><p:spPr><a:xfrm><a:ext cx="1270000" cy="635000"/></a:xfrm></p:spPr></p:pic>"#;
    let table = r#"<p:graphicFrame><a:graphic><a:graphicData><a:tbl><a:tr><a:tc><a:txBody><a:p><a:r><a:t>Quarter</a:t></a:r></a:p></a:txBody></a:tc><a:tc><a:txBody><a:p><a:r><a:t>Units</a:t></a:r></a:p></a:txBody></a:tc></a:tr></a:tbl></a:graphicData></a:graphic></p:graphicFrame>"#;
    let slide = |tree: String| format!(r#"<p:sld {ns}><p:cSld><p:spTree>{tree}</p:spTree></p:cSld></p:sld>"#);
    let one =
        slide(text("title", &["Launch plan"]) + &text("body", &["Ship the console", "Measure the cost"]) + picture);
    let two = slide(text("title", &["Numbers"]) + table);
    let presentation = format!(
        r#"<p:presentation {ns}><p:sldIdLst><p:sldId id="256" r:id="rId1"/><p:sldId id="257" r:id="rId2"/></p:sldIdLst></p:presentation>"#
    );
    let rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="x/slide" Target="slides/slide1.xml"/><Relationship Id="rId2" Type="x/slide" Target="slides/slide2.xml"/></Relationships>"#;
    let slide_rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId9" Type="x/image" Target="../media/image1.png"/></Relationships>"#;
    zip_of(&[
        ("ppt/presentation.xml", presentation.as_bytes()),
        ("ppt/_rels/presentation.xml.rels", rels.as_bytes()),
        ("ppt/slides/slide1.xml", one.as_bytes()),
        ("ppt/slides/slide2.xml", two.as_bytes()),
        ("ppt/slides/_rels/slide1.xml.rels", slide_rels.as_bytes()),
        ("ppt/media/image1.png", RED_PNG),
    ])
}

/// `needles` appear in `text` in this order.
fn assert_in_order(text: &str, needles: &[&str]) {
    let mut at = 0;
    for n in needles {
        match text[at..].find(n) {
            Some(i) => at += i + n.len(),
            None => panic!("`{n}` missing or out of order in:\n{text}"),
        }
    }
}

#[tokio::test]
async fn documents_become_pdfs_page_images_and_info_through_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs = data.join("buckets/docs");
    std::fs::create_dir_all(docs.join("in")).unwrap();
    std::fs::create_dir_all(docs.join("hostile")).unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    std::fs::write(docs.join("in/report.docx"), report_docx()).unwrap();
    std::fs::write(docs.join("in/notes.md"), "# Release notes\n\nKiln lays out *Markdown* too.\n\n- one\n- two\n")
        .unwrap();
    std::fs::write(docs.join("in/plain.txt"), "A plain text file.\n\nIts second paragraph.\n").unwrap();
    std::fs::write(docs.join("in/book.xlsx"), book_xlsx()).unwrap();
    std::fs::write(docs.join("in/deck.pptx"), deck_pptx()).unwrap();
    // A zip bomb: document.xml inflates past the 64 MiB a part may hold.
    let bomb = zip_of(&[("word/document.xml", &vec![b' '; 80 << 20])]);
    std::fs::write(docs.join("hostile/bomb.docx"), bomb).unwrap();
    let d = Daemon::start(&data, None);
    let out = data.join("buckets/out");

    // doc/pdf over DOCX, Markdown and text.
    let (done, tasks) = d
        .run_job(
            json!({"input": {"bucket": "docs", "prefix": "in/"}, "style": "doc/pdf",
               "output": {"bucket": "out", "template": "pdf/{barename}.pdf"}}),
            LONG,
        )
        .await;
    assert_eq!(done["state"], "succeeded", "{done}\n{tasks:?}");
    assert_eq!(done["counters"]["succeeded"], 5, "{done}");
    let report = out.join("pdf/report.pdf");
    let text = pdftotext(&report).replace('\u{c}', "\n");
    assert_in_order(
        &text,
        &[
            "Quarterly report header",
            "Introduction",
            "Plain, bold, italic, underlined and a note",
            "See the site.",
            "First step",
            "Inner step",
            "Second step",
            "Merged across",
            "Merged down",
            "Cell B2",
            "Cell B3",
            "Source: the annual survey.",
            "Page 1",
            "Second page",
            "Greek αβγ, Cyrillic жзи",
            "Page 2",
        ],
    );
    let info = poppler("pdfinfo", &[], &report);
    assert_eq!(
        (field(&info, "Pages"), field(&info, "Title"), field(&info, "Author")),
        ("2", "Quarterly Report", "Ada Lovelace"),
        "{info}"
    );
    let fonts = poppler("pdffonts", &[], &report);
    assert!(fonts.contains("LibertinusSerif"), "{fonts}");
    for line in fonts.lines().skip(2) {
        assert!(line.contains(" yes "), "every font is embedded: {line}");
    }
    let images = poppler("pdfimages", &["-list"], &report);
    let rows: Vec<&str> = images.lines().skip(2).collect();
    assert_eq!(rows.len(), 1, "{images}");
    let cols: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!((cols[3], cols[4]), ("40", "20"), "the image at its own pixels: {images}");
    let urls = poppler("pdfinfo", &["-url"], &report);
    assert!(urls.contains("https://example.com/kiln"), "{urls}");
    // The outline (bookmarks) is the headings, nested by level, each at its page.
    let xml = poppler("pdftohtml", &["-stdout", "-xml", "-i"], &report);
    let outline = &xml[xml.find("<outline>").expect("an outline")..];
    assert_in_order(
        outline,
        &[
            "<outline>",
            r#"<item page="1">Introduction</item>"#,
            "<outline>",
            r#"<item page="2">Second page</item>"#,
            "</outline>",
        ],
    );
    let md = pdftotext(&out.join("pdf/notes.pdf"));
    assert_in_order(&md, &["Release notes", "Kiln lays out Markdown too.", "one", "two"]);
    assert_eq!(field(&poppler("pdfinfo", &[], &out.join("pdf/notes.pdf")), "Title"), "Release notes");
    let txt = pdftotext(&out.join("pdf/plain.pdf"));
    assert_in_order(&txt, &["A plain text file.", "Its second paragraph."]);
    // Table rows as lines: in the layout's own reading order cells go by column.
    let book = pdftotext_with(&out.join("pdf/book.pdf"), &["-layout"]);
    assert_in_order(
        &book,
        &["Sales", "Region", "Total", "Since", "North", "$1,234.50", "3/15/2023", "Notes", "Checked, twice"],
    );
    assert_eq!(field(&poppler("pdfinfo", &[], &out.join("pdf/book.pdf")), "Pages"), "2", "a sheet a page");
    // A slide a page, landscape; titles, bullets, the picture, the table.
    let deck = out.join("pdf/deck.pdf");
    assert_in_order(
        &pdftotext(&deck),
        &["Launch plan", "Ship the console", "Measure the cost", "Numbers", "Quarter", "Units"],
    );
    let deck_info = poppler("pdfinfo", &[], &deck);
    assert_eq!(field(&deck_info, "Pages"), "2", "{deck_info}");
    assert!(field(&deck_info, "Page size").starts_with("841.89 x 595.276"), "{deck_info}");
    assert_eq!(poppler("pdfimages", &["-list"], &deck).lines().count(), 3, "one picture");
    let report_task = tasks.iter().find(|t| t["source_key"] == "in/report.docx").unwrap();
    let result = common::task_result(report_task);
    assert_eq!(result["pages"], 2, "{result}");
    assert_eq!(result["missing_glyphs"], json!(["U+6F22 漢"]), "{result}");

    // doc/png: every page, named by {page}; the image is the width asked.
    let (done, _) = d
        .run_job(
            json!({"input": {"bucket": "docs", "keys": ["in/report.docx"]}, "style": "doc/png,w_300",
               "output": {"bucket": "out", "template": "png/{barename}-{page}.png"}}),
            LONG,
        )
        .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    for page in [1, 2] {
        let png = std::fs::read(out.join(format!("png/report-{page}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 300);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 424, "A4 at 300 px wide");
    }

    // doc/text reads a PDF: the text of every page in reading order.
    let (done, _) = d
        .run_job(
            json!({"input": {"bucket": "out", "keys": ["pdf/report.pdf"]}, "style": "doc/text",
                   "output": {"bucket": "out", "template": "text/{barename}.txt"}}),
            LONG,
        )
        .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let text = std::fs::read_to_string(out.join("text/report.txt")).unwrap();
    assert_in_order(
        &text,
        &[
            "Introduction",
            "Plain, bold, italic, underlined and a note",
            "First step",
            "Second page",
            "Greek αβγ, Cyrillic жзи",
        ],
    );

    // doc/csv: a file per sheet, named by {sheetname}, values as Excel shows them.
    let (done, _) = d
        .run_job(
            json!({"input": {"bucket": "docs", "keys": ["in/book.xlsx"]}, "style": "doc/csv",
                   "output": {"bucket": "out", "template": "csv/{barename}/{sheetname}.csv"}}),
            LONG,
        )
        .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        std::fs::read_to_string(out.join("csv/book/Sales.csv")).unwrap(),
        "Region,Total,Since\r\nNorth,\"$1,234.50\",3/15/2023\r\n"
    );
    assert_eq!(std::fs::read_to_string(out.join("csv/book/Notes.csv")).unwrap(), "\"Checked, twice\"\r\n");

    // doc/info: the task's result, no object written.
    let (done, tasks) = d
        .run_job(
            json!({"input": {"bucket": "docs", "keys": ["in/report.docx"]}, "style": "doc/info",
               "output": {"bucket": "out", "template": "info/{key}"}}),
            LONG,
        )
        .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let info = common::task_result(&tasks[0]);
    assert_eq!((info["title"].as_str(), info["author"].as_str()), (Some("Quarterly Report"), Some("Ada Lovelace")));
    assert_eq!(
        (info["pages"].as_u64(), info["images"].as_u64(), info["footnotes"].as_u64()),
        (Some(2), Some(1), Some(1))
    );
    assert!(!out.join("info").exists());

    // Hostile documents: each task fails quickly as unsupported input naming
    // the limit it breaks, and nothing is written.
    let breaks = r#"<w:p><w:r><w:t>x</w:t><w:br w:type="page"/></w:r></w:p>"#.repeat(10_000);
    std::fs::write(docs.join("hostile/pages.docx"), body_docx(&breaks, &[])).unwrap();
    let row = format!("<w:tr>{}</w:tr>", "<w:tc><w:p/></w:tc>".repeat(1_000));
    let cells = format!("<w:tbl>{}</w:tbl>", row.repeat(1_000));
    std::fs::write(docs.join("hostile/cells.docx"), body_docx(&cells, &[])).unwrap();
    let mut huge = RED_PNG.to_vec();
    huge[16..20].copy_from_slice(&10_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&10_000u32.to_be_bytes());
    let picture = r#"<w:p><w:r><w:drawing><wp:inline xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"><wp:extent cx="12700" cy="12700"/><a:graphic xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><a:graphicData><pic:pic xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture"><pic:blipFill><a:blip r:embed="rId2"/></pic:blipFill></pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>"#;
    std::fs::write(docs.join("hostile/image.docx"), body_docx(picture, &huge)).unwrap();
    let started = std::time::Instant::now();
    let (done, tasks) = d
        .run_job(
            json!({"input": {"bucket": "docs", "prefix": "hostile/"}, "style": "doc/pdf",
               "output": {"bucket": "out", "template": "bombs/{barename}.pdf"}}),
            LONG,
        )
        .await;
    assert_eq!(done["counters"]["failed"], 4, "{done}");
    assert!(started.elapsed() < Duration::from_secs(60), "refusing took {:?}", started.elapsed());
    let error_of =
        |name: &str| tasks.iter().find(|t| t["source_key"] == format!("hostile/{name}")).unwrap()["error"].to_string();
    for (name, want) in [
        ("bomb.docx", "67108864 bytes"),
        ("pages.docx", "10000 page breaks: it would lay out over the limit of 2000 pages"),
        ("cells.docx", "paragraphs and table cells, over the limit"),
        ("image.docx", "10000×10000 pixels (100 MP), over the limit of 40 MP"),
    ] {
        let error = error_of(name);
        assert!(error.contains("unsupported") && error.contains(want), "{name}: {error}");
    }
    assert!(!out.join("bombs").exists());
}
