//! The generators: a fast PRNG and structure-aware mutations of valid seeds.
//!
//! Random bytes rarely get past a parser's first check, so every input starts from a valid seed
//! and is changed the way real damage looks: truncated, bits flipped, pieces spliced from another
//! seed, characters that change length when lower-cased, numbers past every integer type, deep
//! nesting, a JSON value encoded again as a string (the host does that to scalars). JSON seeds are
//! first changed as a tree (a node replaced, wrapped, deleted, renamed), then sometimes as bytes.

use serde_json::{Map, Value};

/// SplitMix64: fast, good enough for test generation, reproducible from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// How a target's input is shaped, which decides the mutations that suit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// UTF-8 text (names, headers, paths, schedules): text and byte mutations.
    Text,
    /// A JSON document: tree mutations, then sometimes byte mutations.
    Json,
}

/// Tokens that tend to matter to the parsers here, inserted whole.
const COMMON_TOKENS: &[&str] = &[
    "%",
    "%2",
    "%2e",
    "%2E",
    "%2f",
    "%2F",
    "%5c",
    "%00",
    "%25",
    "%%",
    "..",
    ".",
    "/",
    "//",
    "\\",
    "?",
    "#",
    "&",
    "=",
    "*",
    "{",
    "}",
    "{*",
    "?}",
    ":",
    "::",
    ",",
    ";",
    " ",
    "\t",
    "\r\n",
    "\n",
    "\0",
    "-",
    "+",
    "'",
    "\"",
    "0",
    "-1",
    "9",
    "99999999999999999999",
    "18446744073709551616",
    "-9223372036854775809",
    "1e400",
    "1e-400",
    "NaN",
    "inf",
    "1.5",
    "0x10",
    "AM",
    "PM",
    "Z",
    "+00:00",
    "-25:00",
    "+14:00",
    "T",
    "GMT",
    "Mon",
    "Feb",
    "29",
    "31",
    "24",
    "60",
    "9999",
    "0000",
    "İ",
    "ß",
    "ﬁ",
    "K",
    "Ω",
    "\u{202e}",
    "\u{feff}",
    "\u{200b}",
    "é",
    "e\u{301}",
    "日本",
    "😀",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "\u{fffd}",
    "a",
    "Bearer",
    "bearer ",
    "=",
    "==",
    "_",
    "base64",
    "charset=",
    "; charset=utf-8",
    "text/plain",
    "*/*",
    "$",
    "%TOKEN_REFRESH_SCHEDULE%",
];

/// Strings a JSON node may be replaced with.
const STRING_VALUES: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "1700000000",
    "99999999999999999999",
    "1e400",
    "true",
    "null",
    "{}",
    "[]",
    "{\"a\":",
    "\"",
    "\\",
    "\u{0}",
    "İİİİ",
    "😀",
    "\u{202e}x",
    "12/31/9999 11:59:59 PM +00:00",
    "0001-01-01T00:00:00+00:00",
    "2026-02-30T25:61:61Z",
    "Wed, 21 Oct 2015 07:28:00 GMT",
];

/// One generated input from `seeds` (each valid for the target).
pub fn generate(rng: &mut Rng, shape: Shape, seeds: &[Vec<u8>], dictionary: &[&str]) -> Vec<u8> {
    let seed = rng.pick(seeds);
    match shape {
        Shape::Json => {
            let mut out = match serde_json::from_slice::<Value>(seed) {
                Ok(mut value) if !rng.one_in(8) => {
                    for _ in 0..=rng.below(4) {
                        mutate_tree(rng, &mut value, seeds, dictionary, 0);
                    }
                    serde_json::to_vec(&value).unwrap_or_else(|_| seed.clone())
                }
                _ => seed.clone(),
            };
            if rng.one_in(3) {
                let rounds = 1 + rng.below(3);
                mutate_bytes(rng, &mut out, seeds, dictionary, rounds);
            }
            out
        }
        Shape::Text => {
            let mut out = seed.clone();
            let rounds = 1 + rng.below(4);
            mutate_bytes(rng, &mut out, seeds, dictionary, rounds);
            out
        }
    }
}

/// Byte- and token-level damage, `rounds` times.
pub fn mutate_bytes(
    rng: &mut Rng,
    data: &mut Vec<u8>,
    seeds: &[Vec<u8>],
    dictionary: &[&str],
    rounds: usize,
) {
    for _ in 0..rounds {
        let at = if data.is_empty() {
            0
        } else {
            rng.below(data.len() + 1)
        };
        match rng.below(12) {
            0 => data.truncate(at),
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            2 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next_u64() as u8;
            }
            3 | 4 => {
                let token = if !dictionary.is_empty() && rng.one_in(2) {
                    *rng.pick(dictionary)
                } else {
                    *rng.pick(COMMON_TOKENS)
                };
                insert(data, at, token.as_bytes());
            }
            5 if !data.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                let start = at.min(end);
                data.drain(start..end);
            }
            6 if !data.is_empty() => {
                // Repeat a piece: long runs of separators, huge segment counts.
                let start = rng.below(data.len());
                let end = (start + 1 + rng.below(8)).min(data.len());
                let piece = data[start..end].to_vec();
                let times = if rng.one_in(16) {
                    2000
                } else {
                    1 + rng.below(8)
                };
                for _ in 0..times {
                    insert(data, start, &piece);
                }
            }
            7 => {
                // Splice: our head, another seed's tail.
                let other = rng.pick(seeds);
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            8 => {
                let c = random_char(rng);
                let mut buf = [0u8; 4];
                insert(data, at, c.encode_utf8(&mut buf).as_bytes());
            }
            9 if !data.is_empty() => {
                // Case flip of an ASCII letter.
                let i = rng.below(data.len());
                data[i] = if data[i].is_ascii_lowercase() {
                    data[i].to_ascii_uppercase()
                } else {
                    data[i].to_ascii_lowercase()
                };
            }
            10 => {
                // A long run, past every length limit.
                let len = *rng.pick(&[64usize, 256, 1025, 4096, 70_000]);
                let fill = *rng.pick(&[b'a', b'/', b'%', b'9', b'.', b'-', 0xC3]);
                let run = vec![fill; len];
                insert(data, at, &run);
            }
            _ => {
                let len = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                insert(data, at, &bytes);
            }
        }
    }
}

fn insert(data: &mut Vec<u8>, at: usize, piece: &[u8]) {
    let at = at.min(data.len());
    data.splice(at..at, piece.iter().copied());
}

/// A character from the ranges that trip text code: controls, combining marks, characters whose
/// case mapping changes length, surrogates' neighbours, private use, the last code points.
fn random_char(rng: &mut Rng) -> char {
    let ranges: &[(u32, u32)] = &[
        (0, 0x20),
        (0x20, 0x7f),
        (0x80, 0x100),
        (0x130, 0x131),
        (0x300, 0x370),
        (0x2000, 0x2070),
        (0xd7ff, 0xd800),
        (0xe000, 0xe100),
        (0xfff0, 0x10000),
        (0x1f600, 0x1f650),
        (0x10fff0, 0x110000),
    ];
    let (lo, hi) = *rng.pick(ranges);
    char::from_u32(lo + rng.below((hi - lo) as usize) as u32).unwrap_or('\u{fffd}')
}

/// Changes one node of the tree, chosen by a random walk down from `value`.
fn mutate_tree(
    rng: &mut Rng,
    value: &mut Value,
    seeds: &[Vec<u8>],
    dictionary: &[&str],
    depth: usize,
) {
    let descend = depth < 12 && !rng.one_in(3);
    match value {
        Value::Object(map) if descend && !map.is_empty() => {
            if rng.one_in(6) {
                mutate_keys(rng, map, dictionary);
                return;
            }
            let key = map.keys().nth(rng.below(map.len())).cloned();
            if let Some(child) = key.and_then(|k| map.get_mut(&k)) {
                mutate_tree(rng, child, seeds, dictionary, depth + 1);
            }
        }
        Value::Array(items) if descend && !items.is_empty() => {
            if rng.one_in(6) {
                let i = rng.below(items.len());
                if rng.one_in(2) {
                    items.remove(i);
                } else {
                    let copy = items[i].clone();
                    items.insert(i, copy);
                }
                return;
            }
            let i = rng.below(items.len());
            mutate_tree(rng, &mut items[i], seeds, dictionary, depth + 1);
        }
        _ => replace_node(rng, value, seeds, dictionary),
    }
}

fn mutate_keys(rng: &mut Rng, map: &mut Map<String, Value>, dictionary: &[&str]) {
    let Some(key) = map.keys().nth(rng.below(map.len())).cloned() else {
        return;
    };
    match rng.below(4) {
        0 => {
            map.remove(&key);
        }
        1 => {
            // The same key in another case: the contract is read case-insensitively.
            let renamed = if rng.one_in(2) {
                key.to_ascii_lowercase()
            } else {
                key.to_ascii_uppercase()
            };
            if let Some(v) = map.remove(&key) {
                map.insert(renamed, v);
            }
        }
        2 => {
            let token = if dictionary.is_empty() {
                *rng.pick(COMMON_TOKENS)
            } else {
                *rng.pick(dictionary)
            };
            map.insert(token.to_owned(), Value::String(token.to_owned()));
        }
        _ => {
            if let Some(v) = map.get(&key).cloned() {
                map.insert(format!("{key}{}", rng.pick(COMMON_TOKENS)), v);
            }
        }
    }
}

fn replace_node(rng: &mut Rng, value: &mut Value, seeds: &[Vec<u8>], dictionary: &[&str]) {
    *value = match rng.below(14) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => serde_json::json!(*rng.pick(&[
            0i64,
            -1,
            1,
            i64::MAX,
            i64::MIN,
            253_402_300_800,
            -62_135_596_801,
            4_102_444_800_000
        ])),
        3 => serde_json::json!(u64::MAX),
        4 => serde_json::json!(*rng.pick(&[1e308f64, -1e308, 5e-324, 0.5, -0.0, 1.7e9, 3.9e18])),
        5 => Value::String((*rng.pick(STRING_VALUES)).to_owned()),
        6 => {
            // The host's habit: a value JSON-encoded again as a string.
            Value::String(serde_json::to_string(&*value).unwrap_or_default())
        }
        7 => {
            // Damage the text of a string leaf, or of the value written as text.
            let mut text = match &*value {
                Value::String(s) => s.clone().into_bytes(),
                other => other.to_string().into_bytes(),
            };
            let rounds = 1 + rng.below(3);
            mutate_bytes(rng, &mut text, seeds, dictionary, rounds);
            Value::String(String::from_utf8_lossy(&text).into_owned())
        }
        8 => {
            let mut nested = value.take();
            for _ in 0..(1 + rng.below(40)) {
                nested = if rng.one_in(2) {
                    Value::Array(vec![nested])
                } else {
                    let mut map = Map::new();
                    map.insert("a".into(), nested);
                    Value::Object(map)
                };
            }
            nested
        }
        9 => Value::Array(vec![value.take(); 1 + rng.below(3)]),
        10 => Value::Object(Map::new()),
        11 => Value::Array(Vec::new()),
        12 if !dictionary.is_empty() => Value::String((*rng.pick(dictionary)).to_owned()),
        _ => {
            // A subtree from another seed: valid pieces in the wrong place.
            let other = rng.pick(seeds);
            serde_json::from_slice::<Value>(other)
                .ok()
                .and_then(|v| pick_subtree(rng, &v))
                .unwrap_or(Value::Null)
        }
    };
}

fn pick_subtree(rng: &mut Rng, value: &Value) -> Option<Value> {
    match value {
        Value::Object(map) if !map.is_empty() && !rng.one_in(3) => {
            let child = map.values().nth(rng.below(map.len()))?;
            pick_subtree(rng, child)
        }
        Value::Array(items) if !items.is_empty() && !rng.one_in(3) => {
            let i = rng.below(items.len());
            pick_subtree(rng, &items[i])
        }
        other => Some(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_reproducible_and_changes_its_seeds() {
        let seeds = vec![br#"{"a":[1,"x",{"b":true}]}"#.to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|_| generate(&mut rng, Shape::Json, &seeds, &[]))
                .collect::<Vec<_>>()
        };
        let first = run(7);
        assert_eq!(first, run(7));
        let changed = first.iter().filter(|input| **input != seeds[0]).count();
        assert!(
            changed > 150,
            "only {changed} of 200 inputs differ from the seed"
        );
        let invalid = first
            .iter()
            .filter(|input| serde_json::from_slice::<Value>(input).is_err())
            .count();
        assert!(
            invalid > 10 && invalid < 190,
            "{invalid} of 200 are not JSON"
        );
    }
}
