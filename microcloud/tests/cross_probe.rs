//! Two probes and a monitoring application around one MicroCloud node, at
//! the crate level (the probe-level version, with apps on traces, is part
//! of the probe integration): probe A learns a user-to-IP mapping and
//! publishes it; probe B, seeing the same host's flows, finds the user
//! through its lookup channel; a monitoring app selects the host's keys on
//! every probe with one pattern, and deferred deletion removes the mapping
//! later.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::{eventually, RedisProc};
use redis::Commands;
use streamon_microcloud::names;
use streamon_microcloud::{Lookup, LookupConfig, Persistence, Writer, WriterConfig};

#[test]
fn probe_b_correlates_with_what_probe_a_learned() {
    let redis = RedisProc::start();
    let host = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let a = Writer::start(&redis.url(), WriterConfig::default()).unwrap();
    let b = Writer::start(&redis.url(), WriterConfig::default()).unwrap();

    // Probe A: a RADIUS login binds the user to the address (persistent).
    let user_key = names::host_metric("radius-a", host, "user");
    a.set(user_key.as_str(), "alice", Persistence::Persistent);
    assert!(a.wait_idle(Duration::from_secs(5)));

    // Probe B: sees DNS traffic of the same host, counts it (volatile),
    // and asks the MicroCloud who the host is.
    let vol = Persistence::Volatile(Duration::from_secs(30));
    for _ in 0..10 {
        b.incr_by(
            names::host_metric("dns-b", host, "dns.queries").into_string(),
            1,
            vol,
        );
    }
    let mut lookup = Lookup::new(&redis.url(), LookupConfig::default()).unwrap();
    let user = lookup.get(user_key.as_str()).unwrap();
    assert_eq!(user.as_deref(), Some(&b"alice"[..]));
    b.hset(
        names::host("dns-b", host).into_string(),
        "user",
        user.unwrap(),
        vol,
    );
    assert!(b.wait_idle(Duration::from_secs(5)));

    // A monitoring application: everything about the host, on any probe.
    let mut app = redis.conn();
    let mut keys: Vec<String> = app.keys(names::host_pattern_all_probes(host)).unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "streamon:dns-b:ip:192.0.2.7:dns.queries",
            "streamon:radius-a:ip:192.0.2.7:user"
        ]
    );
    let q: i64 = app.get("streamon:dns-b:ip:192.0.2.7:dns.queries").unwrap();
    assert_eq!(q, 10);
    let u: String = app.hget("streamon:dns-b:ip:192.0.2.7", "user").unwrap();
    assert_eq!(u, "alice");

    // Probe A: the user logs out; the mapping is marked for deferred
    // deletion, so B can still resolve flows for a while, then it is gone.
    a.expire(user_key.as_str(), Duration::from_millis(300));
    assert!(a.wait_idle(Duration::from_secs(5)));
    let ttl: i64 = app.pttl(user_key.as_str()).unwrap();
    assert!(ttl > 0 && ttl <= 300, "{ttl}");
    assert!(eventually(Duration::from_secs(5), || {
        !app.exists::<_, bool>(user_key.as_str()).unwrap()
    }));
    // DEL for explicit removal.
    b.del(names::host("dns-b", host).into_string());
    assert!(b.wait_idle(Duration::from_secs(5)));
    assert!(!app
        .exists::<_, bool>("streamon:dns-b:ip:192.0.2.7")
        .unwrap());
}
