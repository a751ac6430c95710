//! Live capture on a veth pair in a network namespace made by the test,
//! fed by `tcpreplay` with real captures from `shared/traces`: every frame
//! `tcpreplay` says it sent is either read from the ring or counted as a
//! kernel drop, and what is read is the capture file, frame for frame,
//! byte for byte (the VLAN tag the kernel takes off put back).
//!
//! Needs root (CI runs as root); otherwise each test prints
//! "skipped: needs root" and returns.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use streamon_capture::testbed::{is_root, Replayed, Testbed};
use streamon_capture::{BpfProgram, Capture, CaptureConfig, CaptureStats};
use streamon_packet::pcap::PcapSource;

fn trace(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces")).join(name)
}

fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    println!("{test}: skipped: needs root (network namespace, AF_PACKET)");
    false
}

/// The frames of a capture file, in order.
fn file_frames(name: &str) -> Vec<Vec<u8>> {
    let mut src = PcapSource::open(trace(name)).expect("trace opens");
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().expect("trace reads") {
        out.push(f.data.to_vec());
    }
    out
}

/// Reads `cap` until `stop` is set and nothing arrived for 300 ms (the
/// kernel hands a partly filled block over after its 10 ms timeout).
fn drain(cap: &mut Capture, stop: &AtomicBool) -> Vec<(Vec<u8>, u64)> {
    let mut frames = Vec::new();
    let mut idle_since = Instant::now();
    loop {
        match cap
            .next_block(Duration::from_millis(20))
            .expect("ring reads")
        {
            Some(mut b) => {
                while let Some(f) = b.next_frame() {
                    frames.push((f.data.to_vec(), f.ts_ns));
                }
                idle_since = Instant::now();
            }
            None => {
                if stop.load(Ordering::Acquire) && idle_since.elapsed() > Duration::from_millis(300)
                {
                    return frames;
                }
            }
        }
    }
}

/// Opens a capture on the testbed's `rx` in a thread inside the namespace,
/// replays `file` with `opts`, and returns what was sent, read, counted.
/// With `read_late` the reader only starts once the replay is over (so a
/// small ring must overflow).
fn replay_and_capture(
    bed: &Arc<Testbed>,
    file: &str,
    opts: &[&str],
    config: CaptureConfig,
    read_late: bool,
) -> (Replayed, Vec<(Vec<u8>, u64)>, CaptureStats) {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let reader = {
        let (bed, stop) = (bed.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut cap = bed
                .capture(&config)
                .expect("capture opens in the namespace");
            ready_tx.send(()).expect("main waits");
            if read_late {
                go_rx.recv().expect("main says go");
            }
            let frames = drain(&mut cap, &stop);
            let stats = cap.stats().expect("PACKET_STATISTICS");
            (frames, stats)
        })
    };
    ready_rx.recv().expect("reader ready");
    let sent = bed.replay(&trace(file), opts).expect("tcpreplay runs");
    stop.store(true, Ordering::Release);
    let _ = go_tx.send(());
    let (frames, stats) = reader.join().expect("reader thread");
    (sent, frames, stats)
}

#[test]
fn every_replayed_frame_is_read_or_counted_and_equals_the_file() {
    if !root_or_skip("every_replayed_frame_is_read_or_counted_and_equals_the_file") {
        return;
    }
    let bed = Arc::new(Testbed::new("a").expect("testbed"));
    // ndpi_dns.pcap has 802.1Q-tagged frames: the tag comes back.
    for file in [
        "ndpi_dns.pcap",
        "ndpi_synscan.pcap",
        "dstreamon_dos.pcap",
        "zeek_wikipedia.pcap",
    ] {
        let want = file_frames(file);
        let (sent, frames, stats) = replay_and_capture(
            &bed,
            file,
            &["--pps=20000"],
            CaptureConfig::default(),
            false,
        );
        assert_eq!(sent.failed, 0, "{file}: tcpreplay failed to send some");
        assert_eq!(
            sent.sent,
            want.len() as u64,
            "{file}: tcpreplay sent the whole file"
        );
        assert_eq!(
            stats.frames + stats.kernel_drops,
            sent.sent,
            "{file}: received + dropped = sent ({stats:?})"
        );
        assert_eq!(stats.kernel_packets, sent.sent, "{file}: {stats:?}");
        assert_eq!(stats.ring_errors, 0);
        assert_eq!(stats.frames, frames.len() as u64);
        if stats.kernel_drops == 0 {
            for (i, (got, want)) in frames.iter().zip(&want).enumerate() {
                assert_eq!(&got.0, want, "{file}: frame {} differs", i + 1);
            }
            assert!(
                frames.windows(2).all(|w| w[0].1 <= w[1].1),
                "kernel times in order"
            );
        } else {
            println!(
                "{file}: {} kernel drops at 20 kpps; frames not compared",
                stats.kernel_drops
            );
        }
        if file == "ndpi_dns.pcap" {
            assert_eq!(stats.vlan_restored, 2, "{stats:?}");
        }
    }
}

#[test]
fn an_overflowing_ring_counts_every_drop() {
    if !root_or_skip("an_overflowing_ring_counts_every_drop") {
        return;
    }
    let bed = Arc::new(Testbed::new("b").expect("testbed"));
    // Two 64 KiB blocks and a reader that starts after the replay: most of
    // the 2.8 MB trace cannot fit and must show up as drops.
    let config = CaptureConfig {
        block_size: 64 << 10,
        block_count: 2,
        ..CaptureConfig::default()
    };
    let (sent, frames, stats) = replay_and_capture(
        &bed,
        "sddos_synflood_spoofed.pcap",
        &["--topspeed"],
        config,
        true,
    );
    assert_eq!(sent.failed, 0);
    assert!(stats.kernel_drops > 0, "the ring overflowed: {stats:?}");
    assert_eq!(stats.frames + stats.kernel_drops, sent.sent, "{stats:?}");
    assert_eq!(stats.frames, frames.len() as u64);
}

#[test]
fn a_bpf_prefilter_passes_exactly_what_it_matches() {
    if !root_or_skip("a_bpf_prefilter_passes_exactly_what_it_matches") {
        return;
    }
    // `tcpdump -ddd -y EN10MB tcp`
    let tcp = BpfProgram::parse(
        "12\n40 0 0 12\n21 0 2 2048\n48 0 0 23\n21 6 7 6\n21 0 6 34525\n48 0 0 20\n\
         21 3 0 6\n21 0 3 44\n48 0 0 54\n21 0 1 6\n6 0 0 262144\n6 0 0 0\n",
    )
    .expect("program");
    let bed = Arc::new(Testbed::new("c").expect("testbed"));
    let file = "tcpreplay_test.pcap";
    let want: Vec<Vec<u8>> = file_frames(file)
        .into_iter()
        .filter(|f| {
            // untagged IPv4 carrying TCP, or IPv6 with TCP as next header
            (f.len() > 23 && f[12..14] == [0x08, 0x00] && f[23] == 6)
                || (f.len() > 20 && f[12..14] == [0x86, 0xdd] && f[20] == 6)
        })
        .collect();
    assert!(!want.is_empty() && want.len() < file_frames(file).len());
    let config = CaptureConfig {
        filter: Some(tcp),
        ..CaptureConfig::default()
    };
    let (sent, frames, stats) = replay_and_capture(&bed, file, &["--pps=20000"], config, false);
    assert_eq!(sent.failed, 0);
    assert_eq!(stats.kernel_drops, 0, "{stats:?}");
    let got: Vec<Vec<u8>> = frames.into_iter().map(|f| f.0).collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
}

#[test]
fn fanout_members_split_by_flow_and_account_for_everything() {
    if !root_or_skip("fanout_members_split_by_flow_and_account_for_everything") {
        return;
    }
    let bed = Arc::new(Testbed::new("d").expect("testbed"));
    let stop = Arc::new(AtomicBool::new(false));
    let members = 2;
    let (ready_tx, ready_rx) = mpsc::channel();
    let group = (std::process::id() & 0xffff) as u16;
    // Open the group in one thread inside the namespace, then read each
    // member on its own thread (a socket keeps its namespace).
    let caps = {
        let bed = bed.clone();
        std::thread::spawn(move || {
            bed.enter().expect("setns");
            Capture::open_fanout(&bed.rx, &CaptureConfig::default(), members, group)
        })
        .join()
        .expect("opener")
        .expect("fanout opens")
    };
    let readers: Vec<_> = caps
        .into_iter()
        .map(|mut cap| {
            let (stop, ready_tx) = (stop.clone(), ready_tx.clone());
            std::thread::spawn(move || {
                ready_tx.send(()).expect("main waits");
                let frames = drain(&mut cap, &stop);
                (frames, cap.stats().expect("stats"))
            })
        })
        .collect();
    for _ in 0..members {
        ready_rx.recv().expect("ready");
    }
    let file = "ndpi_gnutella.pcap";
    let sent = bed
        .replay(&trace(file), &["--pps=20000"])
        .expect("tcpreplay");
    stop.store(true, Ordering::Release);
    let mut total = CaptureStats::default();
    let mut per_member = Vec::new();
    for r in readers {
        let (frames, stats) = r.join().expect("reader");
        total.add(&stats);
        per_member.push(frames);
    }
    assert_eq!(total.frames + total.kernel_drops, sent.sent, "{total:?}");
    assert!(
        per_member.iter().all(|m| !m.is_empty()),
        "both members got flows: {:?}",
        per_member.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // A flow (the unordered IPv4 address pair and ports of TCP/UDP) lands
    // on one member only.
    let flow = |f: &[u8]| -> Option<Vec<u8>> {
        if f.len() < 38 || f[12..14] != [0x08, 0x00] || (f[23] != 6 && f[23] != 17) {
            return None;
        }
        let ihl = usize::from(f[14] & 0xf) * 4;
        let l4 = 14 + ihl;
        if f.len() < l4 + 4 || u16::from_be_bytes([f[20], f[21]]) & 0x3fff != 0 {
            return None;
        }
        let a = [&f[26..30], &f[l4..l4 + 2]].concat();
        let b = [&f[30..34], &f[l4 + 2..l4 + 4]].concat();
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        Some([vec![f[23]], lo, hi].concat())
    };
    let mut owner = std::collections::HashMap::new();
    for (m, frames) in per_member.iter().enumerate() {
        for (f, _) in frames {
            if let Some(k) = flow(f) {
                let prev = owner.insert(k.clone(), m);
                assert!(
                    prev.is_none() || prev == Some(m),
                    "flow {k:?} on two members"
                );
            }
        }
    }
    assert!(owner.len() > 1);
}
