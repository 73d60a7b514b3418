//! A small map keyed by [`NodeId`], kept as sorted arrays: the subset of `BTreeMap`'s API the
//! neighbour set uses, in the same (id) order, with the keys contiguous so that a lookup
//! touches few cache lines. Inserts and removals shift the arrays: meant for maps the caller
//! bounds to a few dozen entries (the neighbours).

use super::NodeId;

#[derive(Debug, Clone)]
pub(super) struct IdMap<V> {
    keys: Vec<NodeId>,
    values: Vec<V>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            keys: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<V> IdMap<V> {
    pub(super) fn new() -> Self {
        Self::default()
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    fn find(&self, id: &NodeId) -> Result<usize, usize> {
        self.keys.binary_search(id)
    }

    /// The position of `id` in key order.
    pub(super) fn index(&self, id: &NodeId) -> Option<usize> {
        self.find(id).ok()
    }

    /// Where `id` is, or would be inserted, in key order.
    pub(super) fn insertion_point(&self, id: &NodeId) -> usize {
        self.find(id).unwrap_or_else(|i| i)
    }

    pub(super) fn contains_key(&self, id: &NodeId) -> bool {
        self.find(id).is_ok()
    }

    pub(super) fn get(&self, id: &NodeId) -> Option<&V> {
        self.find(id).ok().map(|i| &self.values[i])
    }

    pub(super) fn get_mut(&mut self, id: &NodeId) -> Option<&mut V> {
        self.find(id).ok().map(|i| &mut self.values[i])
    }

    /// Inserts or replaces; returns the value replaced.
    pub(super) fn insert(&mut self, id: NodeId, value: V) -> Option<V> {
        match self.find(&id) {
            Ok(i) => Some(std::mem::replace(&mut self.values[i], value)),
            Err(i) => {
                self.keys.insert(i, id);
                self.values.insert(i, value);
                None
            }
        }
    }

    pub(super) fn remove(&mut self, id: &NodeId) -> Option<V> {
        let i = self.find(id).ok()?;
        self.keys.remove(i);
        Some(self.values.remove(i))
    }

    /// The value of `id`, inserted with `V::default()` if absent.
    pub(super) fn entry_or_default(&mut self, id: NodeId) -> &mut V
    where
        V: Default,
    {
        let i = match self.find(&id) {
            Ok(i) => i,
            Err(i) => {
                self.keys.insert(i, id);
                self.values.insert(i, V::default());
                i
            }
        };
        &mut self.values[i]
    }

    /// The keys in ascending order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &NodeId> + '_ {
        self.keys.iter()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.values.iter()
    }

    /// The entries in ascending key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&NodeId, &V)> + '_ {
        self.keys.iter().zip(self.values.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_as_an_ordered_map() {
        let mut m = IdMap::new();
        let mut b = BTreeMap::new();
        let mut x = 7u64;
        for step in 0..400u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = NodeId((x >> 33) % 24);
            match step % 4 {
                0 | 1 => assert_eq!(m.insert(id, step), b.insert(id, step)),
                2 => assert_eq!(m.remove(&id), b.remove(&id)),
                _ => {
                    *m.entry_or_default(id) += 1;
                    *b.entry(id).or_default() += 1;
                }
            }
            assert_eq!(m.len(), b.len());
            assert_eq!(m.get(&id), b.get(&id));
            assert_eq!(m.contains_key(&id), b.contains_key(&id));
            assert!(m.iter().eq(b.iter()));
        }
        assert!(m.values().eq(b.values()));
        assert!(m.keys().eq(b.keys()));
    }
}
