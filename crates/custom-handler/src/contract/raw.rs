//! A borrowing view of the host's JSON: an object's members with their values still as raw text,
//! decoded only when read. The envelope is ~1 KB of which an invocation reads a handful of
//! strings; building a `serde_json::Value` tree of all of it (a map and a string allocation per
//! key) was most of a JSON-mode invocation's cost.
//!
//! Every reader here gives the same answer the `Value`-based readers in `decode` give for the same
//! JSON (the unit tests below compare them), so decoding stays exactly as lenient.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer as _;
use serde::de::{self, Deserialize, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::decode::decode_scalar;

/// A string that borrows from the input when it has no escapes.
pub(crate) struct Text<'t>(pub(crate) Cow<'t, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// An object's members in document order, values unparsed. Duplicate keys are all kept; lookups
/// resolve them as a `serde_json::Map` would have (the last one wins).
pub(crate) struct Members<'t>(pub(crate) Vec<(Cow<'t, str>, &'t RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor<'de>(PhantomData<&'de ()>);
        impl<'de> Visitor<'de> for MembersVisitor<'de> {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    members.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor(PhantomData))
    }
}

impl<'t> Members<'t> {
    /// The members of `text` when it is a JSON object, else `None`.
    pub(crate) fn parse(text: &'t str) -> Option<Self> {
        if !first_byte_is(text, b'{') {
            return None;
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let members = Members::deserialize(&mut deserializer).ok()?;
        deserializer.end().ok()?;
        Some(members)
    }

    /// An empty object.
    pub(crate) fn empty() -> Self {
        Self(Vec::new())
    }

    /// How many distinct keys there are.
    pub(crate) fn len(&self) -> usize {
        self.distinct().count()
    }

    /// Looks a key up exactly, then without regard to case, as the host's deserializer does. With
    /// several case-insensitive matches the smallest key in byte order wins — the first a sorted
    /// map would have listed.
    pub(crate) fn get(&self, key: &str) -> Option<&'t RawValue> {
        if let Some((_, value)) = self.0.iter().rev().find(|(name, _)| name == key) {
            return Some(value);
        }
        // Smallest matching key; among equal keys the last one given (no allocation: a lookup
        // of an absent member, e.g. a GET's Body, ends here on every invocation).
        let mut best: Option<(&str, &'t RawValue)> = None;
        for (name, value) in &self.0 {
            if name.eq_ignore_ascii_case(key) && best.is_none_or(|(b, _)| name.as_ref() <= b) {
                best = Some((name.as_ref(), *value));
            }
        }
        best.map(|(_, value)| value)
    }

    /// Each key once (its last value), in byte order of the keys: what iterating the
    /// `serde_json::Map` of this object gave.
    pub(crate) fn distinct(&self) -> impl Iterator<Item = (&str, &'t RawValue)> {
        let mut sorted: Vec<(&str, &'t RawValue)> = self
            .0
            .iter()
            .map(|(name, value)| (name.as_ref(), *value))
            .collect();
        // Stable: equal keys keep document order; each run then keeps its first slot with the
        // run's last value.
        sorted.sort_by_key(|(name, _)| *name);
        sorted.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        sorted.into_iter()
    }
}

/// The JSON text of an object member that is an object now and was a JSON string holding the
/// object on hosts from before 2020: the raw text as it is, or the string's decoded contents.
pub(crate) enum ObjectText<'t> {
    /// An object, borrowed.
    Raw(&'t str),
    /// The contents of a string (which may or may not hold an object).
    Decoded(Cow<'t, str>),
    /// Anything else: reads as an empty object.
    Absent,
}

impl<'t> ObjectText<'t> {
    /// Classifies a member's raw value.
    pub(crate) fn of(value: Option<&'t RawValue>) -> Self {
        let Some(value) = value else {
            return Self::Absent;
        };
        let text = value.get();
        if first_byte_is(text, b'{') {
            Self::Raw(text)
        } else if let Some(decoded) = string_of(value) {
            Self::Decoded(decoded)
        } else {
            Self::Absent
        }
    }

    /// The members, or an empty object when there is no object to read.
    pub(crate) fn members(&self) -> Members<'_> {
        match self {
            Self::Raw(text) => Members::parse(text),
            Self::Decoded(text) => Members::parse(text),
            Self::Absent => None,
        }
        .unwrap_or_else(Members::empty)
    }
}

/// The contents of a JSON string value, else `None`.
pub(crate) fn string_of(value: &RawValue) -> Option<Cow<'_, str>> {
    if !first_byte_is(value.get(), b'"') {
        return None;
    }
    serde_json::from_str::<Text<'_>>(value.get())
        .ok()
        .map(|text| text.0)
}

/// Whether a value is JSON `null`.
pub(crate) fn is_null(value: &RawValue) -> bool {
    value.get().trim_matches(JSON_WHITESPACE) == "null"
}

/// The value as plain text, as `decode::as_text` renders it: a string without its quotes (and
/// once more decoded when it holds a JSON string), null as empty, anything else as its JSON.
pub(crate) fn as_text(value: &RawValue) -> String {
    if let Some(text) = string_of(value) {
        return unwrap_encoded_string(text).into_owned();
    }
    if is_null(value) {
        return String::new();
    }
    // Numbers, booleans, objects, arrays: their JSON as serde_json writes it (e.g. `1e2` is
    // `100.0`), the same text the `Value` reader gave. Rare on the hot path.
    serde_json::from_str::<Value>(value.get())
        .map(|parsed| match decode_scalar(&parsed) {
            Value::String(text) => text,
            Value::Null => String::new(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// The host sends string inputs as the JSON text of the string (`"\"x\""`): a string that is
/// itself a JSON string yields its contents; any other string is kept.
fn unwrap_encoded_string(text: Cow<'_, str>) -> Cow<'_, str> {
    if !first_byte_is(&text, b'"') {
        return text;
    }
    match serde_json::from_str::<String>(&text) {
        Ok(inner) => Cow::Owned(inner),
        Err(_) => text,
    }
}

/// The items of a JSON array value, else `None`.
pub(crate) fn array_of(value: &RawValue) -> Option<Vec<&RawValue>> {
    if !first_byte_is(value.get(), b'[') {
        return None;
    }
    serde_json::from_str::<Vec<&RawValue>>(value.get()).ok()
}

/// The values of an array, or of a string holding an array's JSON; anything else is empty.
pub(crate) fn array_items(value: Option<&RawValue>) -> Vec<String> {
    let Some(value) = value else {
        return Vec::new();
    };
    let text: Cow<'_, str> = if first_byte_is(value.get(), b'[') {
        Cow::Borrowed(value.get())
    } else if let Some(decoded) = string_of(value) {
        decoded
    } else {
        return Vec::new();
    };
    if !first_byte_is(&text, b'[') {
        return Vec::new();
    }
    serde_json::from_str::<Vec<&RawValue>>(&text)
        .map(|items| {
            items
                .into_iter()
                .map(|item| item.get().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

const JSON_WHITESPACE: &[char] = &[' ', '\n', '\t', '\r'];

/// Whether the first byte after JSON whitespace is `byte`.
fn first_byte_is(text: &str, byte: u8) -> bool {
    text.trim_start_matches(JSON_WHITESPACE).as_bytes().first() == Some(&byte)
}

/// Runs `serde_json`'s deserializer without building anything, to tell "not JSON" from "JSON,
/// but not what was expected".
pub(crate) fn is_json(text: &str) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    deserializer.deserialize_ignored_any(de::IgnoredAny)?;
    deserializer.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::decode;
    use serde_json::json;

    fn raw(value: &Value) -> Box<RawValue> {
        RawValue::from_string(value.to_string()).unwrap()
    }

    #[test]
    fn as_text_agrees_with_the_value_reader() {
        for value in [
            json!("plain"),
            json!("\"HelloWorld\""),
            json!("\"unterminated"),
            json!("4"),
            json!("true"),
            json!(""),
            json!("é\n\"quoted\""),
            json!(null),
            json!(5),
            json!(-1.5),
            json!(1e2),
            json!(true),
            json!({"a": [1, "x"]}),
            json!([1, {"b": null}]),
        ] {
            assert_eq!(as_text(&raw(&value)), decode::as_text(&value), "{value}");
        }
        let spaced = RawValue::from_string(" 1e2 ".into()).unwrap();
        assert_eq!(as_text(&spaced), "100.0");
    }

    #[test]
    fn lookups_resolve_case_and_duplicates_as_a_json_map_does() {
        let text = r#"{"data": 1, "DATA": 2, "Other": 3, "x": 4, "x": 5}"#;
        let members = Members::parse(text).unwrap();
        let map: serde_json::Map<String, Value> = serde_json::from_str(text).unwrap();
        assert_eq!(members.get("x").unwrap().get(), "5");
        assert_eq!(map["x"], json!(5));
        // No exact "Data": the first case-insensitive match in the map's (sorted) order.
        let first = map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Data"))
            .unwrap();
        assert_eq!(members.get("Data").unwrap().get(), first.1.to_string());
        assert_eq!(members.get("data").unwrap().get(), "1");
        assert_eq!(members.len(), map.len());
        let keys: Vec<&str> = members.distinct().map(|(k, _)| k).collect();
        let map_keys: Vec<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(keys, map_keys);
    }

    #[test]
    fn objects_may_arrive_as_strings_holding_their_json() {
        let object = raw(&json!({"a": "1"}));
        let encoded = raw(&json!("{\"a\":\"1\"}"));
        for value in [&object, &encoded] {
            let text = ObjectText::of(Some(value));
            assert_eq!(as_text(text.members().get("a").unwrap()), "1");
        }
        for other in [json!(7), json!("[1]"), json!(null), json!("{bad")] {
            assert_eq!(ObjectText::of(Some(&raw(&other))).members().len(), 0);
        }
        assert_eq!(ObjectText::of(None).members().len(), 0);
    }

    #[test]
    fn arrays_may_arrive_as_strings_holding_their_json() {
        let array = raw(&json!([{"IsAuthenticated": false}, 2]));
        let encoded = raw(&json!("[{\"IsAuthenticated\":false},2]"));
        assert_eq!(array_items(Some(&array)).len(), 2);
        assert_eq!(array_items(Some(&encoded)).len(), 2);
        assert!(array_items(Some(&raw(&json!({})))).is_empty());
        assert!(array_items(Some(&raw(&json!("nope")))).is_empty());
        assert!(array_items(None).is_empty());
    }

    #[test]
    fn strings_borrow_unless_they_hold_escapes() {
        let plain = raw(&json!("abc"));
        assert!(matches!(string_of(&plain), Some(Cow::Borrowed("abc"))));
        let escaped = raw(&json!("a\"b"));
        assert_eq!(string_of(&escaped).as_deref(), Some("a\"b"));
        assert_eq!(string_of(&raw(&json!(1))), None);
    }
}
