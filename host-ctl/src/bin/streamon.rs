//! `streamon`: run monitoring applications on traces, check them, demo.
//!
//! `main` calls `run`, prints the error chain once, and maps errors to exit
//! codes: 2 for bad usage or a program that fails `check`, 1 for anything
//! that went wrong while running (unreadable or truncated trace, …).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use streamon_host_ctl::{replay, tracegen};
use streamon_probe::{sw_engine, EventSink, Format, Probe, RuntimeOptions, WriterSink};

/// A programmable network-monitoring probe (StreaMon re-created): text
/// applications installed into a running probe; metrics in FPGA or in a
/// bit-identical software engine.
#[derive(Parser)]
#[command(name = "streamon", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay a capture through one or more applications.
    Run(RunArgs),
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
    #[arg(long)]
    pcap: PathBuf,
    /// Where events go (`-` = standard output).
    #[arg(long, default_value = "-")]
    events: String,
    /// Event format.
    #[arg(long, value_enum, default_value_t = OutFormat::Jsonl)]
    format: OutFormat,
    /// Metric engine.
    #[arg(long, value_enum, default_value_t = Backend::Sw)]
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
}

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    /// One JSON object per line.
    Jsonl,
    /// One human-readable line per event.
    Text,
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// The software metric engine.
    Sw,
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
        Command::Run(args) => run_trace(args),
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
    options: &RuntimeOptions,
) -> Result<bool> {
    match probe.install(name, source, file, &sw_engine, options.clone()) {
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
    let Backend::Sw = args.backend;
    let options = RuntimeOptions {
        allow_exec: args.allow_exec,
        probe_id: args.probe_id.clone(),
    };
    let mut probe = Probe::new();
    for path in &args.apps {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).with_context(|| format!("reading {file}"))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or(file.clone());
        if !install(&mut probe, &name, &source, &file, &options)? {
            return Ok(ExitCode::from(2));
        }
    }
    let mut sink = WriterSink::new(open_events(&args.events)?, format_of(args.format));
    let total = std::fs::metadata(&args.pcap).map(|m| m.len()).unwrap_or(0);
    let bar = std::io::stderr().is_terminal().then(|| {
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
    let mut filtered = TopicFilter {
        inner: &mut sink,
        topics: &args.topics,
    };
    let result = replay::replay_file(&mut probe, &args.pcap, &mut filtered, &mut progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    sink.flush().context("writing events")?;
    print_summary(&probe, &sink);
    if let Some(path) = &args.stats_json {
        write_stats(&probe, path)?;
    }
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).with_context(|| format!("replaying {}", args.pcap.display())),
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
            ("blocked packets", a.blocked),
            ("no key", a.no_key),
            ("no behaviour", a.no_behaviour),
            ("ops missing key", a.ops_missing_key),
            ("evictions", a.evictions),
            ("table full", a.table_full),
            ("exec disabled", a.exec_disabled),
            ("exec dropped", a.exec_dropped),
            ("resets unsupported", a.resets_unsupported),
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

fn write_stats(probe: &Probe, path: &Path) -> Result<()> {
    let apps: serde_json::Map<String, serde_json::Value> = probe
        .app_stats()
        .into_iter()
        .map(|(n, s)| (n, serde_json::to_value(s).unwrap_or_default()))
        .collect();
    let v = serde_json::json!({ "probe": probe.stats(), "apps": apps });
    std::fs::write(path, serde_json::to_vec_pretty(&v)?)
        .with_context(|| format!("writing {}", path.display()))
}
