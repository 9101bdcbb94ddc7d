//! The hot path of a JSON-mode HTTP invocation: the host's body decoded in one pass straight into
//! [`HttpTriggerData`], without a `Value` tree and without scanning the envelope once per level.
//!
//! Each level (`{Data, Metadata}`, `Data`, the trigger object) is read as a map whose members are
//! matched by name while the parser walks them: an exact key is decoded on the spot (a later
//! duplicate replaces it, as in a JSON map), a key equal but for case is kept as raw text and
//! decoded only when no exact key turns up (the host's deserializer ignores case), and anything
//! else is skipped without building anything. Values are read as leniently as `raw` reads them:
//! the tests compare both with the `Value`-based reader on every shape they know.

use std::fmt;

use serde::Deserializer as _;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::raw::{self, Text};
use super::request::{HttpTriggerData, PayloadError};

/// Decodes the HTTP trigger input `binding` of a JSON-mode invocation body.
pub fn http_trigger(body: &[u8], binding: &str) -> Result<HttpTriggerData, PayloadError> {
    let text = std::str::from_utf8(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let found = (&mut deserializer)
        .deserialize_any(TopVisitor { binding })
        .and_then(|found| deserializer.end().map(|()| found));
    match found {
        Ok(Top::NotAnObject) => Err(PayloadError::NotAnObject),
        Ok(Top::Object(trigger)) => trigger,
        Err(error) => Err(PayloadError::NotJson(error.to_string())),
    }
}

type Outcome = Result<HttpTriggerData, PayloadError>;

enum Top {
    NotAnObject,
    Object(Outcome),
}

/// One member looked up by name while a map is read: the value of the last exact key, else the
/// raw text of the case-insensitive matches (decoded afterwards, the smallest key winning).
struct Lookup<'de, T> {
    exact: Option<T>,
    loose: Option<(String, &'de RawValue)>,
}

impl<'de, T> Lookup<'de, T> {
    fn new() -> Self {
        Self {
            exact: None,
            loose: None,
        }
    }

    /// Whether `key` is this member's name but for case; remembers the candidate if so.
    fn offer_loose(&mut self, key: &str, name: &str, value: &'de RawValue) -> bool {
        if !key.eq_ignore_ascii_case(name) {
            return false;
        }
        if self
            .loose
            .as_ref()
            .is_none_or(|(best, _)| key <= best.as_str())
        {
            self.loose = Some((key.to_owned(), value));
        }
        true
    }

    /// The exact value, else the loose candidate decoded with `seed`.
    fn resolve<S>(self, seed: S) -> Option<T>
    where
        S: for<'a> DeserializeSeed<'a, Value = T>,
    {
        self.exact.or_else(|| {
            let (_, raw) = self.loose?;
            let mut deserializer = serde_json::Deserializer::from_str(raw.get());
            seed.deserialize(&mut deserializer).ok()
        })
    }
}

/// Reads a map's members one by one: `on_key` decodes the member when it wants it and returns
/// whether it did; otherwise the value is skipped (or kept raw for a case-insensitive match).
fn each_member<'de, A: MapAccess<'de>>(
    mut map: A,
    mut on_key: impl FnMut(&str, &mut A) -> Result<bool, A::Error>,
) -> Result<(), A::Error> {
    while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
        if !on_key(&key, &mut map)? {
            map.next_value::<IgnoredAny>()?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ {Data, Metadata}

struct TopVisitor<'b> {
    binding: &'b str,
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the invocation object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut data: Lookup<'de, Outcome> = Lookup::new();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            if key == "Data" {
                data.exact = Some(map.next_value_seed(DataSeed {
                    binding: self.binding,
                })?);
            } else if key.eq_ignore_ascii_case("Data") {
                let value = map.next_value::<&'de RawValue>()?;
                data.offer_loose(&key, "Data", value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        let binding = self.binding;
        let outcome = data
            .resolve(DataSeed { binding })
            .unwrap_or_else(|| Err(missing(binding)));
        Ok(Top::Object(outcome))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::NotAnObject)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top, E> {
        Ok(Top::NotAnObject)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top, E> {
        Ok(Top::NotAnObject)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top, E> {
        Ok(Top::NotAnObject)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top, E> {
        Ok(Top::NotAnObject)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top, E> {
        Ok(Top::NotAnObject)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top::NotAnObject)
    }
}

fn missing(binding: &str) -> PayloadError {
    PayloadError::MissingInput {
        binding: binding.to_owned(),
    }
}

fn not_an_object(binding: &str) -> PayloadError {
    PayloadError::InputNotAnObject {
        binding: binding.to_owned(),
    }
}

// ------------------------------------------------------------------ Data

/// `Data`: an object, or a string holding one; anything else has no inputs.
#[derive(Clone, Copy)]
struct DataSeed<'b> {
    binding: &'b str,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Outcome;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Outcome, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = Outcome;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Data object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Outcome, A::Error> {
        let binding = self.binding;
        let mut input: Lookup<'de, Outcome> = Lookup::new();
        each_member(map, |key, map| {
            if key == binding {
                input.exact = Some(map.next_value_seed(InputSeed { binding })?);
                Ok(true)
            } else if key.eq_ignore_ascii_case(binding) {
                let value = map.next_value::<&'de RawValue>()?;
                input.offer_loose(key, binding, value);
                Ok(true)
            } else {
                Ok(false)
            }
        })?;
        Ok(input
            .resolve(InputSeed { binding })
            .unwrap_or_else(|| Err(missing(binding))))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Outcome, E> {
        // The pre-2020 form: the object's JSON inside a string.
        if !starts_with(text, b'{') {
            return Ok(Err(missing(self.binding)));
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let parsed = self
            .deserialize(&mut deserializer)
            .and_then(|outcome| deserializer.end().map(|()| outcome));
        Ok(parsed.unwrap_or_else(|_| Err(missing(self.binding))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Outcome, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(missing(self.binding)))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Outcome, E> {
        Ok(Err(missing(self.binding)))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Outcome, E> {
        Ok(Err(missing(self.binding)))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Outcome, E> {
        Ok(Err(missing(self.binding)))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Outcome, E> {
        Ok(Err(missing(self.binding)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Outcome, E> {
        Ok(Err(missing(self.binding)))
    }
}

// ------------------------------------------------------------------ the trigger input

/// The trigger input: an object, or a string holding a non-empty object (or exactly `{}`).
#[derive(Clone, Copy)]
struct InputSeed<'b> {
    binding: &'b str,
}

impl<'de> DeserializeSeed<'de> for InputSeed<'_> {
    type Value = Outcome;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Outcome, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for InputSeed<'_> {
    type Value = Outcome;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the trigger input")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Outcome, A::Error> {
        Ok(Ok(TriggerVisitor.visit_map(map)?))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Outcome, E> {
        let an_object = raw::Members::parse(text).is_some_and(|members| members.len() > 0);
        if !an_object && text != "{}" {
            return Ok(Err(not_an_object(self.binding)));
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        Ok((&mut deserializer)
            .deserialize_map(TriggerVisitor)
            .map_err(|_| not_an_object(self.binding)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Outcome, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(not_an_object(self.binding)))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Outcome, E> {
        Ok(Err(not_an_object(self.binding)))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Outcome, E> {
        Ok(Err(not_an_object(self.binding)))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Outcome, E> {
        Ok(Err(not_an_object(self.binding)))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Outcome, E> {
        Ok(Err(not_an_object(self.binding)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Outcome, E> {
        Ok(Err(not_an_object(self.binding)))
    }
}

/// The trigger object's members, each decoded as `raw` decodes it.
struct TriggerVisitor;

impl<'de> Visitor<'de> for TriggerVisitor {
    type Value = HttpTriggerData;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the HTTP trigger object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HttpTriggerData, A::Error> {
        let mut url: Lookup<'de, String> = Lookup::new();
        let mut method: Lookup<'de, String> = Lookup::new();
        let mut query: Lookup<'de, Members<String>> = Lookup::new();
        let mut headers: Lookup<'de, Members<Vec<String>>> = Lookup::new();
        let mut params: Lookup<'de, Members<Option<String>>> = Lookup::new();
        let mut identities: Lookup<'de, Vec<String>> = Lookup::new();
        let mut body: Lookup<'de, Option<String>> = Lookup::new();
        each_member(map, |key, map| {
            match key {
                "Url" => url.exact = Some(map.next_value_seed(TextSeed)?),
                "Method" => method.exact = Some(map.next_value_seed(TextSeed)?),
                "Query" => query.exact = Some(map.next_value_seed(MapSeed(TextSeed))?),
                "Headers" => headers.exact = Some(map.next_value_seed(MapSeed(HeaderSeed))?),
                "Params" => params.exact = Some(map.next_value_seed(MapSeed(OptionalSeed))?),
                "Identities" => identities.exact = Some(map.next_value_seed(ItemsSeed)?),
                "Body" => body.exact = Some(map.next_value_seed(BodySeed)?),
                _ => {
                    let names = [
                        "Url",
                        "Method",
                        "Query",
                        "Headers",
                        "Params",
                        "Identities",
                        "Body",
                    ];
                    if !names.iter().any(|name| key.eq_ignore_ascii_case(name)) {
                        return Ok(false);
                    }
                    let value = map.next_value::<&'de RawValue>()?;
                    let _ = url.offer_loose(key, "Url", value)
                        || method.offer_loose(key, "Method", value)
                        || query.offer_loose(key, "Query", value)
                        || headers.offer_loose(key, "Headers", value)
                        || params.offer_loose(key, "Params", value)
                        || identities.offer_loose(key, "Identities", value)
                        || body.offer_loose(key, "Body", value);
                }
            }
            Ok(true)
        })?;
        Ok(HttpTriggerData {
            url: url.resolve(TextSeed).unwrap_or_default(),
            method: method
                .resolve(TextSeed)
                .unwrap_or_default()
                .to_ascii_uppercase(),
            query: query
                .resolve(MapSeed(TextSeed))
                .unwrap_or_default()
                .into_iter()
                .collect(),
            headers: headers.resolve(MapSeed(HeaderSeed)).unwrap_or_default(),
            params: params
                .resolve(MapSeed(OptionalSeed))
                .unwrap_or_default()
                .into_iter()
                .collect(),
            identities: identities.resolve(ItemsSeed).unwrap_or_default(),
            body: body.resolve(BodySeed).flatten(),
        })
    }
}

// ------------------------------------------------------------------ values

/// A value as text (`raw::as_text`): a string without quotes, once more decoded when it holds a
/// JSON string; null as empty; anything else as its compact JSON.
#[derive(Clone, Copy)]
struct TextSeed;

/// A value as text, keeping null apart (route parameters: null is an unmatched optional).
#[derive(Clone, Copy)]
struct OptionalSeed;

/// A header's values: an array's items as text, null as none, anything else as one value.
#[derive(Clone, Copy)]
struct HeaderSeed;

/// The body: a string as it is, null as none, anything else as its compact JSON.
#[derive(Clone, Copy)]
struct BodySeed;

/// An array's items as raw JSON, or those of a string holding an array; else none.
#[derive(Clone, Copy)]
struct ItemsSeed;

/// An object of `S` values, or a string holding one; anything else is empty. A key given twice
/// keeps its last value; keys come out in byte order.
#[derive(Clone, Copy)]
struct MapSeed<S>(S);

/// An object's members in byte order of their keys, each key once.
type Members<T> = Vec<(String, T)>;

/// `members` as read, put in byte order of their keys, a key given twice keeping its last value
/// (a map's rule), without building a map: the host sends a handful of members.
fn in_key_order<T>(mut members: Members<T>) -> Members<T> {
    // Stable, so the members of one key stay in the order given.
    members.sort_by(|(a, _), (b, _)| a.cmp(b));
    members.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
    members
}

/// What a value was, before a seed turns it into its final form.
enum Scalar {
    Null,
    Str(String),
    /// A number, boolean, object or array, as `Value`.
    Other(Value),
}

/// Reads any value as a [`Scalar`], strings without a copy when they have no escapes.
struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Scalar, E> {
        Ok(Scalar::Str(unwrap_encoded(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(unwrap_encoded(text)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other(Value::from(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Other(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Other(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Other(Value::from(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Scalar::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Scalar::Other)
    }
}

/// The host's double encoding of strings: a string that is a JSON string yields its contents.
fn unwrap_encoded(text: &str) -> String {
    if starts_with(text, b'"')
        && let Ok(inner) = serde_json::from_str::<String>(text)
    {
        return inner;
    }
    text.to_owned()
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Self::Null => String::new(),
            Self::Str(text) => text,
            Self::Other(value) => value.to_string(),
        }
    }
}

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        Ok(deserializer.deserialize_any(ScalarVisitor)?.into_text())
    }
}

impl<'de> DeserializeSeed<'de> for OptionalSeed {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        Ok(match d.deserialize_any(ScalarVisitor)? {
            Scalar::Null => None,
            other => Some(other.into_text()),
        })
    }
}

impl<'de> DeserializeSeed<'de> for HeaderSeed {
    type Value = Vec<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(HeaderSeed)
    }
}

impl<'de> Visitor<'de> for HeaderSeed {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header's values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(1));
        while let Some(value) = seq.next_element_seed(TextSeed)? {
            values.push(value);
        }
        Ok(values)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Vec<String>, E> {
        Ok(vec![unwrap_encoded(text)])
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<String>, E> {
        Ok(vec![unwrap_encoded(text)])
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Vec<String>, E> {
        Ok(vec![Value::from(v).to_string()])
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<String>, E> {
        Ok(vec![Value::from(v).to_string()])
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<String>, E> {
        Ok(vec![Value::from(v).to_string()])
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Vec<String>, E> {
        Ok(vec![Value::from(v).to_string()])
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<String>, A::Error> {
        Ok(vec![ScalarVisitor.visit_map(map)?.into_text()])
    }
}

impl<'de> DeserializeSeed<'de> for BodySeed {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(BodySeed)
    }
}

impl<'de> Visitor<'de> for BodySeed {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the body")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Option<String>, E> {
        Ok(Some(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Option<String>, E> {
        Ok(Some(text))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<String>, E> {
        Ok(Some(Value::from(v).to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
        Ok(Some(Value::from(v).to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
        Ok(Some(Value::from(v).to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<String>, E> {
        Ok(Some(Value::from(v).to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<String>, A::Error> {
        Ok(Some(ScalarVisitor.visit_map(map)?.into_text()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<String>, A::Error> {
        Ok(Some(ScalarVisitor.visit_seq(seq)?.into_text()))
    }
}

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Vec<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(ItemsSeed)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item.get().to_owned());
        }
        Ok(items)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<String>, E> {
        // The pre-2020 form: the array's JSON inside a string.
        if !starts_with(text, b'[') {
            return Ok(Vec::new());
        }
        Ok(serde_json::from_str::<Vec<&RawValue>>(text)
            .map(|items| {
                items
                    .into_iter()
                    .map(|item| item.get().to_owned())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Vec::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }
}

/// A seed whose result does not borrow from the input, so one seed reads borrowed and owned text.
trait Seed: Copy {
    type Out;
}

impl Seed for TextSeed {
    type Out = String;
}

impl Seed for OptionalSeed {
    type Out = Option<String>;
}

impl Seed for HeaderSeed {
    type Out = Vec<String>;
}

impl<'de, S> DeserializeSeed<'de> for MapSeed<S>
where
    S: Seed + for<'a> DeserializeSeed<'a, Value = S::Out>,
{
    type Value = Members<S::Out>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S> Visitor<'de> for MapSeed<S>
where
    S: Seed + for<'a> DeserializeSeed<'a, Value = S::Out>,
{
    type Value = Members<S::Out>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let value = map.next_value_seed(self.0)?;
            if members.is_empty() {
                // One allocation for a typical request's headers; none for an empty object.
                members.reserve(map.size_hint().unwrap_or(8));
            }
            members.push((key.into_owned(), value));
        }
        Ok(in_key_order(members))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        // The pre-2020 form: the object's JSON inside a string.
        if !starts_with(text, b'{') {
            return Ok(Vec::new());
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let parsed = (&mut deserializer)
            .deserialize_map(self)
            .and_then(|map| deserializer.end().map(|()| map));
        Ok(parsed.unwrap_or_default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Vec::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
}

fn starts_with(text: &str, byte: u8) -> bool {
    text.trim_start_matches([' ', '\n', '\t', '\r'])
        .as_bytes()
        .first()
        == Some(&byte)
}
