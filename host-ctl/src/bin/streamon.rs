//! `streamon`: run monitoring applications on traces, check them, demo.
//!
//! `main` calls `run`, prints the error chain once, and maps errors to exit
//! codes: 2 for bad usage or a program that fails `check`, 1 for anything
//! that went wrong while running (unreadable or truncated trace, …).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use streamon_host_ctl::backend::{Backend, DeviceHealth};
use streamon_host_ctl::live::{self, LiveOptions, LiveSummary};
use streamon_host_ctl::runner::{FrameTarget, MessageFeed, Runner};
use streamon_host_ctl::{replay, tracegen};
use streamon_microcloud::{
    LiveState, LookupConfig, RespServer, ServerConfig, WriterConfig, WriterStats,
};
use streamon_probe::live::{LiveConfig, LiveView};
use streamon_probe::{
    sw_engine, EngineFactory, EventSink, Format, KnowledgeStore, Probe, RuntimeOptions, WriterSink,
};

/// A programmable network-monitoring probe (StreaMon re-created): text
/// applications installed into a running probe; metrics in FPGA or in a
/// bit-identical software engine.
#[derive(Parser)]
#[command(name = "streamon", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Replay a capture through one or more applications.
    Run(Box<RunArgs>),
    /// Validate applications without running them (exit 2 on errors).
    Check {
        /// Application programs.
        #[arg(required = true)]
        apps: Vec<PathBuf>,
    },
    /// Generate a small deterministic SYN-flood trace and run the shipped
    /// DDoS application on it.
    Demo {
        /// Where events go (`-` = standard output).
        #[arg(long, default_value = "-")]
        events: String,
        /// Event format.
        #[arg(long, value_enum, default_value_t = OutFormat::Text)]
        format: OutFormat,
        /// Also write the generated trace to this pcap file.
        #[arg(long)]
        write_trace: Option<PathBuf>,
        /// Seed of the generated trace.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only write events whose topic starts with one of these (repeat);
        /// the demo shows alerts and logs, the summary counts the rest.
        #[arg(long = "topic", default_values = ["alert", "log", "critical"])]
        topics: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Application program (repeat for several; each runs isolated).
    #[arg(long = "app", required = true)]
    apps: Vec<PathBuf>,
    /// Capture to replay (pcap or pcapng, sniffed by content).
    #[arg(long, required_unless_present_any = ["iface", "subscribe"], conflicts_with = "iface")]
    pcap: Option<PathBuf>,
    #[command(flatten)]
    live: LiveArgs,
    /// Worker threads for the applications (1: all on the reading thread).
    /// The applications are spread over the workers; frames and
    /// `--subscribe` messages reach every application in the same order,
    /// so events and counters are the same at any count (`docs/probe.md`).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Shift the capture's timestamps so its first packet is at this time
    /// (ns since the epoch), as if it were replayed then; intervals are
    /// kept. Probes replaying different captures share a clock this way.
    #[arg(long, value_name = "NS", requires = "pcap")]
    start_time: Option<u64>,
    /// Where events go (`-` = standard output).
    #[arg(long, default_value = "-")]
    events: String,
    /// Event format.
    #[arg(long, value_enum, default_value_t = OutFormat::Jsonl)]
    format: OutFormat,
    /// Metric engine: `sw` (software), `sim` (the Verilated RTL), `sim-nic`
    /// (the driver over a simulated NIC running the RTL) or
    /// `vfio:<PCI address>` (the driver over a card bound to vfio-pci).
    /// `sim` and `sim-nic` need a build with `--features sim`. An app whose
    /// metrics the hardware lacks is refused, never run on software.
    #[arg(long, default_value = "sw")]
    backend: Backend,
    /// Allow `exec(...)` actions to run shell commands (off by default).
    #[arg(long)]
    allow_exec: bool,
    /// This probe's identifier (`%client.id`).
    #[arg(long, default_value = "probe-1")]
    probe_id: String,
    /// Also write every counter as JSON to this file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Only write events whose topic starts with one of these (repeat; all
    /// topics when absent). The summary counts every topic either way.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// The knowledge store (MicroCloud node) for `kv_*` actions and reads,
    /// e.g. `redis://127.0.0.1:6379/`. Without it store actions are counted
    /// as disabled.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Bound on one store read that misses the cache (connect, send,
    /// receive each), in ms.
    #[arg(long, default_value_t = 50, value_name = "MS")]
    redis_timeout_ms: u64,
    /// How long a store read is served from the probe's cache (the
    /// staleness bound), in ms.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    redis_cache_ms: u64,
    /// Store writes the writer queue holds; beyond it writes are dropped
    /// and counted.
    #[arg(long, default_value_t = 65_536, value_name = "OPS")]
    redis_queue: usize,
    /// Serve the probe's live state over the Redis protocol on this port
    /// (`redis-cli -p PORT KEYS 'streamon:*'`; read only). 0 picks a free
    /// port; the address is printed on standard error.
    #[arg(long, value_name = "PORT")]
    resp_port: Option<u16>,
    /// Address the RESP server binds.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    resp_bind: String,
    /// Keys per application whose last pass the live state keeps (the
    /// oldest entered is replaced when full).
    #[arg(long, default_value_t = 16_384, value_name = "N")]
    live_keys: usize,
    /// After the trace, keep the probe (and its RESP server) up this many
    /// seconds before exiting.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    hold: f64,
    #[command(flatten)]
    bus: BusArgs,
}

/// Live capture options (`docs/capture.md`; needs CAP_NET_RAW).
#[derive(clap::Args)]
struct LiveArgs {
    /// Capture live from this interface (AF_PACKET, TPACKET_V3 ring)
    /// instead of replaying a file. Stops on Ctrl-C, `--duration` or
    /// `--count` (and `--idle-exit`, `--max-run`), then prints the summary
    /// with the kernel's drop counters. With `--subscribe` the messages
    /// are received on a thread of their own and handed to the
    /// applications between ring blocks (`docs/capture.md`).
    #[arg(long, value_name = "NAME")]
    iface: Option<String>,
    /// Stop the live capture after this many seconds.
    #[arg(long, value_name = "SECONDS", requires = "iface")]
    duration: Option<f64>,
    /// Stop the live capture after this many frames.
    #[arg(long, value_name = "N", requires = "iface")]
    count: Option<u64>,
    /// Kernel pre-filter: a classic-BPF program as printed by
    /// `tcpdump -ddd EXPR` (or `-dd`).
    #[arg(long, value_name = "FILE", requires = "iface")]
    bpf: Option<PathBuf>,
    /// Ring blocks of 1 MiB (more blocks: more slack before the kernel
    /// drops).
    #[arg(long, default_value_t = 64, value_name = "N", requires = "iface")]
    ring_blocks: usize,
    /// Also write every captured frame (kernel timestamps) to this pcap
    /// file, so the same input can be replayed with `--pcap`.
    #[arg(long, value_name = "FILE", requires = "iface")]
    write_pcap: Option<PathBuf>,
}

/// The ZeroMQ bus options (`docs/operations.md`). They need a `streamon`
/// built with the `bus` feature; without it they are refused with a
/// message saying how to build it.
#[derive(clap::Args)]
struct BusArgs {
    /// Publish every event on a ZeroMQ PUB socket bound at this endpoint
    /// (the original's is `tcp://*:5560`), as `[topic][payload]`.
    #[arg(long, value_name = "ENDPOINT")]
    publish: Option<String>,
    /// Payload of published events; topic `raw` always carries the packet
    /// bytes.
    #[arg(long, value_enum, default_value_t = WireFormat::Text)]
    publish_format: WireFormat,
    /// Events queued per subscriber before libzmq drops them
    /// (`ZMQ_SNDHWM`).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    publish_hwm: i32,
    /// Before the replay, wait until this many subscriptions have reached
    /// the publisher (a subscriber sends one per topic prefix), so the
    /// first events are not lost to ZeroMQ's slow joiner.
    #[arg(long, default_value_t = 0, value_name = "N")]
    wait_subscribers: u64,
    /// How long `--wait-subscribers` waits at most, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    wait_timeout: f64,
    /// At the end of the run, wait at most this long for published events
    /// still queued for connected subscribers (0 drops them at once).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    publish_linger: f64,
    /// CurveZMQ: this probe's secret key file (`NAME.key`, with `NAME.pub`
    /// beside it). With `--publish`, only `--curve-allow` keys may
    /// subscribe.
    #[arg(long, value_name = "FILE")]
    curve_key: Option<PathBuf>,
    /// CurveZMQ: public key file of a subscriber allowed to receive the
    /// published events (repeat).
    #[arg(long = "curve-allow", value_name = "FILE")]
    curve_allow: Vec<PathBuf>,
    /// Subscribe to another probe's publisher (repeat): its events are
    /// input events of the applications' `<event type="message">`, alone,
    /// between the frames of `--pcap` (every 64) or of `--iface` (between
    /// ring blocks), at any `--threads`; each runs at the publisher's
    /// packet time. With `@FILE`, the publisher serves CURVE with that
    /// public key, and this probe authenticates with `--curve-key`.
    #[arg(long = "subscribe", value_name = "ENDPOINT[@SERVER.pub]")]
    subscribe: Vec<String>,
    /// Messages queued per publisher before libzmq drops them
    /// (`ZMQ_RCVHWM`; JSON drops are counted from the gaps in `seq`).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    subscribe_hwm: i32,
    /// With `--subscribe`: stop once no message has come for this long,
    /// after the first one (default: keep listening). With `--iface`: no
    /// frame and no message, after the first of either.
    #[arg(long, value_name = "SECONDS")]
    idle_exit: Option<f64>,
    /// With `--subscribe` or `--iface`: stop after this long in all.
    #[arg(long, value_name = "SECONDS")]
    max_run: Option<f64>,
}

impl BusArgs {
    fn requested(&self) -> bool {
        self.publish.is_some()
            || self.curve_key.is_some()
            || !self.curve_allow.is_empty()
            || !self.subscribe.is_empty()
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum WireFormat {
    /// The original D-StreaMon text line.
    Text,
    /// A versioned JSON object (with a per-topic sequence number).
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    /// One JSON object per line.
    Jsonl,
    /// One human-readable line per event.
    Text,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("streamon: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check { apps } => Ok(check(&apps)),
        Command::Run(args) => run_trace(*args),
        Command::Demo {
            events,
            format,
            write_trace,
            seed,
            topics,
        } => demo(&events, format, write_trace, seed, &topics),
    }
}

fn check(apps: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for path in apps {
        let name = path.display().to_string();
        let source = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}: error: cannot read: {e}");
                failed = true;
                continue;
            }
        };
        match streamon_lang::parse_and_check(&source, &name) {
            Ok((_, warnings)) => {
                for w in warnings {
                    eprintln!("{w}");
                }
                println!("{name}: ok");
            }
            Err(errors) => {
                for e in errors {
                    eprintln!("{e}");
                }
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn open_events(events: &str) -> Result<Box<dyn Write>> {
    Ok(if events == "-" {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    } else {
        let f = std::fs::File::create(events).with_context(|| format!("creating {events}"))?;
        Box::new(std::io::BufWriter::new(f))
    })
}

fn format_of(f: OutFormat) -> Format {
    match f {
        OutFormat::Jsonl => Format::JsonLines,
        OutFormat::Text => Format::Text,
    }
}

/// Installs `source`; on check errors prints them and returns `Ok(false)`.
fn install(
    probe: &mut Probe,
    name: &str,
    source: &str,
    file: &str,
    engine: &EngineFactory,
    options: &RuntimeOptions,
) -> Result<bool> {
    match probe.install(name, source, file, engine, options.clone()) {
        Ok(warnings) => {
            for w in warnings {
                eprintln!("{w}");
            }
            Ok(true)
        }
        Err(streamon_probe::InstallFailure::Check(errors)) => {
            for e in errors {
                eprintln!("{e}");
            }
            Ok(false)
        }
        Err(e) => Err(e).with_context(|| format!("installing {file}")),
    }
}

fn run_trace(args: RunArgs) -> Result<ExitCode> {
    args.backend
        .check_available()
        .context("choosing the metric engine")?;
    let health = DeviceHealth::default();
    let engine = args.backend.factory(health.clone());
    let store = match &args.redis {
        None => None,
        Some(url) => Some(
            KnowledgeStore::connect(
                url,
                WriterConfig {
                    queue_capacity: args.redis_queue.max(1),
                    ..WriterConfig::default()
                },
                LookupConfig {
                    timeout: Duration::from_millis(args.redis_timeout_ms.max(1)),
                    cache_ttl: Duration::from_millis(args.redis_cache_ms),
                    ..LookupConfig::default()
                },
            )
            .with_context(|| format!("knowledge store {url}"))?,
        ),
    };
    let options = RuntimeOptions {
        allow_exec: args.allow_exec,
        probe_id: args.probe_id.clone(),
        store: store.clone(),
        live_keys: if args.resp_port.is_some() {
            args.live_keys.max(1)
        } else {
            0
        },
    };
    let live = args.resp_port.map(|_| LiveView::new(LiveConfig::default()));
    let _resp = match (&live, args.resp_port) {
        (Some(view), Some(port)) => {
            let state: Arc<dyn LiveState> = view.clone();
            let server = RespServer::start(
                (args.resp_bind.as_str(), port),
                state,
                ServerConfig::default(),
            )
            .with_context(|| format!("RESP server on {}:{port}", args.resp_bind))?;
            eprintln!("resp: serving the live state on {}", server.local_addr());
            Some(server)
        }
        _ => None,
    };
    let mut probe = Probe::new();
    for path in &args.apps {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).with_context(|| format!("reading {file}"))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or(file.clone());
        if !install(&mut probe, &name, &source, &file, &engine, &options)
            .with_context(|| format!("on backend {}", args.backend))?
        {
            return Ok(ExitCode::from(2));
        }
    }
    let live_opts = match &args.live.iface {
        Some(iface) => Some(live_options(iface, &args.live, &args.bus)?),
        None => None,
    };
    let mut bus = match bus_side::BusSide::open(&args.bus, &args.probe_id, &probe) {
        Ok(b) => b,
        Err(bus_side::OpenError::NotBuilt) => {
            eprintln!("streamon: error: {}", bus_side::NOT_BUILT);
            return Ok(ExitCode::from(2));
        }
        Err(bus_side::OpenError::Failed(e)) => return Err(e),
    };
    let mut sink = WriterSink::new(open_events(&args.events)?, format_of(args.format));
    let total = args
        .pcap
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .unwrap_or(0);
    let bar = (args.pcap.is_some() && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .expect("static template"),
        );
        b
    });
    let mut progress = |frames: u64, bytes: u64| {
        if let Some(b) = &bar {
            b.set_position(bytes);
            b.set_message(format!("{frames} packets"));
        }
    };
    if let Some(b) = &mut bus {
        b.before_replay(&args.bus);
    }
    let mut filtered = TopicFilter {
        inner: &mut sink,
        topics: &args.topics,
    };
    let (publisher, mut inbox) = match bus.as_mut() {
        Some(b) => b.parts(),
        None => (None, None),
    };
    let mut guarded = DeviceGuard {
        inner: &mut filtered,
        health: &health,
        withheld: 0,
    };
    let mut tee = Tee {
        first: &mut guarded,
        second: publisher,
    };
    let mut runner = LiveTarget {
        runner: Runner::new(probe, usize::from(args.threads)),
        live: live.as_deref(),
        probe_id: &args.probe_id,
    };
    let mut live_summary: Option<LiveSummary> = None;
    // Ctrl-C and SIGTERM raise the flag where the run would otherwise not
    // end by itself (a live capture, subscriptions); the loops see it
    // within one poll and stop cleanly, with the summary. A second signal
    // ends the process at once.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signals = live_opts.is_some() || inbox.is_some();
    if signals {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
                .context("installing a signal handler")?;
            signal_hook::flag::register(sig, stop.clone())
                .context("installing a signal handler")?;
        }
    }
    let result: Result<()> = match (&args.pcap, &live_opts) {
        (Some(pcap), _) => {
            // A chained probe takes the messages received meanwhile every
            // few packets: they enter the applications' input there, on
            // one thread or on several (`docs/probe.md`).
            let mut between = |t: &mut LiveTarget<'_>, s: &mut dyn EventSink| {
                if let Some(i) = inbox.as_mut() {
                    i.drain(t, s);
                }
            };
            let opts = replay::ReplayOptions {
                start_time_ns: args.start_time,
                between: Some(&mut between),
                // With subscriptions Ctrl-C is handled: it ends the replay
                // too, not only the listening after it.
                stop: signals.then_some(&*stop),
            };
            replay::replay_frames_with(&mut runner, pcap, &mut tee, &mut progress, opts)
                .map(|s| {
                    if s.stopped {
                        eprintln!(
                            "streamon: replay stopped by a signal after {} frames",
                            s.frames
                        );
                    }
                })
                .with_context(|| format!("replaying {}", pcap.display()))
        }
        (None, Some(opts)) => {
            let mut ready = |iface: &str| eprintln!("capturing on {iface} (Ctrl-C stops)");
            // The subscriptions receive on a thread of their own while the
            // capture loop waits on the ring.
            let feed = inbox.as_mut().and_then(|i| i.background());
            let r = match live::run_live(&mut runner, opts, &stop, &mut tee, &mut ready, feed) {
                Ok(s) => {
                    live_summary = Some(s);
                    Ok(())
                }
                Err(e) => Err(anyhow::Error::from(e).context("live capture")),
            };
            // What the subscriber thread still had goes in after the last
            // frame; the run ends with the capture.
            match inbox.as_mut() {
                Some(i) => r.and(i.end_background(&mut runner, &mut tee)),
                None => r,
            }
        }
        // Messages alone (clap requires --pcap, --iface or --subscribe).
        (None, None) => {
            eprintln!("listening for messages (Ctrl-C stops)");
            Ok(())
        }
    };
    let result = match (result, inbox.as_mut(), &live_opts) {
        (Ok(()), Some(i), None) => i.receive_rest(&mut runner, &mut tee, &stop),
        (r, ..) => r,
    };
    let finished = runner.runner.finish(&mut tee);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let (probe, _pending) = finished.context("running the applications")?;
    let withheld = guarded.withheld;
    sink.flush().context("writing events")?;
    // Let queued store writes reach Redis before exiting (bounded: Redis
    // may be down; what is left is counted as dropped when the writer
    // stops).
    if let Some(s) = &store {
        s.writer().wait_idle(Duration::from_secs(5));
    }
    if args.pcap.is_none() && live_summary.is_none() && args.bus.subscribe.is_empty() {
        // The capture never started (no such interface, no permission):
        // there is nothing to summarise.
        return result.map(|()| ExitCode::SUCCESS);
    }
    print_summary(&probe, &sink);
    if withheld > 0 {
        eprintln!("events withheld (device failed) {withheld}");
    }
    if let Some(l) = &live_summary {
        print_live_summary(l);
    }
    if let Some(b) = &bus {
        b.print_summary(&mut std::io::stderr().lock());
    }
    if let Some(s) = &store {
        print_store_summary(s);
    }
    if let Some(path) = &args.stats_json {
        write_stats(
            &probe,
            bus.as_ref(),
            store.as_ref(),
            live_summary.as_ref(),
            path,
        )?;
    }
    if let Some(failure) = health.first_failure() {
        bail!(
            "the metric device failed during the run ({failure}); ops it did not answer are \
             counted as 'op error DeviceError' and the events after the failure were withheld"
        );
    }
    if args.hold > 0.0 {
        // Keep answering RESP queries on the final state.
        let _ = std::io::stderr().flush();
        let end = Instant::now() + Duration::from_secs_f64(args.hold.min(1e7));
        while Instant::now() < end {
            if let Some(v) = &live {
                probe.serve_live(v, &args.probe_id);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    result.map(|()| ExitCode::SUCCESS)
}

fn live_options(iface: &str, args: &LiveArgs, bus: &BusArgs) -> Result<LiveOptions> {
    let filter = match &args.bpf {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                streamon_capture::BpfProgram::parse(&text)
                    .with_context(|| format!("{}: not a `tcpdump -ddd` program", path.display()))?,
            )
        }
        None => None,
    };
    let secs = |what: &str, d: Option<f64>| match d {
        Some(d) if d.is_finite() && d > 0.0 => Ok(Some(std::time::Duration::from_secs_f64(d))),
        Some(d) => bail!("{what} {d}: give a positive number of seconds"),
        None => Ok(None),
    };
    // With a live capture `--max-run` is another `--duration` (the
    // earlier wins) and `--idle-exit` counts frames as well as messages.
    let duration = match (
        secs("--duration", args.duration)?,
        secs("--max-run", bus.max_run)?,
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let idle = secs("--idle-exit", bus.idle_exit)?;
    Ok(LiveOptions {
        iface: iface.to_string(),
        config: streamon_capture::CaptureConfig {
            block_count: args.ring_blocks,
            filter,
            ..streamon_capture::CaptureConfig::default()
        },
        duration,
        count: args.count,
        idle,
        write_pcap: args.write_pcap.clone(),
    })
}

fn print_live_summary(l: &LiveSummary) {
    let c = &l.capture;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "--- live capture ---");
    let _ = writeln!(err, "stopped by        {}", l.stopped_by.name());
    let _ = writeln!(err, "seconds           {:.3}", l.elapsed.as_secs_f64());
    let _ = writeln!(err, "frames read       {}", c.frames);
    let _ = writeln!(err, "kernel packets    {}", c.kernel_packets);
    let _ = writeln!(err, "kernel drops      {}", c.kernel_drops);
    let _ = writeln!(err, "left in ring      {}", l.left_in_ring());
    for (label, n) in [
        ("ring freezes", c.kernel_freezes),
        ("ring errors", c.ring_errors),
        ("vlan restored", c.vlan_restored),
        ("vlan not restored", c.vlan_not_restored),
    ] {
        if n > 0 {
            let _ = writeln!(err, "{label:<17} {n}");
        }
    }
}

fn demo(
    events: &str,
    format: OutFormat,
    write_trace: Option<PathBuf>,
    seed: u64,
    topics: &[String],
) -> Result<ExitCode> {
    const DDOS: &str = include_str!("../../../apps/ddos.xml");
    let frames = tracegen::syn_flood(seed);
    if let Some(path) = &write_trace {
        tracegen::write_pcap(path, &frames)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {} frames to {}", frames.len(), path.display());
    }
    eprintln!(
        "demo: {} generated frames (background + SYN flood on 10.0.0.100 from t=60 s), app apps/ddos.xml",
        frames.len()
    );
    let mut probe = Probe::new();
    if !install(
        &mut probe,
        "ddos",
        DDOS,
        "apps/ddos.xml",
        &sw_engine,
        &RuntimeOptions::default(),
    )? {
        bail!("the shipped DDoS application does not check");
    }
    let mut sink = WriterSink::new(open_events(events)?, format_of(format));
    for (i, f) in frames.iter().enumerate() {
        let meta = streamon_packet::FrameMeta {
            ts_ns: f.ts_ns,
            orig_len: f.data.len() as u32,
            packet_no: i as u64 + 1,
        };
        probe.frame(
            &f.data,
            streamon_packet::LinkType::Ethernet,
            meta,
            &mut TopicFilter {
                inner: &mut sink,
                topics,
            },
        );
    }
    probe.finish();
    sink.flush().context("writing events")?;
    print_summary(&probe, &sink);
    Ok(ExitCode::SUCCESS)
}

/// Where a chained probe's messages come from (the `bus` feature's
/// subscriptions).
trait MessageSource {
    /// Hands the messages received so far to `target`, without waiting.
    fn drain(&mut self, target: &mut dyn FrameTarget, sink: &mut dyn EventSink);
    /// After the capture file (or without one): receives until
    /// `--idle-exit`/`--max-run` or a signal.
    fn receive_rest(
        &mut self,
        target: &mut dyn FrameTarget,
        sink: &mut dyn EventSink,
        signal: &std::sync::atomic::AtomicBool,
    ) -> Result<()>;
    /// A live capture starts: receive on a thread of their own, into the
    /// feed the capture loop drains.
    fn background(&mut self) -> Option<&mut dyn MessageFeed>;
    /// The live capture ended: stop that thread and hand what it queued
    /// to `target`.
    fn end_background(
        &mut self,
        target: &mut dyn FrameTarget,
        sink: &mut dyn EventSink,
    ) -> Result<()>;
}

/// Hands every event to two sinks (the event writer and the publisher).
struct Tee<'a> {
    first: &'a mut dyn EventSink,
    second: Option<&'a mut dyn EventSink>,
}

impl EventSink for Tee<'_> {
    fn emit(&mut self, ev: &streamon_probe::OutputEvent) {
        self.first.emit(ev);
        if let Some(s) = &mut self.second {
            s.emit(ev);
        }
    }
}

/// Serves the live view (`--resp-port`) between frames when the
/// applications run on this thread; with worker threads (`--threads`) the
/// view is published once they are done (during `--hold`).
struct LiveTarget<'a> {
    runner: Runner,
    live: Option<&'a LiveView>,
    probe_id: &'a str,
}

impl FrameTarget for LiveTarget<'_> {
    fn frame(
        &mut self,
        data: &[u8],
        linktype: streamon_packet::LinkType,
        meta: streamon_packet::FrameMeta,
        sink: &mut dyn EventSink,
    ) {
        self.runner.frame(data, linktype, meta, sink);
        if let (Some(view), Runner::Single(p)) = (self.live, &self.runner) {
            p.serve_live(view, self.probe_id);
        }
    }

    fn message(&mut self, m: streamon_probe::Message, sink: &mut dyn EventSink) {
        self.runner.message(m, sink);
        if let (Some(view), Runner::Single(p)) = (self.live, &self.runner) {
            p.serve_live(view, self.probe_id);
        }
    }

    fn flush(&mut self, sink: &mut dyn EventSink) {
        self.runner.flush(sink);
    }

    fn idle(&mut self) {
        if let (Some(view), Runner::Single(p)) = (self.live, &self.runner) {
            p.serve_live(view, self.probe_id);
        }
    }
}

/// Withholds events once a metric device failed: their metric results may
/// be missing, so publishing them could raise false alerts. Counted.
struct DeviceGuard<'a> {
    inner: &'a mut dyn EventSink,
    health: &'a DeviceHealth,
    withheld: u64,
}

impl EventSink for DeviceGuard<'_> {
    fn emit(&mut self, ev: &streamon_probe::OutputEvent) {
        if self.health.failed() {
            self.withheld += 1;
        } else {
            self.inner.emit(ev);
        }
    }
}

/// Passes on only the events whose topic starts with one of `topics`
/// (all events when `topics` is empty).
struct TopicFilter<'a> {
    inner: &'a mut dyn EventSink,
    topics: &'a [String],
}

impl EventSink for TopicFilter<'_> {
    fn emit(&mut self, ev: &streamon_probe::OutputEvent) {
        if self.topics.is_empty() || self.topics.iter().any(|t| ev.topic.starts_with(t.as_str())) {
            self.inner.emit(ev);
        }
    }
}

fn print_summary<W: Write>(probe: &Probe, sink: &WriterSink<W>) {
    let s = probe.stats();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "--- summary ---");
    let _ = writeln!(err, "packets read      {}", s.packets);
    let _ = writeln!(err, "packets parsed    {}", s.parsed);
    for (reason, n) in &s.skipped {
        let _ = writeln!(err, "skipped {reason:<18} {n}");
    }
    for (anomaly, n) in &s.anomalies {
        let _ = writeln!(err, "anomaly {anomaly:<18} {n}");
    }
    for (name, a) in probe.app_stats() {
        let _ = writeln!(err, "app {name}:");
        for (i, n) in a.matched.iter().enumerate() {
            let _ = writeln!(err, "  event {i} matched  {n}");
        }
        let _ = writeln!(err, "  unmatched        {}", a.unmatched);
        let mut topics: Vec<_> = a.published.iter().collect();
        topics.sort();
        for (t, n) in topics {
            let _ = writeln!(err, "  published {t:<12} {n}");
        }
        for (label, n) in [
            ("transitions", a.transitions),
            ("timeouts fired", a.timeouts_fired),
            ("state expiries", a.state_expiries),
            ("timeouts skipped", a.timeouts_skipped),
            ("expiries skipped", a.state_expiries_skipped),
            ("timers past end", a.timers_beyond_end),
            ("time backwards", a.time_backwards),
            ("blocked packets", a.blocked),
            ("no key", a.no_key),
            ("no behaviour", a.no_behaviour),
            ("ops missing key", a.ops_missing_key),
            ("evictions", a.evictions),
            ("table full", a.table_full),
            ("exec disabled", a.exec_disabled),
            ("exec dropped", a.exec_dropped),
            ("resets unsupported", a.resets_unsupported),
            ("kv writes", a.kv_writes),
            ("kv dropped", a.kv_dropped),
            ("kv missing field", a.kv_missing_field),
            ("kv reads", a.kv_reads),
            ("kv read errors", a.kv_read_errors),
            ("kv disabled", a.kv_disabled),
            ("div by zero", a.arith.div_by_zero),
            ("domain errors", a.arith.domain_errors),
        ] {
            if n > 0 {
                let _ = writeln!(err, "  {label:<16} {n}");
            }
        }
        for (status, n) in &a.op_errors {
            let _ = writeln!(err, "  op error {status:<12} {n}");
        }
    }
    let _ = writeln!(err, "events written    {}", sink.written);
    if sink.write_errors > 0 {
        let _ = writeln!(err, "events lost (write errors) {}", sink.write_errors);
    }
}

/// The knowledge-store writer's counters (`docs/microcloud.md`).
fn print_store_summary(store: &KnowledgeStore) {
    let w = store.writer_stats();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "knowledge store {}:", store.url());
    for (label, n) in store_counters(&w) {
        let _ = writeln!(err, "  {label:<16} {n}");
    }
}

fn store_counters(w: &WriterStats) -> [(&'static str, u64); 8] {
    [
        ("enqueued", w.enqueued),
        ("written", w.written),
        ("batches", w.batches),
        ("rejected", w.rejected),
        ("dropped full", w.dropped_full),
        ("dropped down", w.dropped_down),
        ("retries", w.retries),
        ("connects", w.connects),
    ]
}

fn write_stats(
    probe: &Probe,
    bus: Option<&bus_side::BusSide>,
    store: Option<&KnowledgeStore>,
    live: Option<&LiveSummary>,
    path: &Path,
) -> Result<()> {
    let apps: serde_json::Map<String, serde_json::Value> = probe
        .app_stats()
        .into_iter()
        .map(|(n, s)| (n, serde_json::to_value(s).unwrap_or_default()))
        .collect();
    let mut v = serde_json::json!({ "probe": probe.stats(), "apps": apps });
    if let Some(b) = bus {
        v["bus"] = b.stats_json();
    }
    if let Some(s) = store {
        let w: serde_json::Map<String, serde_json::Value> = store_counters(&s.writer_stats())
            .iter()
            .map(|(k, n)| (k.replace(' ', "_"), serde_json::json!(n)))
            .collect();
        v["store"] = serde_json::Value::Object(w);
    }
    if let Some(l) = live {
        let c = &l.capture;
        v["capture"] = serde_json::json!({
            "stopped_by": l.stopped_by.name(),
            "seconds": l.elapsed.as_secs_f64(),
            "frames": c.frames,
            "bytes": c.bytes,
            "blocks": c.blocks,
            "kernel_packets": c.kernel_packets,
            "kernel_drops": c.kernel_drops,
            "kernel_freezes": c.kernel_freezes,
            "left_in_ring": l.left_in_ring(),
            "ring_errors": c.ring_errors,
            "vlan_restored": c.vlan_restored,
            "vlan_not_restored": c.vlan_not_restored,
        });
    }
    std::fs::write(path, serde_json::to_vec_pretty(&v)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The bus side of `run`, with the `bus` feature: the publisher.
#[cfg(feature = "bus")]
mod bus_side {
    use std::io::Write;
    use std::time::Duration;

    use anyhow::Context;
    use std::sync::atomic::AtomicBool;
    use streamon_bus::{PayloadFormat, Publisher};

    use streamon_host_ctl::net::{self, Inbox, InboxThread, PublishSpec, StopWhen, SubscribeSpec};
    use streamon_host_ctl::runner::{FrameTarget, MessageFeed};
    use streamon_probe::{EventSink, Probe};

    use super::{BusArgs, MessageSource, WireFormat};

    pub enum OpenError {
        #[allow(dead_code)] // only without the feature
        NotBuilt,
        Failed(anyhow::Error),
    }

    pub const NOT_BUILT: &str = "";

    pub struct BusSide {
        publisher: Option<Publisher>,
        inbox: Option<Receiver>,
    }

    /// The subscriptions and when to stop listening.
    pub struct Receiver {
        /// `None` while `thread` has it (a live capture).
        inbox: Option<Inbox>,
        thread: Option<InboxThread>,
        stop: StopWhen,
    }

    impl MessageSource for Receiver {
        fn drain(&mut self, target: &mut dyn FrameTarget, sink: &mut dyn EventSink) {
            // A receive error (a closed context) only ends the listening;
            // it is reported by `receive_rest`.
            if let Some(i) = &mut self.inbox {
                let _ = i.drain(target, sink, net::DRAIN_BATCH);
            }
        }

        fn receive_rest(
            &mut self,
            target: &mut dyn FrameTarget,
            sink: &mut dyn EventSink,
            signal: &AtomicBool,
        ) -> anyhow::Result<()> {
            let Some(i) = &mut self.inbox else {
                return Ok(());
            };
            net::receive_until(i, target, sink, self.stop, signal)
                .context("receiving from subscriptions")
        }

        fn background(&mut self) -> Option<&mut dyn MessageFeed> {
            if let Some(i) = self.inbox.take() {
                self.thread = Some(i.spawn(net::THREAD_QUEUE));
            }
            self.thread.as_mut().map(|t| t as &mut dyn MessageFeed)
        }

        fn end_background(
            &mut self,
            target: &mut dyn FrameTarget,
            sink: &mut dyn EventSink,
        ) -> anyhow::Result<()> {
            let Some(t) = self.thread.take() else {
                return Ok(());
            };
            let (inbox, result) = t.stop(target, sink);
            self.inbox = inbox;
            result.context("receiving from subscriptions")
        }
    }

    fn failed(e: impl Into<anyhow::Error>, what: String) -> OpenError {
        OpenError::Failed(e.into().context(what))
    }

    impl BusSide {
        pub fn open(
            args: &BusArgs,
            probe_id: &str,
            probe: &Probe,
        ) -> Result<Option<BusSide>, OpenError> {
            if !args.requested() {
                return Ok(None);
            }
            let inbox = if args.subscribe.is_empty() {
                None
            } else {
                let specs = args
                    .subscribe
                    .iter()
                    .map(|s| s.parse::<SubscribeSpec>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| failed(anyhow::anyhow!(e), "--subscribe".into()))?;
                let client = match &args.curve_key {
                    Some(k) => Some(
                        net::read_keypair_file(k)
                            .map_err(|e| failed(e, format!("reading {}", k.display())))?,
                    ),
                    None => None,
                };
                let topics = probe.message_topics();
                if topics.is_empty() {
                    eprintln!(
                        "streamon: warning: no application has a message event: subscribing to every topic, and every message will be unmatched"
                    );
                }
                let inbox =
                    Inbox::connect(&specs, &topics, client.as_ref(), Some(args.subscribe_hwm))
                        .map_err(|e| failed(e, "subscribing".into()))?;
                let secs = |s: Option<f64>| s.map(|s| Duration::from_secs_f64(s.max(0.0)));
                Some(Receiver {
                    inbox: Some(inbox),
                    thread: None,
                    stop: StopWhen {
                        idle: secs(args.idle_exit),
                        total: secs(args.max_run),
                    },
                })
            };
            let publisher = match &args.publish {
                None => None,
                Some(endpoint) => {
                    let spec = PublishSpec {
                        endpoint: endpoint.clone(),
                        format: match args.publish_format {
                            WireFormat::Text => PayloadFormat::Text,
                            WireFormat::Json => PayloadFormat::Json,
                        },
                        sndhwm: args.publish_hwm,
                        probe_id: probe_id.to_string(),
                        curve_key: args.curve_key.clone(),
                        curve_allow: args.curve_allow.clone(),
                    };
                    let mut p = net::open_publisher(&spec).map_err(|e| {
                        OpenError::Failed(
                            anyhow::Error::new(e).context(format!("publishing on {endpoint}")),
                        )
                    })?;
                    p.set_linger(Duration::from_secs_f64(
                        args.publish_linger.clamp(0.0, 3600.0),
                    ))
                    .map_err(|e| {
                        OpenError::Failed(anyhow::Error::new(e).context("--publish-linger"))
                    })?;
                    eprintln!("publishing on {}", p.endpoint());
                    Some(p)
                }
            };
            Ok(Some(BusSide { publisher, inbox }))
        }

        /// The publisher as a sink, and the subscriptions, borrowed apart.
        pub fn parts(&mut self) -> (Option<&mut dyn EventSink>, Option<&mut dyn MessageSource>) {
            (
                self.publisher.as_mut().map(|p| p as &mut dyn EventSink),
                self.inbox.as_mut().map(|i| i as &mut dyn MessageSource),
            )
        }

        /// `--wait-subscribers`: the replay starts once they listen.
        pub fn before_replay(&mut self, args: &BusArgs) {
            let Some(p) = &mut self.publisher else { return };
            if args.wait_subscribers == 0 {
                return;
            }
            let timeout = Duration::from_secs_f64(args.wait_timeout.max(0.0));
            match p.wait_subscriptions(args.wait_subscribers, timeout) {
                Ok(n) if n >= args.wait_subscribers => {}
                Ok(n) => eprintln!(
                    "streamon: warning: {n} of {} subscriptions after {:.1} s; replaying anyway",
                    args.wait_subscribers, args.wait_timeout
                ),
                Err(e) => eprintln!("streamon: warning: waiting for subscribers: {e}"),
            }
        }

        pub fn print_summary(&self, err: &mut dyn Write) {
            if let Some(inbox) = self.inbox.as_ref().and_then(|r| r.inbox.as_ref()) {
                let st = inbox.stats();
                let _ = writeln!(err, "messages delivered {}", st.delivered);
                if st.queue_dropped > 0 {
                    let _ = writeln!(err, "messages dropped (queue full) {}", st.queue_dropped);
                }
                for (reason, n) in &st.refused {
                    let _ = writeln!(err, "messages refused ({reason}) {n}");
                }
                if let Some(e) = &st.last_refused {
                    let _ = writeln!(err, "  last refused: {e}");
                }
                for (ep, s) in inbox.subscriber_stats() {
                    let _ = writeln!(err, "subscribed to {ep}:");
                    let _ = writeln!(err, "  received         {}", s.received);
                    let _ = writeln!(err, "  malformed        {}", s.malformed);
                    let _ = writeln!(err, "  oversized        {}", s.oversized);
                    let _ = writeln!(err, "  lost (seq gaps)  {}", s.lost);
                }
                for (ep, e) in inbox.last_malformed() {
                    let _ = writeln!(err, "  last malformed from {ep}: {e}");
                }
            }
            if let Some(p) = &self.publisher {
                let s = p.stats();
                let _ = writeln!(err, "published on {}:", p.endpoint());
                let _ = writeln!(err, "  sent             {}", s.sent);
                let _ = writeln!(err, "  dropped (hwm)    {}", s.send_drops);
                let _ = writeln!(err, "  encode errors    {}", s.encode_errors);
                let _ = writeln!(err, "  subscriptions    {}", s.subscriptions);
                if let Some(a) = &s.auth {
                    let _ = writeln!(err, "  curve accepted   {}", a.accepted);
                    let _ = writeln!(err, "  curve refused    {}", a.refused);
                    let _ = writeln!(err, "  handshake fails  {}", a.handshake_failures);
                }
                if let Some(e) = p.last_encode_error() {
                    let _ = writeln!(err, "  last encode error: {e}");
                }
            }
        }

        pub fn stats_json(&self) -> serde_json::Value {
            let mut v = serde_json::json!({});
            if let Some(inbox) = self.inbox.as_ref().and_then(|r| r.inbox.as_ref()) {
                let st = inbox.stats();
                let subs: Vec<serde_json::Value> = inbox
                    .subscriber_stats()
                    .into_iter()
                    .map(|(ep, s)| {
                        serde_json::json!({
                            "endpoint": ep,
                            "received": s.received,
                            "malformed": s.malformed,
                            "oversized": s.oversized,
                            "lost": s.lost,
                        })
                    })
                    .collect();
                v["inbox"] = serde_json::json!({
                    "delivered": st.delivered,
                    "queue_dropped": st.queue_dropped,
                    "refused": st.refused,
                    "subscriptions": subs,
                });
            }
            if let Some(p) = &self.publisher {
                let s = p.stats();
                v["publisher"] = serde_json::json!({
                    "endpoint": p.endpoint(),
                    "sent": s.sent,
                    "send_drops": s.send_drops,
                    "encode_errors": s.encode_errors,
                    "subscriptions": s.subscriptions,
                    "unsubscriptions": s.unsubscriptions,
                    "curve_accepted": s.auth.as_ref().map(|a| a.accepted),
                    "curve_refused": s.auth.as_ref().map(|a| a.refused),
                    "handshake_failures": s.auth.as_ref().map(|a| a.handshake_failures),
                });
            }
            v
        }
    }
}

/// The bus side of `run` without the `bus` feature: every bus option is
/// refused with [`bus_side::NOT_BUILT`].
#[cfg(not(feature = "bus"))]
mod bus_side {
    use std::io::Write;

    use streamon_probe::{EventSink, Probe};

    use super::{BusArgs, MessageSource};

    pub enum OpenError {
        NotBuilt,
        #[allow(dead_code)] // only with the feature
        Failed(anyhow::Error),
    }

    pub const NOT_BUILT: &str = "this streamon was built without ZeroMQ support, which --publish, \
        --subscribe and the CURVE options need; rebuild with the `bus` feature: \
        `cargo build --release -p streamon-host-ctl --features bus` \
        (it links the system's libzmq: Debian package libzmq3-dev)";

    /// Never built: no value exists without the feature.
    pub enum BusSide {}

    impl BusSide {
        pub fn open(
            args: &BusArgs,
            _probe_id: &str,
            _probe: &Probe,
        ) -> Result<Option<BusSide>, OpenError> {
            if args.requested() {
                Err(OpenError::NotBuilt)
            } else {
                Ok(None)
            }
        }

        pub fn before_replay(&mut self, _args: &BusArgs) {
            match *self {}
        }

        pub fn parts(&mut self) -> (Option<&mut dyn EventSink>, Option<&mut dyn MessageSource>) {
            match *self {}
        }

        pub fn print_summary(&self, _err: &mut dyn Write) {
            match *self {}
        }

        pub fn stats_json(&self) -> serde_json::Value {
            match *self {}
        }
    }
}
