//! `media`: video and audio files without a re-encode where none is needed.
//!
//! - `media/mp4` remuxes MOV, MP4, M4V and 3GP to an MP4 whose index comes
//!   first (as `ffmpeg -c copy -movflags +faststart`), reading the index with
//!   ranged reads and streaming the media data through. `strip_metadata`
//!   drops `udta`/`meta` (GPS, maker, model); `drop_unsupported` drops tracks
//!   MP4 cannot carry instead of refusing the file.
//! - `media/info` answers with the container and its streams, in the spirit
//!   of `ffprobe -show_format -show_streams`, from the index alone.
//! - `media/audio` decodes MP3, AAC/M4A, FLAC, Ogg Vorbis and WAV and writes
//!   FLAC or WAV (`f_flac`/`f_wav`), optionally resampled (`ar_`) and mixed
//!   down to mono (`ac_1`).

mod audio;
mod boxes;
mod entries;
mod flac;
mod info;
mod lang;
mod pipeline;
mod remux;
#[cfg(test)]
mod tests;

use kiln_plugin_sdk::{
    ActionInfo, Input, Json, ObjectInfo, OutputOptions, Outputs, ParamInfo, PluginInfo, ProcessError, Processor, Style,
    StyleError,
};

pub struct Media;

/// Why a media file was refused or failed. The variants a caller tells apart
/// map to the contract's kinds in `From<MediaError> for ProcessError`.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the input's size is unknown (a stream): MP4/MOV needs random access to reach the index")]
    NoSize,
    #[error("not an MP4/MOV file (the first box is not one)")]
    NotMp4,
    #[error("no `moov` box: the file is incomplete (truncated while recording?) or not an MP4/MOV")]
    NoMoov,
    #[error("fragmented MP4 (`moof`/`mvex`) is not supported; remux it with ffmpeg first")]
    Fragmented,
    #[error(
        "box `{kind}` claims {size} bytes, past the end of its container ({room} bytes left): truncated or corrupt"
    )]
    PastEnd { kind: String, size: u64, room: u64 },
    #[error("the file ends at byte {size}, before offset {offset}: truncated")]
    Truncated { offset: u64, size: u64 },
    #[error("corrupt file: {0}")]
    Corrupt(String),
    #[error("track {track}: {codec} cannot be carried by MP4 (give `drop_unsupported` to drop the track)")]
    UnsupportedTrack { track: usize, codec: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("reading the input: {0}")]
    Read(std::io::Error),
    #[error("writing the output: {0}")]
    Write(std::io::Error),
}

impl From<MediaError> for ProcessError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::Read(_) | MediaError::Write(_) => ProcessError::failed(e),
            _ => ProcessError::unsupported(e),
        }
    }
}

/// What a style asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    Mp4(remux::Options),
    Info,
    Audio(audio::Options),
}

const ACTIONS: &[&str] = &["mp4", "info", "audio"];

fn plan(params: &str) -> Result<Plan, StyleError> {
    let style = Style::parse(params)?;
    let [action] = style.actions.as_slice() else {
        return Err(StyleError::UnknownAction {
            action: style.actions.get(1).map_or(String::new(), |a| a.name.clone()),
            expected: "exactly one of: mp4, info, audio".into(),
        });
    };
    match action.name.as_str() {
        "mp4" => {
            action.expect_keys(&["strip", "drop"], false)?;
            // `strip_metadata` and `drop_unsupported` read as key `strip`
            // with value `metadata` in the style grammar; `_1` is accepted too.
            let flag = |key: &str, word: &str| match action.raw(key) {
                None | Some("0") => Ok(false),
                Some("1") => Ok(true),
                Some(v) if v == word => Ok(true),
                Some(v) => Err(action.invalid(key, v, format!("write `{key}_{word}`"))),
            };
            Ok(Plan::Mp4(remux::Options {
                strip_metadata: flag("strip", "metadata")?,
                drop_unsupported: flag("drop", "unsupported")?,
            }))
        }
        "info" => {
            action.expect_keys(&[], false)?;
            Ok(Plan::Info)
        }
        "audio" => Ok(Plan::Audio(audio::Options::parse(action)?)),
        other => Err(kiln_plugin_sdk::style::unknown_action(other, ACTIONS)),
    }
}

impl Processor for Media {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "media",
            env!("CARGO_PKG_VERSION"),
            "MOV/MP4 to faststart MP4 without re-encoding, media info, audio to FLAC or WAV",
        )
        .reads(&["mov", "mp4", "m4v", "m4a", "3gp", "mp3", "flac", "ogg", "oga", "wav"])
        .writes(&["mp4", "flac", "wav"])
        .actions(vec![
            ActionInfo::new(
                "mp4",
                "Remux to MP4 without re-encoding, index first (faststart); every track MP4 can carry is kept",
            )
            .param(ParamInfo::choice("strip", "`strip_metadata`: drop GPS, maker and other metadata (udta, meta)", &["metadata"]))
            .param(ParamInfo::choice(
                "drop",
                "`drop_unsupported`: drop tracks MP4 cannot carry (PCM, ProRes, QuickTime text) instead of refusing the file",
                &["unsupported"],
            )),
            ActionInfo::new("info", "Container and streams as the task's result (like ffprobe), from the index only"),
            audio::Options::action_info(),
        ])
    }

    fn validate(params: &str) -> Result<(), StyleError> {
        plan(params).map(|_| ())
    }

    fn extension(params: &str) -> Option<String> {
        match plan(params).ok()? {
            Plan::Mp4(_) => Some("mp4".into()),
            Plan::Info => None,
            Plan::Audio(o) => Some(o.format.extension().into()),
        }
    }

    fn process_with_result(
        params: &str,
        _object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<Option<Json>, ProcessError> {
        match plan(params)? {
            Plan::Mp4(opts) => {
                let mut src = boxes::Source::new(input)?;
                // Everything that can refuse the file happens before the
                // output is opened, so a refused file writes nothing.
                let prepared = remux::prepare(&mut src, opts)?;
                let mut out = outputs.open_with(OutputOptions::extension("mp4").content_type("video/mp4"))?;
                remux::write(&mut src, &prepared, &mut out)?;
                let mut result = prepared.report;
                result["bytes_read"] = src.bytes_read.into();
                Ok(Some(result))
            }
            Plan::Info => {
                let mut src = boxes::Source::new(input)?;
                Ok(Some(info::info(&mut src)?))
            }
            Plan::Audio(opts) => audio::convert(input, outputs, opts).map(Some),
        }
    }
}

kiln_plugin_sdk::export!(Media);
