//! The probe's Redis-protocol server, queried with the `redis` crate, the
//! real `redis-cli`, and raw TCP for malformed input.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Commands;
use streamon_microcloud::names;
use streamon_microcloud::{MemoryState, RespServer, ServerConfig};

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn probe_state() -> Arc<MemoryState> {
    let s = MemoryState::new();
    for d in 1..=3 {
        s.set(
            names::host_metric("edge-1", ip(192, 0, 2, d), "bytes").into_string(),
            (d as u32 * 100).to_string(),
        );
    }
    s.set(
        names::host_metric("edge-2", ip(192, 0, 2, 9), "bytes").into_string(),
        "5",
    );
    s.set(
        names::host_metric("edge-1", ip(198, 51, 100, 1), "bytes").into_string(),
        "7",
    );
    s.set_volatile(
        names::host_metric("edge-1", ip(192, 0, 2, 1), "user").into_string(),
        "alice",
        Duration::from_secs(60),
    );
    s.hset(
        names::app_state("edge-1", "dns_storm", "192.0.2.1").into_string(),
        "state",
        "alert",
    );
    s.hset(
        names::app_state("edge-1", "dns_storm", "192.0.2.1").into_string(),
        "since",
        "1700000000",
    );
    Arc::new(s)
}

fn server(config: ServerConfig) -> RespServer {
    RespServer::start("127.0.0.1:0", probe_state(), config).unwrap()
}

fn client(srv: &RespServer) -> redis::Connection {
    redis::Client::open(format!("redis://{}/", srv.local_addr()))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

const SELECTED: [&str; 5] = [
    "streamon:edge-1:ip:192.0.2.1:bytes",
    "streamon:edge-1:ip:192.0.2.1:user",
    "streamon:edge-1:ip:192.0.2.2:bytes",
    "streamon:edge-1:ip:192.0.2.3:bytes",
    "streamon:edge-2:ip:192.0.2.9:bytes",
];

#[test]
fn answers_the_redis_crate() {
    let srv = server(ServerConfig::default());
    let mut c = client(&srv);
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let echo: String = redis::cmd("ECHO").arg("hi").query(&mut c).unwrap();
    assert_eq!(echo, "hi");
    let mut keys: Vec<String> = c.keys("streamon:*:ip:192.0.2.*").unwrap();
    keys.sort();
    assert_eq!(keys, SELECTED);
    let v: i64 = c.get("streamon:edge-1:ip:192.0.2.2:bytes").unwrap();
    assert_eq!(v, 200);
    let mv: Vec<Option<String>> = c
        .mget(&[
            "streamon:edge-1:ip:192.0.2.1:user",
            "nope",
            "streamon:edge-2:ip:192.0.2.9:bytes",
        ])
        .unwrap();
    assert_eq!(mv, [Some("alice".to_string()), None, Some("5".to_string())]);
    let n: i64 = redis::cmd("EXISTS")
        .arg("nope")
        .arg("streamon:edge-1:ip:192.0.2.1:user")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    let ttl: i64 = c.ttl("streamon:edge-1:ip:192.0.2.1:user").unwrap();
    assert!((59..=60).contains(&ttl), "{ttl}");
    let ttl: i64 = c.ttl("streamon:edge-1:ip:192.0.2.1:bytes").unwrap();
    assert_eq!(ttl, -1);
    let ttl: i64 = c.ttl("nope").unwrap();
    assert_eq!(ttl, -2);
    let app = "streamon:edge-1:app:dns_storm:state:192.0.2.1";
    let h: std::collections::HashMap<String, String> = c.hgetall(app).unwrap();
    assert_eq!(h["state"], "alert");
    assert_eq!(h["since"], "1700000000");
    let t: String = redis::cmd("TYPE").arg(app).query(&mut c).unwrap();
    assert_eq!(t, "hash");
    let wrong: redis::RedisResult<String> = c.get(app);
    assert_eq!(wrong.unwrap_err().code(), Some("WRONGTYPE"));
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 7);
    let count: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut c).unwrap();
    assert!(count > 10);
    let mut scanned: Vec<String> = c
        .scan_match::<_, String>("streamon:*:ip:192.0.2.*")
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    scanned.sort();
    assert_eq!(scanned, SELECTED);
}

#[test]
fn writes_are_refused_and_unknown_commands_reported() {
    let srv = server(ServerConfig::default());
    let mut c = client(&srv);
    let e = c.set::<_, _, ()>("streamon:x", "1").unwrap_err();
    assert_eq!(e.code(), Some("READONLY"), "{e}");
    let e = redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap_err();
    assert_eq!(e.code(), Some("READONLY"));
    let e = c
        .del::<_, ()>("streamon:edge-1:ip:192.0.2.1:bytes")
        .unwrap_err();
    assert_eq!(e.code(), Some("READONLY"));
    let e = redis::cmd("FROBNICATE")
        .arg("x")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string().contains("unknown command 'FROBNICATE'"),
        "{e}"
    );
    // The connection is still usable, and nothing changed.
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 7);
    assert!(srv.stats().refused_writes >= 3);
}

fn redis_cli(srv: &RespServer, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &srv.local_addr().port().to_string(),
        ])
        .args(args)
        .output()
        .expect(
            "redis-cli not found: install the Debian package redis-tools (scripts/test.sh does)",
        );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn answers_redis_cli() {
    let srv = server(ServerConfig::default());
    let out = redis_cli(&srv, &["KEYS", "streamon:*:ip:192.0.2.*"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, SELECTED);
    assert_eq!(
        redis_cli(&srv, &["GET", "streamon:edge-1:ip:192.0.2.3:bytes"]).trim(),
        "300"
    );
    assert_eq!(redis_cli(&srv, &["PING"]).trim(), "PONG");
    assert!(redis_cli(&srv, &["SET", "a", "b"]).contains("READONLY"));
    let scan = redis_cli(&srv, &["--scan", "--pattern", "streamon:edge-2:*"]);
    assert_eq!(scan.trim(), "streamon:edge-2:ip:192.0.2.9:bytes");
}

/// Sends `input` on a fresh connection, then reads until the server
/// closes (or 5 s pass): returns what came back and whether it closed.
fn raw(srv: &RespServer, input: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(srv.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // The server may close before taking everything: ignore write errors.
    let _ = s.write_all(input);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(5);
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) if Instant::now() < end => {}
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[test]
fn malformed_input_gets_an_error_and_a_closed_connection() {
    let srv = server(ServerConfig::default());
    let cases: &[(&[u8], &str)] = &[
        (
            b"*-1\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*2000000\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$99999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2\r\n$3\r\nGET\r\n:1\r\n",
            "-ERR Protocol error: expected ':', got ':'\r\n",
        ),
        (
            b"*1\r\n$4\r\nPINGxx",
            "-ERR Protocol error: bulk string not terminated by CRLF\r\n",
        ),
        // Valid pipelined commands, then garbage: answers, then an error.
        (
            b"PING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*\x00\xff\r\n",
            "+PONG\r\n+PONG\r\n$2\r\nhi\r\n-ERR Protocol error: invalid multibulk length\r\n",
        ),
    ];
    for (input, want) in cases {
        let want = want.replace("expected ':'", "expected '$'");
        let (got, closed) = raw(&srv, input);
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
        assert!(
            closed,
            "{:?} left the connection open",
            String::from_utf8_lossy(input)
        );
    }
    // An endless inline line: cut off at 64 KiB, not buffered forever.
    let (got, closed) = raw(&srv, &vec![b'a'; 200 * 1024]);
    assert_eq!(got, "-ERR Protocol error: too big inline request\r\n");
    assert!(closed);
    // Inline commands work.
    let (got, _) = raw(&srv, b"PING\r\nQUIT\r\n");
    assert_eq!(got, "+PONG\r\n+OK\r\n");
    assert!(srv.stats().protocol_errors >= 9);
    // The server is still fine.
    let pong: String = redis::cmd("PING").query(&mut client(&srv)).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn query_buffer_and_connection_limits() {
    let srv = server(ServerConfig {
        max_query_buffer: 8 * 1024,
        max_connections: 2,
        idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    });
    // A declared-valid 60 KB argument does not fit an 8 KiB buffer.
    let mut big = b"*2\r\n$4\r\nECHO\r\n$60000\r\n".to_vec();
    big.extend(vec![b'x'; 20_000]);
    let (got, closed) = raw(&srv, &big);
    assert_eq!(got, "-ERR Protocol error: query buffer overflow\r\n");
    assert!(closed);

    // Idle connections are closed.
    let mut idle = TcpStream::connect(srv.local_addr()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    assert_eq!(idle.read(&mut [0u8; 16]).unwrap_or(0), 0);
    assert!(t.elapsed() < Duration::from_secs(3));

    // At most two connections at once (once the closed ones are gone).
    let end = Instant::now() + Duration::from_secs(5);
    while srv.active_connections() > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut a = client(&srv);
    let mut b = client(&srv);
    let (got, closed) = raw(&srv, b"PING\r\n");
    assert_eq!(got, "-ERR max number of clients reached\r\n");
    assert!(closed);
    let _: String = redis::cmd("PING").query(&mut a).unwrap();
    let _: String = redis::cmd("PING").query(&mut b).unwrap();
    assert!(srv.stats().refused_connections >= 1);
    assert!(srv.stats().idle_closes >= 1);
}
