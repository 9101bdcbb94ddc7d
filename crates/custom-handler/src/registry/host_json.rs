//! host.json: the runtime's options (the route prefix and the function timeout).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::function_json::RegistryError;

/// How the runtime behaves: read once from host.json at start-up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// `extensions.http.routePrefix`, default `api`.
    pub route_prefix: String,
    /// `functionTimeout`; `None` when host.json says `-1` (unlimited). host.json sets it; the
    /// default when it does not is the host's on every plan but Consumption, 30 minutes.
    pub function_timeout: Option<Duration>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            route_prefix: "api".into(),
            function_timeout: Some(Duration::from_secs(30 * 60)),
        }
    }
}

/// Reads the runtime's options from `<app root>/host.json`: the route prefix and the function
/// timeout. A missing host.json gives the host's defaults; a malformed one is an error.
pub fn load_host_options(app_root: &Path) -> Result<RuntimeOptions, RegistryError> {
    let path = app_root.join("host.json");
    let invalid = |reason: String| RegistryError::FunctionJson {
        path: path.clone(),
        reason,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RuntimeOptions::default()),
        Err(e) => return Err(invalid(e.to_string())),
    };
    parse_host_options(&text).map_err(invalid)
}

/// Reads the runtime's options from host.json's text (what [`load_host_options`] does once the
/// file is read; public for `crates/fuzz`). The error is the reason, without the path.
pub fn parse_host_options(text: &str) -> Result<RuntimeOptions, String> {
    let invalid = |reason: String| reason;
    let json: Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let mut options = RuntimeOptions::default();
    if let Some(prefix) = json
        .pointer("/extensions/http/routePrefix")
        .and_then(Value::as_str)
    {
        options.route_prefix = prefix.trim_matches('/').to_owned();
    }
    if let Some(timeout) = json.get("functionTimeout").and_then(Value::as_str) {
        options.function_timeout = parse_timespan(timeout).map_err(invalid)?;
    }
    Ok(options)
}

/// Reads a .NET TimeSpan as host.json writes it (`hh:mm:ss`, `d.hh:mm:ss`); `-1` means no limit.
fn parse_timespan(text: &str) -> Result<Option<Duration>, String> {
    let bad =
        || format!("functionTimeout '{text}' is not a TimeSpan like 00:05:00 (or -1 for none)");
    if text.trim() == "-1" {
        return Ok(None);
    }
    let (days, clock) = match text.split_once('.') {
        Some((days, clock)) if clock.contains(':') => {
            (days.parse::<u64>().map_err(|_| bad())?, clock)
        }
        _ => (0, text),
    };
    let parts: Vec<f64> = clock
        .split(':')
        .map(|p| p.parse::<f64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [hours, minutes, seconds] = parts.as_slice() else {
        return Err(bad());
    };
    let total = days as f64 * 86400.0 + hours * 3600.0 + minutes * 60.0 + seconds;
    if !total.is_finite() || total <= 0.0 {
        return Err(bad());
    }
    // Finite is not enough: hours in the quintillions overflow a Duration, which would panic.
    Duration::try_from_secs_f64(total)
        .map(Some)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_timeouts_read_as_timespans() {
        assert_eq!(
            parse_timespan("00:05:00"),
            Ok(Some(Duration::from_secs(300)))
        );
        assert_eq!(
            parse_timespan("1.00:00:01"),
            Ok(Some(Duration::from_secs(86401)))
        );
        assert_eq!(parse_timespan("-1"), Ok(None));
        assert!(parse_timespan("5 minutes").is_err());
        // Found by scripts/fuzz: a finite value past Duration's range was a panic at start-up.
        assert!(parse_timespan("10675199.02:48:059999999999999999999999.4775807").is_err());
        assert!(parse_timespan("99999999999999999999:00:00").is_err());
        assert!(parse_timespan("00:00:00").is_err());
    }
}
