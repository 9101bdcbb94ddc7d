//! HTTP route templates (`secrets/{name}`, `items/{id:int?}`, `files/{*rest}`) and matching.
//!
//! ASP.NET Core routing, as the Functions host uses it: literal segments match without regard to
//! case, `{name}` takes one segment, `{name?}` may be absent (then its value is `null`),
//! `{*rest}` takes the remainder of the path, and `{name:constraint}` checks a few common
//! constraints (`int`, `long`, `bool`, `guid`, `alpha`, `double`, `decimal`, `float`); unknown
//! constraints are accepted and ignored.
//!
//! Route values are decoded the way the real host's server (Kestrel) decodes the request path
//! before routing sees it: every `%XX` escape except `%2F`, which stays as it came because decoding
//! it would change the path's segments (see "HttpRequest.Path" in the ASP.NET Core API reference,
//! https://learn.microsoft.com/dotnet/api/microsoft.aspnetcore.http.httprequest.path). So
//! `secrets/a%2Fb` gives `name = "a%2Fb"`, in a `{name}` and in a `{*rest}` alike.

use serde_json::{Map, Value};

/// One parsed segment of a route template.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// Text that must match the path segment, case-insensitively.
    Literal(String),
    /// A `{name[:constraint][?]}` parameter taking one segment.
    Param {
        name: String,
        constraints: Vec<String>,
        optional: bool,
        default: Option<String>,
    },
    /// A `{*name}` catch-all taking the rest of the path.
    CatchAll { name: String },
}

/// A parsed route template, ready to match request paths (without the route prefix).
#[derive(Debug, Clone)]
pub struct RouteTemplate {
    segments: Vec<Segment>,
}

impl RouteTemplate {
    /// Parses a template such as `items/{id:int?}`; fails with a readable reason for templates
    /// the emulator cannot represent (a segment mixing text and a parameter, unbalanced braces).
    pub fn parse(template: &str) -> Result<Self, String> {
        let trimmed = template.trim_matches('/');
        let mut segments = Vec::new();
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        for (index, part) in parts.iter().enumerate() {
            let segment = parse_segment(part)?;
            if matches!(segment, Segment::CatchAll { .. }) && index + 1 != parts.len() {
                return Err(format!(
                    "catch-all parameter must be the last segment in '{template}'"
                ));
            }
            segments.push(segment);
        }
        Ok(Self { segments })
    }

    /// Names of the template's parameters, in order.
    pub fn param_names(&self) -> Vec<String> {
        self.segments
            .iter()
            .filter_map(|segment| match segment {
                Segment::Param { name, .. } | Segment::CatchAll { name } => Some(name.clone()),
                Segment::Literal(_) => None,
            })
            .collect()
    }

    /// How specific the template is, for ordering candidates: more literal segments first,
    /// catch-alls last.
    pub fn specificity(&self) -> (usize, usize, bool) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let has_catch_all = self
            .segments
            .iter()
            .any(|s| matches!(s, Segment::CatchAll { .. }));
        (literals, self.segments.len(), !has_catch_all)
    }

    /// Matches a path (already stripped of the route prefix, without the query) and returns
    /// the route values: each parameter's decoded value, or `null` for an unmatched optional.
    pub fn match_path(&self, path: &str) -> Option<Map<String, Value>> {
        let trimmed = path.trim_matches('/');
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        let mut values = Map::new();
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(text) => {
                    let part = parts.get(index)?;
                    if !decode_except_slash(part).eq_ignore_ascii_case(text) {
                        return None;
                    }
                }
                Segment::Param {
                    name,
                    constraints,
                    optional,
                    default,
                } => match parts.get(index) {
                    Some(part) => {
                        let value = decode_except_slash(part);
                        if !constraints.iter().all(|c| satisfies(c, &value)) {
                            return None;
                        }
                        values.insert(name.clone(), Value::String(value));
                    }
                    None if *optional || default.is_some() => {
                        let value = default.clone().map_or(Value::Null, Value::String);
                        values.insert(name.clone(), value);
                    }
                    None => return None,
                },
                Segment::CatchAll { name } => {
                    let rest = parts.get(index..).unwrap_or(&[]).join("/");
                    let value = if rest.is_empty() {
                        Value::Null
                    } else {
                        Value::String(decode_except_slash(&rest))
                    };
                    values.insert(name.clone(), value);
                    return Some(values);
                }
            }
        }
        (parts.len() <= self.segments.len()).then_some(values)
    }
}

/// Parses one `/`-separated piece of a template.
fn parse_segment(part: &str) -> Result<Segment, String> {
    if !part.contains('{') && !part.contains('}') {
        return Ok(Segment::Literal(part.to_string()));
    }
    let inner = part
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .filter(|inner| !inner.contains('{') && !inner.contains('}'))
        .ok_or_else(|| {
            format!(
                "route segment '{part}' mixes text and parameters (not supported by the emulator)"
            )
        })?;
    if let Some(name) = inner.strip_prefix('*') {
        let name = name.trim_start_matches('*');
        let name = name.split([':', '=', '?']).next().unwrap_or_default();
        if name.is_empty() {
            return Err(format!("empty parameter name in '{part}'"));
        }
        return Ok(Segment::CatchAll {
            name: name.to_string(),
        });
    }
    let (body, default) = match inner.split_once('=') {
        Some((body, default)) => (body, Some(default.to_string())),
        None => (inner, None),
    };
    let optional = body.ends_with('?');
    let body = body.trim_end_matches('?');
    let mut pieces = body.split(':');
    let name = pieces.next().unwrap_or_default().trim().to_string();
    if name.is_empty() {
        return Err(format!("empty parameter name in '{part}'"));
    }
    Ok(Segment::Param {
        name,
        constraints: pieces.map(|c| c.to_ascii_lowercase()).collect(),
        optional,
        default,
    })
}

/// Checks one route constraint; constraints the emulator does not know are accepted.
fn satisfies(constraint: &str, value: &str) -> bool {
    let kind = constraint.split('(').next().unwrap_or_default();
    match kind {
        "int" => value.parse::<i32>().is_ok(),
        "long" => value.parse::<i64>().is_ok(),
        "bool" => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
        "double" | "decimal" | "float" => value.parse::<f64>().is_ok(),
        "guid" => uuid::Uuid::parse_str(value).is_ok(),
        "alpha" => !value.is_empty() && value.chars().all(|c| c.is_ascii_alphabetic()),
        _ => true,
    }
}

/// Decodes `%XX` escapes of a path segment (invalid escapes are kept as they are).
pub fn percent_decode(text: &str) -> String {
    decode(text, false)
}

/// Decodes `%XX` escapes except `%2F` (either case), which is kept as it came, as Kestrel does
/// (one pass: `%252F` becomes `%2F`).
pub fn decode_except_slash(text: &str) -> String {
    decode(text, true)
}

fn decode(text: &str, keep_slash: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%'
            && let Some(hex) = text.get(index + 1..index + 3)
            && let Ok(decoded) = u8::from_str_radix(hex, 16)
            && !(keep_slash && decoded == b'/')
        {
            out.push(decoded);
            index += 3;
            continue;
        }
        out.push(byte);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(template: &str, path: &str) -> Option<Map<String, Value>> {
        RouteTemplate::parse(template).unwrap().match_path(path)
    }

    #[test]
    fn literal_routes_match_case_insensitively() {
        assert!(matches("TokenInfo", "tokeninfo").is_some());
        assert!(matches("TokenInfo", "tokeninfo/extra").is_none());
        assert!(matches("a/b", "a").is_none());
    }

    #[test]
    fn parameters_are_captured_and_decoded() {
        let values = matches("secrets/{name}", "Secrets/db%20password").unwrap();
        assert_eq!(values["name"], "db password");
    }

    #[test]
    fn optional_parameter_is_null_when_absent() {
        let values = matches("items/{id:int?}", "items").unwrap();
        assert_eq!(values["id"], Value::Null);
        assert_eq!(matches("items/{id:int?}", "items/7").unwrap()["id"], "7");
        assert!(matches("items/{id:int?}", "items/x").is_none());
    }

    #[test]
    fn catch_all_takes_the_rest() {
        let values = matches("files/{*path}", "files/a/b/c.txt").unwrap();
        assert_eq!(values["path"], "a/b/c.txt");
        assert_eq!(
            matches("files/{*path}", "files").unwrap()["path"],
            Value::Null
        );
    }

    #[test]
    fn unknown_constraints_are_accepted() {
        assert!(matches("x/{v:regex(^a$)}", "x/zzz").is_some());
        assert!(matches("x/{v:guid}", "x/zzz").is_none());
    }

    #[test]
    fn mixed_segments_are_refused() {
        assert!(RouteTemplate::parse("files/{name}.txt").is_err());
        assert!(RouteTemplate::parse("{*rest}/x").is_err());
    }

    #[test]
    fn an_encoded_slash_stays_encoded_in_every_kind_of_parameter() {
        let values = matches("blobs/{container}/{name}", "blobs/demo/a%2Fb").unwrap();
        assert_eq!(values["name"], "a%2Fb");
        let lower = matches("blobs/{container}/{name}", "blobs/demo/..%2f..%2fx").unwrap();
        assert_eq!(lower["name"], "..%2f..%2fx");
        let rest = matches("call/{*path}", "call/a/b%2Fc%20d").unwrap();
        assert_eq!(rest["path"], "a/b%2Fc d");
        let once = matches("x/{v}", "x/%252F").unwrap();
        assert_eq!(once["v"], "%2F", "one pass, as Kestrel decodes");
        assert!(
            matches("a/b", "a%2Fb").is_none(),
            "an encoded slash never splits a segment"
        );
        assert_eq!(
            percent_decode("a%2Fb"),
            "a/b",
            "the plain decoder still decodes it"
        );
    }

    #[test]
    fn percent_decode_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41%zz"), "A%zz");
    }
}
