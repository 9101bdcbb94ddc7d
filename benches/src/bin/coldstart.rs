//! `coldstart`: how long a server process takes from exec to its first `200` on `GET /`.
//!
//! ```text
//! coldstart --runs 50 [--port-env FUNCTIONS_CUSTOMHANDLER_PORT]... [--interval-us 250] -- PROGRAM ARGS...
//! ```
//!
//! Each run picks a free port, puts it in every `--port-env` variable, starts PROGRAM with the
//! rest of this process's environment (stdout and stderr to /dev/null), and tries to connect to
//! 127.0.0.1:PORT every `--interval-us` microseconds; once connected it sends `GET /` and reads
//! the status line. A refused connection or a non-200 answer is retried. The clock runs from just
//! before the spawn to the 200. The process is then killed and reaped before the next run.
//! Prints one JSON line: every sample and the median, p95, min and max, in microseconds.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bench::{Flags, quantile};

const GIVE_UP: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    let flags = match Flags::parse(std::env::args().skip(1)) {
        Ok(flags) => flags,
        Err(problem) => return usage(&problem),
    };
    match run(&flags) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("coldstart: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "coldstart: {problem}\nusage: coldstart --runs N [--port-env NAME]... [--interval-us 250] -- PROGRAM ARGS..."
    );
    ExitCode::from(2)
}

fn run(flags: &Flags) -> Result<serde_json::Value, String> {
    let runs: usize = flags.number("runs", 50)?;
    let interval = Duration::from_micros(flags.number("interval-us", 250)?);
    let port_envs = flags.all("port-env");
    let port_envs = if port_envs.is_empty() {
        vec!["FUNCTIONS_CUSTOMHANDLER_PORT"]
    } else {
        port_envs
    };
    let (program, args) = flags
        .rest
        .split_first()
        .ok_or("give the program to start after --")?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        samples.push(one_start(program, args, &port_envs, interval)?);
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut sorted = samples.clone();
    sorted.sort_unstable();
    Ok(serde_json::json!({
        "program": program,
        "runs": runs,
        "median_us": quantile(&sorted, 0.5),
        "p95_us": quantile(&sorted, 0.95),
        "min_us": quantile(&sorted, 0.0),
        "max_us": quantile(&sorted, 1.0),
        "samples_us": samples,
    }))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// One start: exec → first 200, in microseconds.
fn one_start(
    program: &str,
    args: &[String],
    port_envs: &[&str],
    interval: Duration,
) -> Result<u64, String> {
    let port = free_port()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for name in port_envs {
        command.env(name, port.to_string());
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let outcome = loop {
        if let Some(elapsed) = answered_200(&addr, started) {
            break Ok(elapsed);
        }
        if started.elapsed() > GIVE_UP {
            break Err(format!(
                "{program} did not answer GET / with 200 within {GIVE_UP:?}"
            ));
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("{program} exited with {status} before answering"));
        }
        std::thread::sleep(interval);
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// Connects, sends `GET /`, and returns the time since `started` if the answer is a 200.
fn answered_200(addr: &SocketAddr, started: Instant) -> Option<u64> {
    let mut stream = TcpStream::connect(addr).ok()?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 12];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => read += n,
        }
    }
    let elapsed = started.elapsed();
    (head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
        .then(|| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
}
