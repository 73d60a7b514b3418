//! Content-defined chunking (FastCDC with a Gear hash and normalised chunking, level 2).

/// Smallest chunk (except the last one of a file).
pub const MIN_CHUNK: usize = 256 * 1024;
/// Target average chunk size.
pub const AVG_CHUNK: usize = 1024 * 1024;
/// Largest chunk.
pub const MAX_CHUNK: usize = 4 * 1024 * 1024;

/// Normalisation level: the mask is `NORMALISATION` bits harder before the average size
/// and as many bits easier after it.
const NORMALISATION: u32 = 2;

const fn splitmix64(state: u64) -> (u64, u64) {
    let state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (state, z ^ (z >> 31))
}

const fn gear_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut state = 0x626f_6f74_7377_6172; // "bootswar"
    let mut i = 0;
    while i < 256 {
        let (next, value) = splitmix64(state);
        state = next;
        table[i] = value;
        i += 1;
    }
    table
}

/// The Gear hash table, fixed forever: changing it changes every chunk boundary.
static GEAR: [u64; 256] = gear_table();

/// A mask of the `bits` most significant bits; those depend on the most recent 64 bytes.
const fn top_bits(bits: u32) -> u64 {
    if bits == 0 { 0 } else { !0u64 << (64 - bits) }
}

/// A FastCDC chunker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
}

impl Default for Chunker {
    fn default() -> Self {
        Chunker::new(MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
    }
}

impl Chunker {
    /// A chunker with the given sizes.
    ///
    /// # Panics
    /// Unless `64 <= min < avg < max` and `avg <= 2^40`; these are programmer inputs.
    pub fn new(min: usize, avg: usize, max: usize) -> Self {
        assert!(
            64 <= min && min < avg && avg < max && avg <= 1 << 40,
            "chunker sizes must satisfy 64 <= min < avg < max, got {min}/{avg}/{max}"
        );
        let bits = avg.ilog2();
        Chunker {
            min,
            avg,
            max,
            mask_s: top_bits(bits + NORMALISATION),
            mask_l: top_bits(bits.saturating_sub(NORMALISATION)),
        }
    }

    /// The minimum chunk size.
    pub fn min(&self) -> usize {
        self.min
    }

    /// The target average chunk size.
    pub fn avg(&self) -> usize {
        self.avg
    }

    /// The maximum chunk size.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Length of the first chunk of `data` (which starts at a chunk boundary).
    ///
    /// A boundary found in `data` is final whatever follows it. If none is found and
    /// `data.len() < max`, then with `eof` the whole remainder is one chunk, and without it
    /// the answer is 0: the caller must supply more data. Returns 0 for empty `data`.
    pub fn cut(&self, data: &[u8], eof: bool) -> usize {
        let len = data.len();
        if len <= self.min {
            return if eof { len } else { 0 };
        }
        let end = len.min(self.max);
        let normal = end.min(self.avg);
        let mut hash = 0u64;
        // Warm the hash up on the bytes just before `min`, so the first candidate
        // boundaries see a full window.
        for &b in &data[self.min.saturating_sub(64)..self.min] {
            hash = (hash << 1).wrapping_add(GEAR[usize::from(b)]);
        }
        for (i, &b) in data[self.min..normal].iter().enumerate() {
            hash = (hash << 1).wrapping_add(GEAR[usize::from(b)]);
            if hash & self.mask_s == 0 {
                return self.min + i + 1;
            }
        }
        for (i, &b) in data[normal..end].iter().enumerate() {
            hash = (hash << 1).wrapping_add(GEAR[usize::from(b)]);
            if hash & self.mask_l == 0 {
                return normal + i + 1;
            }
        }
        if end == self.max || eof { end } else { 0 }
    }

    /// Splits a whole buffer into chunks.
    pub fn split<'a>(&self, data: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let chunker = *self;
        let mut rest = data;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (chunk, tail) = rest.split_at(chunker.cut(rest, true));
            rest = tail;
            Some(chunk)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            let (next, v) = splitmix64(state);
            state = next;
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    #[test]
    fn gear_table_is_fixed() {
        assert_eq!(GEAR[0], splitmix64(0x626f_6f74_7377_6172).1);
        let distinct: std::collections::BTreeSet<u64> = GEAR.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn small_inputs() {
        let c = Chunker::default();
        assert_eq!(c.cut(&[], true), 0);
        assert_eq!(c.cut(&[], false), 0);
        assert_eq!(c.cut(&[1, 2, 3], true), 3);
        assert_eq!(c.cut(&[1, 2, 3], false), 0);
        assert_eq!(c.split(&[]).count(), 0);
    }

    #[test]
    fn zeros_cut_at_max() {
        let c = Chunker::default();
        let data = vec![0u8; MAX_CHUNK * 2 + 5];
        let sizes: Vec<usize> = c.split(&data).map(<[u8]>::len).collect();
        assert_eq!(sizes, vec![MAX_CHUNK, MAX_CHUNK, 5]);
        assert_eq!(c.cut(&data[..MAX_CHUNK - 1], false), 0);
        assert_eq!(c.cut(&data[..MAX_CHUNK - 1], true), MAX_CHUNK - 1);
    }

    #[test]
    fn boundaries_do_not_depend_on_eof_or_trailing_data() {
        let c = Chunker::default();
        let data = pseudo_random(12 * 1024 * 1024, 7);
        let first = c.cut(&data, true);
        assert!((MIN_CHUNK..=MAX_CHUNK).contains(&first));
        assert_eq!(c.cut(&data[..first], false), first);
        assert_eq!(c.cut(&data[..first + 1], false), first);
    }

    #[test]
    fn split_covers_input_within_bounds() {
        let c = Chunker::default();
        let data = pseudo_random(24 * 1024 * 1024 + 17, 1);
        let chunks: Vec<&[u8]> = c.split(&data).collect();
        assert_eq!(chunks.concat(), data);
        let (last, body) = chunks.split_last().unwrap();
        assert!(!last.is_empty() && last.len() <= MAX_CHUNK);
        for ch in body {
            assert!((MIN_CHUNK..=MAX_CHUNK).contains(&ch.len()), "{}", ch.len());
        }
        let avg = data.len() / chunks.len();
        assert!((AVG_CHUNK / 2..=AVG_CHUNK * 2).contains(&avg), "avg {avg}");
    }

    #[test]
    #[should_panic(expected = "chunker sizes")]
    fn bad_config_panics() {
        let _ = Chunker::new(1024, 512, 4096);
    }
}
