//! Route templates as function.json writes them (`blobs/{container}/{name}`, `call/{*path}`).

use std::collections::BTreeMap;

/// One part of a route template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matched without regard to case.
    Literal(String),
    /// `{name}`, `{name?}` or `{name:constraint}`.
    Param { name: String, optional: bool },
    /// `{*name}`: the rest of the path, slashes included.
    CatchAll { name: String },
}

/// A parsed route template such as `blobs/{container}/{name}` or `call/{*path}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
    /// How many path segments it can match, at least and at most: a path outside the range is
    /// refused before any segment is compared.
    parts: std::ops::RangeInclusive<usize>,
}

impl RouteTemplate {
    /// Parses a template; constraints (`{id:int}`) are accepted and not enforced.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim_matches('/');
        let mut segments = Vec::new();
        for part in trimmed.split('/').filter(|p| !p.is_empty()) {
            segments.push(parse_segment(part).map_err(|e| format!("route '{text}': {e}"))?);
        }
        let catch_all = segments
            .iter()
            .position(|s| matches!(s, Segment::CatchAll { .. }));
        if catch_all.is_some_and(|at| at + 1 != segments.len()) {
            return Err(format!(
                "route '{text}': a catch-all parameter must come last"
            ));
        }
        let required = segments
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Segment::Literal(_)
                        | Segment::Param {
                            optional: false,
                            ..
                        }
                )
            })
            .count();
        let most = if catch_all.is_some() {
            usize::MAX
        } else {
            segments.len()
        };
        Ok(Self {
            text: trimmed.to_owned(),
            segments,
            parts: required..=most,
        })
    }

    /// The template as written, without surrounding slashes.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Matches a request path (already stripped of the route prefix, percent-decoded per
    /// segment by the caller) and returns the route parameters.
    pub fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        self.matches_segments(&path_segments(path))
    }

    /// [`RouteTemplate::matches`] on a path already split by [`path_segments`], so that one
    /// request tried against every route is split once.
    pub fn matches_segments(&self, parts: &[&str]) -> Option<BTreeMap<String, String>> {
        if !self.parts.contains(&parts.len()) {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut index = 0;
        for segment in &self.segments {
            match segment {
                Segment::Literal(literal) => {
                    let part = parts.get(index)?;
                    if !part.eq_ignore_ascii_case(literal) {
                        return None;
                    }
                    index += 1;
                }
                Segment::Param { name, optional } => match parts.get(index) {
                    Some(part) => {
                        params.insert(name.clone(), (*part).to_owned());
                        index += 1;
                    }
                    None if *optional => {}
                    None => return None,
                },
                Segment::CatchAll { name } => {
                    params.insert(name.clone(), parts[index.min(parts.len())..].join("/"));
                    index = parts.len();
                }
            }
        }
        (index == parts.len()).then_some(params)
    }
}

/// A request path's non-empty segments, as route templates match them.
pub fn path_segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|part| !part.is_empty()).collect()
}

fn parse_segment(part: &str) -> Result<Segment, String> {
    let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
        if part.contains(['{', '}']) {
            return Err(format!(
                "segment '{part}' mixes text and parameters, which this handler does not support"
            ));
        }
        return Ok(Segment::Literal(part.to_owned()));
    };
    if let Some(name) = inner.strip_prefix('*') {
        return Ok(Segment::CatchAll {
            name: name.split(':').next().unwrap_or(name).to_owned(),
        });
    }
    let optional = inner.ends_with('?');
    let inner = inner.trim_end_matches('?');
    let name = inner.split([':', '=']).next().unwrap_or(inner);
    if name.is_empty() {
        return Err(format!("segment '{part}' has an empty parameter name"));
    }
    Ok(Segment::Param {
        name: name.to_owned(),
        optional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(text: &str) -> RouteTemplate {
        RouteTemplate::parse(text).unwrap()
    }

    #[test]
    fn routes_match_without_regard_to_case_and_bind_parameters() {
        let params = route("blobs/{container}/{name}")
            .matches("/BLOBS/photos/cat.png")
            .unwrap();
        assert_eq!(params["container"], "photos");
        assert_eq!(params["name"], "cat.png");
        assert!(
            route("blobs/{container}/{name}")
                .matches("blobs/photos")
                .is_none()
        );
        assert!(
            route("blobs/{container}/{name}")
                .matches("blobs/a/b/c")
                .is_none()
        );
    }

    #[test]
    fn optional_and_catch_all_parameters() {
        let template = route("items/{id:int?}");
        assert_eq!(template.matches("items/7").unwrap()["id"], "7");
        assert!(template.matches("items").unwrap().is_empty());
        let rest = route("call/{*path}");
        assert_eq!(rest.matches("call/a/b/c").unwrap()["path"], "a/b/c");
        assert_eq!(rest.matches("call").unwrap()["path"], "");
        assert!(RouteTemplate::parse("a/{*rest}/b").is_err());
        assert!(RouteTemplate::parse("a/x{y}").is_err());
    }
}
