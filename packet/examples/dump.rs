//! Prints the fields of every packet of a trace, one line each, then the
//! skip and anomaly counts: `cargo run -p streamon-packet --example dump -- FILE`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use streamon_packet::pcap::PcapSource;
use streamon_packet::{parse, Field};

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: dump FILE");
        return ExitCode::from(2);
    };
    let mut src = match PcapSource::open(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("# {path}: {:?}", src.format());
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    loop {
        let frame = match src.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        match parse(frame.data, frame.linktype, frame.meta) {
            Ok(p) => {
                *counts.entry("parsed").or_default() += 1;
                for a in p.anomalies().names() {
                    *counts.entry(a).or_default() += 1;
                }
                let mut line = format!("{} {}", frame.meta.packet_no, frame.meta.ts_ns);
                for &f in Field::ALL {
                    if matches!(f, Field::PacketNo) {
                        continue;
                    }
                    if let Some(v) = p.get(f) {
                        line.push_str(&format!(" {f}={v}"));
                    }
                }
                println!("{line}");
            }
            Err(s) => {
                *counts.entry(s.name()).or_default() += 1;
                println!("{} skip {}", frame.meta.packet_no, s);
            }
        }
    }
    println!("# {} frames; {counts:?}", src.packets_read());
    ExitCode::SUCCESS
}
