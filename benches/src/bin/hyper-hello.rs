//! `hyper-hello`: the floor. A bare hyper HTTP/1.1 server on tokio's multi-threaded runtime (as
//! `handler` uses) that reads each request's body and answers `200 Hello, World!`. Nothing a
//! handler built on hyper does per request can cost less.
//!
//! `hyper-hello [--port 0]` binds 127.0.0.1 and prints `{"ready":"http://127.0.0.1:PORT"}`.

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::process::ExitCode;

use bench::Flags;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let flags = match Flags::parse(std::env::args().skip(1)) {
        Ok(flags) => flags,
        Err(problem) => {
            eprintln!("hyper-hello: {problem}\nusage: hyper-hello [--port 0]");
            return ExitCode::from(2);
        }
    };
    let port: u16 = match flags.number("port", 0) {
        Ok(port) => port,
        Err(problem) => {
            eprintln!("hyper-hello: {problem}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("hyper-hello: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("{{\"ready\":\"http://{addr}\"}}"),
        Err(e) => {
            eprintln!("hyper-hello: {e}");
            return ExitCode::FAILURE;
        }
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}

async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body like a handler must, so the floor does the same I/O as the measured server.
    let _ = request.into_body().collect().await;
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}
