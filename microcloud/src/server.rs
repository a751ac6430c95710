//! A read-only Redis-protocol server over the probe's [`LiveState`].
//!
//! Monitoring applications query a probe the way they query a MicroCloud
//! node (paper §III-C: "we have implemented into nProbe a subset of the
//! Redis protocol"), with any Redis client or `redis-cli`:
//!
//! ```text
//! redis-cli -p 6380 KEYS 'streamon:*:ip:192.0.2.*'
//! ```
//!
//! # Commands
//!
//! `PING [msg]`, `ECHO msg`, `GET key`, `MGET key...`, `EXISTS key...`,
//! `KEYS pattern`, `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`,
//! `HGETALL key`, `HGET key field`, `TTL key`, `PTTL key`, `TYPE key`,
//! `DBSIZE`, `COMMAND [COUNT|DOCS|INFO ...]` (minimal), `SELECT 0`,
//! `CLIENT SETNAME|SETINFO|GETNAME` (client libraries send these when they
//! connect), `QUIT`. Replies and error texts follow Redis 7.
//!
//! Commands that would write (`SET`, `DEL`, `FLUSHALL`, `HSET`, ...; see
//! [`is_write_command`]) get `-READONLY ...`; anything else gets
//! `-ERR unknown command ...`. The connection stays open after both.
//!
//! `SCAN` cursors are positions in the order of a fixed 64-bit hash of the
//! key (FNV-1a), not of a hash table: a key present for the whole scan is
//! returned exactly once, keys added or removed meanwhile may or may not
//! be, and `COUNT` is the number of keys examined per call, as in Redis.
//! Each call walks the whole key set (`O(N log N)`): fine for a probe's
//! state view, not for millions of keys.
//!
//! # Limits
//!
//! Each connection runs on its own thread, with at most
//! [`ServerConfig::max_connections`] at once (the next one gets
//! `-ERR max number of clients reached` and is closed). A connection is
//! closed after a protocol error (bad length, bulk string over
//! [`Limits::max_bulk_len`], ... with a `-ERR Protocol error: ...` reply
//! first), when its unparsed input exceeds
//! [`ServerConfig::max_query_buffer`], after
//! [`ServerConfig::idle_timeout`] without input, or when a reply cannot be
//! written within [`ServerConfig::write_timeout`]. Memory per connection
//! is thus bounded by `max_query_buffer` plus the replies to one read's
//! worth of pipelined commands.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::names::glob_match;
use crate::resp::{parse_request, Limits, Reply};
use crate::state::{KeyTtl, LiveState, StateValue};

/// Tuning of a [`RespServer`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Limits on one request (see [`Limits`]).
    pub limits: Limits,
    /// Most connections served at once. Default 64.
    pub max_connections: usize,
    /// A connection without input for this long is closed. Default 300 s.
    pub idle_timeout: Duration,
    /// A connection whose reply cannot be written within this is closed.
    /// Default 5 s.
    pub write_timeout: Duration,
    /// Most unparsed input buffered per connection. Default 1 MiB.
    pub max_query_buffer: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            max_connections: 64,
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(5),
            max_query_buffer: 1 << 20,
        }
    }
}

/// Counters of a [`RespServer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted and served.
    pub connections: u64,
    /// Connections refused because `max_connections` were open.
    pub refused_connections: u64,
    /// Commands executed (including refused and unknown ones).
    pub commands: u64,
    /// Connections closed for a protocol error or a full query buffer.
    pub protocol_errors: u64,
    /// Write commands refused with `-READONLY`.
    pub refused_writes: u64,
    /// Connections closed for idleness.
    pub idle_closes: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    refused_connections: AtomicU64,
    commands: AtomicU64,
    protocol_errors: AtomicU64,
    refused_writes: AtomicU64,
    idle_closes: AtomicU64,
}

struct Shared {
    state: Arc<dyn LiveState>,
    config: ServerConfig,
    counters: Counters,
    stop: AtomicBool,
    active: AtomicUsize,
    streams: Mutex<HashMap<u64, TcpStream>>,
}

/// A running Redis-protocol server. Dropping it stops accepting and closes
/// every connection.
pub struct RespServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl RespServer {
    /// Binds `addr` (port 0 picks a free port) and serves `state`.
    pub fn start(
        addr: impl ToSocketAddrs,
        state: Arc<dyn LiveState>,
        config: ServerConfig,
    ) -> io::Result<RespServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state,
            config,
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            streams: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("microcloud-resp-accept".into())
            .spawn(move || accept_loop(listener, s))?;
        Ok(RespServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ServerStats {
        let c = &self.shared.counters;
        ServerStats {
            connections: c.connections.load(Ordering::Relaxed),
            refused_connections: c.refused_connections.load(Ordering::Relaxed),
            commands: c.commands.load(Ordering::Relaxed),
            protocol_errors: c.protocol_errors.load(Ordering::Relaxed),
            refused_writes: c.refused_writes.load(Ordering::Relaxed),
            idle_closes: c.idle_closes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for RespServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for s in lock(&self.shared.streams).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let end = Instant::now() + Duration::from_secs(2);
        while self.shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else {
            // EMFILE and friends: back off a little rather than spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if shared.active.load(Ordering::SeqCst) >= shared.config.max_connections {
            shared
                .counters
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = stream.write_all(b"-ERR max number of clients reached\r\n");
            continue;
        }
        next_id += 1;
        let id = next_id;
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        shared.active.fetch_add(1, Ordering::SeqCst);
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        lock(&shared.streams).insert(id, clone);
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("microcloud-resp-conn".into())
            .spawn(move || {
                serve(stream, &s);
                lock(&s.streams).remove(&id);
                s.active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            lock(&shared.streams).remove(&id);
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Serves one connection until it closes, errs or idles out.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let cfg = &shared.config;
    if stream.set_read_timeout(Some(cfg.idle_timeout)).is_err()
        || stream.set_write_timeout(Some(cfg.write_timeout)).is_err()
    {
        return;
    }
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Execute every complete command buffered (pipelining).
        let mut used = 0;
        let mut close = false;
        loop {
            match parse_request(&buf[used..], &cfg.limits) {
                Ok(Some((args, n))) => {
                    used += n;
                    if args.is_empty() {
                        continue;
                    }
                    shared.counters.commands.fetch_add(1, Ordering::Relaxed);
                    let (reply, then) = execute(shared.state.as_ref(), &args);
                    if matches!(&reply, Reply::Error(e) if e.starts_with("READONLY")) {
                        shared
                            .counters
                            .refused_writes
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    reply.encode(&mut out);
                    if then == After::Close {
                        close = true;
                        break;
                    }
                    if out.len() >= 64 * 1024 {
                        if stream.write_all(&out).is_err() {
                            return;
                        }
                        out.clear();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    shared
                        .counters
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    e.reply().encode(&mut out);
                    close = true;
                    break;
                }
            }
        }
        buf.drain(..used);
        if !close && buf.len() > cfg.max_query_buffer {
            shared
                .counters
                .protocol_errors
                .fetch_add(1, Ordering::Relaxed);
            Reply::err("ERR Protocol error: query buffer overflow").encode(&mut out);
            close = true;
        }
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        if close || shared.stop.load(Ordering::Relaxed) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                shared.counters.idle_closes.fetch_add(1, Ordering::Relaxed);
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// What to do with the connection after a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Keep serving.
    Continue,
    /// Close once the reply is sent (`QUIT`).
    Close,
}

/// Commands refused with `-READONLY`: every Redis 7 command that modifies
/// the keyspace (lower-case names).
const WRITE_COMMANDS: &[&str] = &[
    "append",
    "blmove",
    "blmpop",
    "blpop",
    "brpop",
    "brpoplpush",
    "bzmpop",
    "bzpopmax",
    "bzpopmin",
    "copy",
    "decr",
    "decrby",
    "del",
    "eval",
    "evalsha",
    "expire",
    "expireat",
    "fcall",
    "flushall",
    "flushdb",
    "geoadd",
    "georadius",
    "georadiusbymember",
    "geosearchstore",
    "getdel",
    "getex",
    "getset",
    "hdel",
    "hincrby",
    "hincrbyfloat",
    "hmset",
    "hset",
    "hsetnx",
    "incr",
    "incrby",
    "incrbyfloat",
    "linsert",
    "lmove",
    "lmpop",
    "lpop",
    "lpush",
    "lpushx",
    "lrem",
    "lset",
    "ltrim",
    "migrate",
    "move",
    "mset",
    "msetnx",
    "persist",
    "pexpire",
    "pexpireat",
    "pfadd",
    "pfcount",
    "pfdebug",
    "pfmerge",
    "psetex",
    "rename",
    "renamenx",
    "restore",
    "rpop",
    "rpoplpush",
    "rpush",
    "rpushx",
    "sadd",
    "sdiffstore",
    "set",
    "setbit",
    "setex",
    "setnx",
    "setrange",
    "sinterstore",
    "smove",
    "sort",
    "spop",
    "srem",
    "sunionstore",
    "swapdb",
    "unlink",
    "xack",
    "xadd",
    "xautoclaim",
    "xclaim",
    "xdel",
    "xgroup",
    "xreadgroup",
    "xsetid",
    "xtrim",
    "zadd",
    "zdiffstore",
    "zincrby",
    "zinterstore",
    "zmpop",
    "zpopmax",
    "zpopmin",
    "zrangestore",
    "zrem",
    "zremrangebylex",
    "zremrangebyrank",
    "zremrangebyscore",
    "zunionstore",
];

/// True if `name` (any case) is a Redis command that writes.
pub fn is_write_command(name: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    WRITE_COMMANDS
        .iter()
        .any(|c| c.as_bytes() == lower.as_slice())
}

/// `(name, arity, first key, last key, step)` of the commands served, for
/// `COMMAND`. Arity as Redis: negative means "at least".
const COMMANDS: &[(&str, i64, i64, i64, i64)] = &[
    ("ping", -1, 0, 0, 0),
    ("echo", 2, 0, 0, 0),
    ("get", 2, 1, 1, 1),
    ("mget", -2, 1, -1, 1),
    ("exists", -2, 1, -1, 1),
    ("keys", 2, 0, 0, 0),
    ("scan", -2, 0, 0, 0),
    ("hgetall", 2, 1, 1, 1),
    ("hget", 3, 1, 1, 1),
    ("ttl", 2, 1, 1, 1),
    ("pttl", 2, 1, 1, 1),
    ("type", 2, 1, 1, 1),
    ("dbsize", 1, 0, 0, 0),
    ("command", -1, 0, 0, 0),
    ("select", 2, 0, 0, 0),
    ("client", -2, 0, 0, 0),
    ("quit", -1, 0, 0, 0),
];

fn wrong_arity(name: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn wrong_type() -> Reply {
    Reply::err("WRONGTYPE Operation against a key holding the wrong kind of value")
}

fn bulk_array(items: impl IntoIterator<Item = Vec<u8>>) -> Reply {
    Reply::Array(Some(
        items.into_iter().map(|b| Reply::Bulk(Some(b))).collect(),
    ))
}

/// Runs one command against `state`. `args[0]` is the command name.
pub fn execute(state: &dyn LiveState, args: &[Vec<u8>]) -> (Reply, After) {
    let Some((name, rest)) = args.split_first() else {
        return (Reply::err("ERR empty command"), After::Continue);
    };
    let lname = String::from_utf8_lossy(name).to_ascii_lowercase();
    let Some(&(cname, arity, ..)) = COMMANDS.iter().find(|c| c.0 == lname) else {
        if is_write_command(name) {
            return (
                Reply::err(
                    "READONLY You can't write against a read only streamon probe state view",
                ),
                After::Continue,
            );
        }
        return (unknown_command(name, rest), After::Continue);
    };
    let n = args.len() as i64;
    if (arity >= 0 && n != arity) || (arity < 0 && n < -arity) {
        return (wrong_arity(cname), After::Continue);
    }
    let reply = match cname {
        "ping" => match rest {
            [] => Reply::Simple("PONG".into()),
            [m] => Reply::bulk(m.clone()),
            _ => wrong_arity(cname),
        },
        "echo" => Reply::bulk(rest[0].clone()),
        "get" => match state.get(&rest[0]) {
            None => Reply::Bulk(None),
            Some(StateValue::String(v)) => Reply::Bulk(Some(v)),
            Some(StateValue::Hash(_)) => wrong_type(),
        },
        "mget" => Reply::Array(Some(
            rest.iter()
                .map(|k| match state.get(k) {
                    Some(StateValue::String(v)) => Reply::Bulk(Some(v)),
                    _ => Reply::Bulk(None),
                })
                .collect(),
        )),
        "exists" => Reply::Integer(rest.iter().filter(|k| state.get(k).is_some()).count() as i64),
        "keys" => {
            let pattern = &rest[0];
            let all = pattern.as_slice() == b"*";
            let mut out = Vec::new();
            state.keys(&mut |k| {
                if all || glob_match(pattern, k) {
                    out.push(k.to_vec());
                }
            });
            bulk_array(out)
        }
        "scan" => scan(state, rest),
        "hgetall" => match state.get(&rest[0]) {
            None => Reply::Array(Some(vec![])),
            Some(StateValue::String(_)) => wrong_type(),
            Some(StateValue::Hash(_)) => {
                let h = state.hgetall(&rest[0]).unwrap_or_default();
                bulk_array(h.into_iter().flat_map(|(f, v)| [f, v]))
            }
        },
        "hget" => match state.get(&rest[0]) {
            None => Reply::Bulk(None),
            Some(StateValue::String(_)) => wrong_type(),
            Some(StateValue::Hash(h)) => {
                Reply::Bulk(h.into_iter().find(|(f, _)| *f == rest[1]).map(|(_, v)| v))
            }
        },
        "ttl" | "pttl" => Reply::Integer(match state.ttl(&rest[0]) {
            KeyTtl::Missing => -2,
            KeyTtl::Persistent => -1,
            // Redis rounds TTL to the nearest second.
            KeyTtl::Expires(d) if cname == "ttl" => ((d.as_millis() + 500) / 1000) as i64,
            KeyTtl::Expires(d) => d.as_millis() as i64,
        }),
        "type" => Reply::Simple(
            state
                .get(&rest[0])
                .map_or("none", |v| v.type_name())
                .to_string(),
        ),
        "dbsize" => Reply::Integer(state.len() as i64),
        "command" => command(rest),
        "select" => match &rest[0][..] {
            b"0" => Reply::ok(),
            _ => Reply::err("ERR DB index is out of range"),
        },
        "client" => match rest[0].to_ascii_lowercase().as_slice() {
            b"setname" | b"setinfo" => Reply::ok(),
            b"getname" => Reply::Bulk(None),
            _ => Reply::err(format!(
                "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(&rest[0])
            )),
        },
        "quit" => return (Reply::ok(), After::Close),
        _ => unknown_command(name, rest),
    };
    (reply, After::Continue)
}

fn unknown_command(name: &[u8], rest: &[Vec<u8>]) -> Reply {
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&name[..name.len().min(128)])
    );
    for a in rest.iter().take(8) {
        text.push_str(&format!(
            "'{}' ",
            String::from_utf8_lossy(&a[..a.len().min(128)])
        ));
    }
    Reply::err(text)
}

fn command(rest: &[Vec<u8>]) -> Reply {
    let info = |c: &(&str, i64, i64, i64, i64)| {
        Reply::Array(Some(vec![
            Reply::bulk(c.0),
            Reply::Integer(c.1),
            Reply::Array(Some(vec![Reply::Simple("readonly".into())])),
            Reply::Integer(c.2),
            Reply::Integer(c.3),
            Reply::Integer(c.4),
        ]))
    };
    match rest.first().map(|s| s.to_ascii_lowercase()) {
        None => Reply::Array(Some(COMMANDS.iter().map(info).collect())),
        Some(s) if s == b"count" => Reply::Integer(COMMANDS.len() as i64),
        // redis-cli asks for docs to show hints; having none is fine.
        Some(s) if s == b"docs" => Reply::Array(Some(vec![])),
        Some(s) if s == b"info" => Reply::Array(Some(
            rest[1..]
                .iter()
                .map(|n| {
                    let n = n.to_ascii_lowercase();
                    COMMANDS
                        .iter()
                        .find(|c| c.0.as_bytes() == n.as_slice())
                        .map_or(Reply::Array(None), info)
                })
                .collect(),
        )),
        Some(s) => Reply::err(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(&s)
        )),
    }
}

/// FNV-1a, 64 bits: the order `SCAN` walks keys in.
fn scan_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn scan(state: &dyn LiveState, rest: &[Vec<u8>]) -> Reply {
    let Some(cursor) = std::str::from_utf8(&rest[0])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Reply::err("ERR invalid cursor");
    };
    let mut pattern: Option<&[u8]> = None;
    let mut count: usize = 10;
    let mut type_filter: Option<String> = None;
    let mut opts = rest[1..].iter();
    while let Some(opt) = opts.next() {
        let Some(val) = opts.next() else {
            return Reply::err("ERR syntax error");
        };
        match opt.to_ascii_lowercase().as_slice() {
            b"match" => pattern = Some(val),
            b"count" => match crate::resp::parse_i64(val) {
                Some(n) if n >= 1 => count = usize::try_from(n).unwrap_or(usize::MAX),
                Some(_) => return Reply::err("ERR syntax error"),
                None => return Reply::err("ERR value is not an integer or out of range"),
            },
            b"type" => type_filter = Some(String::from_utf8_lossy(val).to_ascii_lowercase()),
            _ => return Reply::err("ERR syntax error"),
        }
    }
    // MATCH * is no filter at all (Redis lists the empty key for it too).
    let pattern = pattern.filter(|p| *p != b"*");
    let mut candidates: Vec<(u64, Vec<u8>)> = Vec::new();
    state.keys(&mut |k| {
        let h = scan_hash(k);
        if h >= cursor {
            candidates.push((h, k.to_vec()));
        }
    });
    candidates.sort_unstable();
    let mut examined = 0;
    let mut next = 0u64;
    let mut found = Vec::new();
    let mut i = 0;
    while i < candidates.len() {
        let h = candidates[i].0;
        if examined >= count {
            next = h;
            break;
        }
        // Keys sharing a hash go together: a cursor cannot split them.
        while i < candidates.len() && candidates[i].0 == h {
            let key = &candidates[i].1;
            examined += 1;
            let keep = pattern.is_none_or(|p| glob_match(p, key))
                && type_filter
                    .as_deref()
                    .is_none_or(|t| state.get(key).is_some_and(|v| v.type_name() == t));
            if keep {
                found.push(key.clone());
            }
            i += 1;
        }
    }
    Reply::Array(Some(vec![Reply::bulk(next.to_string()), bulk_array(found)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryState;

    fn run(state: &MemoryState, cmd: &str) -> Reply {
        let args: Vec<Vec<u8>> = cmd.split(' ').map(|s| s.as_bytes().to_vec()).collect();
        execute(state, &args).0
    }

    fn state() -> MemoryState {
        let s = MemoryState::new();
        s.set("streamon:p:ip:192.0.2.1:bytes", "10");
        s.set("streamon:p:ip:192.0.2.2:bytes", "20");
        s.set("streamon:p:ip:198.51.100.1:bytes", "30");
        s.hset("streamon:p:app:dns:state:x", "state", "alert");
        s.set_volatile("v", "1", Duration::from_secs(100));
        s
    }

    #[test]
    fn basic_commands() {
        let s = state();
        assert_eq!(run(&s, "PING"), Reply::Simple("PONG".into()));
        assert_eq!(run(&s, "ping hi"), Reply::bulk("hi"));
        assert_eq!(run(&s, "ECHO x"), Reply::bulk("x"));
        assert_eq!(
            run(&s, "GET streamon:p:ip:192.0.2.1:bytes"),
            Reply::bulk("10")
        );
        assert_eq!(run(&s, "GET nope"), Reply::Bulk(None));
        assert_eq!(run(&s, "GET streamon:p:app:dns:state:x"), wrong_type());
        assert_eq!(run(&s, "EXISTS v v nope"), Reply::Integer(2));
        assert_eq!(run(&s, "TTL v"), Reply::Integer(100));
        assert_eq!(
            run(&s, "TTL streamon:p:ip:192.0.2.1:bytes"),
            Reply::Integer(-1)
        );
        assert_eq!(run(&s, "TTL nope"), Reply::Integer(-2));
        assert_eq!(
            run(&s, "TYPE streamon:p:app:dns:state:x"),
            Reply::Simple("hash".into())
        );
        assert_eq!(run(&s, "TYPE nope"), Reply::Simple("none".into()));
        assert_eq!(run(&s, "DBSIZE"), Reply::Integer(5));
        assert_eq!(
            run(&s, "HGETALL streamon:p:app:dns:state:x"),
            bulk_array([b"state".to_vec(), b"alert".to_vec()])
        );
        assert_eq!(run(&s, "HGETALL nope"), Reply::Array(Some(vec![])));
        assert_eq!(run(&s, "GET"), wrong_arity("get"));
        assert_eq!(execute(&s, &[b"QUIT".to_vec()]).1, After::Close);
    }

    #[test]
    fn writes_are_refused_and_unknown_commands_reported() {
        let s = state();
        for cmd in ["SET a b", "del a", "FLUSHALL", "HSET h f v", "IncrBy a 1"] {
            assert!(
                matches!(run(&s, cmd), Reply::Error(e) if e.starts_with("READONLY")),
                "{cmd}"
            );
        }
        assert_eq!(
            run(&s, "FOO bar"),
            Reply::err("ERR unknown command 'FOO', with args beginning with: 'bar' ")
        );
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn keys_pattern() {
        let s = state();
        let Reply::Array(Some(mut keys)) = run(&s, "KEYS streamon:*:ip:192.0.2.*") else {
            panic!()
        };
        keys.sort_by_key(|r| r.to_string());
        assert_eq!(
            keys,
            [
                Reply::bulk("streamon:p:ip:192.0.2.1:bytes"),
                Reply::bulk("streamon:p:ip:192.0.2.2:bytes")
            ]
        );
    }

    #[test]
    fn scan_returns_every_key_once() {
        let s = MemoryState::new();
        for i in 0..1000 {
            s.set(format!("k{i}"), "x");
        }
        let mut cursor = "0".to_string();
        let mut seen = std::collections::HashSet::new();
        let mut calls = 0;
        loop {
            let r = run(&s, &format!("SCAN {cursor} MATCH k1* COUNT 50"));
            let Reply::Array(Some(parts)) = r else {
                panic!()
            };
            let Reply::Bulk(Some(c)) = &parts[0] else {
                panic!()
            };
            let Reply::Array(Some(keys)) = &parts[1] else {
                panic!()
            };
            for k in keys {
                assert!(seen.insert(k.to_string()), "duplicate {k}");
            }
            cursor = String::from_utf8(c.clone()).unwrap();
            calls += 1;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 111); // k1, k10..k19, k100..k199
        assert_eq!(calls, 20);
        assert_eq!(run(&s, "SCAN x"), Reply::err("ERR invalid cursor"));
        assert_eq!(run(&s, "SCAN 0 COUNT 0"), Reply::err("ERR syntax error"));
        assert_eq!(run(&s, "SCAN 0 MATCH"), Reply::err("ERR syntax error"));
    }
}
