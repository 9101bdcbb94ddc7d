//! A value's JSON text written directly in the form it takes inside a JSON string.
//!
//! In JSON mode the host reads a function's body back as a string of the answer's envelope
//! (docs/host-contract.md, *The http output and ReturnValue*), so a JSON body would be
//! serialized once and that text escaped again, every `"` becoming `\"`: on a small answer the
//! second pass cost as much as the first. [`EscapedFormatter`] makes it one pass: serde_json's
//! compact serializer drives it as usual, and each piece it writes comes out as the string
//! escaping of that piece. The result is byte for byte `serde_json::to_string(&text)` of the
//! compact JSON text, without its outer quotes (the tests check it).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

/// Writes `value` as compact JSON already escaped as a JSON string's content.
pub fn to_writer<W: Write, T: ?Sized + Serialize>(
    writer: W,
    value: &T,
) -> Result<(), serde_json::Error> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, EscapedFormatter);
    value.serialize(&mut serializer)
}

/// serde_json's compact formatter, with every byte it writes escaped for a JSON string. What
/// needs escaping there is `"`, `\` and control characters: punctuation, numbers and literals
/// have none; a string's own text is cut by serde_json into fragments around each character it
/// escapes, so fragments have none either; only the quotes around a string, its escapes, and raw
/// fragments (a `RawValue`'s text) need work.
pub struct EscapedFormatter;

impl Formatter for EscapedFormatter {
    #[inline]
    fn begin_string<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b"\\\"")
    }

    #[inline]
    fn end_string<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b"\\\"")
    }

    /// The escape, written as it reads inside a string: its `\` doubled.
    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        let escape_char = match char_escape {
            CharEscape::Quote => b'"',
            CharEscape::ReverseSolidus => b'\\',
            CharEscape::Solidus => b'/',
            CharEscape::Backspace => b'b',
            CharEscape::FormFeed => b'f',
            CharEscape::LineFeed => b'n',
            CharEscape::CarriageReturn => b'r',
            CharEscape::Tab => b't',
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                return writer.write_all(&[
                    b'\\',
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xF)],
                ]);
            }
        };
        match escape_char {
            // `\"` and `\\` need their second character escaped too.
            b'"' | b'\\' => writer.write_all(&[b'\\', b'\\', b'\\', escape_char]),
            _ => writer.write_all(&[b'\\', b'\\', escape_char]),
        }
    }

    /// A `RawValue`'s text is JSON as its author wrote it: quotes, backslashes, and possibly
    /// whitespace such as newlines between its tokens. Escaped as any string would be.
    fn write_raw_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let quoted = serde_json::to_vec(fragment).map_err(io::Error::other)?;
        writer.write_all(&quoted[1..quoted.len() - 1])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use serde_json::value::RawValue;

    /// The two-pass result the one pass must equal.
    fn two_pass(value: &impl serde::Serialize) -> String {
        let text = serde_json::to_string(value).unwrap();
        let quoted = serde_json::to_string(&text).unwrap();
        quoted[1..quoted.len() - 1].to_owned()
    }

    fn one_pass(value: &impl serde::Serialize) -> String {
        let mut out = Vec::new();
        super::to_writer(&mut out, value).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_pass_equals_serializing_then_escaping() {
        let controls: String = (0u8..0x20).map(char::from).collect();
        let values = [
            json!(null),
            json!(true),
            json!(-12.5e-7),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(""),
            json!("plain"),
            json!("quote \" backslash \\ slash / tab \t nl \n cr \r bs \u{8} ff \u{c}"),
            json!(controls),
            json!("é ü 日本 \u{7f} \u{2028} 😀"),
            json!({"a": [1, 2, {"b\"": "c\\"}], "": {}, "n": null, "x": [], "k\n": "v\u{1}"}),
            json!([["\"\""], {"\\": "\\\\"}]),
        ];
        for value in &values {
            assert_eq!(one_pass(value), two_pass(value), "{value}");
        }
        let map = BTreeMap::from([(1u32, "one"), (22, "\"two\"")]);
        assert_eq!(one_pass(&map), two_pass(&map));
        assert_eq!(one_pass(&'"'), two_pass(&'"'));
        assert_eq!(one_pass(&f64::NAN), two_pass(&f64::NAN));
        let bytes = serde_bytes_like(&[0, 34, 92, 255]);
        assert_eq!(one_pass(&bytes), two_pass(&bytes));
    }

    #[test]
    fn raw_values_are_escaped_whole() {
        let raw = RawValue::from_string("{ \"a\" :\n\t[1, \"\\\"\"] }".to_owned()).unwrap();
        let value = json!({"raw": 1});
        let nested = (&raw, &value);
        assert_eq!(one_pass(&raw), two_pass(&raw));
        assert_eq!(one_pass(&nested), two_pass(&nested));
    }

    /// A byte slice as serde sees `serialize_bytes` (serde_json writes it as an array).
    fn serde_bytes_like(bytes: &[u8]) -> impl serde::Serialize + '_ {
        struct Bytes<'a>(&'a [u8]);
        impl serde::Serialize for Bytes<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Bytes(bytes)
    }
}
