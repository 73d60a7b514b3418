//! The machine's CPU during a run, from /proc/stat: how busy it was, and how many core-seconds
//! a stretch of the run took.

use std::fs;
use std::time::{Duration, Instant};

/// Ticks per second of /proc/stat (USER_HZ, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// Busy jiffies of all CPUs, sampled from the start of a run.
#[derive(Debug)]
pub(crate) struct CpuMeter {
    /// (busy, total) jiffies at the start.
    first: Option<(u64, u64)>,
    /// `(time, busy jiffies)`, sorted by time.
    busy: Vec<(Instant, u64)>,
}

impl CpuMeter {
    /// Takes the first sample.
    pub(crate) fn start() -> CpuMeter {
        let first = cpu_times();
        let busy = first.iter().map(|c| (Instant::now(), c.0)).collect();
        CpuMeter { first, busy }
    }

    /// Takes one more sample.
    pub(crate) fn sample(&mut self) {
        if let Some((b, _)) = cpu_times() {
            self.busy.push((Instant::now(), b));
        }
    }

    /// Average share of all CPUs busy (user + system) from the start until now.
    pub(crate) fn busy_share(&self) -> Option<f64> {
        match (self.first, cpu_times()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        }
    }

    /// Busy core-seconds from `from` to `to` seconds after `t0` (`from` `None`: the first
    /// sample), from the samples; `None` outside them.
    pub(crate) fn core_seconds(
        &self,
        t0: Instant,
        from: Option<f64>,
        to: Option<f64>,
    ) -> Option<f64> {
        let at = |s: f64| {
            let d = Duration::try_from_secs_f64(s.max(0.0)).ok()?;
            busy_at(&self.busy, t0.checked_add(d)?)
        };
        let from = match from {
            Some(a) => at(a)?,
            None => self.busy.first()?.1 as f64,
        };
        Some((at(to?)? - from).max(0.0) / USER_HZ)
    }
}

/// Busy jiffies at `at`, interpolated between `(time, busy)` samples sorted by time.
fn busy_at(samples: &[(Instant, u64)], at: Instant) -> Option<f64> {
    let k = samples.partition_point(|s| s.0 <= at);
    let (t0, b0) = *samples.get(k.checked_sub(1)?)?;
    let Some(&(t1, b1)) = samples.get(k) else {
        return (at == t0).then_some(b0 as f64);
    };
    let span = t1.duration_since(t0).as_secs_f64();
    let f = if span > 0.0 {
        at.duration_since(t0).as_secs_f64() / span
    } else {
        1.0
    };
    Some(b0 as f64 + f * b1.saturating_sub(b0) as f64)
}

/// (busy, total) jiffies of all CPUs from /proc/stat.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_jiffies_are_interpolated_between_samples() {
        let t = Instant::now();
        let ms = |m: u64| t + Duration::from_millis(m);
        let samples = [(ms(0), 100), (ms(100), 110), (ms(300), 150)];
        assert_eq!(busy_at(&samples, ms(0)), Some(100.0));
        assert_eq!(busy_at(&samples, ms(50)), Some(105.0));
        assert_eq!(busy_at(&samples, ms(200)), Some(130.0));
        assert_eq!(busy_at(&samples, ms(300)), Some(150.0));
        assert_eq!(busy_at(&samples, ms(301)), None, "after the last sample");
        assert_eq!(
            busy_at(&samples[1..], ms(50)),
            None,
            "before the first sample"
        );
        assert_eq!(busy_at(&[], ms(0)), None);
    }
}
