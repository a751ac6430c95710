//! A network namespace holding a veth pair, for tests and benchmarks of
//! live capture: frames sent into one end (`tcpreplay -i TX`) arrive on the
//! other (`RX`), where a capture reads them. Built with `ip` (iproute2),
//! removed on drop. IPv6 is off in the namespace so the kernel sends no
//! router or neighbour solicitations: the only frames on the link are the
//! ones a test sends. Needs root.

use std::path::PathBuf;
use std::process::Command;

use crate::{Capture, CaptureConfig, CaptureError};

/// A namespace with a veth pair `tx` ↔ `rx`, both up, MTU 9000.
#[derive(Debug)]
pub struct Testbed {
    /// Namespace name (`ip netns exec NAME …`).
    pub netns: String,
    /// The end to send on.
    pub tx: String,
    /// The end to capture on.
    pub rx: String,
}

/// Why a testbed could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// A command failed.
    #[error("`{cmd}` failed: {detail}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its standard error, or why it could not start.
        detail: String,
    },
    /// Opening the capture failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// `tcpreplay` printed no packet count.
    #[error("tcpreplay printed no `Successful packets:` line: {0}")]
    ReplayOutput(String),
}

fn run(args: &[&str]) -> Result<String, TestbedError> {
    let cmd = args.join(" ");
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| TestbedError::Command {
            cmd: cmd.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(TestbedError::Command {
            cmd,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What one `tcpreplay` run sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replayed {
    /// `Successful packets:`.
    pub sent: u64,
    /// `Failed packets:`.
    pub failed: u64,
    /// The send rate `tcpreplay` reports (`Rated: … pps`).
    pub pps: f64,
}

/// True when running as root (the testbed needs it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl Testbed {
    /// Creates the namespace and the pair; `tag` keeps names of testbeds
    /// built by one process apart (interface names stay under 16 bytes).
    pub fn new(tag: &str) -> Result<Testbed, TestbedError> {
        let id = format!("{}{tag}", std::process::id() % 100_000);
        let bed = Testbed {
            netns: format!("smcap{id}"),
            tx: format!("smt{id}"),
            rx: format!("smr{id}"),
        };
        run(&["ip", "netns", "add", &bed.netns])?;
        // From here on, Drop removes the namespace (and the pair with it).
        for knob in ["all", "default"] {
            run(&[
                "ip",
                "netns",
                "exec",
                &bed.netns,
                "sh",
                "-c",
                &format!("echo 1 > /proc/sys/net/ipv6/conf/{knob}/disable_ipv6"),
            ])?;
        }
        run(&[
            "ip", "-n", &bed.netns, "link", "add", &bed.tx, "type", "veth", "peer", "name", &bed.rx,
        ])?;
        for dev in [&bed.tx, &bed.rx] {
            run(&[
                "ip", "-n", &bed.netns, "link", "set", dev, "mtu", "9000", "up",
            ])?;
        }
        Ok(bed)
    }

    fn netns_path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.netns)
    }

    /// Moves the calling thread into the namespace (then open captures on
    /// `rx` from it).
    pub fn enter(&self) -> Result<(), TestbedError> {
        crate::sys::enter_netns(&self.netns_path()).map_err(|e| TestbedError::Command {
            cmd: format!("setns {}", self.netns_path().display()),
            detail: e.to_string(),
        })
    }

    /// Enters the namespace on this thread and opens a capture on `rx`.
    pub fn capture(&self, config: &CaptureConfig) -> Result<Capture, TestbedError> {
        self.enter()?;
        Ok(Capture::open(&self.rx, config)?)
    }

    /// Replays `pcap` into `tx` with `tcpreplay` and extra options
    /// (`--topspeed`, `--pps=N`, …); returns what it says it sent.
    pub fn replay(&self, pcap: &std::path::Path, opts: &[&str]) -> Result<Replayed, TestbedError> {
        let file = pcap.display().to_string();
        let intf = format!("--intf1={}", self.tx);
        let mut args = vec!["ip", "netns", "exec", &self.netns, "tcpreplay", &intf];
        args.extend_from_slice(opts);
        args.push(&file);
        let out = run(&args)?;
        let count = |label: &str| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        // "Rated: 1398142.5 Bps, 11.18 Mbps, 2019.40 pps"
        let pps = out
            .lines()
            .find(|l| l.trim_start().starts_with("Rated:"))
            .and_then(|l| l.split(',').find(|p| p.trim_end().ends_with("pps")))
            .and_then(|p| p.trim().trim_end_matches("pps").trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        match (count("Successful packets:"), count("Failed packets:")) {
            (Some(sent), Some(failed)) => Ok(Replayed { sent, failed, pps }),
            _ => Err(TestbedError::ReplayOutput(out)),
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.netns]);
    }
}
