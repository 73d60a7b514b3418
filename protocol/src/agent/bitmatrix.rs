//! Block bitfields of several neighbours, stored by block word: row `w` holds word `w` of every
//! column side by side, so one block's bits across all neighbours are one short run (an
//! announcement or a holder pick reads a few cache lines, not one bitfield per neighbour).

use super::bitfield::{MAX_BLOCKS, split, word_bits};

/// A bitfield per column, columns in the caller's order (the neighbours' id order).
#[derive(Debug, Clone)]
pub(super) struct BitMatrix {
    cols: usize,
    rows: usize,
    /// `rows × cols` words: word `w` of column `c` at `w * cols + c`.
    words: Vec<u64>,
    /// Indices at or above it are not stored.
    limit: u32,
}

impl Default for BitMatrix {
    fn default() -> Self {
        BitMatrix {
            cols: 0,
            rows: 0,
            words: Vec::new(),
            limit: MAX_BLOCKS,
        }
    }
}

impl BitMatrix {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Stores no index at or above `limit` (at most [`MAX_BLOCKS`]) from now on, and drops
    /// those stored.
    pub(super) fn bound(&mut self, limit: u32) {
        self.limit = limit.min(MAX_BLOCKS);
        let (w, b) = split(self.limit);
        let rows = if b == 0 { w } else { w + 1 };
        if rows < self.rows {
            self.rows = rows;
            self.words.truncate(rows * self.cols);
            self.words.shrink_to_fit();
        }
        if b != 0 && w < self.rows {
            for word in &mut self.words[w * self.cols..(w + 1) * self.cols] {
                *word &= (1 << b) - 1;
            }
        }
    }

    /// Inserts an empty column before column `c` (at the end when `c` is the column count).
    pub(super) fn insert_col(&mut self, c: usize) {
        let c = c.min(self.cols);
        let cols = self.cols + 1;
        let mut words = Vec::with_capacity(self.rows * cols);
        for row in self.words.chunks_exact(self.cols.max(1)).take(self.rows) {
            words.extend_from_slice(&row[..c]);
            words.push(0);
            words.extend_from_slice(&row[c..]);
        }
        self.cols = cols;
        self.words = words;
    }

    /// Removes column `c`.
    pub(super) fn remove_col(&mut self, c: usize) {
        if c >= self.cols {
            return;
        }
        let cols = self.cols;
        let mut i = 0;
        self.words.retain(|_| {
            let keep = i % cols != c;
            i += 1;
            keep
        });
        self.cols -= 1;
        if self.cols == 0 {
            self.rows = 0;
            self.words.clear();
        }
    }

    /// Clears column `c`.
    pub(super) fn clear_col(&mut self, c: usize) {
        if c >= self.cols {
            return;
        }
        for w in 0..self.rows {
            self.words[w * self.cols + c] = 0;
        }
    }

    /// Indices at or above it are not stored.
    pub(super) fn limit(&self) -> u32 {
        self.limit
    }

    /// Clears every column and lifts the bound.
    pub(super) fn clear(&mut self) {
        self.rows = 0;
        self.words.clear();
        self.limit = MAX_BLOCKS;
    }

    pub(super) fn get(&self, c: usize, idx: u32) -> bool {
        let (w, b) = split(idx);
        c < self.cols && w < self.rows && self.words[w * self.cols + c] & (1 << b) != 0
    }

    /// Sets `idx` in column `c`; whether it was newly set. Indices at or above the bound
    /// ([`MAX_BLOCKS`] unless [`bound`](Self::bound) lowered it) are ignored.
    pub(super) fn set(&mut self, c: usize, idx: u32) -> bool {
        if idx >= self.limit || c >= self.cols {
            return false;
        }
        let (w, b) = split(idx);
        if w >= self.rows {
            self.rows = w + 1;
            self.words.resize(self.rows * self.cols, 0);
        }
        let word = &mut self.words[w * self.cols + c];
        let was = *word & (1 << b) != 0;
        *word |= 1 << b;
        !was
    }

    /// Clears `idx` in column `c`; whether it was set.
    pub(super) fn unset(&mut self, c: usize, idx: u32) -> bool {
        let (w, b) = split(idx);
        if c >= self.cols || w >= self.rows {
            return false;
        }
        let word = &mut self.words[w * self.cols + c];
        let was = *word & (1 << b) != 0;
        *word &= !(1 << b);
        was
    }

    /// The word holding `idx` in every column, in column order (empty past the last row).
    pub(super) fn row_of(&self, idx: u32) -> (&[u64], u64) {
        let (w, b) = split(idx);
        if w >= self.rows {
            return (&[], 0);
        }
        (&self.words[w * self.cols..(w + 1) * self.cols], 1 << b)
    }

    /// Column `c`'s set indices in ascending order.
    pub(super) fn col(&self, c: usize) -> impl Iterator<Item = u32> + '_ {
        let (cols, rows) = (self.cols, if c < self.cols { self.rows } else { 0 });
        (0..rows).flat_map(move |w| word_bits(w, self.words[w * cols + c]))
    }

    /// The number of indices set in column `c`.
    #[cfg(test)]
    pub(super) fn count(&self, c: usize) -> u32 {
        self.col(c).count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::super::bitfield::Bitfield;
    use super::*;

    /// The matrix behaves as a vector of bitfields under column inserts and removals.
    #[test]
    fn behaves_as_a_list_of_bitfields() {
        let mut m = BitMatrix::new();
        let mut model: Vec<Bitfield> = Vec::new();
        let mut x = 11u64;
        for step in 0..3000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = x >> 33;
            let c = if model.is_empty() {
                0
            } else {
                (r as usize / 7) % model.len()
            };
            let idx = ((r >> 8) % 700) as u32;
            match step % 9 {
                0 if model.len() < 40 => {
                    let at = (r as usize) % (model.len() + 1);
                    m.insert_col(at);
                    model.insert(at, Bitfield::new());
                }
                1 if !model.is_empty() && step % 27 == 1 => {
                    m.remove_col(c);
                    model.remove(c);
                }
                2 if !model.is_empty() && step % 90 == 2 => {
                    m.clear_col(c);
                    model[c] = Bitfield::new();
                }
                3 | 4 => {
                    if !model.is_empty() {
                        assert_eq!(m.unset(c, idx), model[c].clear(idx));
                    }
                }
                _ => {
                    if !model.is_empty() {
                        assert_eq!(m.set(c, idx), model[c].set(idx));
                    }
                }
            }
            for (c, bits) in model.iter().enumerate() {
                assert_eq!(m.get(c, idx), bits.get(idx));
                let (row, mask) = m.row_of(idx);
                assert_eq!(row.get(c).is_some_and(|w| w & mask != 0), bits.get(idx));
            }
            if step % 100 == 0 {
                for (c, bits) in model.iter().enumerate() {
                    assert!(m.col(c).eq(bits.iter()), "column {c} at step {step}");
                    assert_eq!(m.count(c), bits.count());
                }
            }
        }
        m.clear();
        assert!(!m.get(0, 3) && m.col(0).next().is_none());
        assert!(!m.set(0, MAX_BLOCKS));
    }

    /// A bound drops the indices at and above it, keeps those below, and refuses later ones.
    #[test]
    fn a_bound_drops_and_refuses_the_indices_beyond_it() {
        let mut m = BitMatrix::new();
        m.insert_col(0);
        m.insert_col(1);
        for idx in [3, 69, 70, 127, MAX_BLOCKS - 1] {
            assert!(m.set(0, idx) && m.set(1, idx));
        }
        m.bound(70);
        assert_eq!(m.rows, 2, "the rows past the bound are gone");
        for c in 0..2 {
            assert!(m.col(c).eq([3, 69]), "column {c}");
        }
        assert!(!m.set(0, 70) && !m.set(1, MAX_BLOCKS - 1));
        assert!(!m.get(0, 70));
        assert!(m.set(0, 68));
        m.clear();
        m.insert_col(0);
        assert!(m.set(0, MAX_BLOCKS - 1), "a new release lifts the bound");
    }
}
