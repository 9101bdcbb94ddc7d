//! Lenient decoding of the values the host puts in `Data` and `Metadata`, over `serde_json::Value`
//! (timer inputs, and the oracle the borrowing readers in `raw` are tested against).

#[cfg(test)]
use std::borrow::Cow;

use serde_json::{Map, Value};

/// Undoes the host's double encoding of a scalar.
///
/// The host sends a string input as the JSON text of the string (`"\"HelloWorld\""`) and numbers or
/// booleans as strings holding the literal (`"4"`). A string that holds a JSON string yields that
/// string; any other string is kept as it is; non-strings are returned unchanged.
pub fn decode_scalar(value: &Value) -> Value {
    match value {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::String(inner)) => Value::String(inner),
            _ => value.clone(),
        },
        other => other.clone(),
    }
}

/// Reads a member that is an object on current hosts and was a JSON string before host#6606.
///
/// Anything else (null, a number, a string that is not an object's JSON) gives an empty map, so
/// an odd `Query` or `Identities` never fails an invocation.
pub fn object_or_encoded(value: Option<&Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::String(text)) => parse_object(text),
        _ => Map::new(),
    }
}

/// [`object_or_encoded`] without copying: an object is borrowed as it is, and only the old
/// string form is parsed into a new map. The `raw` readers are checked against it.
#[cfg(test)]
pub(crate) fn object_ref(value: Option<&Value>) -> Cow<'_, Map<String, Value>> {
    match value {
        Some(Value::Object(map)) => Cow::Borrowed(map),
        Some(Value::String(text)) => Cow::Owned(parse_object(text)),
        _ => Cow::Owned(Map::new()),
    }
}

/// [`object_or_encoded`] for a value the caller owns: an object is moved, never copied.
#[cfg(test)]
pub(crate) fn object_owned(value: Option<Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map,
        Some(Value::String(text)) => parse_object(&text),
        _ => Map::new(),
    }
}

fn parse_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Reads a member that is an array now and was the JSON text of an array before host#6606.
/// The `raw` readers are checked against it.
#[cfg(test)]
pub(crate) fn array_or_encoded(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Renders a JSON value as plain text: strings without quotes, others as their JSON.
pub(crate) fn as_text(value: &Value) -> String {
    match decode_scalar(value) {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_twice_encoded_string_is_decoded_once_more() {
        assert_eq!(decode_scalar(&json!("\"HelloWorld\"")), json!("HelloWorld"));
    }

    #[test]
    fn numbers_and_bools_sent_as_literal_strings_stay_text() {
        assert_eq!(decode_scalar(&json!("4")), json!("4"));
        assert_eq!(decode_scalar(&json!("true")), json!("true"));
    }

    #[test]
    fn a_plain_string_that_is_not_json_is_kept() {
        assert_eq!(decode_scalar(&json!("db-password")), json!("db-password"));
    }

    #[test]
    fn query_as_object_or_as_string_reads_the_same() {
        let object = object_or_encoded(Some(&json!({"a": "1"})));
        let string = object_or_encoded(Some(&json!("{\"a\":\"1\"}")));
        assert_eq!(object, string);
        assert_eq!(object["a"], json!("1"));
        assert!(object_or_encoded(Some(&json!("{}"))).is_empty());
        assert!(object_or_encoded(Some(&json!(7))).is_empty());
        assert!(object_or_encoded(None).is_empty());
    }

    #[test]
    fn objects_are_borrowed_or_moved_and_read_like_object_or_encoded() {
        let object = json!({"a": "1"});
        assert!(matches!(object_ref(Some(&object)), Cow::Borrowed(_)));
        let encoded = json!("{\"a\":\"1\"}");
        for value in [&object, &encoded, &json!(7), &json!("[1]")] {
            assert_eq!(
                *object_ref(Some(value)),
                object_or_encoded(Some(value)),
                "{value}"
            );
            assert_eq!(
                object_owned(Some(value.clone())),
                object_or_encoded(Some(value)),
                "{value}"
            );
        }
        assert!(object_ref(None).is_empty());
        assert!(object_owned(None).is_empty());
    }

    #[test]
    fn identities_as_array_or_as_string_read_the_same() {
        let array = array_or_encoded(Some(&json!([{"IsAuthenticated": false}])));
        let string = array_or_encoded(Some(&json!("[{\"IsAuthenticated\":false}]")));
        assert_eq!(array, string);
        assert_eq!(array.len(), 1);
    }
}
