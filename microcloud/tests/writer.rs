//! The writer channel against a real `redis-server` (one per test).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::{eventually, RedisProc};
use redis::Commands;
use streamon_microcloud::names;
use streamon_microcloud::{Persistence, Writer, WriterConfig};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

#[test]
fn persistent_and_volatile_keys() {
    let redis = RedisProc::start();
    let mut c = redis.conn();
    let w = Writer::start(&redis.url(), WriterConfig::default()).unwrap();
    let user = names::host_metric("edge-1", ip(7), "user");
    let bytes = names::host_metric("edge-1", ip(7), "bytes");
    let rtt = names::host_metric("edge-1", ip(7), "rtt_ms");
    let host = names::host("edge-1", ip(7));
    let vol = Persistence::Volatile(Duration::from_millis(1500));
    assert!(w.set(user.as_str(), "alice", Persistence::Persistent));
    assert!(w.incr_by(bytes.as_str(), 100, vol));
    assert!(w.incr_by_float(rtt.as_str(), 1.5, vol));
    assert!(w.hset(host.as_str(), "os", "linux", vol));
    assert!(w.wait_idle(Duration::from_secs(5)));

    let got: String = c.get(user.as_str()).unwrap();
    assert_eq!(got, "alice");
    let ttl: i64 = c.ttl(user.as_str()).unwrap();
    assert_eq!(ttl, -1, "persistent key has no TTL");
    for k in [&bytes, &rtt, &host] {
        let pttl: i64 = c.pttl(k.as_str()).unwrap();
        assert!(pttl > 0 && pttl <= 1500, "{k}: {pttl}");
    }
    let rtt_v: f64 = c.get(rtt.as_str()).unwrap();
    assert_eq!(rtt_v, 1.5);
    let os: String = c.hget(host.as_str(), "os").unwrap();
    assert_eq!(os, "linux");

    // Every update refreshes the TTL.
    std::thread::sleep(Duration::from_millis(700));
    let before: i64 = c.pttl(bytes.as_str()).unwrap();
    assert!(before <= 800, "{before}");
    w.incr_by(bytes.as_str(), 1, vol);
    assert!(w.wait_idle(Duration::from_secs(5)));
    let after: i64 = c.pttl(bytes.as_str()).unwrap();
    assert!(after > 1000, "TTL refreshed: {after}");
    let v: i64 = c.get(bytes.as_str()).unwrap();
    assert_eq!(v, 101);

    // Without updates volatile keys vanish, persistent ones stay.
    assert!(eventually(Duration::from_secs(4), || {
        !c.exists::<_, bool>(rtt.as_str()).unwrap() && !c.exists::<_, bool>(host.as_str()).unwrap()
    }));
    assert!(eventually(Duration::from_secs(4), || {
        !c.exists::<_, bool>(bytes.as_str()).unwrap()
    }));
    assert!(c.exists::<_, bool>(user.as_str()).unwrap());

    // The keys are selectable with the documented pattern.
    let keys: Vec<String> = c.keys("streamon:*:ip:192.0.2.*").unwrap();
    assert_eq!(keys, vec![user.into_string()]);
    let s = w.stats();
    assert_eq!((s.enqueued, s.written, s.rejected), (5, 5, 0));
}

#[test]
fn publish_reaches_subscribers() {
    let redis = RedisProc::start();
    let mut sub_conn = redis.conn();
    let mut sub = sub_conn.as_pubsub();
    let chan = names::app_events("edge-1", "dns_storm");
    sub.subscribe(chan.as_str()).unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let w = Writer::start(&redis.url(), WriterConfig::default()).unwrap();
    w.publish(chan.as_str(), "alert 192.0.2.7");
    let msg = sub.get_message().unwrap();
    assert_eq!(msg.get_channel_name(), chan.as_str());
    assert_eq!(msg.get_payload::<String>().unwrap(), "alert 192.0.2.7");
}

/// Parses `cmdstat_<name>:calls=N,...` from `INFO commandstats`.
fn calls(c: &mut redis::Connection, name: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    let prefix = format!("cmdstat_{name}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn batching_uses_fewer_round_trips_than_writes() {
    let redis = RedisProc::start();
    let mut c = redis.conn();
    let w = Writer::start(
        &redis.url(),
        WriterConfig {
            batch_max_ops: 500,
            flush_interval: Duration::from_millis(5),
            ..WriterConfig::default()
        },
    )
    .unwrap();
    let n = 20_000;
    for i in 0..n {
        let k = names::host_metric("edge-1", ip((i % 200) as u8), "pkts");
        assert!(w.incr_by(k.into_string(), 1, Persistence::Persistent));
    }
    assert!(w.wait_idle(Duration::from_secs(20)));
    let s = w.stats();
    assert_eq!(s.written, n);
    assert_eq!(s.dropped_full + s.dropped_down, 0);
    assert!(s.batches * 10 <= s.written, "{s:?}");
    // Redis executed every command, in far fewer round trips.
    assert_eq!(calls(&mut c, "incrby"), n);
    let total: i64 = (0..200u8)
        .map(|i| {
            c.get::<_, i64>(names::host_metric("edge-1", ip(i), "pkts").as_str())
                .unwrap()
        })
        .sum();
    assert_eq!(total, n as i64);
    println!("{n} writes in {} round trips", s.batches);
}

#[test]
fn commands_redis_refuses_are_counted_and_do_not_stall_the_batch() {
    let redis = RedisProc::start();
    let mut c = redis.conn();
    let _: () = c.set("streamon:x:notanumber", "abc").unwrap();
    let w = Writer::start(&redis.url(), WriterConfig::default()).unwrap();
    w.incr_by("streamon:x:notanumber", 1, Persistence::Persistent);
    w.set("streamon:x:after", "ok", Persistence::Persistent);
    assert!(w.wait_idle(Duration::from_secs(5)));
    let s = w.stats();
    assert_eq!((s.written, s.rejected), (2, 1));
    let v: String = c.get("streamon:x:after").unwrap();
    assert_eq!(v, "ok");
}

#[test]
fn redis_down_and_back_up() {
    let mut redis = RedisProc::start();
    let w = Writer::start(
        &redis.url(),
        WriterConfig {
            queue_capacity: 1000,
            retry_buffer_ops: 2000,
            backoff_min: Duration::from_millis(5),
            backoff_max: Duration::from_millis(100),
            io_timeout: Duration::from_millis(300),
            ..WriterConfig::default()
        },
    )
    .unwrap();
    w.set("streamon:t:before", "1", Persistence::Persistent);
    assert!(w.wait_idle(Duration::from_secs(5)));
    assert!(w.is_connected());

    redis.stop();
    // Keep writing while Redis is gone: submit never blocks.
    let mut slowest = Duration::ZERO;
    let t0 = Instant::now();
    for i in 0..50_000 {
        let t = Instant::now();
        w.incr_by(
            format!("streamon:t:down:{}", i % 100),
            1,
            Persistence::Persistent,
        );
        slowest = slowest.max(t.elapsed());
        if i % 5000 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let elapsed = t0.elapsed();
    assert!(
        slowest < Duration::from_millis(100),
        "slowest submit {slowest:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(eventually(Duration::from_secs(5), || w.stats().retries >= 2));
    let down = w.stats();
    assert!(down.dropped_down + down.dropped_full > 0, "{down:?}");
    assert!(w.retry_buffered() <= 2000);
    assert!(!w.is_connected());

    redis.restart();
    w.set("streamon:t:after", "2", Persistence::Persistent);
    let mut c = redis.conn();
    assert!(eventually(Duration::from_secs(10), || {
        c.get::<_, Option<String>>("streamon:t:after")
            .unwrap()
            .as_deref()
            == Some("2")
    }));
    assert!(w.wait_idle(Duration::from_secs(10)));
    let s = w.stats();
    assert_eq!(s.enqueued, s.written + s.dropped_down, "{s:?}");
    assert_eq!(s.enqueued + s.dropped_full, 50_002);
    assert!(s.connects >= 2);
    // What survived in the retry buffer was written after the restart.
    let kept: i64 = (0..100)
        .map(|i| {
            c.get::<_, Option<i64>>(format!("streamon:t:down:{i}"))
                .unwrap()
                .unwrap_or(0)
        })
        .sum();
    assert!(kept > 0, "retry buffer replayed");
    println!("down: {s:?}, replayed {kept} increments");
}

#[test]
fn hung_redis_does_not_block_the_producer() {
    let redis = RedisProc::start();
    let w = Writer::start(
        &redis.url(),
        WriterConfig {
            queue_capacity: 100,
            retry_buffer_ops: 100,
            io_timeout: Duration::from_millis(200),
            ..WriterConfig::default()
        },
    )
    .unwrap();
    w.set("streamon:h:a", "1", Persistence::Persistent);
    assert!(w.wait_idle(Duration::from_secs(5)));
    redis.pause(true);
    let t0 = Instant::now();
    for i in 0..20_000 {
        w.set(format!("streamon:h:{i}"), "x", Persistence::Persistent);
    }
    // Redis hangs for the whole loop (io_timeout 200 ms per round trip).
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let s = w.stats();
    assert!(s.dropped_full > 0, "{s:?}");
    redis.pause(false);
    // The queue may still be full for a moment: retry until accepted.
    assert!(eventually(Duration::from_secs(10), || {
        w.set("streamon:h:z", "1", Persistence::Persistent)
    }));
    let mut c = redis.conn();
    assert!(eventually(Duration::from_secs(10), || {
        c.exists::<_, bool>("streamon:h:z").unwrap()
    }));
}
