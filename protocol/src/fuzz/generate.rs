//! Inputs derived from a corpus, and the loop that runs a body over them.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::agent::{Rng, mix64};
use crate::release::to_hex;

/// The longest input [`mutate`] makes.
const MAX_LEN: usize = 64 * 1024;

/// Runs `body` over every entry of `corpus`, then over `generated` inputs made by [`mutate`]
/// from a generator seeded with `name`, so every run sees the same inputs. When the body
/// panics, the input is printed (hex) before the panic goes on.
pub fn exercise(name: &str, corpus: &[Vec<u8>], generated: usize, body: impl Fn(&[u8])) {
    for (i, input) in corpus.iter().enumerate() {
        run(name, &format!("corpus entry {i}"), input, &body);
    }
    let seed = name.bytes().fold(0u64, |h, b| mix64(h ^ u64::from(b)));
    let mut rng = Rng::new(seed);
    for n in 0..generated {
        let input = mutate(&mut rng, corpus);
        run(name, &format!("generated input {n}"), &input, &body);
    }
}

fn run(name: &str, what: &str, input: &[u8], body: &impl Fn(&[u8])) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(input))) {
        eprintln!(
            "fuzz target {name}: {what} broke an invariant; its {} bytes in hex:\n{}",
            input.len(),
            to_hex(input)
        );
        resume_unwind(panic);
    }
}

/// One input: random bytes, or an entry of `corpus` changed a few times (bits flipped, bytes
/// set, bytes inserted, ranges deleted, duplicated or overwritten, spliced with another entry,
/// truncated).
pub fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let pick = |rng: &mut Rng| &corpus[rng.below(corpus.len() as u64) as usize];
    let mut data = if corpus.is_empty() || rng.below(8) == 0 {
        let n = 1 + rng.below(256) as usize;
        random_bytes(rng, n)
    } else {
        pick(rng).clone()
    };
    for _ in 0..1 + rng.below(4) {
        let len = data.len() as u64;
        let at = rng.below(len + 1) as usize;
        let span = (1 + rng.below(16)) as usize;
        match rng.below(8) {
            0 if !data.is_empty() => {
                let i = rng.below(len) as usize;
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(len) as usize;
                const INTERESTING: [u8; 6] = [0, 1, 0x7f, 0x80, 0xfe, 0xff];
                data[i] = if rng.chance(0.5) {
                    INTERESTING[rng.below(6) as usize]
                } else {
                    rng.next_u64() as u8
                };
            }
            2 => {
                let bytes = random_bytes(rng, span);
                data.splice(at..at, bytes);
            }
            3 => {
                data.drain(at..(at + span).min(data.len()));
            }
            4 => {
                let copy = data[at..(at + span).min(data.len())].to_vec();
                let to = rng.below(len + 1) as usize;
                data.splice(to..to, copy);
            }
            5 if !corpus.is_empty() => {
                let other = pick(rng);
                let from = rng.below(other.len() as u64 + 1) as usize;
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            6 if !corpus.is_empty() => {
                let other = pick(rng);
                let from = rng.below(other.len() as u64 + 1) as usize;
                let src = &other[from..(from + span).min(other.len())];
                let end = (at + src.len()).min(data.len());
                data.splice(at..end, src.iter().copied());
            }
            _ => data.truncate(at),
        }
    }
    data.truncate(MAX_LEN);
    data
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_and_varied() {
        let corpus = vec![b"hello world".to_vec(), vec![0; 40]];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|_| mutate(&mut rng, &corpus))
                .collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() > 150, "{}", distinct.len());
        assert!(a.iter().all(|m| m.len() <= MAX_LEN));
        assert!(!run(2).is_empty());
        assert!(Rng::new(3).below(1) == 0 && !mutate(&mut Rng::new(3), &[]).is_empty());
    }

    #[test]
    #[should_panic(expected = "odd")]
    fn a_panicking_body_fails_the_run() {
        exercise("t", &[vec![1]], 10, |d| assert!(d.len() % 2 == 0, "odd"));
    }
}
