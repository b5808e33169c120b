//! The style grammar of the `image` plugin, parsed into a [`Plan`].

use kiln_plugin_sdk::{Action, Style, StyleError};

use crate::ops::{Gravity, ResizeMode};

pub const ACTIONS: &[&str] = &["resize", "crop", "rotate", "auto-orient", "format", "quality", "info", "limits"];

/// Largest value of a size parameter (`w_`, `h_`, `l_`, `s_`, `x_`, `y_`).
const MAX_PARAM: u32 = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
    Bmp,
}

impl OutFormat {
    /// The extension given to `outputs.open`, i.e. `{autoext}`.
    pub fn extension(self) -> &'static str {
        match self {
            OutFormat::Jpeg => "jpg",
            OutFormat::Png => "png",
            OutFormat::Webp => "webp",
            OutFormat::Gif => "gif",
            OutFormat::Bmp => "bmp",
        }
    }

    /// The name used in `info` JSON.
    pub fn name(self) -> &'static str {
        match self {
            OutFormat::Jpeg => "jpeg",
            OutFormat::Png => "png",
            OutFormat::Webp => "webp",
            OutFormat::Gif => "gif",
            OutFormat::Bmp => "bmp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// `q_`: a percentage of the source's quality (JPEG sources; 100 for others).
    Relative(u8),
    /// `Q_`: this quality, or the source's if lower.
    Absolute(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    pub w: Option<u32>,
    pub h: Option<u32>,
    pub long: Option<u32>,
    pub short: Option<u32>,
    pub percent: Option<u32>,
    pub mode: ResizeMode,
    /// Never enlarge (`limit_1`, the default).
    pub limit: bool,
    pub color: [u8; 3],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub w: Option<u32>,
    pub h: Option<u32>,
    pub gravity: Gravity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Resize(Resize),
    Crop(Crop),
    /// Clockwise, 0..360.
    Rotate(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_pixels: u64,
    pub max_side: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_pixels: 250_000_000, max_side: 30_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub format: Option<OutFormat>,
    pub quality: Option<Quality>,
    pub auto_orient: bool,
    /// `info`: the header as the task's result.
    pub info: bool,
    /// `info,o_1`: also written as a JSON output, as before contract 0.2.0.
    pub info_object: bool,
    pub limits: Limits,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            ops: Vec::new(),
            format: None,
            quality: None,
            auto_orient: true,
            info: false,
            info_object: false,
            limits: Limits::default(),
        }
    }
}

pub fn parse(params: &str) -> Result<Plan, StyleError> {
    let style = Style::parse(params)?;
    let mut plan = Plan::default();
    // `limits` applies to the whole style, wherever it is written, and bounds the size parameters.
    for action in style.actions.iter().filter(|a| a.name == "limits") {
        action.expect_keys(&["mp", "side"], false)?;
        if let Some(mp) = action.get_in::<u32>("mp", 1..=1000)? {
            plan.limits.max_pixels = u64::from(mp) * 1_000_000;
        }
        if let Some(side) = action.get_in::<u32>("side", 1..=MAX_PARAM)? {
            plan.limits.max_side = side;
        }
    }
    let mut info_with: Option<&str> = None;
    for action in &style.actions {
        match action.name.as_str() {
            "limits" => {}
            "resize" => plan.ops.push(Op::Resize(resize(action, &plan.limits)?)),
            "crop" => plan.ops.push(Op::Crop(crop(action)?)),
            "rotate" => {
                action.expect_keys(&[], true)?;
                let value = single_value(action)?;
                let deg = value.parse::<u32>().ok().filter(|d| *d <= 360).ok_or_else(|| {
                    action.invalid("degrees", value, "must be a whole number of degrees between 0 and 360")
                })?;
                plan.ops.push(Op::Rotate(deg % 360));
            }
            "auto-orient" => {
                action.expect_keys(&[], true)?;
                plan.auto_orient = match action.values().collect::<Vec<_>>().as_slice() {
                    [] | ["1"] => true,
                    ["0"] => false,
                    [v] => return Err(action.invalid("value", v, "must be 0 or 1")),
                    [_, extra, ..] => return Err(unexpected(action, extra)),
                };
            }
            "format" => {
                action.expect_keys(&[], true)?;
                let value = single_value(action)?;
                plan.format = Some(match value.to_ascii_lowercase().as_str() {
                    "jpg" | "jpeg" => OutFormat::Jpeg,
                    "png" => OutFormat::Png,
                    "webp" => OutFormat::Webp,
                    "gif" => OutFormat::Gif,
                    "bmp" => OutFormat::Bmp,
                    _ => return Err(action.invalid("format", value, "expected one of: jpg, png, webp, gif, bmp")),
                });
            }
            "quality" => {
                action.expect_keys(&["q", "Q"], false)?;
                let q = action.get_in::<u8>("q", 1..=100)?;
                let big_q = action.get_in::<u8>("Q", 1..=100)?;
                plan.quality = Some(match (q, big_q) {
                    (Some(_), Some(_)) => {
                        return Err(action.invalid(
                            "Q",
                            action.raw("Q").unwrap_or_default(),
                            "give either `q` or `Q`, not both",
                        ));
                    }
                    (Some(q), None) => Quality::Relative(q),
                    (None, Some(q)) => Quality::Absolute(q),
                    (None, None) => {
                        return Err(StyleError::MissingKey { action: action.name.clone(), key: "q or Q".into() });
                    }
                });
            }
            "info" => {
                action.expect_keys(&["o"], false)?;
                plan.info = true;
                plan.info_object = action.get_in::<u8>("o", 0..=1)? == Some(1);
            }
            other => return Err(kiln_plugin_sdk::style::unknown_action(other, ACTIONS)),
        }
        if !matches!(action.name.as_str(), "info" | "limits") {
            info_with.get_or_insert(action.name.as_str());
        }
    }
    if let (true, Some(other)) = (plan.info, info_with) {
        return Err(StyleError::UnknownAction {
            action: other.to_string(),
            expected: "only `limits` next to `info` (info describes the source image, as JSON)".into(),
        });
    }
    Ok(plan)
}

fn unexpected(action: &Action, value: &str) -> StyleError {
    StyleError::UnexpectedValue { action: action.name.clone(), value: value.to_string() }
}

fn single_value(action: &Action) -> Result<&str, StyleError> {
    match action.values().collect::<Vec<_>>().as_slice() {
        [v] => Ok(v),
        [] => Err(StyleError::MissingKey { action: action.name.clone(), key: "value".into() }),
        [_, extra, ..] => Err(unexpected(action, extra)),
    }
}

fn resize(action: &Action, limits: &Limits) -> Result<Resize, StyleError> {
    action.expect_keys(&["w", "h", "l", "s", "p", "m", "limit", "color"], false)?;
    let side = |key: &str| -> Result<Option<u32>, StyleError> {
        let v = action.get_in::<u32>(key, 1..=MAX_PARAM)?;
        match v {
            Some(v) if v > limits.max_side => Err(action.invalid(
                key,
                action.raw(key).unwrap_or_default(),
                format!("over the side limit of {} px (raise it with `limits,side_N`)", limits.max_side),
            )),
            v => Ok(v),
        }
    };
    let r = Resize {
        w: side("w")?,
        h: side("h")?,
        long: side("l")?,
        short: side("s")?,
        percent: action.get_in::<u32>("p", 1..=1000)?,
        mode: match action.raw("m") {
            None | Some("lfit") => ResizeMode::Lfit,
            Some("mfit") => ResizeMode::Mfit,
            Some("fill") => ResizeMode::Fill,
            Some("pad") => ResizeMode::Pad,
            Some("fixed") => ResizeMode::Fixed,
            Some(other) => return Err(action.invalid("m", other, "expected one of: lfit, mfit, fill, pad, fixed")),
        },
        limit: match action.raw("limit") {
            None | Some("1") => true,
            Some("0") => false,
            Some(other) => return Err(action.invalid("limit", other, "must be 0 or 1")),
        },
        color: match action.raw("color") {
            None => [255, 255, 255],
            Some(hex) => parse_color(hex)
                .ok_or_else(|| action.invalid("color", hex, "expected a hex colour RRGGBB, e.g. FF0000"))?,
        },
    };
    let has_wh = r.w.is_some() || r.h.is_some();
    let has_ls = r.long.is_some() || r.short.is_some();
    if r.percent.is_some() && (has_wh || has_ls) {
        return Err(action.invalid("p", action.raw("p").unwrap_or_default(), "cannot be combined with w, h, l or s"));
    }
    if has_wh && has_ls {
        let key = if r.long.is_some() { "l" } else { "s" };
        return Err(action.invalid(key, action.raw(key).unwrap_or_default(), "cannot be combined with w or h"));
    }
    if r.percent.is_none() && !has_wh && !has_ls {
        return Err(StyleError::MissingKey { action: action.name.clone(), key: "w, h, l, s or p".into() });
    }
    Ok(r)
}

fn parse_color(hex: &str) -> Option<[u8; 3]> {
    let hex = hex.strip_prefix('#').unwrap_or(hex);
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u32::from_str_radix(hex, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

fn crop(action: &Action) -> Result<Crop, StyleError> {
    action.expect_keys(&["x", "y", "w", "h", "g"], false)?;
    Ok(Crop {
        x: action.get_in::<u32>("x", 0..=MAX_PARAM)?.unwrap_or(0),
        y: action.get_in::<u32>("y", 0..=MAX_PARAM)?.unwrap_or(0),
        w: action.get_in::<u32>("w", 1..=MAX_PARAM)?,
        h: action.get_in::<u32>("h", 1..=MAX_PARAM)?,
        gravity: match action.raw("g") {
            None | Some("nw") => Gravity::NorthWest,
            Some("north") => Gravity::North,
            Some("ne") => Gravity::NorthEast,
            Some("west") => Gravity::West,
            Some("center") => Gravity::Center,
            Some("east") => Gravity::East,
            Some("sw") => Gravity::SouthWest,
            Some("south") => Gravity::South,
            Some("se") => Gravity::SouthEast,
            Some(other) => {
                return Err(action.invalid(
                    "g",
                    other,
                    "expected one of: nw, north, ne, west, center, east, sw, south, se",
                ));
            }
        },
    })
}
