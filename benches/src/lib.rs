//! Shared pieces of the measuring tools `scripts/bench` drives: latency summaries and a tiny
//! command-line reader. The tools themselves are the binaries in `src/bin/`:
//!
//! * `loadgen`: N keep-alive HTTP/1.1 connections, a fixed duration or request count, a latency
//!   summary as one JSON line.
//! * `hyper-hello`: a bare hyper server answering every request with a short text, the floor an
//!   HTTP handler in Rust cannot beat.
//! * `coldstart`: starts a server process again and again and times exec → first `200` to `GET /`.

use std::time::Duration;

/// Latency samples in microseconds, summarized into the figures the report shows.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    samples: Vec<u64>,
}

impl Latencies {
    /// An empty set with room for `capacity` samples.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            samples: Vec::with_capacity(capacity),
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, elapsed: Duration) {
        self.samples
            .push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    /// Moves every sample of `other` into this set.
    pub fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples, sorted, for percentiles and for callers that want them all.
    pub fn sorted(&self) -> Vec<u64> {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        sorted
    }
}

/// The `q`-quantile (0.0 ..= 1.0) of sorted samples, nearest-rank; 0 when there are none.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Command-line flags as `--name value` pairs (a flag may repeat), plus what follows `--`.
#[derive(Debug, Default)]
pub struct Flags {
    pairs: Vec<(String, String)>,
    /// The words after `--`, untouched.
    pub rest: Vec<String>,
}

impl Flags {
    /// Reads `args` (without the program name). Every flag takes a value.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut flags = Flags::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--" {
                flags.rest = args.collect();
                break;
            }
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument '{arg}'"));
            };
            let value = args
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            flags.pairs.push((name.to_owned(), value));
        }
        Ok(flags)
    }

    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value given for `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `name` parsed as a number, or `default` when absent.
    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("--{name} '{text}' is not a number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&sorted, 0.5), 50);
        assert_eq!(quantile(&sorted, 0.99), 99);
        assert_eq!(quantile(&sorted, 1.0), 100);
        assert_eq!(quantile(&sorted, 0.0), 1);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn flags_repeat_and_stop_at_the_double_dash() {
        let args = [
            "--header", "a: 1", "--header", "b: 2", "--n", "3", "--", "x", "--y",
        ];
        let flags = Flags::parse(args.iter().map(|s| s.to_string())).unwrap();
        assert_eq!(flags.all("header"), ["a: 1", "b: 2"]);
        assert_eq!(flags.number("n", 0u32).unwrap(), 3);
        assert_eq!(flags.number("missing", 7u32).unwrap(), 7);
        assert_eq!(flags.rest, ["x", "--y"]);
        assert!(Flags::parse(["--n".to_string()]).is_err());
        assert!(Flags::parse(["stray".to_string()]).is_err());
    }

    #[test]
    fn latencies_merge_and_sort() {
        let mut a = Latencies::with_capacity(2);
        a.record(Duration::from_micros(30));
        let mut b = Latencies::default();
        b.record(Duration::from_micros(10));
        a.merge(b);
        assert_eq!(a.sorted(), [10, 30]);
        assert_eq!(a.len(), 2);
    }
}
