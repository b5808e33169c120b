//! Spreadsheet numbers shown as Excel shows them: the cell's number format
//! (built in by id, or the workbook's own code) applied to its value. Covers
//! `General`, fixed decimals, thousands separators, percentages, scientific
//! notation, literal text, and dates and times; a format beyond these (fractions,
//! conditions) falls back to `General`.

/// The built-in format codes Excel numbers by id (ECMA-376, 18.8.30).
pub fn builtin(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "General",
        1 => "0",
        2 => "0.00",
        3 => "#,##0",
        4 => "#,##0.00",
        9 => "0%",
        10 => "0.00%",
        11 => "0.00E+00",
        14 => "m/d/yyyy",
        15 => "d-mmm-yy",
        16 => "d-mmm",
        17 => "mmm-yy",
        18 => "h:mm AM/PM",
        19 => "h:mm:ss AM/PM",
        20 => "h:mm",
        21 => "h:mm:ss",
        22 => "m/d/yyyy h:mm",
        37 => "#,##0 ;(#,##0)",
        38 => "#,##0 ;(#,##0)",
        39 => "#,##0.00;(#,##0.00)",
        40 => "#,##0.00;(#,##0.00)",
        45 => "mm:ss",
        46 => "[h]:mm:ss",
        47 => "mm:ss.0",
        48 => "##0.0E+0",
        49 => "@",
        _ => return None,
    })
}

/// `value` in the format `code`; `date1904` is the workbook's date system.
pub fn format(value: f64, code: &str, date1904: bool) -> String {
    if !value.is_finite() {
        return general(value);
    }
    let sections: Vec<&str> = split_sections(code);
    let (section, value) = match (sections.len(), value) {
        (n, v) if n >= 2 && v < 0.0 => (sections[1], -v),
        (n, v) if n >= 3 && v == 0.0 => (sections[2], v),
        _ => (sections.first().copied().unwrap_or("General"), value),
    };
    let elapsed_hours = section.to_ascii_lowercase().contains("[h");
    let section = strip_brackets(section);
    if section.trim().is_empty() || section.eq_ignore_ascii_case("general") || section == "@" {
        return general(value);
    }
    if is_date(&section) {
        return date(value, &section, date1904, elapsed_hours).unwrap_or_else(|| general(value));
    }
    number(value, &section)
}

/// Sections split at `;` outside quotes.
fn split_sections(code: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in code.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&code[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&code[start..]);
    out
}

/// The code without `[Red]`, `[$-409]` and such; `[h]` (elapsed hours) is kept as `h`.
fn strip_brackets(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find(']') else { break };
        let inner = &rest[open + 1..open + close];
        if matches!(inner.to_ascii_lowercase().as_str(), "h" | "hh" | "m" | "mm" | "s" | "ss") {
            out.push_str(inner);
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Whether a code shows a date or time (a `y`, `d`, `h` or `s` outside quotes).
fn is_date(code: &str) -> bool {
    let mut quoted = false;
    for c in code.chars() {
        match c {
            '"' => quoted = !quoted,
            'y' | 'Y' | 'd' | 'D' | 'h' | 'H' | 's' | 'S' if !quoted => return true,
            _ => {}
        }
    }
    false
}

/// Excel's `General`: integers as they are, other numbers to 10 significant digits.
pub fn general(v: f64) -> String {
    if !v.is_finite() {
        return "#NUM!".into();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let abs = v.abs();
    if !(1e-9..1e11).contains(&abs) {
        let s = format!("{v:.5E}");
        // 1.23450E7 → 1.2345E+07
        let (mantissa, exp) = s.split_once('E').unwrap_or((&s, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        let exp: i32 = exp.parse().unwrap_or(0);
        return format!("{mantissa}E{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let digits = 10 - (abs.log10().floor() as i32 + 1);
    let s = format!("{v:.*}", digits.clamp(0, 10) as usize);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn number(value: f64, code: &str) -> String {
    // The code as literal text around one digit pattern.
    let (mut prefix, mut pattern, mut suffix) = (String::new(), String::new(), String::new());
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        let in_pattern = !pattern.is_empty() && suffix.is_empty();
        let literal = match c {
            '"' => Some(chars.by_ref().take_while(|d| *d != '"').collect::<String>()),
            '\\' => chars.next().map(String::from),
            // A space as wide as the next character; a fill character.
            '_' => chars.next().map(|_| " ".to_string()),
            '*' => chars.next().map(|_| String::new()),
            '0' | '#' | '?' | '.' if suffix.is_empty() => {
                pattern.push(c);
                None
            }
            ',' if in_pattern => {
                pattern.push(c);
                None
            }
            'E' | 'e' if in_pattern => {
                pattern.push('E');
                if let Some(sign) = chars.next_if(|d| matches!(d, '+' | '-')) {
                    pattern.push(sign);
                }
                None
            }
            other => Some(other.to_string()),
        };
        if let Some(text) = literal {
            if pattern.is_empty() { prefix.push_str(&text) } else { suffix.push_str(&text) }
        }
    }
    if pattern.is_empty() {
        return format!("{prefix}{suffix}");
    }
    let mut v = value;
    if prefix.contains('%') || suffix.contains('%') {
        v *= 100.0;
    }
    // Trailing commas scale by thousands.
    let trimmed = pattern.trim_end_matches(',');
    for _ in 0..(pattern.len() - trimmed.len()) {
        v /= 1000.0;
    }
    let pattern = trimmed;
    let negative = v < 0.0;
    let v = v.abs();
    if let Some(e) = pattern.find('E') {
        let decimals = pattern[..e].split_once('.').map_or(0, |(_, d)| d.len());
        let s = format!("{v:.decimals$E}");
        let (m, exp) = s.split_once('E').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let digits = pattern[e + 1..].trim_start_matches(['+', '-']).len().max(1);
        let sign = if negative { "-" } else { "" };
        return format!("{sign}{prefix}{m}E{}{:0digits$}{suffix}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let (int_pattern, frac_pattern) = pattern.split_once('.').unwrap_or((pattern, ""));
    let decimals = frac_pattern.chars().filter(|c| matches!(c, '0' | '#' | '?')).count();
    let required = frac_pattern.chars().filter(|c| *c == '0').count();
    let min_int = int_pattern.chars().filter(|c| *c == '0').count();
    // Half away from zero, as Excel rounds (`format!` rounds half to even).
    let scale = 10f64.powi(decimals as i32);
    let s = format!("{:.decimals$}", (v * scale * (1.0 + f64::EPSILON)).round() / scale);
    let (int, frac) = s.split_once('.').unwrap_or((s.as_str(), ""));
    let mut int = if int == "0" && min_int == 0 { String::new() } else { int.to_string() };
    while int.len() < min_int {
        int.insert(0, '0');
    }
    if int_pattern.contains(',') {
        int = group(&int);
    }
    // Optional decimals (`#`) drop trailing zeros.
    let mut frac = frac.to_string();
    while frac.len() > required && frac.ends_with('0') {
        frac.pop();
    }
    let shows_nonzero = int.chars().chain(frac.chars()).any(|c| c.is_ascii_digit() && c != '0');
    let sign = if negative && shows_nonzero { "-" } else { "" };
    let body = if frac.is_empty() && !pattern.ends_with('.') { int } else { format!("{int}.{frac}") };
    format!("{sign}{prefix}{body}{suffix}")
}

fn group(int: &str) -> String {
    let bytes: Vec<char> = int.chars().collect();
    let mut out = String::new();
    for (i, c) in bytes.iter().enumerate() {
        if i > 0 && (bytes.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(*c);
    }
    out
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn date(serial: f64, code: &str, date1904: bool, elapsed_hours: bool) -> Option<String> {
    if !(0.0..3_000_000.0).contains(&serial) {
        return None;
    }
    let mut day = serial.floor() as i64;
    let mut secs = ((serial - serial.floor()) * 86_400.0).round() as i64;
    if secs >= 86_400 {
        day += 1;
        secs -= 86_400;
    }
    // Serial 1 is 1900-01-01, and Excel counts a 29 February 1900 that never was.
    let unix_days = if date1904 {
        day - 24_107
    } else if day >= 60 {
        day - 25_569
    } else {
        day - 25_568
    };
    let (y, mo, d) = civil(unix_days);
    let weekday = (unix_days + 4).rem_euclid(7) as usize;
    let (h, mi, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let ampm = code.to_ascii_lowercase().contains("am/pm");
    let mut out = String::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    // `m` is minutes right after an hour or before a second, else the month.
    let mut last_was_hour = false;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|x| x.eq_ignore_ascii_case(&c)).count();
        let lower = c.to_ascii_lowercase();
        match lower {
            'y' => {
                out.push_str(&if run <= 2 { format!("{:02}", y.rem_euclid(100)) } else { format!("{y:04}") });
                last_was_hour = false;
            }
            'd' => {
                out.push_str(&match run {
                    1 => d.to_string(),
                    2 => format!("{d:02}"),
                    3 => DAYS[weekday][..3].to_string(),
                    _ => DAYS[weekday].to_string(),
                });
                last_was_hour = false;
            }
            'h' => {
                let hour = if ampm {
                    (h + 11) % 12 + 1
                } else if elapsed_hours {
                    h + day * 24
                } else {
                    h
                };
                out.push_str(&if run >= 2 { format!("{hour:02}") } else { hour.to_string() });
                last_was_hour = true;
            }
            'm' => {
                let next_is_second = chars[i + run..]
                    .iter()
                    .find(|c| c.is_ascii_alphabetic())
                    .is_some_and(|c| c.eq_ignore_ascii_case(&'s'));
                if last_was_hour || next_is_second {
                    out.push_str(&if run >= 2 { format!("{mi:02}") } else { mi.to_string() });
                } else {
                    let name = MONTHS[mo as usize - 1];
                    out.push_str(&match run {
                        1 => mo.to_string(),
                        2 => format!("{mo:02}"),
                        3 => name[..3].to_string(),
                        4 => name.to_string(),
                        _ => name[..1].to_string(),
                    });
                }
                last_was_hour = false;
            }
            's' => {
                out.push_str(&if run >= 2 { format!("{s:02}") } else { s.to_string() });
                last_was_hour = false;
            }
            'a' if code[code.char_indices().nth(i)?.0..].to_ascii_lowercase().starts_with("am/pm") => {
                out.push_str(if h < 12 { "AM" } else { "PM" });
                i += 5;
                continue;
            }
            '"' => {
                let end = chars[i + 1..].iter().position(|x| *x == '"').map_or(chars.len(), |p| i + 1 + p);
                out.extend(&chars[i + 1..end]);
                i = end + 1;
                continue;
            }
            '\\' => {
                if let Some(n) = chars.get(i + 1) {
                    out.push(*n);
                }
                i += 2;
                continue;
            }
            _ => {
                out.push(c);
                i += 1;
                continue;
            }
        }
        i += run;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_excel_shows_them() {
        for (v, code, want) in [
            (1234.5, "General", "1234.5"),
            (0.1 + 0.2, "General", "0.3"),
            (42.0, "General", "42"),
            (1234.567, "0.00", "1234.57"),
            (1234567.891, "#,##0.00", "1,234,567.89"),
            (-1234.0, "#,##0", "-1,234"),
            (0.256, "0.0%", "25.6%"),
            (12345.0, "0.00E+00", "1.23E+04"),
            (-5.0, "#,##0.00;(#,##0.00)", "(5.00)"),
            (3.0, "\"$\"#,##0", "$3"),
            (0.5, "0", "1"),
        ] {
            assert_eq!(format(v, code, false), want, "{v} in {code}");
        }
    }

    #[test]
    fn dates_and_times_as_excel_shows_them() {
        // 45000 is 2023-03-15; 0.75 of a day is 18:00.
        for (v, code, want) in [
            (45000.0, builtin(14).unwrap(), "3/15/2023"),
            (45000.0, "yyyy-mm-dd", "2023-03-15"),
            (45000.0, "d-mmm-yy", "15-Mar-23"),
            (45000.75, "yyyy-mm-dd hh:mm", "2023-03-15 18:00"),
            (45000.75, "h:mm AM/PM", "6:00 PM"),
            (45000.0, "dddd, mmmm d", "Wednesday, March 15"),
            (1.0, "yyyy-mm-dd", "1900-01-01"),
            (61.0, "yyyy-mm-dd", "1900-03-01"),
            (1.5, "[h]:mm:ss", "36:00:00"),
        ] {
            assert_eq!(format(v, code, false), want, "{v} in {code}");
        }
        assert_eq!(format(0.0, "yyyy-mm-dd", true), "1904-01-01");
    }
}
