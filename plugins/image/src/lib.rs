//! `image`: resize, crop, rotate, convert and inspect images, with the style
//! grammar of cloud image processing: `image/resize,w_256/format,webp`.
//!
//! Reads JPEG, PNG, WebP, GIF (first frame) and BMP, detected from their
//! signature; writes the same or the format of a `format` action. Geometry
//! actions (`resize`, `crop`, `rotate`) run in the order written; `format`,
//! `quality`, `auto-orient` and `limits` are settings. See `plugins/README.md`.
//!
//! Speed: a JPEG that is to be reduced by its first action is decoded at 1/2,
//! 1/4 or 1/8 scale in the DCT (the largest reduction that still gives at
//! least the target size), and resampling is done by `fast_image_resize`,
//! which uses SIMD128 in wasm.

mod bmp;
mod budget;
mod codec;
mod jpeg_dc;
mod ops;
mod params;
mod webp;

use std::io::Write;

use kiln_plugin_sdk::serde_json::json;
use kiln_plugin_sdk::{
    ActionInfo, Input, Json, ObjectInfo, Outputs, ParamInfo, PluginInfo, ProcessError, Processor, StyleError,
};

use params::{Op, OutFormat, Plan, Quality};

pub struct ImagePlugin;

/// Largest image file read.
const MAX_INPUT: usize = 256 << 20;

/// Quality when no `quality` action is given (or the source's, if lower):
/// JPEG 85, WebP 80 (libwebp's scale, as cloud image services default to).
fn default_quality(format: OutFormat) -> u8 {
    if format == OutFormat::Webp { 80 } else { 85 }
}

fn output_quality(q: Option<Quality>, source: Option<u8>, format: OutFormat) -> u8 {
    let src = source.unwrap_or(100);
    match q {
        None => default_quality(format).min(src),
        Some(Quality::Relative(q)) => ((u32::from(src) * u32::from(q) + 50) / 100).clamp(1, 100) as u8,
        Some(Quality::Absolute(q)) => q.min(src),
    }
}

/// What `info` answers: the task's result.
fn info_result(header: &codec::Header, size: usize) -> Json {
    json!({ "width": header.width, "height": header.height, "format": header.format.name(), "size": size })
}

/// The same as the JSON output of `info,o_1`: as before contract 0.2.0, byte for byte.
fn info_json(header: &codec::Header, size: usize) -> String {
    format!(
        "{{\"width\":{},\"height\":{},\"format\":\"{}\",\"size\":{}}}\n",
        header.width,
        header.height,
        header.format.name(),
        size
    )
}

/// How an image is decoded for a plan.
struct Decoding {
    /// The EXIF orientation to apply after decoding.
    orient: Option<ops::Transform>,
    /// The size once oriented.
    upright: (u32, u32),
    /// For a JPEG whose first action shrinks it: the smallest size wanted
    /// (stored orientation), so that it is decoded at reduced scale.
    jpeg_min: Option<(u32, u32)>,
}

fn decoding(plan: &Plan, header: &codec::Header) -> Decoding {
    let orient = if plan.auto_orient { ops::orientation_transform(header.orientation) } else { None };
    let swap = orient.is_some_and(|t| t.swaps_sides());
    let upright = if swap { (header.height, header.width) } else { (header.width, header.height) };
    let jpeg_min = match plan.ops.first() {
        Some(Op::Resize(r)) if header.format == OutFormat::Jpeg => ops::resize_geometry(r, upright.0, upright.1)
            .map(|g| if swap { (g.scaled.1, g.scaled.0) } else { g.scaled }),
        _ => None,
    };
    Decoding { orient, upright, jpeg_min }
}

/// Process the image in `bytes`; `info` answers with a result.
fn run(plan: &Plan, bytes: &[u8], outputs: &mut Outputs<'_>) -> Result<Option<Json>, ProcessError> {
    let unsupported = ProcessError::UnsupportedInput;
    if bytes.is_empty() {
        return Err(ProcessError::unsupported("the object is empty, not an image"));
    }
    let format = codec::detect(bytes)
        .ok_or_else(|| ProcessError::unsupported("not a JPEG, PNG, WebP, GIF or BMP image (unrecognised signature)"))?;
    // Damage that mature decoders tolerate is repaired first; `size` stays the file's.
    let size = bytes.len();
    let repaired = codec::repair(bytes, format);
    let bytes = repaired.as_deref().unwrap_or(bytes);
    let header = codec::probe(bytes, format).map_err(unsupported)?;
    let limits = &plan.limits;
    ops::check_size(u64::from(header.width), u64::from(header.height), limits, "the image").map_err(unsupported)?;
    if plan.info {
        if plan.info_object {
            let mut out = outputs.open(Some("json"))?;
            out.write_all(info_json(&header, size).as_bytes())?;
        }
        return Ok(Some(info_result(&header, size)));
    }

    let Decoding { orient, upright, jpeg_min } = decoding(plan, &header);
    let out_format = plan.format.unwrap_or(format);
    // Refuse, with a message, an image whose processing the memory limit cannot hold.
    let needed = budget::peak_bytes(bytes, &header, plan, jpeg_min, upright, out_format);
    budget::reserve(needed, header.width, header.height).map_err(unsupported)?;
    let mut img = codec::decode(bytes, &header, jpeg_min, limits).map_err(unsupported)?;
    if let Some(t) = orient {
        img = ops::transform(&img, t);
    }
    let mut logical = ((img.w, img.h) != upright).then_some(upright);
    for op in &plan.ops {
        img = match op {
            Op::Resize(r) => ops::resize(img, r, logical.take(), limits),
            Op::Crop(c) => ops::crop(img, c),
            Op::Rotate(deg) => ops::rotate(img, *deg, limits),
        }
        .map_err(unsupported)?;
    }

    let quality = output_quality(plan.quality, header.quality, out_format);
    let encoded = codec::encode(&img, out_format, quality).map_err(unsupported)?;
    let mut out = outputs.open(Some(out_format.extension()))?;
    out.write_all(&encoded)?;
    Ok(None)
}

/// The actions and their keyed parameters, for forms and `kiln style describe`.
/// `rotate`, `auto-orient` and `format` take a bare value (`rotate,90`), which
/// the contract's parameter list cannot name: their descriptions say it.
fn actions() -> Vec<ActionInfo> {
    let side = |name: &str, what: &str| ParamInfo::int(name, what).range(1..=65_535);
    vec![
        ActionInfo::new("resize", "Resize, keeping the aspect ratio unless the mode says otherwise")
            .param(side("w", "Width"))
            .param(side("h", "Height"))
            .param(side("l", "Long side (instead of w and h)"))
            .param(side("s", "Short side (instead of w and h)"))
            .param(ParamInfo::int("p", "Percent (alone)").range(1..=1000))
            .param(ParamInfo::choice("m", "Mode", &["lfit", "mfit", "fill", "pad", "fixed"]).default("lfit"))
            .param(ParamInfo::int("limit", "1: never enlarge; 0: enlarge too").range(0..=1).default(1))
            .param(ParamInfo::string("color", "RRGGBB padding colour for m_pad").default("FFFFFF")),
        ActionInfo::new("crop", "Cut a region, measured from the gravity's corner or edge")
            .param(ParamInfo::int("x", "Offset").range(0..=65_535).default(0))
            .param(ParamInfo::int("y", "Offset").range(0..=65_535).default(0))
            .param(side("w", "Width (default: to the edge)"))
            .param(side("h", "Height (default: to the edge)"))
            .param(
                ParamInfo::choice(
                    "g",
                    "Gravity",
                    &["nw", "north", "ne", "west", "center", "east", "sw", "south", "se"],
                )
                .default("nw"),
            ),
        ActionInfo::new("rotate", "Degrees clockwise, 0-360, as a bare value: `rotate,90`"),
        ActionInfo::new("auto-orient", "Apply the EXIF orientation: `auto-orient,1` (default) or `auto-orient,0`"),
        ActionInfo::new("format", "Output format, as a bare value: `format,webp` (jpg, png, webp, gif, bmp)"),
        ActionInfo::new("quality", "JPEG and WebP quality: give q or Q")
            .param(ParamInfo::int("q", "Relative: a percentage of the source's quality").range(1..=100))
            .param(ParamInfo::int("Q", "Absolute: this quality, or the source's if lower").range(1..=100)),
        ActionInfo::new("info", "Width, height, format and size from the header, as the task's result")
            .param(ParamInfo::int("o", "1: also write the JSON as an output (extension json)").range(0..=1).default(0)),
        ActionInfo::new("limits", "Refuse larger images up front")
            .param(ParamInfo::int("mp", "Megapixels").range(1..=1000).default(250))
            .param(ParamInfo::int("side", "Pixels per side").range(1..=65_535).default(30_000)),
    ]
}

impl Processor for ImagePlugin {
    fn info() -> PluginInfo {
        PluginInfo::new("image", env!("CARGO_PKG_VERSION"), "Resize, crop, rotate, convert and inspect images")
            .reads(&["jpg", "jpeg", "png", "webp", "gif", "bmp"])
            .writes(&["jpg", "png", "webp", "gif", "bmp", "json"])
            .actions(actions())
    }

    fn validate(params: &str) -> Result<(), StyleError> {
        params::parse(params).map(|_| ())
    }

    /// `json` for `info,o_1`, nothing for `info`, the `format` action's; else
    /// the source's format, which depends on the object.
    fn extension(params: &str) -> Option<String> {
        let plan = params::parse(params).ok()?;
        match (plan.info, plan.info_object) {
            (true, true) => Some("json".into()),
            (true, false) => None,
            (false, _) => plan.format.map(|f| f.extension().into()),
        }
    }

    fn process_with_result(
        params: &str,
        _object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<Option<Json>, ProcessError> {
        let plan = params::parse(params)?;
        let bytes = input.read_all(MAX_INPUT).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => ProcessError::unsupported(format!("image file too large: {e}")),
            _ => ProcessError::failed(format!("reading the object: {e}")),
        })?;
        run(&plan, &bytes, outputs)
    }
}

kiln_plugin_sdk::export!(ImagePlugin);

#[cfg(test)]
mod tests;
