//! A fast path for the commonest thumbnail case: a baseline (sequential,
//! Huffman, 8-bit) JPEG decoded at 1/8 scale. At that scale each 8x8 block is
//! one pixel, the block's DC coefficient (its average), so no IDCT is needed;
//! the AC coefficients are only skipped, with a lookup table that gives the
//! length of code *and* value bits at once. This is several times faster than
//! a general decoder, whose cost is dominated by entropy decoding.
//!
//! Anything else (progressive, arithmetic, 12-bit, CMYK, Adobe RGB, several
//! scans, damaged data) returns `None`, and the caller falls back to the
//! general decoder.

use crate::ops::Image;

const LOOKUP_BITS: u32 = 10;
const MULTI_BITS: u32 = 13;

struct Huffman {
    /// For each `LOOKUP_BITS` prefix: code length (high byte) and symbol, or 0.
    lut: Box<[u16; 1 << LOOKUP_BITS]>,
    /// For AC tables: per `MULTI_BITS` prefix, the bits taken by as many whole
    /// symbols (code and value bits) as fit, the coefficients they advance
    /// and whether one is the end of block; 0 when not even one fits.
    multi: Box<[u16; 1 << MULTI_BITS]>,
    /// Canonical decoding for long codes: for each length, the largest code
    /// (or -1) and the index of its first symbol.
    maxcode: [i32; 18],
    valoffset: [i32; 18],
    symbols: Vec<u8>,
}

const SKIP_EOB: u32 = 1 << 16;

impl Huffman {
    fn new(counts: &[u8; 16], symbols: &[u8]) -> Option<Huffman> {
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total == 0 || total > 256 || symbols.len() < total {
            return None;
        }
        let mut lut = Box::new([0u16; 1 << LOOKUP_BITS]);
        let mut maxcode = [-1i32; 18];
        let mut valoffset = [0i32; 18];
        let mut code: u32 = 0;
        let mut k = 0usize;
        for len in 1..=16u32 {
            let n = counts[len as usize - 1] as usize;
            if n > 0 {
                valoffset[len as usize] = k as i32 - code as i32;
                for _ in 0..n {
                    if code >= 1 << len {
                        return None; // over-subscribed table
                    }
                    if len <= LOOKUP_BITS {
                        let shift = LOOKUP_BITS - len;
                        for fill in 0..(1u32 << shift) {
                            lut[((code << shift) | fill) as usize] = ((len as u16) << 8) | u16::from(symbols[k]);
                        }
                    }
                    code += 1;
                    k += 1;
                }
                maxcode[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        let mut h = Huffman {
            lut,
            multi: Box::new([0; 1 << MULTI_BITS]),
            maxcode,
            valoffset,
            symbols: symbols[..total].to_vec(),
        };
        for prefix in 0..1u32 << MULTI_BITS {
            h.multi[prefix as usize] = h.multi_entry(prefix);
        }
        Some(h)
    }

    /// The symbol whose code starts `bits` (`avail` bits, MSB first), if that
    /// code is no longer than `avail`.
    fn decode_prefix(&self, bits: u32, avail: u32) -> Option<(u32, u8)> {
        for len in 1..=avail.min(16) {
            let code = (bits >> (avail - len)) as i32;
            if code <= self.maxcode[len as usize] && self.maxcode[len as usize] >= 0 {
                let sym = *self.symbols.get((code + self.valoffset[len as usize]) as usize)?;
                return Some((len, sym));
            }
        }
        None
    }

    /// Packed as `used | advance << 4 | eob << 11`.
    fn multi_entry(&self, prefix: u32) -> u16 {
        let (mut used, mut advance) = (0u32, 0u32);
        while used < MULTI_BITS {
            let avail = MULTI_BITS - used;
            let rest = prefix & ((1 << avail) - 1);
            let Some((len, sym)) = self.decode_prefix(rest, avail) else { break };
            let e = skip_entry(len, u32::from(sym));
            if used + (e & 0xff) > MULTI_BITS {
                break;
            }
            used += e & 0xff;
            if e & SKIP_EOB != 0 {
                return (used | (advance << 4) | (1 << 11)) as u16;
            }
            advance += (e >> 8) & 0xff;
            if advance >= 63 {
                break;
            }
        }
        if used == 0 { 0 } else { (used | (advance << 4)) as u16 }
    }
}

fn skip_entry(len: u32, sym: u32) -> u32 {
    match sym {
        0x00 => len | SKIP_EOB,
        0xf0 => len | (16 << 8),
        _ => (len + (sym & 15)) | (((sym >> 4) + 1) << 8),
    }
}

/// MSB-first bit reader over entropy-coded data, undoing byte stuffing. At a
/// marker (or the end) it feeds zeros and counts them.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
    /// Zero bytes fed past a marker or the end of the data.
    overrun: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits { data, pos, acc: 0, n: 0, overrun: 0 }
    }

    #[inline(always)]
    fn refill(&mut self) {
        if self.n > 56 {
            return;
        }
        // Fast path: the next 8 bytes hold no 0xFF (no stuffing, no marker).
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let x =
                u64::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
            let inverted = !x;
            let has_ff = inverted.wrapping_sub(0x0101_0101_0101_0101) & !inverted & 0x8080_8080_8080_8080;
            if has_ff == 0 {
                let k = (64 - self.n) / 8; // whole bytes that fit: 1..=8
                let bytes = if k == 8 { x } else { x >> (64 - 8 * k) };
                self.acc |= bytes << (64 - self.n - 8 * k);
                self.pos += k as usize;
                self.n += 8 * k;
                return;
            }
        }
        self.refill_slow();
    }

    fn refill_slow(&mut self) {
        while self.n <= 56 {
            let b = match self.data.get(self.pos) {
                Some(&0xff) => match self.data.get(self.pos + 1) {
                    Some(0x00) => {
                        self.pos += 2;
                        0xff
                    }
                    _ => {
                        self.overrun += 1;
                        0
                    }
                },
                Some(&b) => {
                    self.pos += 1;
                    b
                }
                None => {
                    self.overrun += 1;
                    0
                }
            };
            self.acc |= u64::from(b) << (56 - self.n);
            self.n += 8;
        }
    }

    #[inline(always)]
    fn peek(&self, bits: u32) -> u32 {
        (self.acc >> (64 - bits)) as u32
    }

    #[inline(always)]
    fn consume(&mut self, bits: u32) {
        self.acc <<= bits;
        self.n -= bits;
    }

    /// Read `s` (1..=16) bits as a JPEG signed value (EXTEND).
    #[inline(always)]
    fn receive_extend(&mut self, s: u32) -> i32 {
        let v = self.peek(s) as i32;
        self.consume(s);
        if v < 1 << (s - 1) { v - (1 << s) + 1 } else { v }
    }

    /// Drop the bits left in the byte and move past the restart marker.
    fn restart(&mut self) -> bool {
        self.acc = 0;
        self.n = 0;
        self.overrun = 0;
        while self.data.get(self.pos) == Some(&0xff) && self.data.get(self.pos + 1) == Some(&0xff) {
            self.pos += 1;
        }
        match (self.data.get(self.pos), self.data.get(self.pos + 1)) {
            (Some(0xff), Some(0xd0..=0xd7)) => {
                self.pos += 2;
                true
            }
            _ => false,
        }
    }
}

/// Decode a symbol the slow way, for codes longer than `LOOKUP_BITS`.
fn slow_symbol(bits: &mut Bits<'_>, h: &Huffman) -> Option<u8> {
    for len in (LOOKUP_BITS + 1)..=16 {
        let code = bits.peek(len) as i32;
        if code <= h.maxcode[len as usize] {
            bits.consume(len);
            return h.symbols.get((code + h.valoffset[len as usize]) as usize).copied();
        }
    }
    None
}

#[inline(always)]
fn symbol(bits: &mut Bits<'_>, h: &Huffman) -> Option<u8> {
    let e = h.lut[bits.peek(LOOKUP_BITS) as usize & ((1 << LOOKUP_BITS) - 1)];
    if e != 0 {
        bits.consume(u32::from(e >> 8));
        Some(e as u8)
    } else {
        slow_symbol(bits, h)
    }
}

/// Decode one block: the DC difference, the AC coefficients up to zigzag
/// index `LOW` (into `low[1..=LOW]`, not dequantised), and skip the rest.
#[inline(always)]
fn block<const LOW: u32>(bits: &mut Bits<'_>, dc: &Huffman, ac: &Huffman, low: &mut [i32; 5]) -> Option<i32> {
    bits.refill();
    let s = u32::from(symbol(bits, dc)?);
    let diff = match s {
        0 => 0,
        1..=11 => {
            bits.refill();
            bits.receive_extend(s)
        }
        _ => return None,
    };
    let mut k = 1u32;
    if LOW > 0 {
        low[1..].fill(0);
        while k <= LOW {
            bits.refill();
            let sym = u32::from(symbol(bits, ac)?);
            let (run, size) = (sym >> 4, sym & 15);
            if size == 0 {
                if run == 15 {
                    k += 16;
                    continue;
                }
                return Some(diff); // end of block
            }
            k += run;
            bits.refill();
            if k <= LOW {
                low[k as usize] = bits.receive_extend(size);
            } else {
                bits.consume(size);
            }
            k += 1;
        }
    }
    while k < 64 {
        if bits.n < MULTI_BITS {
            bits.refill();
        }
        let e = u32::from(ac.multi[bits.peek(MULTI_BITS) as usize & ((1 << MULTI_BITS) - 1)]);
        let advance = (e >> 4) & 0x7f;
        // The symbols of an entry must all lie in this block: the last one may
        // complete it, and an end of block must come before coefficient 64.
        let eob = e & (1 << 11) != 0;
        if e != 0 && (k + advance < 64 || (!eob && k + advance == 64)) {
            bits.consume(e & 0xf);
            k += advance;
            if eob {
                break;
            }
        } else {
            bits.refill();
            let sym = u32::from(symbol(bits, ac)?);
            bits.refill();
            let e = skip_entry(0, sym);
            bits.consume(e & 0xff);
            if e & SKIP_EOB != 0 {
                break;
            }
            k += (e >> 8) & 0xff;
        }
    }
    if k > 64 {
        return None; // a run past the end of the block: damaged data
    }
    Some(diff)
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    td: usize,
    ta: usize,
}

fn be16(d: &[u8], at: usize) -> Option<usize> {
    d.get(at..at + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
}

/// Decode a baseline JPEG at 1/8 (`per_block` 1: one pixel per block) or
/// 1/4 scale (`per_block` 2: 2x2 pixels per block, from the four lowest
/// frequencies), or `None` if this fast path does not apply.
pub fn decode(d: &[u8], per_block: usize) -> Option<Image> {
    parse(d, per_block, scan)
}

/// Whether this fast path takes the JPEG, from its headers alone (it may
/// still give up on damaged entropy-coded data).
pub fn accepts(d: &[u8]) -> bool {
    parse(d, 1, |_, _, f, dc, ac| tables(f, dc, ac).map(|_| ())).is_some()
}

type Tables = [Option<Huffman>; 4];

/// Read the headers up to the scan, then hand them to `then`.
fn parse<T>(
    d: &[u8],
    per_block: usize,
    then: impl FnOnce(&[u8], usize, &Frame<'_>, &Tables, &Tables) -> Option<T>,
) -> Option<T> {
    if !(per_block == 1 || per_block == 2) {
        return None;
    }
    let mut quant = [[0u16; 5]; 4];
    let mut dc_tables: [Option<Huffman>; 4] = Default::default();
    let mut ac_tables: [Option<Huffman>; 4] = Default::default();
    let mut comps: Vec<Component> = Vec::new();
    let (mut width, mut height) = (0usize, 0usize);
    let mut restart_interval = 0usize;
    let mut pos = 2;
    loop {
        while d.get(pos) == Some(&0xff) && d.get(pos + 1) == Some(&0xff) {
            pos += 1;
        }
        if d.get(pos) != Some(&0xff) {
            return None;
        }
        let marker = *d.get(pos + 1)?;
        pos += 2;
        match marker {
            0xd8 | 0x01 | 0xd0..=0xd7 => continue,
            0xd9 => return None,
            _ => {}
        }
        let len = be16(d, pos)?;
        let seg = d.get(pos + 2..pos + len.max(2))?;
        match marker {
            0xc0 | 0xc1 => {
                if seg.first() != Some(&8) || !comps.is_empty() {
                    return None;
                }
                height = be16(seg, 1)?;
                width = be16(seg, 3)?;
                let nf = usize::from(*seg.get(5)?);
                if !(nf == 1 || nf == 3) || width == 0 || height == 0 {
                    return None;
                }
                for i in 0..nf {
                    let c = seg.get(6 + i * 3..9 + i * 3)?;
                    let (h, v) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
                    if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
                        return None;
                    }
                    comps.push(Component { id: c[0], h, v, tq: usize::from(c[2]), td: 0, ta: 0 });
                }
            }
            0xc2..=0xcf if !matches!(marker, 0xc4 | 0xc8 | 0xcc) => return None, // not baseline
            0xcc => return None,                                                 // arithmetic coding
            0xee if seg.starts_with(b"Adobe")
                // transform 0 with 3 components is RGB, not YCbCr
                && seg.get(11) == Some(&0) =>
            {
                return None;
            }
            0xdb => {
                let mut s = seg;
                while let Some((&pq_tq, rest)) = s.split_first() {
                    let wide = pq_tq >> 4 != 0;
                    let n = if wide { 128 } else { 64 };
                    let table = rest.get(..n)?;
                    let t = usize::from(pq_tq & 15);
                    if t > 3 {
                        return None;
                    }
                    for (i, q) in quant[t].iter_mut().enumerate() {
                        *q = if wide {
                            u16::from_be_bytes([table[2 * i], table[2 * i + 1]])
                        } else {
                            u16::from(table[i])
                        };
                    }
                    s = &rest[n..];
                }
            }
            0xc4 => {
                let mut s = seg;
                while let Some((&tc_th, rest)) = s.split_first() {
                    let counts: [u8; 16] = rest.get(..16)?.try_into().ok()?;
                    let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    let symbols = rest.get(16..16 + total)?;
                    let (class, id) = (tc_th >> 4, usize::from(tc_th & 15));
                    if id > 3 || class > 1 {
                        return None;
                    }
                    let table = Huffman::new(&counts, symbols)?;
                    if class == 0 {
                        dc_tables[id] = Some(table);
                    } else {
                        ac_tables[id] = Some(table);
                    }
                    s = &rest[16 + total..];
                }
            }
            0xdd => restart_interval = be16(seg, 0)?,
            0xda => {
                let ns = usize::from(*seg.first()?);
                if comps.is_empty() || ns != comps.len() {
                    return None; // several scans: not for this fast path
                }
                for i in 0..ns {
                    let c = seg.get(1 + i * 2..3 + i * 2)?;
                    let comp = comps.iter_mut().find(|k| k.id == c[0])?;
                    comp.td = usize::from(c[1] >> 4);
                    comp.ta = usize::from(c[1] & 15);
                    if comp.td > 3 || comp.ta > 3 {
                        return None;
                    }
                }
                let tail = seg.get(1 + ns * 2..4 + ns * 2)?;
                if tail != [0, 63, 0] {
                    return None;
                }
                let frame = Frame { width, height, comps: &comps, quant: &quant, restart_interval, per_block };
                return then(d, pos + len, &frame, &dc_tables, &ac_tables);
            }
            _ => {}
        }
        pos += len;
    }
}

struct Frame<'a> {
    width: usize,
    height: usize,
    comps: &'a [Component],
    /// Per table, the first five quantisers in zigzag order.
    quant: &'a [[u16; 5]; 4],
    restart_interval: usize,
    per_block: usize,
}

/// Per component: its DC and AC tables and its first five quantisers, or
/// `None` if one is missing or a quantiser is zero.
fn tables<'t>(
    f: &Frame<'_>,
    dc_tables: &'t Tables,
    ac_tables: &'t Tables,
) -> Option<Vec<(&'t Huffman, &'t Huffman, [i32; 5])>> {
    let tables: Vec<(&Huffman, &Huffman, [i32; 5])> = f
        .comps
        .iter()
        .map(|c| Some((dc_tables[c.td].as_ref()?, ac_tables[c.ta].as_ref()?, f.quant[c.tq].map(i32::from))))
        .collect::<Option<_>>()?;
    (!tables.iter().any(|t| t.2.contains(&0))).then_some(tables)
}

fn scan(d: &[u8], start: usize, f: &Frame<'_>, dc_tables: &Tables, ac_tables: &Tables) -> Option<Image> {
    let (width, height, comps, n) = (f.width, f.height, f.comps, f.per_block);
    let single = comps.len() == 1;
    let hmax = comps.iter().map(|c| c.h).max()?;
    let vmax = comps.iter().map(|c| c.v).max()?;
    let (mcux, mcuy) = if single {
        (width.div_ceil(8), height.div_ceil(8))
    } else {
        (width.div_ceil(8 * hmax), height.div_ceil(8 * vmax))
    };
    // Per component: a plane of `n`x`n` pixels per block.
    let dims: Vec<(usize, usize)> =
        comps.iter().map(|c| if single { (mcux * n, mcuy * n) } else { (mcux * c.h * n, mcuy * c.v * n) }).collect();
    let tables = tables(f, dc_tables, ac_tables)?;
    let mut planes: Vec<Vec<u8>> = dims.iter().map(|&(w, h)| vec![0u8; w * h]).collect();
    let mut bits = Bits::new(d, start);
    let mut pred = vec![0i32; comps.len()];
    let mut low = [0i32; 5];
    let total = mcux * mcuy;
    for m in 0..total {
        if f.restart_interval > 0 && m > 0 && m % f.restart_interval == 0 {
            if !bits.restart() {
                return None;
            }
            pred.iter_mut().for_each(|p| *p = 0);
        }
        let (mx, my) = (m % mcux, m / mcux);
        for (ci, c) in comps.iter().enumerate() {
            let (dc, ac, q) = tables[ci];
            let (bh, bv) = if single { (1, 1) } else { (c.h, c.v) };
            let pw = dims[ci].0;
            for v in 0..bv {
                for h in 0..bh {
                    let (x0, y0) = ((mx * bh + h) * n, (my * bv + v) * n);
                    if n == 1 {
                        pred[ci] += block::<0>(&mut bits, dc, ac, &mut low)?;
                        let value = (pred[ci] * q[0] + 4) / 8 + 128;
                        planes[ci][y0 * pw + x0] = value.clamp(0, 255) as u8;
                    } else {
                        pred[ci] += block::<4>(&mut bits, dc, ac, &mut low)?;
                        // The 4x4 quadrant averages from the lowest frequencies:
                        // F(0,0)/8 ± 0.1133 F(0,1) ± 0.1133 F(1,0) ± 0.1026 F(1,1),
                        // in 1/1024 fixed point. Zigzag 1 is (0,1), 2 is (1,0), 4 is (1,1).
                        let dcv = pred[ci] * q[0] * 128;
                        let fx = low[1] * q[1] * 116;
                        let fy = low[2] * q[2] * 116;
                        let fxy = low[4] * q[4] * 105;
                        for (dy, sy) in [(0, 1), (1, -1)] {
                            for (dx, sx) in [(0, 1), (1, -1)] {
                                let value = ((dcv + sx * fx + sy * fy + sx * sy * fxy + 512) >> 10) + 128;
                                planes[ci][(y0 + dy) * pw + x0 + dx] = value.clamp(0, 255) as u8;
                            }
                        }
                    }
                }
            }
        }
        if bits.overrun > 16 {
            return None; // ran into a marker or the end: damaged or truncated
        }
    }
    let (ow, oh) = ((width * n).div_ceil(8), (height * n).div_ceil(8));
    if single {
        let (pw, _) = dims[0];
        let mut out = Vec::with_capacity(ow * oh);
        for y in 0..oh {
            out.extend_from_slice(&planes[0][y * pw..y * pw + ow]);
        }
        return Image::new(ow as u32, oh as u32, 1, out).ok();
    }
    // Upsample chroma by block replication and convert YCbCr to RGB.
    let mut out = Vec::with_capacity(ow * oh * 3);
    let (yw, cbw, crw) = (dims[0].0, dims[1].0, dims[2].0);
    let sub = |c: &Component, x: usize, y: usize| (x * c.h / hmax, y * c.v / vmax);
    for y in 0..oh {
        for x in 0..ow {
            let (lx, ly) = sub(&comps[0], x, y);
            let (bx, by) = sub(&comps[1], x, y);
            let (rx, ry) = sub(&comps[2], x, y);
            let yy = i32::from(planes[0][ly * yw + lx]);
            let cb = i32::from(planes[1][by * cbw + bx]) - 128;
            let cr = i32::from(planes[2][ry * crw + rx]) - 128;
            // JFIF, 16-bit fixed point.
            let r = yy + ((91_881 * cr + 32_768) >> 16);
            let g = yy - ((22_554 * cb + 46_802 * cr + 32_768) >> 16);
            let b = yy + ((116_130 * cb + 32_768) >> 16);
            out.extend_from_slice(&[r.clamp(0, 255) as u8, g.clamp(0, 255) as u8, b.clamp(0, 255) as u8]);
        }
    }
    Image::new(ow as u32, oh as u32, 3, out).ok()
}
