//! Strings a plugin returns, lifted with a bounded copy.
//!
//! wasmtime 48 runs the guest's post-return (which frees the returned
//! strings and lists) as soon as a typed call returns, so views into the
//! results ([`WasmStr`], [`WasmList`]) would point at freed memory that the
//! allocator has already reused for its own bookkeeping. These types copy
//! while the results are still valid, during the lift itself, and copy at
//! most [`MAX_LIFT`] bytes of a string and [`MAX_ITEMS`] entries of a list,
//! remembering the whole length: a plugin returning a 100 MB error makes the
//! host copy 64 KiB. wasmtime still checks each pointer and length against
//! the guest's memory first (through `WasmStr`/`WasmList`'s own lifts).
//!
//! The `Lift` and `ComponentType` items used here are public but hidden in
//! wasmtime's docs (the derive macros use them); wasmtime is pinned to 48.x.
//! Guests are wasm32 with UTF-8 strings, as every toolchain Kiln supports
//! emits; other bytes are shown lossily.

use wasmtime::ValRaw;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift, WasmList, WasmStr};

/// Bytes of one returned string copied into the host, at most.
pub const MAX_LIFT: usize = 64 << 10;
/// Entries of one returned list of strings copied into the host, at most.
pub const MAX_ITEMS: usize = 1024;

/// The first [`MAX_LIFT`] bytes of a guest string (cut on a character
/// boundary) and the string's whole length in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiftedStr {
    pub head: String,
    pub len: usize,
}

/// A pointer pair as the canonical ABI stores it in memory (wasm32).
fn pair_from_memory(bytes: &[u8]) -> (usize, usize) {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes")) as usize;
    (word(0), word(4))
}

fn pair_from_flat(src: &[ValRaw; 2]) -> (usize, usize) {
    (src[0].get_u32() as usize, src[1].get_u32() as usize)
}

impl LiftedStr {
    fn copy(cx: &LiftContext<'_>, ptr: usize, len: usize) -> LiftedStr {
        let take = len.min(MAX_LIFT);
        let bytes = cx.memory().get(ptr..ptr.saturating_add(take)).unwrap_or_default();
        let head = match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            // Cut inside a character: keep the whole ones before it.
            Err(e) if e.error_len().is_none() => {
                String::from_utf8(bytes[..e.valid_up_to()].to_vec()).expect("valid up to here")
            }
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        };
        LiftedStr { head, len }
    }
}

unsafe impl ComponentType for LiftedStr {
    type Lower = <WasmStr as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <WasmStr as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <WasmStr as ComponentType>::typecheck(ty, types)
    }
}

unsafe impl Lift for LiftedStr {
    fn linear_lift_from_flat(cx: &mut LiftContext<'_>, ty: InterfaceType, src: &Self::Lower) -> wasmtime::Result<Self> {
        WasmStr::linear_lift_from_flat(cx, ty, src)?;
        let (ptr, len) = pair_from_flat(src);
        Ok(LiftedStr::copy(cx, ptr, len))
    }

    fn linear_lift_from_memory(cx: &mut LiftContext<'_>, ty: InterfaceType, bytes: &[u8]) -> wasmtime::Result<Self> {
        WasmStr::linear_lift_from_memory(cx, ty, bytes)?;
        let (ptr, len) = pair_from_memory(bytes);
        Ok(LiftedStr::copy(cx, ptr, len))
    }
}

/// The first [`MAX_ITEMS`] strings of a guest `list<string>`, each lifted as
/// a [`LiftedStr`], and the list's whole length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiftedStrList {
    pub items: Vec<LiftedStr>,
    pub len: usize,
}

impl LiftedStrList {
    fn copy(cx: &mut LiftContext<'_>, ptr: usize, len: usize) -> wasmtime::Result<LiftedStrList> {
        let memory = cx.memory();
        let size = <WasmStr as ComponentType>::SIZE32;
        let mut items = Vec::with_capacity(len.min(MAX_ITEMS));
        for i in 0..len.min(MAX_ITEMS) {
            let at = ptr + i * size;
            let Some(entry) = memory.get(at..at + size) else { break };
            items.push(LiftedStr::linear_lift_from_memory(cx, InterfaceType::String, entry)?);
        }
        Ok(LiftedStrList { items, len })
    }
}

unsafe impl ComponentType for LiftedStrList {
    type Lower = <WasmList<WasmStr> as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <WasmList<WasmStr> as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <WasmList<WasmStr> as ComponentType>::typecheck(ty, types)
    }
}

unsafe impl Lift for LiftedStrList {
    fn linear_lift_from_flat(cx: &mut LiftContext<'_>, ty: InterfaceType, src: &Self::Lower) -> wasmtime::Result<Self> {
        WasmList::<WasmStr>::linear_lift_from_flat(cx, ty, src)?;
        let (ptr, len) = pair_from_flat(src);
        LiftedStrList::copy(cx, ptr, len)
    }

    fn linear_lift_from_memory(cx: &mut LiftContext<'_>, ty: InterfaceType, bytes: &[u8]) -> wasmtime::Result<Self> {
        WasmList::<WasmStr>::linear_lift_from_memory(cx, ty, bytes)?;
        let (ptr, len) = pair_from_memory(bytes);
        LiftedStrList::copy(cx, ptr, len)
    }
}
