//! A growable bitfield over block indices of a release plan.

/// The largest number of blocks a release plan may have (and so a bitfield may cover).
pub const MAX_BLOCKS: u32 = 1 << 20;

/// A set of block indices, stored as bits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitfield {
    words: Vec<u64>,
}

impl Bitfield {
    /// An empty bitfield.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `index` is set.
    pub fn get(&self, index: u32) -> bool {
        let (w, b) = split(index);
        self.words.get(w).is_some_and(|word| word & (1 << b) != 0)
    }

    /// Sets `index`; returns whether it was newly set. Indices at or above [`MAX_BLOCKS`] are ignored.
    pub fn set(&mut self, index: u32) -> bool {
        if index >= MAX_BLOCKS {
            return false;
        }
        let (w, b) = split(index);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        let was = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        !was
    }

    /// Clears `index`; returns whether it was set.
    pub fn clear(&mut self, index: u32) -> bool {
        let (w, b) = split(index);
        match self.words.get_mut(w) {
            Some(word) if *word & (1 << b) != 0 => {
                *word &= !(1 << b);
                true
            }
            _ => false,
        }
    }

    /// The number of set bits.
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// The set indices in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words
            .iter()
            .enumerate()
            .flat_map(|(w, &word)| word_bits(w, word))
    }

    /// The length of [`to_bytes`](Self::to_bytes)'s output, without allocating.
    pub fn encoded_len(&self) -> usize {
        let words = self
            .words
            .iter()
            .rposition(|w| *w != 0)
            .map_or(0, |i| i + 1);
        if words == 0 {
            return 0;
        }
        let last = self.words[words - 1];
        (words - 1) * 8 + (8 - last.leading_zeros() as usize / 8)
    }

    /// The bits as little-endian bytes, without trailing zero bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        while out.last() == Some(&0) {
            out.pop();
        }
        out
    }

    /// The bitfield from little-endian bytes; `None` if it would cover more than [`MAX_BLOCKS`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > (MAX_BLOCKS / 8) as usize {
            return None;
        }
        let words = bytes
            .chunks(8)
            .map(|c| {
                let mut buf = [0u8; 8];
                buf[..c.len()].copy_from_slice(c);
                u64::from_le_bytes(buf)
            })
            .collect();
        Some(Bitfield { words })
    }
}

/// The word and bit of `index`.
pub(super) fn split(index: u32) -> (usize, u32) {
    ((index / 64) as usize, index % 64)
}

/// The indices set in `word`, word `w` of a bitfield, in ascending order.
pub(super) fn word_bits(w: usize, mut word: u64) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        if word == 0 {
            return None;
        }
        let b = word.trailing_zeros();
        word &= word - 1;
        Some(w as u32 * 64 + b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear_iter_roundtrip() {
        let mut b = Bitfield::new();
        assert!(b.set(3));
        assert!(!b.set(3));
        assert!(b.set(200));
        assert!(!b.set(MAX_BLOCKS));
        assert!(b.get(3) && b.get(200) && !b.get(4) && !b.get(10_000));
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![3, 200]);
        assert_eq!(b.count(), 2);
        let back = Bitfield::from_bytes(&b.to_bytes()).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), vec![3, 200]);
        assert!(b.clear(200));
        assert!(!b.clear(200));
        assert_eq!(b.to_bytes(), vec![8]);
        assert_eq!(b.encoded_len(), 1);
        for i in [0u32, 7, 8, 63, 64, 200, 1000] {
            let mut c = Bitfield::new();
            c.set(i);
            assert_eq!(c.encoded_len(), c.to_bytes().len(), "bit {i}");
            c.clear(i);
            assert_eq!(c.encoded_len(), 0);
        }
    }

    #[test]
    fn oversized_bytes_are_refused() {
        assert!(Bitfield::from_bytes(&vec![0xff; (MAX_BLOCKS / 8) as usize + 1]).is_none());
    }
}
