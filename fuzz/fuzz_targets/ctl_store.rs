//! Arbitrary bytes as the controller's `events.jsonl` (what a crash, a
//! full disk or an editor can leave in its data directory), read back by
//! `EventStore::open` and then through the index by `StoreReader`.
//!
//! Opening must never panic and, the file being readable, must succeed:
//! a line that is not an event is counted as corrupt and skipped; the recent
//! lists respect their bounds; reading from any id works on what open
//! left.
//!
//! ```text
//! cargo +nightly fuzz run ctl_store -- -max_total_time=300
//! ```
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use streamon_ctl::store::{EventStore, RECENT_ALERTS, RECENT_EVENTS};

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d =
            std::env::temp_dir().join(format!("streamon-fuzz-ctl-store-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    let _ = std::fs::remove_file(d.join("state.json"));
    std::fs::write(d.join("events.jsonl"), data).expect("write events.jsonl");
    // The file is there and readable: whatever it holds, the store opens
    // (a bad line is counted and skipped, not a reason to refuse to start).
    let (mut store, loaded) = EventStore::open(d, 4).expect("any events.jsonl opens");
    assert!(loaded.recent.len() <= RECENT_EVENTS);
    assert!(loaded.alerts.len() <= RECENT_ALERTS);
    assert!(loaded.recent.iter().all(|e| e.id >= 1));
    let reader = store.read_handle();
    let first = loaded.recent.front().map_or(1, |e| e.id);
    for from in [0, 1, first, u64::MAX] {
        if let Ok(evs) = reader.read_from(from, 8) {
            assert!(evs.len() <= 8);
            assert!(evs.iter().all(|e| e.id >= from));
        }
    }
    let ev = store.append(loaded.recent.back().cloned().unwrap_or_else(|| {
        serde_json::from_str(
            r#"{"id":0,"received_ms":0,"probe":"p","app":"a","topic":"t","key":"","code":"","level":"","text":"","state_to":"","ts":0,"seq":0,"features":{}}"#,
        )
        .expect("event")
    }));
    assert!(
        ev.id > loaded.recent.back().map_or(0, |e| e.id),
        "ids go on growing"
    );
    store.close();
});
