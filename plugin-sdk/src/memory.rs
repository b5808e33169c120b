//! Ask for memory before a large piece of work, so that a plugin can refuse
//! an input cleanly instead of dying on the host's memory limit halfway.
//!
//! A task's linear memory is capped by the host (`limits.max_memory`, 512 MiB
//! by default). When a grow would pass the cap, the host refuses it:
//! `memory.grow` returns -1, Rust's allocator reports the failure, and an
//! infallible allocation (`Vec::with_capacity`, `vec![0; n]`) aborts the task,
//! which the host then reports as the memory limit. A *fallible* reservation
//! sees the refusal and can say which input was too large and what to change.
//!
//! [`reserve`] reserves the bytes a piece of work will need and releases them
//! at once. WebAssembly memory never shrinks, so the pages stay with the
//! instance and the allocator hands them out again for the real allocations:
//! after a successful probe, allocations of up to that total succeed.
//! Natively (in unit tests) the probe only checks what the system allocator
//! grants.

use std::fmt;

/// `bytes` of memory that could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub bytes: u64,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the task's memory limit (limits.max_memory) refused {} more", human_bytes(self.bytes))
    }
}

impl std::error::Error for Refused {}

/// Check that `bytes` more bytes of memory can be allocated, by reserving them
/// and releasing them again (see the module documentation).
pub fn reserve(bytes: u64) -> Result<(), Refused> {
    let refused = Refused { bytes };
    let n = usize::try_from(bytes).map_err(|_| refused)?;
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(n).map_err(|_| refused)
}

/// `bytes` for people: `512 B`, `3.2 MiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_reservations_succeed_and_absurd_ones_are_refused() {
        assert_eq!(reserve(1 << 20), Ok(()));
        assert_eq!(reserve(u64::MAX), Err(Refused { bytes: u64::MAX }));
        assert!(Refused { bytes: 3 << 30 }.to_string().contains("refused 3.0 GiB more"));
        assert!(Refused { bytes: 1 }.to_string().contains("limits.max_memory"));
    }

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(801 << 20), "801.0 MiB");
        assert_eq!(human_bytes(5 << 40), "5.0 TiB");
    }
}
