//! XLSX: sheets to CSV as Excel shows the cells, to text and Markdown tables,
//! and the limits that refuse hostile workbooks.

use kiln_plugin_sdk::testing::Harness;
use kiln_plugin_sdk::{ObjectInfo, ProcessError};

use crate::Doc;
use crate::tests::docx_parts;

const NS: &str = r#"xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships""#;

/// A workbook with these sheets (name, `sheetData` content), shared strings and number formats.
pub(crate) fn xlsx(sheets: &[(&str, &str)]) -> Vec<u8> {
    let listed: String = sheets
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!(r#"<sheet name="{name}" sheetId="{}" r:id="rId{}"/>"#, i + 1, i + 1))
        .collect();
    let workbook = format!(r#"<workbook {NS}><sheets>{listed}</sheets></workbook>"#);
    let rels: String = (1..=sheets.len())
        .map(|i| format!(r#"<Relationship Id="rId{i}" Type="x/worksheet" Target="worksheets/sheet{i}.xml"/>"#))
        .collect();
    let rels = format!(
        r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#
    );
    let strings = format!(
        r#"<sst {NS}><si><t>Name</t></si><si><t>Amount</t></si><si><r><t>Ada, </t></r><r><t>"the first"</t></r></si></sst>"#
    );
    let styles = format!(
        r#"<styleSheet {NS}><numFmts><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/><numFmt numFmtId="165" formatCode="&quot;$&quot;#,##0.00"/></numFmts><cellXfs><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="165"/><xf numFmtId="10"/></cellXfs></styleSheet>"#
    );
    let mut parts: Vec<(String, String)> = vec![
        ("xl/workbook.xml".into(), workbook),
        ("xl/_rels/workbook.xml.rels".into(), rels),
        ("xl/sharedStrings.xml".into(), strings),
        ("xl/styles.xml".into(), styles),
    ];
    for (i, (_, data)) in sheets.iter().enumerate() {
        parts.push((
            format!("xl/worksheets/sheet{}.xml", i + 1),
            format!(r#"<worksheet {NS}><sheetData>{data}</sheetData></worksheet>"#),
        ));
    }
    let refs: Vec<(&str, &str)> = parts.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    docx_parts(&refs)
}

const DATA: &str = r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="inlineStr"><is><t>When</t></is></c></row><row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" s="2"><v>1234.5</v></c><c r="C2" s="1"><v>45000</v></c></row><row r="4"><c r="A4" t="b"><v>1</v></c><c r="B4" s="3"><f>B2/10000</f><v>0.12345</v></c><c r="D4" t="str"><f>"x"&amp;"y"</f><v>xy</v></c></row>"#;

fn run(style: &str, key: &str, input: &[u8]) -> Result<kiln_plugin_sdk::testing::Ran, ProcessError> {
    Harness::new(style, input)
        .object(ObjectInfo { bucket: "b".into(), key: key.into(), ..Default::default() })
        .run::<Doc>()
}

#[test]
fn each_sheet_becomes_a_csv_of_what_excel_shows() {
    let book = xlsx(&[("Data", DATA), ("Empty", "")]);
    let ran = run("csv", "books/q1.xlsx", &book).unwrap();
    assert_eq!(ran.outputs.len(), 2);
    let data = &ran.outputs[0];
    assert_eq!(data.variables, vec![("sheetname".to_string(), "Data".to_string())]);
    assert_eq!(data.extension.as_deref(), Some("csv"));
    assert_eq!(
        String::from_utf8(data.bytes.clone()).unwrap(),
        "Name,Amount,When,\r\n\"Ada, \"\"the first\"\"\",\"$1,234.50\",2023-03-15,\r\n,,,\r\nTRUE,12.35%,,xy\r\n"
    );
    assert_eq!(ran.outputs[1].variables, vec![("sheetname".to_string(), "Empty".to_string())]);
    assert!(ran.outputs[1].bytes.is_empty());
    assert_eq!(ran.result.unwrap()["sheets"], serde_json::json!(["Data", "Empty"]));
    let one = run("csv,sheet_2", "q1.xlsx", &book).unwrap();
    assert_eq!(one.outputs.len(), 1);
    match run("csv,sheet_3", "q1.xlsx", &book) {
        Err(ProcessError::UnsupportedInput(m)) => assert!(m.contains("sheet_3") && m.contains("2 sheets"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sheets_as_text_and_markdown_tables() {
    let book = xlsx(&[("Data", DATA)]);
    let md = String::from_utf8(run("markdown", "q1.xlsx", &book).unwrap().outputs[0].bytes.clone()).unwrap();
    assert!(md.starts_with("# Data\n"), "{md}");
    assert!(md.contains("| Name | Amount | When |"), "{md}");
    assert!(md.contains("$1,234.50"), "{md}");
}

#[test]
fn hostile_workbooks_are_refused_by_the_limit_they_break() {
    let refused = |book: Vec<u8>| match run("csv", "big.xlsx", &book) {
        Err(ProcessError::UnsupportedInput(m)) => m,
        other => panic!("{:?}", other.map(|r| r.outputs.len())),
    };
    // A million cells.
    let row: String = "<c t=\"b\"><v>1</v></c>".repeat(1000);
    let rows: String = (1..=1000).map(|r| format!(r#"<row r="{r}">{row}</row>"#)).collect();
    let m = refused(xlsx(&[("Big", &rows)]));
    assert!(m.contains("more than 500000 cells"), "{m}");
    // One value in the last cell of the sheet.
    let m = refused(xlsx(&[("Far", r#"<row r="1048576"><c r="XFD1048576" t="b"><v>1</v></c></row>"#)]));
    assert!(m.contains("1048576 rows by 16384 columns") && m.contains("limit of 2000000"), "{m}");
    // Not a zip, and a zip without a workbook.
    assert!(refused(b"a,b\n1,2\n".to_vec()).contains("not a zip archive"));
    assert!(refused(docx_parts(&[("word/document.xml", "<w/>")])).contains("no xl/workbook.xml"));
}
