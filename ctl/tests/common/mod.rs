//! Helpers shared by the controller's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use streamon_bus::curve::KeyPair;
use streamon_packet::pcap::PcapSource;
use streamon_probe::{sw_engine, OutputEvent, Probe, RuntimeOptions, VecSink};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A capture of `shared/traces`.
pub fn trace(name: &str) -> PathBuf {
    root().join("../shared/traces").join(name)
}

/// A shipped application's program.
pub fn app(name: &str) -> String {
    std::fs::read_to_string(root().join("apps").join(format!("{name}.xml")))
        .unwrap_or_else(|e| panic!("reading apps/{name}.xml: {e}"))
}

/// A fresh key pair.
pub fn keys() -> KeyPair {
    KeyPair::generate().expect("libzmq with CURVE")
}

/// Polls `cond` every 20 ms for up to `secs` seconds.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// Runs `app` offline over a capture, as a probe would: the events it
/// emits, for comparison with what reaches the controller.
pub fn offline(app_name: &str, capture: &str) -> Vec<OutputEvent> {
    let mut probe = Probe::new();
    probe
        .install(
            app_name,
            &app(app_name),
            &format!("{app_name}.xml"),
            &sw_engine,
            RuntimeOptions {
                allow_exec: false,
                probe_id: "offline".into(),
                store: None,
                live_keys: 0,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sink = VecSink::default();
    let mut src = PcapSource::open(trace(capture)).expect("capture");
    let mut n = 0;
    while let Some(f) = src.next_frame().expect("readable capture") {
        n += 1;
        let mut meta = f.meta;
        meta.packet_no = n;
        probe.frame(f.data, f.linktype, meta, &mut sink);
    }
    sink.0
}

/// Copies a capture into a spool directory the way the agent wants it:
/// written elsewhere, renamed in.
pub fn spool(dir: &Path, capture: &str, as_name: &str) {
    let tmp = dir.join(format!(".{as_name}.part"));
    std::fs::copy(trace(capture), &tmp).expect("copy capture");
    std::fs::rename(&tmp, dir.join(as_name)).expect("rename into spool");
}
