//! `media/audio`: decode with symphonia (MP3, AAC/M4A, FLAC, Ogg Vorbis,
//! WAV), mix channels, resample with rubato, write FLAC or WAV, one packet at
//! a time: memory does not grow with the duration.

use std::io::{Read, Seek, SeekFrom, Write};

use kiln_plugin_sdk::serde_json::json;
use kiln_plugin_sdk::{Action, ActionInfo, Input, Json, OutputOptions, Outputs, ParamInfo, ProcessError, StyleError};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use crate::pipeline::Pipeline;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Flac,
    Wav,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Flac => "flac",
            Format::Wav => "wav",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub format: Format,
    /// `ar_`: the output sample rate; the source's when absent.
    pub rate: Option<u32>,
    /// `ac_`: 1 (mix down) or 2; the source's when absent.
    pub channels: Option<u8>,
    /// `l_1`: FLAC with linear prediction (smaller, about 5× slower).
    pub lpc: bool,
}

impl Options {
    pub fn parse(action: &Action) -> Result<Options, StyleError> {
        action.expect_keys(&["f", "ar", "ac", "l"], false)?;
        let format = match action.raw("f") {
            None | Some("flac") => Format::Flac,
            Some("wav") => Format::Wav,
            Some(v) => return Err(action.invalid("f", v, "expected `flac` or `wav`")),
        };
        Ok(Options {
            format,
            rate: action.get_in("ar", 8000..=192_000)?,
            channels: action.get_in("ac", 1..=2)?,
            lpc: action.get_in::<u8>("l", 0..=1)? == Some(1),
        })
    }

    pub fn action_info() -> ActionInfo {
        ActionInfo::new("audio", "Decode MP3, AAC/M4A, FLAC, Ogg Vorbis or WAV and write FLAC or WAV")
            .param(ParamInfo::choice("f", "Output format", &["flac", "wav"]).default("flac"))
            .param(
                ParamInfo::int("ar", "Output sample rate in Hz (resampled); the source's by default")
                    .range(8000..=192_000),
            )
            .param(
                ParamInfo::int("ac", "Output channels: 1 mixes down to mono, 2 makes stereo; the source's by default")
                    .range(1..=2),
            )
    }
}

/// The SDK's input as symphonia's `MediaSource`.
struct Source<'i, 'a> {
    input: &'i mut Input<'a>,
    size: Option<u64>,
}

// SAFETY: symphonia requires `Send + Sync` of a media source only so that a
// reader may be moved to another thread; this plugin has no threads
// (wasm32-wasip2 has none; the native tests run each task on one thread) and
// never moves the reader, so the non-`Send` host handle is used on one thread only.
unsafe impl Send for Source<'_, '_> {}
unsafe impl Sync for Source<'_, '_> {}

impl Read for Source<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Seek for Source<'_, '_> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.input.seek(pos)
    }
}

impl MediaSource for Source<'_, '_> {
    fn is_seekable(&self) -> bool {
        self.size.is_some()
    }
    fn byte_len(&self) -> Option<u64> {
        self.size
    }
}

fn unsupported(what: &str, e: impl std::fmt::Display) -> ProcessError {
    ProcessError::unsupported(format!("{what}: {e}"))
}

/// What a decode found.
#[derive(Debug, Clone, Copy, Default)]
struct Decoded {
    rate: u32,
    /// Bits per sample the output keeps: 24 for lossless sources deeper
    /// than 16 bits, else 16.
    bits: u32,
    /// Channels the container declares (0: it does not say).
    channels: usize,
    frames: u64,
    skipped: u64,
}

/// Decode the default audio track of `input` from its start, giving each
/// packet's samples (interleaved, with their channel count) to `each`.
fn decode(
    input: &mut Input<'_>,
    mut each: impl FnMut(&Decoded, &[f32], usize) -> Result<(), ProcessError>,
) -> Result<Decoded, ProcessError> {
    let size = input.size();
    let mss = MediaSourceStream::new(Box::new(Source { input, size }), Default::default());
    let mut reader = symphonia::default::get_probe()
        .probe(&Hint::new(), mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| unsupported("not an audio file symphonia reads (MP3, AAC/M4A, FLAC, Ogg Vorbis, WAV)", e))?;
    let track = reader.default_track(TrackType::Audio).ok_or_else(|| ProcessError::unsupported("no audio track"))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| ProcessError::unsupported("the audio track has no codec parameters"))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| unsupported("no decoder for this audio codec", e))?;
    let mut found = Decoded {
        rate: params.sample_rate.ok_or_else(|| ProcessError::unsupported("the audio track has no sample rate"))?,
        bits: if params.bits_per_sample.is_some_and(|b| b > 16) { 24 } else { 16 },
        channels: params.channels.as_ref().map(|c| c.count()).unwrap_or(0),
        ..Decoded::default()
    };
    let mut interleaved: Vec<f32> = Vec::new();
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A file cut short ends the audio there, as ffmpeg does.
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(unsupported("reading the audio", e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(SymError::DecodeError(_)) => {
                found.skipped += 1;
                continue;
            }
            Err(e) => return Err(unsupported("decoding the audio", e)),
        };
        let channels = buf.spec().channels().count();
        if channels == 0 || buf.frames() == 0 {
            continue;
        }
        interleaved.resize(buf.samples_interleaved(), 0.0);
        buf.copy_to_slice_interleaved(&mut interleaved);
        found.frames += buf.frames() as u64;
        each(&found, &interleaved, channels)?;
    }
    Ok(found)
}

/// Decode, convert and write one output; the task's result.
///
/// WAV wants its sizes in its header, before the samples, FLAC its total
/// sample count (players take the duration from it), and the output is a
/// stream: when the input has random access, a first decode counts the
/// frames (memory stays flat; the input is read twice, within the host's read
/// budget) and the header is exact. Without random access the sizes are
/// "unknown" (WAV: 0xFFFFFFFF, as ffmpeg writes to a pipe; FLAC: 0).
pub fn convert(input: &mut Input<'_>, outputs: &mut Outputs<'_>, opts: Options) -> Result<Json, ProcessError> {
    let counted = if input.size().is_some() {
        let counted = decode(input, |_, _, _| Ok(()))?;
        input.seek(SeekFrom::Start(0))?;
        Some(counted.frames)
    } else {
        None
    };
    let content_type = if opts.format == Format::Flac { "audio/flac" } else { "audio/wav" };
    let mut out = outputs.open_with(OutputOptions::extension(opts.format.extension()).content_type(content_type))?;
    // Channels are known for certain only after the first packet (some
    // containers do not say): the writer is made then.
    let mut state: Option<Pipeline> = None;
    let found = decode(input, |found, samples, channels| {
        let pipeline = match &mut state {
            Some(p) => p,
            None => state.insert(Pipeline::new(opts, channels, found.rate, found.bits, counted, &mut out)?),
        };
        if channels != pipeline.channels_in {
            return Err(ProcessError::unsupported("the number of channels changes mid-stream"));
        }
        pipeline.push(samples, &mut out)
    })?;
    let mut pipeline = state.ok_or_else(|| ProcessError::unsupported("no audio could be decoded"))?;
    if counted.is_some_and(|n| n != found.frames) {
        return Err(ProcessError::failed("the second decode gave another number of frames than the first"));
    }
    let frames = pipeline.finish(&mut out)?;
    out.flush()?;
    Ok(json!({
        "format": opts.format.extension(),
        "sample_rate": opts.rate.unwrap_or(found.rate),
        "channels": pipeline.channels_out,
        "bits_per_sample": found.bits,
        "source_sample_rate": found.rate,
        "source_channels": if found.channels > 0 { found.channels } else { pipeline.channels_in },
        "decoded_frames": found.frames,
        "frames": frames,
        "skipped_packets": found.skipped,
        "length_in_header": counted.is_some(),
    }))
}
