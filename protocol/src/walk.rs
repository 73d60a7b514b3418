//! The flist tree of a release, walked level by level: the root, then its children, then
//! theirs, each level in its parents' order. One walker serves every reader of the tree (the
//! agent's block plan, the hub-only boot, the install), so the limits on depth and count and
//! the placement of each child under its name live here, and are checked before the next
//! level is fetched.
//!
//! The walker does no I/O: the caller fetches what [`Walk::wanted`] lists, hands each decoded
//! flist to [`Walk::add`], and calls [`Walk::advance`] once the level is complete. It keeps
//! only the level being read: what it places is handed back level by level.

use std::collections::{BTreeMap, BTreeSet};

use crate::block::Cid;
use crate::manifest::Flist;

/// Deepest nesting of child flists below the root.
pub const MAX_FLIST_DEPTH: usize = 8;
/// Most flists one release may place.
pub const MAX_FLISTS: usize = 16_384;

/// A flist placed in the tree: its entries live under `prefix` (empty for the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// CID of the flist block.
    pub cid: Cid,
    /// Directory (relative to the target, `/`-separated) the flist's entries live in.
    pub prefix: String,
    /// The decoded flist.
    pub flist: Flist,
}

/// Why a release's flist tree is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// Child flists nest deeper than [`MAX_FLIST_DEPTH`].
    #[error(
        "the flists of root {root} nest deeper than {MAX_FLIST_DEPTH} levels; the publisher made an invalid release"
    )]
    TooDeep {
        /// The release's root.
        root: Cid,
    },
    /// More than [`MAX_FLISTS`] placements.
    #[error(
        "root {root} references more than {MAX_FLISTS} flists; the publisher made an invalid release"
    )]
    TooMany {
        /// The release's root.
        root: Cid,
    },
    /// A child name that is not one plain path component.
    #[error(
        "flist {parent} names a child {name:?}, which is not a plain name; the publisher made an invalid release"
    )]
    BadChildName {
        /// The flist naming the child.
        parent: Cid,
        /// The name.
        name: String,
    },
}

/// A walk of one release's flist tree. Invariant: no more than [`MAX_FLISTS`] placements
/// are ever listed, and none deeper than [`MAX_FLIST_DEPTH`].
#[derive(Debug, Clone)]
pub struct Walk {
    root: Cid,
    depth: usize,
    /// Placements of the level being read, in order.
    level: Vec<(Cid, String)>,
    /// The level's flists received so far.
    got: BTreeMap<Cid, Flist>,
    /// Placements listed so far.
    count: usize,
    /// With [`Walk::distinct`]: every flist listed so far (each is walked once).
    seen: Option<BTreeSet<Cid>>,
    done: bool,
}

impl Walk {
    /// A walk from `root` that places every flist wherever the tree references it (the
    /// install's view).
    pub fn new(root: Cid) -> Self {
        Walk {
            root,
            depth: 0,
            level: vec![(root, String::new())],
            got: BTreeMap::new(),
            count: 1,
            seen: None,
            done: false,
        }
    }

    /// A walk from `root` that lists each flist once, at its first place (the block plan's
    /// view: a flist referenced twice is one block).
    pub fn distinct(root: Cid) -> Self {
        Walk {
            seen: Some(BTreeSet::from([root])),
            ..Walk::new(root)
        }
    }

    /// The flists of the current level still to be added, each once, in level order.
    pub fn wanted(&self) -> Vec<Cid> {
        let mut seen = BTreeSet::new();
        self.level
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| !self.got.contains_key(c) && seen.insert(*c))
            .collect()
    }

    /// Hands over a decoded flist of the current level (others are ignored; returns whether
    /// it was wanted).
    pub fn add(&mut self, cid: Cid, flist: Flist) -> bool {
        if self.done || self.got.contains_key(&cid) || !self.level.iter().any(|(c, _)| *c == cid) {
            return false;
        }
        self.got.insert(cid, flist);
        true
    }

    /// Whether every flist of the current level has been added.
    pub fn level_complete(&self) -> bool {
        self.level.iter().all(|(c, _)| self.got.contains_key(c))
    }

    /// Whether every level has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Places the complete current level and lists the next one; returns the placements of
    /// the level just placed, in order. An empty next level ends the walk. Refuses a tree
    /// deeper than [`MAX_FLIST_DEPTH`] or with more than [`MAX_FLISTS`] placements before
    /// anything of the next level is fetched.
    pub fn advance(&mut self) -> Result<Vec<Placed>, WalkError> {
        if self.done || !self.level_complete() {
            return Ok(Vec::new());
        }
        let mut placed = Vec::with_capacity(self.level.len());
        let mut next = Vec::new();
        for (cid, prefix) in std::mem::take(&mut self.level) {
            let Some(flist) = self.got.get(&cid) else {
                continue;
            };
            for child in &flist.children {
                let path = child_path(&cid, &prefix, &child.name)?;
                if self.seen.as_mut().is_none_or(|s| s.insert(child.cid)) {
                    next.push((child.cid, path));
                }
            }
            if self.count + next.len() > MAX_FLISTS {
                return Err(WalkError::TooMany { root: self.root });
            }
            placed.push(Placed {
                cid,
                prefix,
                flist: flist.clone(),
            });
        }
        self.got.clear();
        self.count += next.len();
        if !next.is_empty() {
            self.depth += 1;
            if self.depth > MAX_FLIST_DEPTH {
                return Err(WalkError::TooDeep { root: self.root });
            }
        }
        self.done = next.is_empty();
        self.level = next;
        Ok(placed)
    }

    /// Walks the whole tree with a synchronous reader of flists.
    pub fn read<E>(
        root: Cid,
        mut get: impl FnMut(&Cid) -> Result<Flist, E>,
    ) -> Result<Vec<Placed>, E>
    where
        E: From<WalkError>,
    {
        let mut walk = Walk::new(root);
        let mut placed = Vec::new();
        while !walk.is_done() {
            for cid in walk.wanted() {
                let flist = get(&cid)?;
                walk.add(cid, flist);
            }
            placed.extend(walk.advance()?);
        }
        Ok(placed)
    }
}

/// Where the entries of child flist `name` of flist `parent` (placed at `prefix`) go: a plain
/// name below `prefix`.
fn child_path(parent: &Cid, prefix: &str, name: &str) -> Result<String, WalkError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(WalkError::BadChildName {
            parent: *parent,
            name: name.to_string(),
        });
    }
    Ok(if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ChildRef;

    fn flist(name: &str, children: &[(&str, Cid)]) -> (Cid, Flist) {
        let f = Flist {
            name: name.into(),
            version: String::new(),
            entries: Vec::new(),
            children: children
                .iter()
                .map(|(n, c)| ChildRef {
                    name: (*n).into(),
                    cid: *c,
                })
                .collect(),
            routes: Vec::new(),
        };
        let (cid, _) = f.to_block().unwrap();
        (cid, f)
    }

    fn store(flists: &[(Cid, Flist)]) -> BTreeMap<Cid, Flist> {
        flists.iter().cloned().collect()
    }

    #[test]
    fn levels_are_placed_in_their_parents_order_and_shared_children_fetched_once() {
        let (leaf, leaf_f) = flist("leaf", &[]);
        let (a, a_f) = flist("a", &[("x", leaf)]);
        let (b, b_f) = flist("b", &[("y", leaf)]);
        let (root, root_f) = flist("root", &[("a", a), ("b", b)]);
        let all = store(&[(leaf, leaf_f), (a, a_f), (b, b_f), (root, root_f)]);
        let mut walk = Walk::new(root);
        let mut placed = Vec::new();
        assert_eq!(walk.wanted(), [root]);
        walk.add(root, all[&root].clone());
        placed.extend(walk.advance().unwrap());
        assert_eq!(walk.wanted(), [a, b]);
        walk.add(a, all[&a].clone());
        assert!(!walk.level_complete());
        assert!(
            walk.advance().unwrap().is_empty(),
            "an incomplete level stays"
        );
        walk.add(b, all[&b].clone());
        placed.extend(walk.advance().unwrap());
        assert_eq!(walk.wanted(), [leaf], "one fetch for two placements");
        walk.add(leaf, all[&leaf].clone());
        placed.extend(walk.advance().unwrap());
        assert!(walk.is_done());
        let prefixes: Vec<&str> = placed.iter().map(|p| p.prefix.as_str()).collect();
        assert_eq!(prefixes, ["", "a", "b", "a/x", "b/y"]);
        let read = Walk::read::<WalkError>(root, |c| Ok(all[c].clone())).unwrap();
        assert_eq!(read, placed);

        // The distinct walk lists the shared leaf once, at its first place.
        let mut walk = Walk::distinct(root);
        let mut placed = Vec::new();
        while !walk.is_done() {
            for c in walk.wanted() {
                walk.add(c, all[&c].clone());
            }
            placed.extend(walk.advance().unwrap());
        }
        let prefixes: Vec<&str> = placed.iter().map(|p| p.prefix.as_str()).collect();
        assert_eq!(prefixes, ["", "a", "b", "a/x"]);
    }

    #[test]
    fn a_tree_too_deep_is_refused_before_its_next_level() {
        let (mut cid, mut f) = flist("bottom", &[]);
        let mut all = BTreeMap::new();
        for i in 0..=MAX_FLIST_DEPTH + 1 {
            all.insert(cid, f);
            (cid, f) = flist(&format!("l{i}"), &[("c", cid)]);
        }
        all.insert(cid, f);
        let mut asked = 0;
        let err = Walk::read::<WalkError>(cid, |c| {
            asked += 1;
            Ok(all[c].clone())
        })
        .unwrap_err();
        assert_eq!(err, WalkError::TooDeep { root: cid });
        assert_eq!(
            asked,
            MAX_FLIST_DEPTH + 1,
            "the level too deep is never read"
        );
    }

    #[test]
    fn too_many_placements_are_refused_before_they_are_fetched() {
        let (leaf, leaf_f) = flist("leaf", &[]);
        let names: Vec<String> = (0..200).map(|i| format!("c{i}")).collect();
        let kids: Vec<(&str, Cid)> = names.iter().map(|n| (n.as_str(), leaf)).collect();
        let (mid, mid_f) = flist("mid", &kids);
        let many: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        let mids: Vec<(&str, Cid)> = many.iter().map(|n| (n.as_str(), mid)).collect();
        let (root, root_f) = flist("root", &mids);
        let all = store(&[(leaf, leaf_f), (mid, mid_f), (root, root_f)]);
        let mut asked = Vec::new();
        let err = Walk::read::<WalkError>(root, |c| {
            asked.push(*c);
            Ok(all[c].clone())
        })
        .unwrap_err();
        assert_eq!(err, WalkError::TooMany { root });
        assert!(
            !asked.contains(&leaf),
            "20,000 leaves are refused before any is read"
        );
    }

    #[test]
    fn unwanted_flists_are_ignored() {
        let (a, a_f) = flist("a", &[]);
        let (root, _) = flist("root", &[("a", a)]);
        let mut walk = Walk::new(root);
        assert!(!walk.add(a, a_f));
        assert!(walk.wanted().contains(&root));
        assert!(matches!(
            child_path(&root, "", ".."),
            Err(WalkError::BadChildName { .. })
        ));
        assert_eq!(child_path(&root, "a", "b").unwrap(), "a/b");
    }
}
