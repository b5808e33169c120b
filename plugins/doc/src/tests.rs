use std::io::Write;

use kiln_plugin_sdk::testing::run;
use kiln_plugin_sdk::{ProcessError, Processor};

use crate::Doc;

pub(crate) const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape""#;

pub(crate) const STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
  <w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/></w:style>
  <w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/><w:basedOn w:val="Normal"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style>
  <w:style w:type="paragraph" w:styleId="berschrift2"><w:name w:val="heading 2"/><w:basedOn w:val="Normal"/></w:style>
  <w:style w:type="paragraph" w:styleId="MyChapter"><w:name w:val="Chapter"/><w:basedOn w:val="berschrift2"/></w:style>
  <w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/></w:style>
  <w:style w:type="paragraph" w:styleId="ListBullet"><w:name w:val="List Bullet"/><w:pPr><w:numPr><w:numId w:val="1"/></w:numPr></w:pPr></w:style>
  <w:style w:type="character" w:styleId="Strong"><w:name w:val="Strong"/><w:rPr><w:b/><w:bCs/></w:rPr></w:style>
  <w:style w:type="character" w:styleId="Emphasis"><w:name w:val="Emphasis"/><w:rPr><w:i/><w:iCs/></w:rPr></w:style>
  <w:style w:type="character" w:styleId="StrongEmphasis"><w:name w:val="Strong Emphasis"/><w:basedOn w:val="Strong"/><w:rPr><w:i/></w:rPr></w:style>
  <w:style w:type="character" w:styleId="Gone"><w:name w:val="Gone"/><w:rPr><w:strike/></w:rPr></w:style>
  <w:style w:type="paragraph" w:styleId="Code"><w:name w:val="Code"/><w:basedOn w:val="Normal"/></w:style>
  <w:style w:type="paragraph" w:styleId="HTMLPreformatted"><w:name w:val="HTML Preformatted"/><w:basedOn w:val="Normal"/><w:rPr><w:rFonts w:ascii="Courier New" w:hAnsi="Courier New"/></w:rPr></w:style>
  <w:style w:type="paragraph" w:styleId="Listing"><w:name w:val="Listing"/><w:rPr><w:rFonts w:ascii="Consolas" w:hAnsi="Consolas"/><w:sz w:val="18"/></w:rPr></w:style>
  <w:style w:type="paragraph" w:styleId="Quote"><w:name w:val="Quote"/><w:basedOn w:val="Normal"/><w:rPr><w:i/></w:rPr></w:style>
  <w:style w:type="paragraph" w:styleId="IntenseQuote"><w:name w:val="Intense Quote"/><w:basedOn w:val="Normal"/></w:style>
  <w:style w:type="paragraph" w:styleId="Zitat"><w:name w:val="Block Text"/></w:style>
</w:styles>"#;

pub(crate) const NUMBERING: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:numbering xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
  <w:abstractNum w:abstractNumId="10">
    <w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="bullet"/></w:lvl>
    <w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="bullet"/></w:lvl>
  </w:abstractNum>
  <w:abstractNum w:abstractNumId="20">
    <w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/></w:lvl>
    <w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="lowerLetter"/></w:lvl>
  </w:abstractNum>
  <w:num w:numId="1"><w:abstractNumId w:val="10"/></w:num>
  <w:num w:numId="2"><w:abstractNumId w:val="20"/></w:num>
</w:numbering>"#;

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
  <Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>
  <Relationship Id="rId7" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink" Target="https://example.com/a b" TargetMode="External"/>
  <Relationship Id="rId8" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink" Target="https://example.org/" TargetMode="External"/>
  <Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink" Target="https://example.com/page#section-2" TargetMode="External"/>
</Relationships>"#;

/// A DOCX (zip) with these parts; `document.xml` gets `body` wrapped in the usual envelope.
pub(crate) fn docx_parts(parts: &[(&str, &str)]) -> Vec<u8> {
    let parts: Vec<(&str, &[u8])> = parts.iter().map(|(name, content)| (*name, content.as_bytes())).collect();
    zip_of(&parts)
}

/// A zip archive (deflated) of these files: the container of every format read here.
pub(crate) fn zip_of(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in parts {
        zip.start_file(*name, options).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn docx(body: &str) -> Vec<u8> {
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {W}><w:body>{body}<w:sectPr/></w:body></w:document>"#
    );
    docx_parts(&[
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#,
        ),
        ("word/document.xml", &document),
        ("word/styles.xml", STYLES),
        ("word/numbering.xml", NUMBERING),
        ("word/_rels/document.xml.rels", RELS),
    ])
}

pub(crate) fn p(style: &str, text: &str) -> String {
    let ppr = if style.is_empty() { String::new() } else { format!(r#"<w:pPr><w:pStyle w:val="{style}"/></w:pPr>"#) };
    format!(r#"<w:p>{ppr}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>"#)
}

pub(crate) fn li(num: u32, level: u32, text: &str) -> String {
    format!(
        r#"<w:p><w:pPr><w:pStyle w:val="ListParagraph"/><w:numPr><w:ilvl w:val="{level}"/><w:numId w:val="{num}"/></w:numPr></w:pPr><w:r><w:t>{text}</w:t></w:r></w:p>"#
    )
}

fn convert(style: &str, input: &[u8]) -> (String, String) {
    let out = run::<Doc>(style, input).unwrap();
    assert_eq!(out.len(), 1);
    (String::from_utf8(out[0].bytes.clone()).unwrap(), out[0].extension.clone().unwrap())
}

fn both(body: &str) -> (String, String) {
    let d = docx(body);
    let (text, ext) = convert("text", &d);
    assert_eq!(ext, "txt");
    let (md, ext) = convert("markdown", &d);
    assert_eq!(ext, "md");
    (text, md)
}

#[test]
fn headings_and_paragraphs() {
    let body = [
        p("Title", "The Report"),
        p("Heading1", "Intro"),
        p("", "First paragraph."),
        p("berschrift2", "Localized style id"),
        p("MyChapter", "Inherits heading 2"),
        p("Heading5", "By style id alone"),
        r#"<w:p><w:pPr><w:outlineLvl w:val="2"/></w:pPr><w:r><w:t>Outline level</w:t></w:r></w:p>"#.to_string(),
        "<w:p/>".to_string(),
        p("", "Second paragraph."),
    ]
    .concat();
    let (text, md) = both(&body);
    assert_eq!(
        md,
        "# The Report\n\n# Intro\n\nFirst paragraph.\n\n## Localized style id\n\n## Inherits heading 2\n\n##### By style id alone\n\n### Outline level\n\nSecond paragraph.\n"
    );
    assert_eq!(
        text,
        "The Report\n\nIntro\n\nFirst paragraph.\n\nLocalized style id\n\nInherits heading 2\n\nBy style id alone\n\nOutline level\n\nSecond paragraph.\n"
    );
    // The default action is text.
    assert_eq!(convert("", &docx(&body)).0, text);
}

#[test]
fn bulleted_numbered_and_nested_lists() {
    let body = [
        p("", "Shopping:"),
        li(1, 0, "milk"),
        li(1, 1, "oat"),
        li(1, 0, "bread"),
        p("ListBullet", "from the style"),
        p("", "Steps:"),
        li(2, 0, "mix"),
        li(2, 1, "slowly"),
        li(2, 1, "carefully"),
        li(2, 0, "bake"),
        p("", "Interlude."),
        li(2, 0, "serve"),
    ]
    .concat();
    let (text, md) = both(&body);
    assert_eq!(
        md,
        "Shopping:\n\n- milk\n    - oat\n- bread\n- from the style\n\nSteps:\n\n1. mix\n    1. slowly\n    2. carefully\n2. bake\n\nInterlude.\n\n3. serve\n"
    );
    assert_eq!(
        text,
        "Shopping:\n\n- milk\n  - oat\n- bread\n- from the style\n\nSteps:\n\n1. mix\n  1. slowly\n  2. carefully\n2. bake\n\nInterlude.\n\n3. serve\n"
    );
}

fn tc(text: &str) -> String {
    format!("<w:tc><w:tcPr><w:tcW w:w=\"2000\"/></w:tcPr>{}</w:tc>", p("", text))
}

#[test]
fn tables() {
    let table = format!(
        "<w:tbl><w:tblPr><w:tblStyle w:val=\"Grid\"/></w:tblPr><w:tblGrid><w:gridCol/><w:gridCol/><w:gridCol/></w:tblGrid>\
         <w:tr>{}{}{}</w:tr><w:tr>{}{}{}</w:tr><w:tr><w:tc><w:tcPr><w:gridSpan w:val=\"2\"/></w:tcPr>{}{}</w:tc>{}</w:tr></w:tbl>",
        tc("Name"),
        tc("Qty"),
        tc("Note"),
        tc("Apple"),
        tc("3"),
        tc("a|b"),
        p("", "wide"),
        p("", "cell"),
        tc("x")
    );
    let blank = format!("<w:tbl><w:tr>{}{}</w:tr></w:tbl>", tc(""), tc(" "));
    let body = format!("{}{table}{blank}{}", p("", "Before"), p("", "After"));
    let (text, md) = both(&body);
    assert_eq!(
        md,
        "Before\n\n| Name | Qty | Note |\n| --- | --- | --- |\n| Apple | 3 | a\\|b |\n| wide<br>cell |  | x |\n\nAfter\n"
    );
    assert_eq!(text, "Before\n\nName\tQty\tNote\nApple\t3\ta|b\nwide cell\t\tx\n\nAfter\n");
}

#[test]
fn inline_formatting_links_and_escaping_in_markdown() {
    let body = r#"<w:p>
        <w:r><w:t xml:space="preserve">Plain </w:t></w:r>
        <w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">bold </w:t></w:r>
        <w:r><w:rPr><w:b/><w:i/></w:rPr><w:t>both</w:t></w:r>
        <w:r><w:t xml:space="preserve">, </w:t></w:r>
        <w:r><w:rPr><w:i w:val="1"/></w:rPr><w:t>it</w:t></w:r>
        <w:r><w:rPr><w:i w:val="0"/></w:rPr><w:t xml:space="preserve"> not </w:t></w:r>
        <w:r><w:rPr><w:strike/></w:rPr><w:t>gone</w:t></w:r>
        <w:r><w:t xml:space="preserve"> see </w:t></w:r>
        <w:hyperlink r:id="rId8"><w:r><w:t>the site</w:t></w:r></w:hyperlink>
        <w:r><w:t xml:space="preserve"> and </w:t></w:r>
        <w:hyperlink r:id="rId7"><w:r><w:t>spaced</w:t></w:r></w:hyperlink>
        <w:r><w:t xml:space="preserve"> 2*3 [x] &lt;tag&gt; &amp; A&#169;</w:t></w:r>
    </w:p>
    <w:p><w:r><w:t># not a heading</w:t></w:r></w:p>
    <w:p><w:r><w:t>1. not a list</w:t><w:br/><w:t>- nor this</w:t></w:r></w:p>"#;
    let (text, md) = both(body);
    assert_eq!(
        md,
        "Plain **bold *both***, *it* not ~~gone~~ see [the site](https://example.org/) and [spaced](<https://example.com/a b>) 2\\*3 \\[x\\] \\<tag\\> & A©\n\n\\# not a heading\n\n1\\. not a list\\\n\\- nor this\n"
    );
    assert_eq!(
        text,
        "Plain bold both, it not gone see the site and spaced 2*3 [x] <tag> & A©\n\n# not a heading\n\n1. not a list\n- nor this\n"
    );
}

fn wrun(rpr: &str, text: &str) -> String {
    format!(r#"<w:r><w:rPr>{rpr}</w:rPr><w:t xml:space="preserve">{text}</w:t></w:r>"#)
}

#[test]
fn character_styles_give_bold_italic_and_strikethrough() {
    let body = format!(
        "<w:p>{}{}{}{}{}{}{}{}{}</w:p>",
        wrun("", "Plain "),
        wrun(r#"<w:rStyle w:val="Strong"/>"#, "strong"),
        wrun("", " and "),
        wrun(r#"<w:rStyle w:val="Emphasis"/>"#, "emphasis"),
        wrun("", ", "),
        wrun(r#"<w:rStyle w:val="StrongEmphasis"/>"#, "both"),
        wrun(r#"<w:rStyle w:val="Gone"/>"#, " gone"),
        wrun(r#"<w:rStyle w:val="Strong"/><w:b w:val="0"/>"#, " but not this"),
        wrun(r#"<w:rStyle w:val="NoSuchStyle"/>"#, " end"),
    );
    let (text, md) = both(&body);
    assert_eq!(md, "Plain **strong** and *emphasis*, ***both*** ~~gone~~ but not this end\n");
    assert_eq!(text, "Plain strong and emphasis, both gone but not this end\n");
}

#[test]
fn links_keep_their_fragment() {
    let body = r#"<w:p>
        <w:hyperlink r:id="rId8" w:anchor="intro"><w:r><w:t>site intro</w:t></w:r></w:hyperlink>
        <w:r><w:t xml:space="preserve">, </w:t></w:r>
        <w:hyperlink r:id="rId9"><w:r><w:t>section</w:t></w:r></w:hyperlink>
        <w:r><w:t xml:space="preserve">, </w:t></w:r>
        <w:hyperlink r:id="rId9" w:anchor="other"><w:r><w:t>own fragment wins</w:t></w:r></w:hyperlink>
        <w:r><w:t xml:space="preserve">, </w:t></w:r>
        <w:hyperlink w:anchor="_Toc1"><w:r><w:t>contents</w:t></w:r></w:hyperlink>
    </w:p>"#;
    let (_, md) = both(body);
    assert_eq!(
        md,
        "[site intro](https://example.org/#intro), [section](https://example.com/page#section-2), \
         [own fragment wins](https://example.com/page#section-2), [contents](#_Toc1)\n"
    );
}

#[test]
fn code_blocks_from_code_styles_and_monospace_fonts() {
    let courier = |text: &str| {
        format!(r#"<w:p>{}</w:p>"#, wrun(r#"<w:rFonts w:ascii="Courier New" w:hAnsi="Courier New"/>"#, text))
    };
    let body = [
        p("", "Run this:"),
        p("Code", "fn main() {"),
        p("Code", r#"    println!("*hi* _there_");"#),
        "<w:p><w:pPr><w:pStyle w:val=\"Code\"/></w:pPr></w:p>".to_string(),
        p("Code", "}"),
        p("", "Then:"),
        p("HTMLPreformatted", "use ``` fences"),
        p("", "A listing style known only by its font:"),
        p("Listing", "$ ls -l"),
        p("", "A paragraph in Courier New:"),
        courier("x = 1 # set"),
        courier("y = 2"),
        format!(
            "<w:p>{}{}</w:p>",
            wrun(r#"<w:rFonts w:ascii="Consolas"/>"#, "mixed"),
            wrun(r#"<w:rFonts w:ascii="Arial"/>"#, " fonts stay a paragraph")
        ),
    ]
    .concat();
    let (text, md) = both(&body);
    assert_eq!(
        md,
        "Run this:\n\n```\nfn main() {\n    println!(\"*hi* _there_\");\n\n}\n```\n\nThen:\n\n````\nuse ``` fences\n````\n\n\
         A listing style known only by its font:\n\n```\n$ ls -l\n```\n\nA paragraph in Courier New:\n\n```\nx = 1 # set\ny = 2\n```\n\n\
         mixed fonts stay a paragraph\n"
    );
    assert_eq!(
        text,
        "Run this:\n\nfn main() {\n    println!(\"*hi* _there_\");\n\n}\n\nThen:\n\nuse ``` fences\n\n\
         A listing style known only by its font:\n\n$ ls -l\n\nA paragraph in Courier New:\n\nx = 1 # set\ny = 2\n\n\
         mixed fonts stay a paragraph\n"
    );
}

#[test]
fn block_quotes_from_quote_styles() {
    let body = [
        p("", "He said:"),
        p("Quote", "To be, or not to be,"),
        p("IntenseQuote", "that is the *question*."),
        p("", "And later:"),
        p("Zitat", "# not a heading"),
    ]
    .concat();
    let (text, md) = both(&body);
    assert_eq!(
        md,
        "He said:\n\n> To be, or not to be,\n>\n> that is the \\*question\\*.\n\nAnd later:\n\n> \\# not a heading\n"
    );
    assert_eq!(text, "He said:\n\nTo be, or not to be,\n\nthat is the *question*.\n\nAnd later:\n\n# not a heading\n");
}

#[test]
fn deleted_text_fallbacks_and_text_boxes() {
    let body = r#"<w:p>
        <w:r><w:t xml:space="preserve">Kept </w:t></w:r>
        <w:del w:id="1"><w:r><w:delText>deleted</w:delText></w:r></w:del>
        <w:ins w:id="2"><w:r><w:t>inserted</w:t></w:r></w:ins>
        <w:r><w:instrText> HYPERLINK "x" </w:instrText></w:r>
        <w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wps:txbx><w:txbxContent>
            <w:p><w:r><w:t>In the box</w:t></w:r></w:p>
        </w:txbxContent></wps:txbx></w:drawing></mc:Choice>
        <mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>In the box</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback>
        </mc:AlternateContent></w:r>
    </w:p>"#;
    let (text, _) = both(body);
    assert_eq!(text, "Kept inserted\n\nIn the box\n");
}

#[test]
fn empty_document_gives_empty_output() {
    let (text, md) = both("");
    assert_eq!(text, "");
    assert_eq!(md, "");
}

fn unsupported(input: &[u8]) -> String {
    match run::<Doc>("markdown", input) {
        Err(ProcessError::UnsupportedInput(m)) => m,
        other => panic!("expected unsupported input, got {other:?}"),
    }
}

#[test]
fn corrupt_inputs_are_unsupported_and_named() {
    assert!(unsupported(b"").contains("empty"));
    assert!(unsupported(b"hello, not a zip").contains("not a zip"));
    let d = docx(&p("", "x"));
    assert!(unsupported(&d[..d.len() / 2]).contains("corrupt zip"), "{}", unsupported(&d[..d.len() / 2]));
    let no_doc = docx_parts(&[("word/styles.xml", STYLES)]);
    assert!(unsupported(&no_doc).contains("no word/document.xml"));
    let bad_xml = docx_parts(&[("word/document.xml", "<w:document><w:body><w:p></w:body>")]);
    assert!(unsupported(&bad_xml).contains("malformed XML in word/document.xml"), "{}", unsupported(&bad_xml));
    let empty = docx_parts(&[("word/document.xml", "")]);
    let m = unsupported(&empty);
    assert!(m.contains("malformed XML in word/document.xml") && m.contains("no root element"), "{m}");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("word/document.xml", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(b"<a>\xff\xfe</a>").unwrap();
    let latin = zip.finish().unwrap().into_inner();
    assert!(unsupported(&latin).contains("not valid UTF-8"));
}

/// The DOCX `docx(body)` builds, with one part replaced.
fn docx_with(body: &str, name: &str, content: &str) -> Vec<u8> {
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document {W}><w:body>{body}<w:sectPr/></w:body></w:document>"#
    );
    let mut parts = vec![
        ("word/document.xml", document.as_str()),
        ("word/styles.xml", STYLES),
        ("word/numbering.xml", NUMBERING),
        ("word/_rels/document.xml.rels", RELS),
    ];
    for (n, c) in &mut parts {
        if *n == name {
            *c = content;
        }
    }
    docx_parts(&parts)
}

#[test]
fn a_document_cut_in_half_is_refused_with_the_place() {
    let body: String = (1..=40).map(|i| p("", &format!("Paragraph number {i} of the report."))).collect();
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document {W}><w:body>{body}<w:sectPr/></w:body></w:document>"#
    );
    // The whole document converts.
    let whole = docx_with(&body, "word/document.xml", &document);
    assert!(convert("text", &whole).0.contains("Paragraph number 40"));
    // Cut in half: before, this gave success with the first twenty paragraphs.
    let half = &document[..document.len() / 2];
    for style in ["text", "markdown"] {
        match run::<Doc>(style, &docx_with(&body, "word/document.xml", half)) {
            Err(ProcessError::UnsupportedInput(m)) => {
                assert!(m.starts_with("malformed XML in word/document.xml at line 2, column "), "{m}");
                assert!(m.contains("cut short"), "{m}");
            }
            other => panic!("{style}: expected unsupported input and no output, got {other:?}"),
        }
    }
    // Cut inside a tag, inside text, inside an attribute, right after an end tag.
    for cut in ["<w:t xml:sp", "Paragraph number 7 o", r#"<w:t xml:space="pres"#, "</w:p>"] {
        let at = document.find(cut).unwrap() + cut.len();
        let m = unsupported(&docx_with(&body, "word/document.xml", &document[..at]));
        let (_, column) = m.split_once("column ").unwrap_or_else(|| panic!("{m}"));
        assert!(m.starts_with("malformed XML in word/document.xml at line 2, column "), "{cut}: {m}");
        assert!(column.split(':').next().unwrap().parse::<usize>().is_ok(), "{m}");
    }
    // The position is the right one: an end tag that does not match, on line 3.
    let bad = format!(
        "<w:document {W}><w:body>\n<w:p><w:r><w:t>x</w:t></w:r></w:p>\n  <w:p></w:r></w:p></w:body></w:document>"
    );
    let m = unsupported(&docx_with("", "word/document.xml", &bad));
    assert!(m.starts_with("malformed XML in word/document.xml at line 3, column 8:"), "{m}");
    assert!(m.contains("`</w:p>`") && m.contains("`</w:r>`"), "{m}");
}

#[test]
fn malformed_xml_in_any_part_is_refused_and_named() {
    let body = p("Heading1", "Title");
    let cases = [
        ("word/styles.xml", &STYLES[..STYLES.len() - 40], "word/styles.xml", "cut short"),
        ("word/numbering.xml", &NUMBERING[..NUMBERING.len() / 2], "word/numbering.xml", "cut short"),
        (
            "word/_rels/document.xml.rels",
            "<Relationships><Relationship Id=\"a\" Id=\"b\"/></Relationships>",
            "word/_rels/document.xml.rels",
            "attributes",
        ),
        ("word/styles.xml", "<w:styles xmlns:w=\"x\"/><w:styles xmlns:w=\"x\"/>", "word/styles.xml", "second root"),
        ("word/styles.xml", "<x:styles/>", "word/styles.xml", "undeclared namespace prefix `x`"),
    ];
    for (part, content, named, what) in cases {
        let m = unsupported(&docx_with(&body, part, content));
        assert!(m.starts_with(&format!("malformed XML in {named} at line ")), "{part}: {m}");
        assert!(m.contains(what), "{part}: {m}");
    }
    let entity = format!("<w:document {W}><w:body><w:p><w:r><w:t>a &nbsp; b</w:t></w:r></w:p></w:body></w:document>");
    let m = unsupported(&docx_with("", "word/document.xml", &entity));
    assert!(m.contains("line 1, column ") && m.contains("`&nbsp;`"), "{m}");
    let trailing = format!("<w:document {W}><w:body/></w:document>stray text");
    assert!(unsupported(&docx_with("", "word/document.xml", &trailing)).contains("text outside the root element"));
}

#[test]
fn zip_bomb_is_refused() {
    // 65 MiB of spaces deflate to about 65 KiB.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(false);
    zip.start_file("word/document.xml", options).unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..65 {
        zip.write_all(&chunk).unwrap();
    }
    let bomb = zip.finish().unwrap().into_inner();
    assert!(bomb.len() < 1 << 20);
    let m = unsupported(&bomb);
    assert!(m.contains("word/document.xml") && m.contains("limit"), "{m}");
}

#[test]
fn garbage_never_panics() {
    let good = docx(&[p("Heading1", "T"), li(2, 0, "a"), tc("x")].concat());
    let mut x: u32 = 1;
    for i in 0..300 {
        let mut d = good.clone();
        for _ in 0..(1 + i % 8) {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            let at = (x as usize >> 8) % d.len();
            d[at] ^= (x >> 24) as u8 | 1;
        }
        let _ = run::<Doc>("markdown", &d);
        let _ = run::<Doc>("text", &d[..(x as usize) % d.len()]);
    }
}

#[test]
fn bad_params_are_refused() {
    let err = |p: &str| Doc::validate(p).unwrap_err().to_string();
    assert!(
        err("html").contains("unknown action `html`") && err("html").contains("text, markdown, pdf, png, csv, info")
    );
    assert!(err("text,x_1").contains("unknown parameter `x`"));
    assert!(err("text/markdown").contains("one action"));
    assert!(matches!(run::<Doc>("html", b"PK"), Err(ProcessError::InvalidParams(_))));
}
