//! PPTX: slides in order, titles as headings, body text bulleted by level,
//! pictures and tables; a 100-megapixel picture refused before any decoding.

use kiln_plugin_sdk::testing::Harness;
use kiln_plugin_sdk::{ObjectInfo, ProcessError};

use crate::Doc;
use crate::tests::{docx_parts, zip_of};

const P: &str = r#"xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships""#;

fn shape(ph: &str, paras: &[(u8, &str)]) -> String {
    let ph = if ph.is_empty() { String::new() } else { format!(r#"<p:ph type="{ph}"/>"#) };
    let paras: String =
        paras.iter().map(|(lvl, t)| format!(r#"<a:p><a:pPr lvl="{lvl}"/><a:r><a:t>{t}</a:t></a:r></a:p>"#)).collect();
    format!(r#"<p:sp><p:nvSpPr><p:nvPr>{ph}</p:nvPr></p:nvSpPr><p:txBody>{paras}</p:txBody></p:sp>"#)
}

/// A presentation of these slides (their `spTree` content), with `image` as `rId9` of every slide.
pub(crate) fn pptx(slides: &[String], image: &[u8]) -> Vec<u8> {
    let ids: String = (1..=slides.len()).map(|i| format!(r#"<p:sldId id="{}" r:id="rId{i}"/>"#, 255 + i)).collect();
    let presentation = format!(r#"<p:presentation {P}><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>"#);
    let rels: String = (1..=slides.len())
        .map(|i| format!(r#"<Relationship Id="rId{i}" Type="x/slide" Target="slides/slide{i}.xml"/>"#))
        .collect();
    let rels = format!(
        r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#
    );
    let slide_rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId9" Type="x/image" Target="../media/image1.png"/></Relationships>"#;
    let mut parts: Vec<(String, Vec<u8>)> = vec![
        ("ppt/presentation.xml".into(), presentation.into_bytes()),
        ("ppt/_rels/presentation.xml.rels".into(), rels.into_bytes()),
        ("ppt/media/image1.png".into(), image.to_vec()),
    ];
    for (i, tree) in slides.iter().enumerate() {
        let xml = format!(r#"<p:sld {P}><p:cSld><p:spTree>{tree}</p:spTree></p:cSld></p:sld>"#);
        parts.push((format!("ppt/slides/slide{}.xml", i + 1), xml.into_bytes()));
        parts.push((format!("ppt/slides/_rels/slide{}.xml.rels", i + 1), slide_rels.as_bytes().to_vec()));
    }
    let refs: Vec<(&str, &[u8])> = parts.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice())).collect();
    zip_of(&refs)
}

const PICTURE: &str = r#"<p:pic><p:blipFill><a:blip r:embed="rId9"/></p:blipFill><p:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="1270000" cy="635000"/></a:xfrm></p:spPr></p:pic>"#;

fn slides() -> Vec<String> {
    let table = r#"<p:graphicFrame><a:graphic><a:graphicData><a:tbl><a:tr><a:tc gridSpan="2"><a:txBody><a:p><a:r><a:t>Both</a:t></a:r></a:p></a:txBody></a:tc><a:tc hMerge="1"><a:txBody><a:p/></a:txBody></a:tc></a:tr><a:tr><a:tc><a:txBody><a:p><a:r><a:t>Left</a:t></a:r></a:p></a:txBody></a:tc><a:tc><a:txBody><a:p><a:r><a:t>Right</a:t></a:r></a:p></a:txBody></a:tc></a:tr></a:tbl></a:graphicData></a:graphic></p:graphicFrame>"#;
    vec![
        shape("title", &[(0, "Quarterly review")])
            + &shape("body", &[(0, "Revenue up"), (1, "in the north")])
            + PICTURE,
        shape("title", &[(0, "Figures")]) + &shape("", &[(0, "A text box.")]) + table,
    ]
}

fn run(style: &str, input: &[u8]) -> Result<kiln_plugin_sdk::testing::Ran, ProcessError> {
    let object = ObjectInfo { bucket: "b".into(), key: "talks/q1.pptx".into(), ..Default::default() };
    Harness::new(style, input).object(object).run::<Doc>()
}

#[test]
fn slides_in_order_with_titles_bullets_and_tables() {
    let md = run("markdown", &pptx(&slides(), b"not read for text")).unwrap();
    let md = String::from_utf8(md.outputs[0].bytes.clone()).unwrap();
    assert_eq!(
        md,
        "# Quarterly review\n\n- Revenue up\n    - in the north\n\n# Figures\n\nA text box.\n\n| Both |  |\n| --- | --- |\n| Left | Right |\n",
    );
}

#[test]
fn a_picture_of_100_megapixels_is_refused_before_decoding() {
    // The header of a PNG: its size is all that is read before the limit.
    let mut huge =
        vec![137u8, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0];
    huge[16..20].copy_from_slice(&10_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&10_000u32.to_be_bytes());
    match run("pdf", &pptx(&slides(), &huge)) {
        Err(ProcessError::UnsupportedInput(m)) => assert!(m.contains("10000×10000") && m.contains("40 MP"), "{m}"),
        other => panic!("{:?}", other.map(|r| r.outputs.len())),
    }
    match run("pdf", &docx_parts(&[("ppt/x.xml", "<x/>")])) {
        Err(ProcessError::UnsupportedInput(m)) => assert!(m.contains("no ppt/presentation.xml"), "{m}"),
        other => panic!("{:?}", other.map(|r| r.outputs.len())),
    }
}
