//! The lookup channel against a real `redis-server`: cache hits within the
//! staleness bound, timeouts on a hung server, errors on a dead one.

mod common;

use std::time::{Duration, Instant};

use common::RedisProc;
use redis::Commands;
use streamon_microcloud::{Lookup, LookupConfig, LookupError};

#[test]
fn cached_answers_respect_the_staleness_bound() {
    let redis = RedisProc::start();
    let mut c = redis.conn();
    let _: () = c.set("streamon:edge-1:ip:192.0.2.7:user", "alice").unwrap();
    let _: () = c
        .hset("streamon:edge-1:ip:192.0.2.7", "os", "linux")
        .unwrap();
    let ttl = Duration::from_millis(300);
    let mut l = Lookup::new(
        &redis.url(),
        LookupConfig {
            cache_ttl: ttl,
            ..LookupConfig::default()
        },
    )
    .unwrap();
    let key = "streamon:edge-1:ip:192.0.2.7:user";
    assert_eq!(l.get(key).unwrap().as_deref(), Some(&b"alice"[..]));
    let t_read = Instant::now();
    assert_eq!(
        l.hget("streamon:edge-1:ip:192.0.2.7", b"os")
            .unwrap()
            .as_deref(),
        Some(&b"linux"[..])
    );
    assert_eq!(l.get("streamon:nope").unwrap(), None);
    let _: () = c.set(key, "bob").unwrap();
    // Within the bound: the cached (now stale) answer.
    let mut last = Vec::new();
    while t_read.elapsed() < ttl / 2 {
        last = l.get(key).unwrap().unwrap();
    }
    assert_eq!(last, b"alice");
    assert_eq!(l.get("streamon:nope").unwrap(), None);
    // Past it: the new value, never anything older than the bound.
    std::thread::sleep(ttl);
    assert_eq!(l.get(key).unwrap().as_deref(), Some(&b"bob"[..]));
    let s = l.stats();
    assert_eq!(s.misses, 4);
    assert!(s.hits >= 2);
    assert_eq!((s.timeouts, s.errors), (0, 0));
    // invalidate() forgets at once.
    let _: () = c.set(key, "carol").unwrap();
    l.invalidate(key);
    assert_eq!(l.get(key).unwrap().as_deref(), Some(&b"carol"[..]));
}

#[test]
fn hung_redis_times_out_and_dead_redis_fails_fast() {
    let mut redis = RedisProc::start();
    let mut c = redis.conn();
    let _: () = c.set("k", "v").unwrap();
    let timeout = Duration::from_millis(100);
    let mut l = Lookup::new(
        &redis.url(),
        LookupConfig {
            timeout,
            cache_ttl: Duration::ZERO,
            reconnect_backoff: Duration::from_millis(200),
            ..LookupConfig::default()
        },
    )
    .unwrap();
    assert_eq!(l.get("k").unwrap().as_deref(), Some(&b"v"[..]));

    redis.pause(true);
    let t = Instant::now();
    assert!(matches!(l.get("k"), Err(LookupError::Timeout)));
    assert!(t.elapsed() < timeout * 5, "{:?}", t.elapsed());
    // Within the backoff, misses fail at once.
    let t = Instant::now();
    assert!(matches!(l.get("k"), Err(LookupError::Unavailable(None))));
    assert!(t.elapsed() < Duration::from_millis(20));
    redis.pause(false);
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(l.get("k").unwrap().as_deref(), Some(&b"v"[..]));

    let _: () = c.hset("h", "f", "x").unwrap();
    assert!(matches!(l.get("h"), Err(LookupError::Refused(_))));

    redis.stop();
    assert!(matches!(l.get("k"), Err(LookupError::Unavailable(Some(_)))));
    let s = l.stats();
    assert_eq!(s.timeouts, 1);
    assert_eq!(s.errors, 3);
}
