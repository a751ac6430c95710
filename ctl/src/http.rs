//! The controller's HTTP side: the dashboard page and a small JSON API.
//!
//! HTTP/1.1 without keep-alive, one short-lived thread per connection (at
//! most [`MAX_CONNECTIONS`] at once; more are answered 503), requests
//! bounded in size and time. It binds where it is told; the default is
//! loopback, because the API changes what probes run and has no
//! authentication of its own (put it behind an authenticating proxy to
//! expose it).
//!
//! | method, path | answer |
//! |---|---|
//! | `GET /` | the dashboard |
//! | `GET /api/state` | probes, their applications and health, latest alerts, counters, log |
//! | `GET /api/events?from=ID&limit=N` | stored events from id `ID` (default 1), at most `N` (default 100, at most 1000) |
//! | `POST /api/deploy`, `/api/swap` | body `{"probe":…,"app":…,"xml":…}` |
//! | `POST /api/start`, `/api/stop`, `/api/remove` | body `{"probe":…,"app":…}` |
//! | `POST /api/status` | body `{"probe":…}` |
//!
//! Errors are `{"error": "…"}` with status 400 (refused request), 404,
//! 405, 413 (body over [`MAX_BODY`]) or 503.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::controller::{lock, run_op, Op, View};
use crate::store::StoreReader;
use crate::CtlError;

/// Largest request body.
pub const MAX_BODY: usize = 1 << 20;

/// Largest request head (request line and headers).
const MAX_HEAD: usize = 16 << 10;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

type Reply = Sender<Result<serde_json::Value, String>>;

/// The running HTTP server; stops when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone)]
struct Ctx {
    view: Arc<Mutex<View>>,
    ops: Sender<(Op, Reply)>,
    store: StoreReader,
    active: Arc<AtomicUsize>,
}

impl HttpServer {
    /// Binds `addr` and serves on a thread.
    pub fn start(
        addr: &str,
        view: Arc<Mutex<View>>,
        ops: Sender<(Op, Reply)>,
        store: StoreReader,
    ) -> Result<HttpServer, CtlError> {
        let listener = TcpListener::bind(addr).map_err(|e| CtlError::Http {
            addr: addr.to_string(),
            source: e,
        })?;
        let bound = listener.local_addr().map_err(|e| CtlError::Http {
            addr: addr.to_string(),
            source: e,
        })?;
        listener.set_nonblocking(true).map_err(|e| CtlError::Http {
            addr: addr.to_string(),
            source: e,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let ctx = Ctx {
            view,
            ops,
            store,
            active: Arc::new(AtomicUsize::new(0)),
        };
        let thread = std::thread::Builder::new()
            .name("streamon-ctl-http".into())
            .spawn(move || accept_loop(&listener, &ctx, &s))
            .map_err(|e| CtlError::Config(format!("cannot start the HTTP thread: {e}")))?;
        Ok(HttpServer {
            addr: bound,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, ctx: &Ctx, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                if ctx.active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    ctx.active.fetch_sub(1, Ordering::AcqRel);
                    let _ = respond(&mut stream, 503, "application/json", br#"{"error":"busy"}"#);
                    continue;
                }
                let c = ctx.clone();
                let spawned = std::thread::Builder::new()
                    .name("streamon-ctl-http-conn".into())
                    .spawn(move || {
                        serve(stream, &c);
                        c.active.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    ctx.active.fetch_sub(1, Ordering::AcqRel);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    body: Vec<u8>,
}

/// Reads one request; `Err((status, message))` when it is refused.
fn read_request(stream: &mut impl Read) -> Result<Request, (u16, String)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err((431, "request head too large".into()));
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|_| (408, "request not received in time".to_string()))?;
        if n == 0 {
            return Err((400, "connection closed mid-request".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v
                    .trim()
                    .parse()
                    .map_err(|_| (400, "bad Content-Length".to_string()))?;
            }
        }
    }
    if length > MAX_BODY {
        return Err((413, format!("body over {MAX_BODY} bytes")));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream
            .read(&mut chunk)
            .map_err(|_| (408, "body not received in time".to_string()))?;
        if n == 0 {
            return Err((400, "connection closed mid-body".into()));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Ok(Request {
        method,
        path,
        query,
        body,
    })
}

/// Reads `input` as one connection's request and decodes what the API
/// would take from it (query parameters, an operation's body) without
/// running anything; returns the status the server would answer at that
/// point. Only for the `ctl_http` fuzz target.
#[doc(hidden)]
pub fn request_for_fuzzing(input: &[u8]) -> u16 {
    let mut r = input;
    let req = match read_request(&mut r) {
        Ok(req) => req,
        Err((status, _)) => return status,
    };
    let _ = (
        query_param(&req.query, "from"),
        query_param(&req.query, "limit"),
    );
    match (req.method.as_str(), req.path.strip_prefix("/api/")) {
        ("POST", Some(what)) => match parse_op(what, &req.body) {
            Ok(_) => 200,
            Err((status, _)) => status,
        },
        _ => 200,
    }
}

fn respond(stream: &mut TcpStream, status: u16, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    let text = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn error_body(msg: &str) -> Vec<u8> {
    serde_json::json!({ "error": msg }).to_string().into_bytes()
}

fn serve(mut stream: TcpStream, ctx: &Ctx) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let (status, ctype, body) = match read_request(&mut stream) {
        Ok(req) => route(&req, ctx),
        Err((status, msg)) => (status, "application/json", error_body(&msg)),
    };
    let _ = respond(&mut stream, status, ctype, &body);
}

fn query_param(query: &str, name: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

fn route(req: &Request, ctx: &Ctx) -> (u16, &'static str, Vec<u8>) {
    const JSON: &str = "application/json";
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") | ("GET", "/index.html") => (
            200,
            "text/html; charset=utf-8",
            crate::dashboard::PAGE.as_bytes().to_vec(),
        ),
        ("GET", "/api/state") => {
            let v = lock(&ctx.view);
            (200, JSON, serde_json::to_vec(&*v).unwrap_or_default())
        }
        ("GET", "/api/events") => {
            let from = query_param(&req.query, "from").unwrap_or(1);
            let limit = query_param(&req.query, "limit").unwrap_or(100).min(1000) as usize;
            match ctx.store.read_from(from, limit) {
                Ok(evs) => (200, JSON, serde_json::to_vec(&evs).unwrap_or_default()),
                Err(e) => (503, JSON, error_body(&e.to_string())),
            }
        }
        ("POST", path) if path.starts_with("/api/") => match parse_op(&path[5..], &req.body) {
            Ok(op) => match run_op(&ctx.ops, op) {
                Ok(v) => (200, JSON, v.to_string().into_bytes()),
                Err(e) => (400, JSON, error_body(&e)),
            },
            Err((status, e)) => (status, JSON, error_body(&e)),
        },
        (_, "/") | (_, "/api/state") | (_, "/api/events") => {
            (405, JSON, error_body("method not allowed"))
        }
        _ => (404, JSON, error_body("no such page")),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OpBody {
    probe: String,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    xml: Option<String>,
}

fn parse_op(what: &str, body: &[u8]) -> Result<Op, (u16, String)> {
    let b: OpBody =
        serde_json::from_slice(body).map_err(|e| (400, format!("request body: {e}")))?;
    let app = || {
        b.app
            .clone()
            .ok_or((400, "request body: missing \"app\"".to_string()))
    };
    let xml = || {
        b.xml
            .clone()
            .ok_or((400, "request body: missing \"xml\"".to_string()))
    };
    let probe = b.probe.clone();
    Ok(match what {
        "deploy" => Op::Deploy {
            probe,
            app: app()?,
            xml: xml()?,
        },
        "swap" => Op::Swap {
            probe,
            app: app()?,
            xml: xml()?,
        },
        "start" => Op::Start { probe, app: app()? },
        "stop" => Op::Stop { probe, app: app()? },
        "remove" => Op::Remove { probe, app: app()? },
        "status" => Op::Status { probe },
        _ => return Err((404, format!("no operation {what:?}"))),
    })
}

/// A minimal HTTP client for the CLI and tests: one request, the status
/// and the body.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    // Read the head, then exactly Content-Length bytes: some servers
    // (chromedriver) say `Connection: close` and keep the socket open.
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("no HTTP head in the answer"));
        }
        out.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status in the answer"))?;
    let length = head.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut body = out[end + 4..].to_vec();
    match length {
        Some(len) => {
            while body.len() < len {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    return Err(std::io::Error::other(
                        "answer shorter than its Content-Length",
                    ));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        None => {
            s.read_to_end(&mut body)?;
        }
    }
    Ok((status, body))
}
