//! Mutations: byte-level ones for binary formats, structured ones for JSON documents.

use serde_json::{Map, Value};

use super::{Field, Rng};

/// The most bytes a mutation grows an input to: decoders are tested on what a store could
/// hold, and larger inputs only slow the run down.
const MAX_INPUT: usize = 1 << 20;

/// Integers that break careless arithmetic, as unsigned 64-bit patterns (each written in
/// the width of the field it goes to).
const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    u32::MAX as u64,
    i64::MAX as u64,
    u64::MAX,
];

/// Applies one byte-level mutation to `input` from offset `from` on (bytes before are
/// fixed); `fields` are header fields to write interesting integers into, `other` another
/// corpus input to splice from.
pub fn bytes(input: &mut Vec<u8>, from: usize, fields: &[Field], other: &[u8], rng: &mut Rng) {
    let len = input.len();
    let span = len.saturating_sub(from);
    match rng.below(10) {
        0 | 1 if span > 0 => {
            let at = from + rng.below(span);
            input[at] ^= 1 << rng.below(8);
        }
        2 if span > 0 => {
            let at = from + rng.below(span);
            input[at] = rng.byte();
        }
        3 | 4 if !fields.is_empty() => interesting_field(input, rng.pick(fields), rng),
        5 => {
            // Truncation, most often by a little.
            let cut = if rng.one_in(2) {
                rng.below(span.min(16) + 1)
            } else {
                rng.below(span + 1)
            };
            input.truncate(len - cut);
        }
        6 if len < MAX_INPUT => {
            // Extension: random bytes, zeros, or a copy of a range already there.
            let most = if rng.one_in(8) { 4096 } else { 32 };
            let n = 1 + rng.below(most);
            match rng.below(3) {
                0 => (0..n).for_each(|_| input.push(rng.byte())),
                1 => input.resize(len + n, 0),
                _ if span > 0 => {
                    let at = from + rng.below(span);
                    let end = (at + n).min(len);
                    input.extend_from_within(at..end);
                }
                _ => {}
            }
        }
        7 if !other.is_empty() => {
            // Splice: our start, the other input's end.
            let at = from + rng.below(span + 1);
            let theirs = rng.below(other.len());
            input.truncate(at);
            input.extend_from_slice(&other[theirs.max(from.min(other.len()))..]);
            input.truncate(MAX_INPUT);
        }
        8 if span > 1 => {
            // Remove or duplicate a short range in the middle.
            let at = from + rng.below(span);
            let n = 1 + rng.below((len - at).min(64));
            if rng.one_in(2) {
                input.drain(at..at + n);
            } else if len + n <= MAX_INPUT {
                let copy = input[at..at + n].to_vec();
                input.splice(at..at, copy);
            }
        }
        _ if span >= 4 => {
            // An interesting integer at a random aligned offset.
            let width = *rng.pick(&[2usize, 4, 8]);
            let at = from + rng.below(span) / width * width;
            if at + width <= len {
                interesting_field(input, &Field { offset: at, width }, rng);
            }
        }
        _ => {}
    }
}

/// Writes an interesting value into `field`: a boundary integer, or the field's own value
/// just above or below (sizes off by one), or doubled.
fn interesting_field(input: &mut [u8], field: &Field, rng: &mut Rng) {
    let Some(bytes) = input.get_mut(field.offset..field.offset + field.width) else {
        return;
    };
    let mut old = [0u8; 8];
    old[..field.width].copy_from_slice(bytes);
    let old = u64::from_le_bytes(old);
    let new = match rng.below(4) {
        0 => old.wrapping_add(1 + rng.below(4) as u64),
        1 => old.wrapping_sub(1 + rng.below(4) as u64),
        2 => old.wrapping_mul(2),
        _ => *rng.pick(&INTERESTING),
    };
    bytes.copy_from_slice(&new.to_le_bytes()[..field.width]);
}

/// Numbers that JSON readers and range checks get wrong.
fn extreme_number(rng: &mut Rng) -> Value {
    match rng.below(14) {
        0 => 0.into(),
        1 => (-1).into(),
        2 => u64::MAX.into(),
        3 => i64::MIN.into(),
        4 => (u32::MAX as u64 + 1).into(),
        5 => ((1u64 << 53) - 1).into(),
        6 => (1u64 << 53).into(),
        7 => f64::MAX.into(),
        8 => (-f64::MAX).into(),
        9 => 5e-324.into(),
        10 => (-0.0).into(),
        11 => 65536.into(),
        12 => (i32::MAX as i64 + 1).into(),
        _ => 1e15.into(),
    }
}

/// Strings that stand for numbers in some fields (nodata), or are hostile in others.
fn odd_string(rng: &mut Rng) -> Value {
    let s: String = match rng.below(8) {
        0 => "nan".into(),
        1 => "inf".into(),
        2 => "-inf".into(),
        3 => "NaN".into(),
        4 => "1e999".into(),
        5 => "\u{1b}[2J\u{7}\u{0}".into(),
        6 => {
            let most = if rng.one_in(16) { 100_000 } else { 100 };
            "x".repeat(1 + rng.below(most))
        }
        _ => String::new(),
    };
    Value::String(s)
}

/// Field names a manifest, snapshot or lock has or may gain, for additions.
const FIELD_NAMES: [&str; 14] = [
    "time",
    "pyramids",
    "extent",
    "parent",
    "restores",
    "checkpoint",
    "root",
    "nodata",
    "tile_size",
    "format_version",
    "pid",
    "process_start",
    "levels",
    "unknown_future_field",
];

/// How many values `v` holds, itself included.
fn count(v: &Value) -> usize {
    1 + match v {
        Value::Object(m) => m.values().map(count).sum(),
        Value::Array(a) => a.iter().map(count).sum(),
        _ => 0,
    }
}

/// The value `*k` places after `v` in depth-first order (`v` itself at 0).
fn nth_value<'a>(v: &'a mut Value, k: &mut usize) -> Option<&'a mut Value> {
    if *k == 0 {
        return Some(v);
    }
    *k -= 1;
    let children: Box<dyn Iterator<Item = &mut Value>> = match v {
        Value::Object(m) => Box::new(m.values_mut()),
        Value::Array(a) => Box::new(a.iter_mut()),
        _ => return None,
    };
    for child in children {
        if let Some(found) = nth_value(child, k) {
            return Some(found);
        }
    }
    None
}

/// A random value of `v` (perhaps `v` itself).
fn random_value<'a>(v: &'a mut Value, rng: &mut Rng) -> Option<&'a mut Value> {
    let mut k = rng.below(count(v));
    nth_value(v, &mut k)
}

/// Applies one structured mutation to the JSON document `input`; false if it is not JSON
/// (the caller then mutates its bytes). `other` is another document to take values from.
pub fn json(input: &mut Vec<u8>, other: &[u8], rng: &mut Rng) -> bool {
    let Ok(mut doc) = serde_json::from_slice::<Value>(input) else {
        return false;
    };
    let Some(target) = random_value(&mut doc, rng) else {
        return false;
    };
    match rng.below(10) {
        0 | 1 => *target = extreme_number(rng),
        2 => *target = odd_string(rng),
        3 => {
            *target = match rng.below(5) {
                0 => Value::Null,
                1 => Value::Bool(rng.one_in(2)),
                2 => Value::Object(Map::new()),
                3 => Value::Array(Vec::new()),
                _ => nested(1 + rng.below(300)),
            }
        }
        4 => match target {
            Value::Object(m) if !m.is_empty() => {
                let k = m
                    .keys()
                    .nth(rng.below(m.len()))
                    .cloned()
                    .unwrap_or_default();
                m.remove(&k);
            }
            Value::Array(a) if !a.is_empty() => {
                a.remove(rng.below(a.len()));
            }
            _ => *target = Value::Null,
        },
        5 => {
            if let Value::Object(m) = target {
                let name = *rng.pick(&FIELD_NAMES);
                m.insert(name.into(), extreme_number(rng));
            }
        }
        6 => match target {
            // A huge array: many copies of one element.
            Value::Array(a) if !a.is_empty() => {
                let e = a[rng.below(a.len())].clone();
                let n = *rng.pick(&[1usize, 2, 16, 100, 1000, 20_000]);
                a.extend(std::iter::repeat_n(e, n));
            }
            _ => *target = Value::Array(vec![extreme_number(rng); rng.below(1000)]),
        },
        7 => {
            // Splice: a value from the other document in place of this one.
            if let Ok(mut theirs) = serde_json::from_slice::<Value>(other) {
                if let Some(v) = random_value(&mut theirs, rng) {
                    *target = v.clone();
                }
            }
        }
        8 => {
            if let Some(n) = target.as_f64() {
                // Near the real value: just above or below, negated, or scaled.
                *target = serde_json::Number::from_f64(match rng.below(4) {
                    0 => n + 1.0,
                    1 => n - 1.0,
                    2 => -n,
                    _ => n * 1e12,
                })
                .map_or(Value::Null, Value::Number);
            } else {
                *target = extreme_number(rng);
            }
        }
        _ => *target = Value::String(target.to_string()),
    }
    match serde_json::to_vec(&doc) {
        Ok(json) if json.len() <= MAX_INPUT => {
            *input = json;
            true
        }
        _ => false,
    }
}

/// Arrays nested `depth` deep: parsers that recurse without a limit overflow their stack.
fn nested(depth: usize) -> Value {
    (0..depth).fold(Value::Null, |v, _| Value::Array(vec![v]))
}
