//! What happens to decoded audio: channel mix, resampling, quantisation and
//! encoding, one packet at a time.

use std::io::Write;

use audioadapter_buffers::direct::InterleavedSlice;
use kiln_plugin_sdk::ProcessError;
use rubato::{Fft, FixedSync, Resampler};

use crate::audio::{Format, Options};
use crate::flac::{Flac, Sink, Wav};

/// Channel mix, resampler and encoder, fed one decoded packet at a time.
pub struct Pipeline {
    pub channels_in: usize,
    pub channels_out: usize,
    bits: u32,
    resampler: Option<Resample>,
    sink: Box<dyn Sink>,
    mixed: Vec<f32>,
    ints: Vec<i32>,
    frames: u64,
    /// The frames a header announced, which must be the frames written.
    declared: Option<u64>,
}

impl Pipeline {
    /// `channels_in` as decoded; the rest as `opts` asks, from `rate_in`.
    pub fn new(
        opts: Options,
        channels_in: usize,
        rate_in: u32,
        bits: u32,
        frames_in: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<Pipeline, ProcessError> {
        let channels_out = opts.channels.map_or(channels_in, usize::from);
        let rate_out = opts.rate.unwrap_or(rate_in);
        let declared = frames_in.map(|n| resampled_len(n, rate_in, rate_out));
        if channels_out == 2 && channels_in > 2 {
            return Err(ProcessError::unsupported(format!(
                "mixing {channels_in} channels down to 2 is not supported; `ac_1` mixes to mono"
            )));
        }
        let (sink, head): (Box<dyn Sink>, Vec<u8>) = match opts.format {
            Format::Flac => {
                let (flac, head) =
                    Flac::new(rate_out, channels_out, bits, opts.lpc, declared).map_err(ProcessError::failed)?;
                (Box::new(flac), head)
            }
            Format::Wav => {
                let ch = u16::try_from(channels_out).map_err(|_| ProcessError::unsupported("too many channels"))?;
                let (wav, head) = Wav::new(rate_out, ch, bits, declared);
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
            declared,
        })
    }

    pub fn push(&mut self, samples: &[f32], out: &mut dyn Write) -> Result<(), ProcessError> {
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
    pub fn finish(&mut self, out: &mut dyn Write) -> Result<u64, ProcessError> {
        if let Some(r) = self.resampler.as_mut() {
            let rest = r.push(&[], true)?;
            self.write(&rest, out)?;
        }
        self.sink.finish(out).map_err(ProcessError::failed)?;
        if let Some(declared) = self.declared.filter(|&d| d != self.frames) {
            return Err(ProcessError::failed(format!(
                "the header announced {declared} frames but {} were written",
                self.frames
            )));
        }
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
    rate_in: u32,
    rate_out: u32,
}

/// How many frames `frames` input frames make at the output rate: what
/// `Resample` writes, and what a WAV header announces.
fn resampled_len(frames: u64, rate_in: u32, rate_out: u32) -> u64 {
    if rate_in == rate_out {
        return frames;
    }
    (frames as f64 * (f64::from(rate_out) / f64::from(rate_in))).round() as u64
}

const RESAMPLE_CHUNK: usize = 1024;

impl Resample {
    fn new(rate_in: u32, rate_out: u32, channels: usize) -> Result<Resample, ProcessError> {
        let inner = Fft::<f32>::new(rate_in as usize, rate_out as usize, RESAMPLE_CHUNK, channels, FixedSync::Input)
            .map_err(|e| ProcessError::failed(format!("resampler: {e}")))?;
        let skip = inner.output_delay();
        let out = vec![0.0; inner.output_frames_max() * channels];
        let ratio = f64::from(rate_out) / f64::from(rate_in);
        Ok(Resample {
            inner,
            channels,
            pending: Vec::new(),
            out,
            ratio,
            frames_in: 0,
            frames_out: 0,
            skip,
            rate_in,
            rate_out,
        })
    }

    /// Resample what can be; at the end, everything left.
    pub fn push(&mut self, samples: &[f32], end: bool) -> Result<Vec<f32>, ProcessError> {
        let ch = self.channels;
        self.pending.extend_from_slice(samples);
        self.frames_in += (samples.len() / ch) as u64;
        let want_total = (self.frames_in as f64 * self.ratio).round() as u64;
        debug_assert_eq!(want_total, resampled_len(self.frames_in, self.rate_in, self.rate_out));
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
