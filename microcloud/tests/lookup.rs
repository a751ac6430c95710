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
    let ttl = Duration::from_millis(1000);
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
    // The cache stored the answer before this instant: its age is at
    // least t_read.elapsed().
    let t_read = Instant::now();
    assert_eq!(
        l.hget("streamon:edge-1:ip:192.0.2.7", b"os")
            .unwrap()
            .as_deref(),
        Some(&b"linux"[..])
    );
    assert_eq!(l.get("streamon:nope").unwrap(), None);
    let _: () = c.set(key, "bob").unwrap();
    // The stale "alice" may be served, but only within the bound; after
    // it, always "bob".
    let mut stale_seen = 0;
    loop {
        let v = l.get(key).unwrap().unwrap();
        let age = t_read.elapsed();
        if v == b"alice" {
            assert!(age < ttl, "stale answer {age:?} after the fetch");
            stale_seen += 1;
        } else {
            assert_eq!(v, b"bob");
            if age > ttl {
                break;
            }
        }
        assert!(age < ttl * 10, "never refreshed");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(stale_seen > 0, "the cache served nothing");
    assert_eq!(l.get("streamon:nope").unwrap(), None);
    let s = l.stats();
    assert!(s.misses >= 4);
    assert!(s.hits >= 1);
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
    let timeout = Duration::from_millis(300);
    let mut l = Lookup::new(
        &redis.url(),
        LookupConfig {
            timeout,
            cache_ttl: Duration::ZERO,
            reconnect_backoff: Duration::from_millis(600),
            ..LookupConfig::default()
        },
    )
    .unwrap();
    assert_eq!(l.get("k").unwrap().as_deref(), Some(&b"v"[..]));

    redis.pause(true);
    let t = Instant::now();
    assert!(matches!(l.get("k"), Err(LookupError::Timeout)));
    // Bounded by the timeout (connect + round trip), though Redis hangs.
    assert!(t.elapsed() < timeout * 4, "{:?}", t.elapsed());
    // Within the backoff, misses fail at once.
    let t = Instant::now();
    assert!(matches!(l.get("k"), Err(LookupError::Unavailable(None))));
    assert!(t.elapsed() < timeout / 2, "{:?}", t.elapsed());
    redis.pause(false);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(l.get("k").unwrap().as_deref(), Some(&b"v"[..]));

    let _: () = c.hset("h", "f", "x").unwrap();
    assert!(matches!(l.get("h"), Err(LookupError::Refused(_))));

    redis.stop();
    assert!(matches!(l.get("k"), Err(LookupError::Unavailable(Some(_)))));
    let s = l.stats();
    assert_eq!(s.timeouts, 1);
    assert_eq!(s.errors, 3);
}
