//! `loadgen`: drives one HTTP/1.1 server over N keep-alive connections and prints one JSON line
//! with throughput and latency.
//!
//! ```text
//! loadgen --url http://127.0.0.1:PORT/PATH [--method POST] [--body-file F] [--header 'K: V']...
//!         [--connections 32] (--duration SECS [--warmup SECS] | --requests N)
//!         [--expect TEXT] [--host-ids 1] [--threads 1] [--timeout SECS] [--pause-ms MS]
//! ```
//!
//! Every connection is opened before the clock starts. With `--duration`, each connection sends
//! requests back to back; only requests that start after the warm-up and finish before the end
//! count. With `--requests`, the connections share N requests and the clock runs until the last
//! answer (with N = connections, every request is sent at once: the "N concurrent cold requests"
//! case). A response counts as good when its status is 200 and, with `--expect`, its body contains
//! TEXT (JSON-mode invocations always answer 200; the function's own status is inside).
//! `--pause-ms` makes each connection wait between requests (steady, light traffic).
//! `--host-ids 1` adds a fresh `X-Azure-Functions-InvocationId` to each request, as the host does.
//! `statuses` in the report counts the answers by HTTP status, so a run can tell a refusal (503
//! from the in-flight limit) from a wrong answer or a broken connection (`errors`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench::{Flags, Latencies, quantile};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What every request looks like.
struct Target {
    addr: SocketAddr,
    authority: String,
    path: String,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    expect: Option<Vec<u8>>,
    host_ids: bool,
    timeout: Duration,
    pause: Duration,
}

/// When to stop.
#[derive(Clone, Copy)]
enum Plan {
    /// Count requests that start after `measure_from` and end before `until`.
    Timed {
        measure_from: Instant,
        until: Instant,
    },
    /// Send this many in all (shared by the connections).
    Count,
}

/// What one connection saw.
#[derive(Default)]
struct Outcome {
    latencies: Latencies,
    good: u64,
    bad: u64,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    last_error: Option<String>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn main() -> ExitCode {
    let flags = match Flags::parse(std::env::args().skip(1)) {
        Ok(flags) => flags,
        Err(problem) => return usage(&problem),
    };
    let threads = match flags.number("threads", 1usize) {
        Ok(n) => n.max(1),
        Err(problem) => return usage(&problem),
    };
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(problem) => usage(&problem),
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "loadgen: {problem}\nusage: loadgen --url http://127.0.0.1:PORT/PATH [--method M] [--body-file F] [--header 'K: V']... [--connections N] (--duration S [--warmup S] | --requests N) [--expect TEXT] [--host-ids 1] [--threads N] [--timeout S]"
    );
    ExitCode::from(2)
}

async fn run(flags: Flags) -> Result<serde_json::Value, String> {
    let target = Arc::new(target_from(&flags)?);
    let connections: usize = flags.number("connections", 1)?;
    let connections = connections.max(1);
    let requests: Option<i64> = flags
        .get("requests")
        .map(str::parse)
        .transpose()
        .map_err(|_| "--requests is not a number")?;
    let duration: Option<f64> = flags
        .get("duration")
        .map(str::parse)
        .transpose()
        .map_err(|_| "--duration is not a number")?;
    let warmup: f64 = flags.number("warmup", 0.0)?;
    if requests.is_some() == duration.is_some() {
        return Err("give exactly one of --duration and --requests".into());
    }

    // Open every connection before the clock starts.
    let opened = futures_join(
        (0..connections)
            .map(|_| tokio::spawn(connect(target.clone())))
            .collect(),
    )
    .await;
    let mut senders = Vec::with_capacity(connections);
    let mut connect_errors = 0u64;
    let mut last_error = None;
    for Opened(result) in opened {
        match result {
            Ok(sender) => senders.push(sender),
            Err(problem) => {
                connect_errors += 1;
                last_error = Some(problem);
            }
        }
    }
    if senders.is_empty() {
        return Err(format!(
            "no connection could be opened to {}: {}",
            target.addr,
            last_error.unwrap_or_default()
        ));
    }

    let started = Instant::now();
    let plan = match duration {
        Some(seconds) => Plan::Timed {
            measure_from: started + Duration::from_secs_f64(warmup.max(0.0)),
            until: started + Duration::from_secs_f64(warmup.max(0.0) + seconds.max(0.0)),
        },
        None => Plan::Count,
    };
    let tickets = Arc::new(AtomicI64::new(requests.unwrap_or(0)));
    let workers: Vec<_> = senders
        .into_iter()
        .map(|sender| tokio::spawn(drive(target.clone(), sender, plan, tickets.clone())))
        .collect();
    let mut total = Outcome::default();
    for outcome in futures_join(workers).await {
        total.latencies.merge(outcome.latencies);
        total.good += outcome.good;
        total.bad += outcome.bad;
        total.errors += outcome.errors;
        for (status, count) in outcome.statuses {
            *total.statuses.entry(status).or_default() += count;
        }
        if outcome.last_error.is_some() {
            total.last_error = outcome.last_error;
        }
    }
    let seconds = match plan {
        Plan::Timed {
            measure_from,
            until,
        } => (until - measure_from).as_secs_f64(),
        Plan::Count => started.elapsed().as_secs_f64(),
    };
    let sorted = total.latencies.sorted();
    let mean = if sorted.is_empty() {
        0.0
    } else {
        sorted.iter().sum::<u64>() as f64 / sorted.len() as f64
    };
    Ok(serde_json::json!({
        "url": format!("http://{}{}", target.authority, target.path),
        "connections": connections,
        "connect_errors": connect_errors,
        "requests": sorted.len(),
        "good": total.good,
        "bad": total.bad,
        "errors": total.errors,
        "statuses": total.statuses,
        "last_error": total.last_error.or(last_error),
        "seconds": seconds,
        "rps": if seconds > 0.0 { total.good as f64 / seconds } else { 0.0 },
        "mean_us": mean,
        "p50_us": quantile(&sorted, 0.50),
        "p90_us": quantile(&sorted, 0.90),
        "p99_us": quantile(&sorted, 0.99),
        "max_us": quantile(&sorted, 1.0),
    }))
}

/// Awaits spawned tasks in order; a task that panicked counts as nothing.
async fn futures_join<T: Default>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap_or_default());
    }
    out
}

/// A connection being opened, or why it could not be.
struct Opened(Result<SendRequest<Full<Bytes>>, String>);

impl Default for Opened {
    fn default() -> Self {
        Self(Err("the connecting task failed".into()))
    }
}

fn target_from(flags: &Flags) -> Result<Target, String> {
    let url = flags.get("url").ok_or("--url is required")?;
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must be http://127.0.0.1:PORT/PATH")?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = authority
        .parse()
        .map_err(|_| format!("'{authority}' is not IP:PORT"))?;
    if !addr.ip().is_loopback() {
        return Err("only loopback targets are allowed".into());
    }
    let method = Method::from_bytes(flags.get("method").unwrap_or("GET").as_bytes())
        .map_err(|_| "--method is not an HTTP method")?;
    let body = match flags.get("body-file") {
        Some(path) => {
            Bytes::from(std::fs::read(path).map_err(|e| format!("--body-file {path}: {e}"))?)
        }
        None => Bytes::new(),
    };
    let mut headers = Vec::new();
    for line in flags.all("header") {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("--header '{line}' is not 'Name: value'"))?;
        headers.push((
            HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("bad header name in '{line}'"))?,
            HeaderValue::from_str(value.trim())
                .map_err(|_| format!("bad header value in '{line}'"))?,
        ));
    }
    Ok(Target {
        addr,
        authority: authority.to_owned(),
        path: path.to_owned(),
        method,
        headers,
        body,
        expect: flags.get("expect").map(|t| t.as_bytes().to_vec()),
        host_ids: flags.get("host-ids").is_some_and(|v| v != "0"),
        timeout: Duration::from_secs_f64(flags.number("timeout", 30.0)?),
        pause: Duration::from_millis(flags.number("pause-ms", 0)?),
    })
}

async fn connect(target: Arc<Target>) -> Opened {
    Opened(open(&target).await)
}

async fn open(target: &Target) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::time::timeout(target.timeout, TcpStream::connect(target.addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One connection's loop.
async fn drive(
    target: Arc<Target>,
    sender: SendRequest<Full<Bytes>>,
    plan: Plan,
    tickets: Arc<AtomicI64>,
) -> Outcome {
    let mut outcome = Outcome {
        latencies: Latencies::with_capacity(1024),
        ..Default::default()
    };
    let mut sender = sender;
    loop {
        let begun = Instant::now();
        let counted = match plan {
            Plan::Timed {
                measure_from,
                until,
            } => {
                if begun >= until {
                    break;
                }
                begun >= measure_from
            }
            Plan::Count => {
                if tickets.fetch_sub(1, Ordering::Relaxed) <= 0 {
                    break;
                }
                true
            }
        };
        let result = tokio::time::timeout(target.timeout, exchange(&target, &mut sender)).await;
        let ended = Instant::now();
        let in_window = match plan {
            Plan::Timed { until, .. } => counted && ended <= until,
            Plan::Count => true,
        };
        match result {
            Ok(Ok((status, good))) => {
                if !target.pause.is_zero() {
                    tokio::time::sleep(target.pause).await;
                }
                if in_window {
                    outcome.latencies.record(ended - begun);
                    *outcome.statuses.entry(status).or_default() += 1;
                    if good {
                        outcome.good += 1;
                    } else {
                        outcome.bad += 1;
                    }
                }
            }
            failed => {
                outcome.errors += 1;
                outcome.last_error = Some(match failed {
                    Ok(Err(problem)) => problem,
                    _ => "request timed out".into(),
                });
                // The connection is unusable: open a new one (pause briefly so a dead server
                // is not hammered).
                tokio::time::sleep(Duration::from_millis(10)).await;
                match open(&target).await {
                    Ok(fresh) => sender = fresh,
                    Err(problem) => {
                        outcome.last_error = Some(problem);
                        if matches!(plan, Plan::Count) {
                            break;
                        }
                    }
                }
            }
        }
    }
    outcome
}

/// Sends one request and reads the whole answer: its status, and whether it is the expected one.
async fn exchange(
    target: &Target,
    sender: &mut SendRequest<Full<Bytes>>,
) -> Result<(u16, bool), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let mut request = Request::builder()
        .method(target.method.clone())
        .uri(target.path.as_str())
        .header(hyper::header::HOST, target.authority.as_str());
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    if target.host_ids {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        request = request.header(
            "x-azure-functions-invocationid",
            format!("00000000-0000-4000-8000-{id:012x}"),
        );
    }
    let request = request
        .body(Full::new(target.body.clone()))
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let expected = match &target.expect {
        Some(needle) => contains(&body, needle),
        None => true,
    };
    Ok((status.as_u16(), status == hyper::StatusCode::OK && expected))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
