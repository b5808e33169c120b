//! Output for people: summaries, aligned tables, sizes as `4.3 MiB`, times as
//! local dates with "3 min ago". `--json` prints the API's records instead.

use serde_json::Value;

/// The Unix seconds of an API time (RFC 3339; Unix seconds from an older daemon).
pub fn unix(time: &Value) -> Option<i64> {
    time.as_i64().or_else(|| time.as_str().and_then(|s| crate::timefmt::parse(s).ok()))
}

/// An API time as a local date and how long ago it was: `2026-12-04 17:20:31 (3 min ago)`.
pub fn when(time: &Value) -> String {
    let Some(t) = unix(time) else { return "-".into() };
    let Some(utc) = chrono::DateTime::from_timestamp(t, 0) else { return t.to_string() };
    let local = utc.with_timezone(&chrono::Local);
    format!("{} ({})", local.format("%Y-%m-%d %H:%M:%S %:z"), ago(chrono::Utc::now().timestamp() - t))
}

/// `12 s ago`, `3 min ago`, `2 h ago`, `5 days ago`.
pub fn ago(seconds: i64) -> String {
    match seconds {
        s if s < 0 => "in the future".into(),
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// Bytes as `4.3 MiB`.
pub fn size(bytes: &Value) -> String {
    bytes.as_u64().map_or("-".into(), |b| bytesize::ByteSize::b(b).display().iec().to_string())
}

/// `[=========>          ]` for `done` of `total`.
pub fn bar(done: u64, total: u64, width: usize) -> String {
    if total == 0 {
        return format!("[{}]", " ".repeat(width));
    }
    let filled = ((done.min(total) as f64 / total as f64) * width as f64).round() as usize;
    let head = if filled < width && filled > 0 { ">" } else { "" };
    let body = "=".repeat(filled.saturating_sub(head.len()));
    format!("[{body}{head}{}]", " ".repeat(width - body.len() - head.len()))
}

/// Rows under a header, each column as wide as its widest cell; the last
/// column is left ragged.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    let mut lines = vec![line(header.to_vec())];
    lines.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    lines.join("\n")
}

fn counters(j: &Value) -> (u64, u64, u64, u64, u64) {
    let c = &j["counters"];
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    (n("total"), n("succeeded"), n("failed"), n("skipped"), n("succeeded") + n("failed") + n("skipped"))
}

/// `kiln job list`: a table.
pub fn job_table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|j| {
            let (total, _, failed, _, done) = counters(j);
            vec![
                j["id"].to_string(),
                j["state"].as_str().unwrap_or("").to_string(),
                format!("{done}/{total}"),
                failed.to_string(),
                unix(&j["created_at"]).map_or("-".into(), |t| ago(chrono::Utc::now().timestamp() - t)),
                j["spec"]["style"].as_str().unwrap_or("").to_string(),
                j["spec"]["name"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table(&["ID", "STATE", "DONE", "FAILED", "CREATED", "STYLE", "NAME"], &rows)
}

/// `kiln job get`: a summary.
pub fn job_summary(j: &Value) -> String {
    let (total, ok, failed, skipped, done) = counters(j);
    let spec = &j["spec"];
    let input = &spec["input"];
    let mut selection =
        format!("{}/{}", input["bucket"].as_str().unwrap_or(""), input["prefix"].as_str().unwrap_or(""));
    for (flag, key) in [("suffix", "suffixes"), ("file prefix", "file_prefixes")] {
        if let Some(list) = input[key].as_array().filter(|l| !l.is_empty()) {
            let list: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            selection.push_str(&format!(" ({flag} {})", list.join(",")));
        }
    }
    if let Some(keys) = input["keys"].as_array().filter(|k| !k.is_empty()) {
        selection = format!("{} keys in {}", keys.len(), input["bucket"].as_str().unwrap_or(""));
    }
    if let Some(m) = input["manifest"]["key"].as_str() {
        selection = format!("manifest {m} in {}", input["bucket"].as_str().unwrap_or(""));
    }
    let pct = (done * 100).checked_div(total).unwrap_or(0);
    let elapsed = match (unix(&j["created_at"]), unix(&j["finished_at"])) {
        (Some(c), Some(f)) => f - c,
        (Some(c), None) => chrono::Utc::now().timestamp() - c,
        _ => 0,
    };
    let rate = if elapsed > 0 { format!(", {:.1} tasks/s", done as f64 / elapsed as f64) } else { String::new() };
    let mut lines = vec![
        format!(
            "job {}{}  {}{}",
            j["id"],
            spec["name"].as_str().map(|n| format!(" \"{n}\"")).unwrap_or_default(),
            j["state"].as_str().unwrap_or(""),
            j["tenant"].as_str().map(|t| format!("  (tenant {t})")).unwrap_or_default()
        ),
        format!("  style     {}", spec["style"].as_str().unwrap_or("")),
        format!("  input     {selection}"),
        format!(
            "  output    {}/{}",
            spec["output"]["bucket"].as_str().unwrap_or(""),
            spec["output"]["template"].as_str().unwrap_or("")
        ),
        format!("  progress  {} {done}/{total} {pct}%{rate}", bar(done, total, 24)),
        format!("  tasks     {ok} succeeded, {failed} failed, {skipped} skipped"),
        format!("  data      {} in, {} out", size(&j["counters"]["bytes_in"]), size(&j["counters"]["bytes_out"])),
        format!("  created   {}", when(&j["created_at"])),
    ];
    let limits = &spec["limits"];
    let asked: Vec<String> = [
        limits["deadline"].as_str().map(|d| format!("deadline {d}")),
        limits["max_output"].as_u64().map(|_| format!("output <= {}", size(&limits["max_output"]))),
        limits["max_memory"].as_u64().map(|_| format!("memory <= {}", size(&limits["max_memory"]))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !asked.is_empty() {
        lines.push(format!("  limits    {} (per task, the job's own)", asked.join(", ")));
    }
    if !j["finished_at"].is_null() {
        lines.push(format!("  finished  {}", when(&j["finished_at"])));
    }
    if let Some(e) = j["error"].as_str() {
        lines.push(format!("  error     {e}"));
    }
    lines.join("\n")
}

/// `kiln task list`: a table.
pub fn task_table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|t| {
            let outputs: Vec<&str> = t["outputs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let output = match outputs.as_slice() {
                [] => "-".to_string(),
                [one] => one.to_string(),
                [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
            };
            let error = t["error"]["message"]
                .as_str()
                .map(|m| format!("[{}] {}", t["error"]["kind"].as_str().unwrap_or(""), m.lines().next().unwrap_or("")))
                .unwrap_or_default();
            vec![
                t["seq"].to_string(),
                t["state"].as_str().unwrap_or("").to_string(),
                t["attempts"].to_string(),
                t["source_key"].as_str().unwrap_or("").to_string(),
                output,
                error,
            ]
        })
        .collect();
    table(&["SEQ", "STATE", "TRIES", "SOURCE", "OUTPUT", "ERROR"], &rows)
}

/// `kiln task get`: a summary.
pub fn task_summary(t: &Value) -> String {
    let mut lines = vec![
        format!("task {} of job {}  {}", t["seq"], t["job"], t["state"].as_str().unwrap_or("")),
        format!("  source    {} ({})", t["source_key"].as_str().unwrap_or(""), size(&t["size"])),
        format!("  attempts  {}", t["attempts"]),
    ];
    if let Some(ms) = t["duration_ms"].as_u64() {
        lines.push(format!("  took      {ms} ms; {} in, {} out", size(&t["bytes_in"]), size(&t["bytes_out"])));
    }
    for o in t["outputs"].as_array().into_iter().flatten() {
        lines.push(format!("  output    {}", o.as_str().unwrap_or("")));
    }
    if !t["finished_at"].is_null() {
        lines.push(format!("  finished  {}", when(&t["finished_at"])));
    }
    if !t["result"].is_null() {
        lines.push(format!("  result    {}", t["result"]));
    }
    if let Some(m) = t["error"]["message"].as_str() {
        lines.push(format!("  error     [{}] {m}", t["error"]["kind"].as_str().unwrap_or("")));
    }
    lines.join("\n")
}

/// A plugin's self-description for `kiln style describe`: one line per
/// action, then one per parameter with its kind, default and range.
pub fn plugin_description(info: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let list = |v: &Value| {
        let items: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
        if items.is_empty() { "-".to_string() } else { items.join(", ") }
    };
    let mut lines = vec![
        format!("{} {} (contract {})", text(&info["name"]), text(&info["version"]), text(&info["contract"])),
        format!("  {}", text(&info["description"])),
        format!("  reads     {}", list(&info["reads"])),
        format!("  writes    {}", list(&info["writes"])),
    ];
    let variables: Vec<String> =
        info["variables"].as_array().into_iter().flatten().map(|v| format!("{{{}}}", text(v))).collect();
    if !variables.is_empty() {
        lines.push(format!("  output variables for templates: {}", variables.join(", ")));
    }
    let actions = info["actions"].as_array().cloned().unwrap_or_default();
    if actions.is_empty() {
        lines.push("  (the plugin describes no actions: see its documentation)".into());
    }
    for a in actions {
        lines.push(format!("{}  {}", text(&a["name"]), text(&a["description"])));
        for p in a["params"].as_array().into_iter().flatten() {
            let mut detail = vec![text(&p["kind"])];
            if let Some(d) = p["default"].as_str() {
                detail.push(format!("default {d}"));
            }
            if let Some(r) = p["range"].as_str() {
                detail.push(r.to_string());
            }
            if p["choices"].as_array().is_some_and(|c| !c.is_empty()) {
                detail.push(format!("one of {}", list(&p["choices"])));
            }
            lines.push(format!("  {}_  {}  ({})", text(&p["name"]), text(&p["description"]), detail.join(", ")));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_their_columns_under_a_header() {
        let t = table(
            &["ID", "STATE", "NAME"],
            &[vec!["7".into(), "running".into(), "x".into()], vec!["12".into(), "ok".into(), "long name".into()]],
        );
        assert_eq!(t, "ID  STATE    NAME\n7   running  x\n12  ok       long name");
    }

    #[test]
    fn bars_sizes_and_ages_read_as_people_write_them() {
        assert_eq!(bar(0, 10, 10), "[          ]");
        assert_eq!(bar(5, 10, 10), "[====>     ]");
        assert_eq!(bar(10, 10, 10), "[==========]");
        assert_eq!(size(&json!(4_509_715)), "4.3 MiB");
        assert_eq!(ago(5), "5 s ago");
        assert_eq!(ago(200), "3 min ago");
        assert_eq!(ago(3 * 86_400), "3 days ago");
    }

    #[test]
    fn a_job_summary_has_state_progress_sizes_and_times() {
        let job = json!({"id": 7, "state": "running", "tenant": "acme",
            "spec": {"name": "nightly", "style": "copy", "input": {"bucket": "photos", "prefix": "2024/", "suffixes": [".jpg"]},
                     "output": {"bucket": "thumbs", "template": "{key}"}},
            "counters": {"total": 10, "succeeded": 4, "failed": 1, "skipped": 0, "bytes_in": 4_509_715, "bytes_out": 1024},
            "created_at": chrono::Utc::now().timestamp() - 180, "finished_at": null, "error": null});
        let s = job_summary(&job);
        assert!(s.starts_with("job 7 \"nightly\"  running  (tenant acme)"), "{s}");
        assert!(s.contains("input     photos/2024/ (suffix .jpg)"), "{s}");
        assert!(s.contains("5/10 50%"), "{s}");
        assert!(s.contains("4.3 MiB in, 1.0 KiB out"), "{s}");
        assert!(s.contains("(3 min ago)"), "{s}");
        assert!(!s.contains("limits"), "{s}");
        let mut job = job;
        job["spec"]["limits"] = json!({"deadline": "10m", "max_output": 8u64 << 30});
        let s = job_summary(&job);
        assert!(s.contains("limits    deadline 10m, output <= 8.0 GiB (per task, the job's own)"), "{s}");
    }
}
