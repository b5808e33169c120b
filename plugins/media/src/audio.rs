//! `media/audio`: decode with symphonia (MP3, AAC/M4A, FLAC, Ogg Vorbis,
//! WAV), mix channels, resample with rubato, write FLAC or WAV, one packet at
//! a time: memory does not grow with the duration.

use std::io::{Read, Seek, SeekFrom, Write};

use audioadapter_buffers::direct::InterleavedSlice;
use kiln_plugin_sdk::serde_json::json;
use kiln_plugin_sdk::{Action, ActionInfo, Input, Json, OutputOptions, Outputs, ParamInfo, ProcessError, StyleError};
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use crate::flac::{Flac, Sink, Wav};

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

/// Decode, convert and write one output; the task's result.
pub fn convert(input: &mut Input<'_>, outputs: &mut Outputs<'_>, opts: Options) -> Result<Json, ProcessError> {
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
    let rate_in = params.sample_rate.ok_or_else(|| ProcessError::unsupported("the audio track has no sample rate"))?;
    let channels_in = params.channels.as_ref().map(|c| c.count()).unwrap_or(0);
    // Lossless sources deeper than 16 bits stay 24-bit; everything else is 16.
    let bits = if params.bits_per_sample.is_some_and(|b| b > 16) { 24 } else { 16 };
    let rate_out = opts.rate.unwrap_or(rate_in);

    let mut out = outputs.open_with(
        OutputOptions::extension(opts.format.extension()).content_type(if opts.format == Format::Flac {
            "audio/flac"
        } else {
            "audio/wav"
        }),
    )?;
    // Channels are known for certain only after the first packet (some
    // containers do not say): the writer is made then.
    let mut state: Option<Pipeline> = None;
    let (mut decoded, mut skipped) = (0u64, 0u64);
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
                skipped += 1;
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
        decoded += buf.frames() as u64;
        let pipeline = match &mut state {
            Some(p) => p,
            None => state.insert(Pipeline::new(opts, channels, rate_in, bits, &mut out)?),
        };
        if channels != pipeline.channels_in {
            return Err(ProcessError::unsupported("the number of channels changes mid-stream"));
        }
        pipeline.push(&interleaved, &mut out)?;
    }
    let mut pipeline = state.ok_or_else(|| ProcessError::unsupported("no audio could be decoded"))?;
    let frames = pipeline.finish(&mut out)?;
    out.flush()?;
    Ok(json!({
        "format": opts.format.extension(),
        "sample_rate": rate_out,
        "channels": pipeline.channels_out,
        "bits_per_sample": bits,
        "source_sample_rate": rate_in,
        "source_channels": if channels_in > 0 { channels_in } else { pipeline.channels_in },
        "decoded_frames": decoded,
        "frames": frames,
        "skipped_packets": skipped,
    }))
}

/// Channel mix, resampler and encoder, fed one decoded packet at a time.
struct Pipeline {
    channels_in: usize,
    channels_out: usize,
    bits: u32,
    resampler: Option<Resample>,
    sink: Box<dyn Sink>,
    mixed: Vec<f32>,
    ints: Vec<i32>,
    frames: u64,
}

impl Pipeline {
    /// `channels_in` as decoded; the rest as `opts` asks, from `rate_in`.
    fn new(
        opts: Options,
        channels_in: usize,
        rate_in: u32,
        bits: u32,
        out: &mut dyn Write,
    ) -> Result<Pipeline, ProcessError> {
        let channels_out = opts.channels.map_or(channels_in, usize::from);
        let rate_out = opts.rate.unwrap_or(rate_in);
        if channels_out == 2 && channels_in > 2 {
            return Err(ProcessError::unsupported(format!(
                "mixing {channels_in} channels down to 2 is not supported; `ac_1` mixes to mono"
            )));
        }
        let (sink, head): (Box<dyn Sink>, Vec<u8>) = match opts.format {
            Format::Flac => {
                let (flac, head) = Flac::new(rate_out, channels_out, bits, opts.lpc).map_err(ProcessError::failed)?;
                (Box::new(flac), head)
            }
            Format::Wav => {
                let ch = u16::try_from(channels_out).map_err(|_| ProcessError::unsupported("too many channels"))?;
                let (wav, head) = Wav::new(rate_out, ch, bits);
                (Box::new(wav), head)
            }
        };
        out.write_all(&head)?;
        let resampler = (rate_in != rate_out).then(|| Resample::new(rate_in, rate_out, channels_out)).transpose()?;
        Ok(Pipeline {
            channels_in,
            channels_out,
            bits,
            resampler,
            sink,
            mixed: Vec::new(),
            ints: Vec::new(),
            frames: 0,
        })
    }

    fn push(&mut self, samples: &[f32], out: &mut dyn Write) -> Result<(), ProcessError> {
        let (cin, cout) = (self.channels_in, self.channels_out);
        self.mixed.clear();
        for frame in samples.chunks_exact(cin) {
            match (cin, cout) {
                (a, b) if a == b => self.mixed.extend_from_slice(frame),
                (_, 1) => self.mixed.push(frame.iter().sum::<f32>() / cin as f32),
                // Mono to stereo: the same signal on both sides.
                _ => self.mixed.extend(std::iter::repeat_n(frame[0], cout)),
            }
        }
        let mixed = std::mem::take(&mut self.mixed);
        match self.resampler.as_mut() {
            Some(r) => {
                let resampled = r.push(&mixed, false)?;
                self.write(&resampled, out)?;
            }
            None => self.write(&mixed, out)?,
        }
        self.mixed = mixed;
        Ok(())
    }

    fn write(&mut self, samples: &[f32], out: &mut dyn Write) -> Result<(), ProcessError> {
        let scale = (1u32 << (self.bits - 1)) as f32;
        let (lo, hi) = (-scale, scale - 1.0);
        self.ints.clear();
        // Round to nearest, as ffmpeg converts float to integer samples.
        self.ints.extend(samples.iter().map(|&s| (s * scale).round().clamp(lo, hi) as i32));
        self.frames += (samples.len() / self.channels_out) as u64;
        self.sink.push(&self.ints, out).map_err(ProcessError::failed)
    }

    /// Flush the resampler and the encoder; the frames written.
    fn finish(&mut self, out: &mut dyn Write) -> Result<u64, ProcessError> {
        if let Some(r) = self.resampler.as_mut() {
            let rest = r.push(&[], true)?;
            self.write(&rest, out)?;
        }
        self.sink.finish(out).map_err(ProcessError::failed)?;
        Ok(self.frames)
    }
}

/// rubato's FFT resampler over a stream: input gathered into its fixed
/// chunks, its delay trimmed at the start, and the tail flushed with silence
/// so that the output has `input × rate_out / rate_in` frames.
struct Resample {
    inner: Fft<f32>,
    channels: usize,
    pending: Vec<f32>,
    out: Vec<f32>,
    ratio: f64,
    frames_in: u64,
    frames_out: u64,
    /// Output frames still to drop: the resampler's delay.
    skip: usize,
}

const RESAMPLE_CHUNK: usize = 1024;

impl Resample {
    fn new(rate_in: u32, rate_out: u32, channels: usize) -> Result<Resample, ProcessError> {
        let inner = Fft::<f32>::new(rate_in as usize, rate_out as usize, RESAMPLE_CHUNK, channels, FixedSync::Input)
            .map_err(|e| ProcessError::failed(format!("resampler: {e}")))?;
        let skip = inner.output_delay();
        let out = vec![0.0; inner.output_frames_max() * channels];
        let ratio = f64::from(rate_out) / f64::from(rate_in);
        Ok(Resample { inner, channels, pending: Vec::new(), out, ratio, frames_in: 0, frames_out: 0, skip })
    }

    /// Resample what can be; at the end, everything left.
    fn push(&mut self, samples: &[f32], end: bool) -> Result<Vec<f32>, ProcessError> {
        let ch = self.channels;
        self.pending.extend_from_slice(samples);
        self.frames_in += (samples.len() / ch) as u64;
        let want_total = (self.frames_in as f64 * self.ratio).round() as u64;
        let mut produced = Vec::new();
        loop {
            let need = self.inner.input_frames_next();
            let have = self.pending.len() / ch;
            if have < need {
                if !end || self.frames_out >= want_total {
                    break;
                }
                // Flush: pad with silence until the tail is out.
                self.pending.resize(need * ch, 0.0);
            }
            let input = InterleavedSlice::new(&self.pending[..need * ch], ch, need)
                .map_err(|e| ProcessError::failed(format!("resampler: {e}")))?;
            let frames_max = self.out.len() / ch;
            let mut output = InterleavedSlice::new_mut(&mut self.out, ch, frames_max)
                .map_err(|e| ProcessError::failed(format!("resampler: {e}")))?;
            let (used, made) = self
                .inner
                .process_into_buffer(&input, &mut output, None)
                .map_err(|e| ProcessError::failed(format!("resampler: {e}")))?;
            self.pending.drain(..used * ch);
            let drop = self.skip.min(made);
            self.skip -= drop;
            let keep =
                ((made - drop) as u64).min(if end { want_total - self.frames_out.min(want_total) } else { u64::MAX });
            produced.extend_from_slice(&self.out[drop * ch..(drop + keep as usize) * ch]);
            self.frames_out += keep;
        }
        Ok(produced)
    }
}
