//! Streaming FLAC and WAV writers: a header up front, then blocks as they
//! come, so memory stays one block whatever the duration.
//!
//! The output is a stream (no seeking back), so what is known only at the
//! end is written as "unknown", as the formats allow, unless the caller
//! counted the frames first: FLAC's STREAMINFO total sample count is then
//! exact, else 0, and its MD5 and frame sizes are always 0 (the spec's
//! "unknown"); WAV's RIFF and `data` sizes are exact, else 0xFFFFFFFF, as
//! ffmpeg writes them to a pipe.

use std::io::Write;

use flacenc::bitsink::ByteSink;
use flacenc::component::{BitRepr, StreamInfo};
use flacenc::config;
use flacenc::error::Verify;
use flacenc::source::{Fill, FrameBuf};

/// Samples per channel in one FLAC frame (the reference encoder's default).
const BLOCK: usize = 4096;

/// Where encoded audio goes.
pub trait Sink {
    /// Interleaved samples, `bits` wide, right-aligned in i32.
    fn push(&mut self, samples: &[i32], out: &mut dyn Write) -> Result<(), String>;
    fn finish(&mut self, out: &mut dyn Write) -> Result<(), String>;
}

pub struct Flac {
    config: flacenc::error::Verified<config::Encoder>,
    info: StreamInfo,
    frame: FrameBuf,
    pending: Vec<i32>,
    channels: usize,
    number: usize,
    sink: ByteSink,
}

impl Flac {
    /// The writer and the stream's header (`fLaC` and STREAMINFO). `lpc`:
    /// search linear predictors (order 12) besides the fixed ones.
    ///
    /// Measured through the host on a minute of tonal 44.1 kHz stereo: fixed
    /// predictors only (what `flac -0` to `-2` use) took 0.56 s for 39% of
    /// the WAV's size; with LPC 2.9 s for 34% (ffmpeg's FLAC: 33%). The fast
    /// one is the default, so that an hour fits in a task's deadline.
    ///
    /// `frames`: the total, when counted beforehand, for STREAMINFO (so that
    /// players know the duration); 0, "unknown", otherwise.
    pub fn new(
        rate: u32,
        channels: usize,
        bits: u32,
        lpc: bool,
        frames: Option<u64>,
    ) -> Result<(Flac, Vec<u8>), String> {
        let mut encoder = config::Encoder::default();
        encoder.subframe_coding.use_lpc = lpc;
        encoder.subframe_coding.qlpc.lpc_order = 12;
        let config = encoder.into_verified().map_err(|(_, e)| format!("FLAC encoder: {e:?}"))?;
        let info = StreamInfo::new(rate as usize, channels, bits as usize).map_err(|e| format!("FLAC: {e:?}"))?;
        let frame = FrameBuf::with_size(channels, BLOCK).map_err(|e| format!("FLAC: {e:?}"))?;
        let mut head = b"fLaC".to_vec();
        // Last metadata block, type 0 (STREAMINFO), 34 bytes.
        head.extend_from_slice(&[0x80, 0, 0, 34]);
        head.extend_from_slice(&(BLOCK as u16).to_be_bytes());
        head.extend_from_slice(&(BLOCK as u16).to_be_bytes());
        head.extend_from_slice(&[0; 6]); // frame sizes: unknown
        // 36 bits of total samples: a count that does not fit is "unknown".
        let total = frames.filter(|&f| f < 1 << 36).unwrap_or(0);
        let packed = (u64::from(rate) << 44) | ((channels as u64 - 1) << 41) | (u64::from(bits - 1) << 36) | total;
        head.extend_from_slice(&packed.to_be_bytes());
        head.extend_from_slice(&[0; 16]); // MD5: not computed
        let flac = Flac { config, info, frame, pending: Vec::new(), channels, number: 0, sink: ByteSink::new() };
        Ok((flac, head))
    }

    fn encode(&mut self, samples: &[i32], out: &mut dyn Write) -> Result<(), String> {
        let frames = samples.len() / self.channels;
        if frames != BLOCK {
            self.frame.resize(frames);
        }
        self.frame.fill_interleaved(samples).map_err(|e| format!("FLAC: {e:?}"))?;
        let frame = flacenc::encode_fixed_size_frame(&self.config, &self.frame, self.number, &self.info)
            .map_err(|e| format!("FLAC: {e:?}"))?;
        self.number += 1;
        self.sink.clear();
        frame.write(&mut self.sink).map_err(|e| format!("FLAC: {e:?}"))?;
        out.write_all(self.sink.as_slice()).map_err(|e| e.to_string())
    }
}

impl Sink for Flac {
    fn push(&mut self, samples: &[i32], out: &mut dyn Write) -> Result<(), String> {
        self.pending.extend_from_slice(samples);
        let whole = BLOCK * self.channels;
        let mut at = 0;
        while self.pending.len() - at >= whole {
            let block: Vec<i32> = self.pending[at..at + whole].to_vec();
            self.encode(&block, out)?;
            at += whole;
        }
        self.pending.drain(..at);
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> Result<(), String> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.encode(&rest, out)?;
        }
        Ok(())
    }
}

pub struct Wav {
    bits: u32,
    buf: Vec<u8>,
}

impl Wav {
    /// The writer and its header: the sizes for `frames` frames, or
    /// "unknown" (0xFFFFFFFF) without them or past WAV's 4 GiB.
    pub fn new(rate: u32, channels: u16, bits: u32, frames: Option<u64>) -> (Wav, Vec<u8>) {
        // Channels come from the source: saturate rather than overflow on nonsense.
        let block = channels.saturating_mul(bits as u16 / 8);
        let data = frames
            .and_then(|f| f.checked_mul(u64::from(block)))
            .and_then(|d| u32::try_from(d).ok())
            .filter(|&d| d <= u32::MAX - 36);
        let (riff, data) = data.map_or((u32::MAX, u32::MAX), |d| (d + 36, d));
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&riff.to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // PCM
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&rate.saturating_mul(u32::from(block)).to_le_bytes());
        h.extend_from_slice(&block.to_le_bytes());
        h.extend_from_slice(&(bits as u16).to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data.to_le_bytes());
        (Wav { bits, buf: Vec::new() }, h)
    }
}

impl Sink for Wav {
    fn push(&mut self, samples: &[i32], out: &mut dyn Write) -> Result<(), String> {
        self.buf.clear();
        let width = self.bits as usize / 8;
        for s in samples {
            self.buf.extend_from_slice(&s.to_le_bytes()[..width]);
        }
        out.write_all(&self.buf).map_err(|e| e.to_string())
    }

    fn finish(&mut self, _out: &mut dyn Write) -> Result<(), String> {
        Ok(())
    }
}
