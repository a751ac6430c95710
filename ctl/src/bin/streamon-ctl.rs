//! `streamon-ctl`: the controller, the probe agent, keys, and operator
//! commands.
//!
//! `main` calls `run`, prints the error chain once; exit 1 on failure, 2
//! when the controller refuses an operator's request.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use streamon_bus::curve;
use streamon_ctl::{keys, Agent, AgentConfig, ControllerConfig, Input};

/// Controller and probe agent of a distributed streamon deployment
/// (D-StreaMon with CurveZMQ).
#[derive(Parser)]
#[command(name = "streamon-ctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller: registry, deployment, event store, dashboard.
    Serve(ServeArgs),
    /// Run a probe steered by a controller.
    Probe(ProbeArgs),
    /// Key generation and distribution.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Operator requests to a running controller (through its HTTP API).
    #[command(subcommand)]
    App(AppCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The controller's name.
    #[arg(long, default_value = "controller")]
    name: String,
    /// Control endpoint to bind.
    #[arg(long, default_value = "tcp://*:5570")]
    bind: String,
    /// Directory of the controller's key pair (`NAME.key`, `NAME.pub`).
    #[arg(long)]
    keys: PathBuf,
    /// Directory of the admitted probes' public keys (`*.pub`).
    #[arg(long)]
    authorized: PathBuf,
    /// Data directory (event store, desired state).
    #[arg(long)]
    data: PathBuf,
    /// Dashboard and API address.
    #[arg(long, default_value = "127.0.0.1:8570")]
    http: String,
    /// Heartbeat interval told to probes, ms.
    #[arg(long, default_value_t = 500)]
    heartbeat_ms: u64,
    /// Silence after which a probe is marked down, ms.
    #[arg(long, default_value_t = 2000)]
    down_after_ms: u64,
}

#[derive(clap::Args)]
struct ProbeArgs {
    /// This probe's name.
    #[arg(long)]
    id: String,
    /// The controller's control endpoint (`tcp://10.0.0.1:5570`).
    #[arg(long)]
    controller: String,
    /// The controller's public key file.
    #[arg(long)]
    controller_key: PathBuf,
    /// Directory of this probe's key pair (`ID.key`, `ID.pub`).
    #[arg(long)]
    keys: PathBuf,
    /// Where to bind the event publisher.
    #[arg(long, default_value = "tcp://*:5560")]
    events: String,
    /// The publisher endpoint to announce (required when binding `*`).
    #[arg(long)]
    advertise: Option<String>,
    /// Extra public key files allowed to subscribe to the events.
    #[arg(long = "subscriber-key")]
    subscriber_keys: Vec<PathBuf>,
    /// Capture files to replay (repeat).
    #[arg(long)]
    pcap: Vec<PathBuf>,
    /// Spool directory: capture files renamed into it are replayed once.
    #[arg(long, conflicts_with = "pcap")]
    spool: Option<PathBuf>,
    /// Capture live on this interface (AF_PACKET; needs CAP_NET_RAW).
    #[arg(long, conflicts_with_all = ["pcap", "spool"])]
    iface: Option<String>,
    /// Heartbeat interval, ms.
    #[arg(long, default_value_t = 500)]
    heartbeat_ms: u64,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a key pair `DIR/NAME.key` (secret, 0600) + `DIR/NAME.pub`.
    Gen {
        /// Directory.
        #[arg(long)]
        dir: PathBuf,
        /// Name.
        #[arg(long)]
        name: String,
    },
    /// Admit a probe's public key: copy it to `AUTHORIZED/NAME.pub`.
    Authorize {
        /// The controller's directory of admitted keys.
        #[arg(long)]
        authorized: PathBuf,
        /// Probe name.
        #[arg(long)]
        name: String,
        /// The probe's public key file.
        public: PathBuf,
    },
    /// Make a probe's key bundle (its pair + the controller's public key)
    /// in OUT and admit it.
    Provision {
        /// The controller's public key file.
        #[arg(long)]
        controller_pub: PathBuf,
        /// The controller's directory of admitted keys.
        #[arg(long)]
        authorized: PathBuf,
        /// Probe name.
        #[arg(long)]
        probe: String,
        /// Where to write the bundle (copy it to the probe host).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key of a key file.
    Show {
        /// A `.pub` or `.key` file.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct ApiArgs {
    /// The controller's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8570")]
    api: String,
    /// Probe name.
    #[arg(long)]
    probe: String,
}

#[derive(Subcommand)]
enum AppCommand {
    /// Deploy an application (checked by the controller first).
    Deploy {
        #[command(flatten)]
        api: ApiArgs,
        /// Application name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Program file.
        file: PathBuf,
    },
    /// Replace an application's program.
    Swap {
        #[command(flatten)]
        api: ApiArgs,
        /// Application name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Program file.
        file: PathBuf,
    },
    /// Start a stopped application.
    Start {
        #[command(flatten)]
        api: ApiArgs,
        /// Application name.
        name: String,
    },
    /// Stop an application (it keeps its state).
    Stop {
        #[command(flatten)]
        api: ApiArgs,
        /// Application name.
        name: String,
    },
    /// Remove an application.
    Remove {
        #[command(flatten)]
        api: ApiArgs,
        /// Application name.
        name: String,
    },
    /// Print a probe's view (health, applications, last status).
    Status {
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("streamon-ctl: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve(a),
        Command::Probe(a) => probe(a),
        Command::Keys(k) => keys_cmd(k),
        Command::App(a) => app_cmd(a),
    }
}

/// Runs until the process is killed (no signal handling: the store's
/// writer flushes every 100 ms and `state.json` is replaced atomically, so
/// a kill loses at most the last 100 ms of events).
fn forever() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

fn serve(a: ServeArgs) -> Result<ExitCode> {
    let pair = curve::read_keypair(&a.keys, &a.name)
        .with_context(|| format!("reading the key pair {}/{}.key", a.keys.display(), a.name))?;
    let authorized = keys::read_authorized(&a.authorized)
        .with_context(|| format!("reading admitted keys in {}", a.authorized.display()))?;
    if authorized.is_empty() {
        eprintln!(
            "streamon-ctl: warning: no admitted probe keys in {}",
            a.authorized.display()
        );
    }
    let mut config = ControllerConfig::new(&a.name, &a.bind, pair, a.data.clone());
    config.authorized = authorized;
    config.http = Some(a.http.clone());
    config.heartbeat = Duration::from_millis(a.heartbeat_ms);
    config.down_after = Duration::from_millis(a.down_after_ms);
    let handle = streamon_ctl::start(config).context("starting the controller")?;
    eprintln!(
        "streamon-ctl: controller {} on {}, dashboard http://{}/",
        a.name,
        handle.control_endpoint(),
        handle
            .http_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let stop = forever();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
    handle.shutdown();
    Ok(ExitCode::SUCCESS)
}

fn probe(a: ProbeArgs) -> Result<ExitCode> {
    let keys = curve::read_keypair(&a.keys, &a.id)
        .with_context(|| format!("reading the key pair {}/{}.key", a.keys.display(), a.id))?;
    let controller_key = curve::read_key(&a.controller_key)
        .with_context(|| format!("reading {}", a.controller_key.display()))?;
    let extra = a
        .subscriber_keys
        .iter()
        .map(|p| curve::read_key(p).with_context(|| format!("reading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    if a.advertise.is_none() && a.events.contains('*') {
        bail!(
            "--events {} binds every address: say which one to announce with --advertise",
            a.events
        );
    }
    let input = match (a.iface, a.spool, a.pcap.is_empty()) {
        (Some(iface), _, _) => Input::Iface(iface),
        (None, Some(dir), _) => Input::Spool(dir),
        (None, None, false) => Input::Pcaps(a.pcap),
        (None, None, true) => Input::None,
    };
    let mut agent = Agent::start(AgentConfig {
        probe_id: a.id.clone(),
        controller: a.controller.clone(),
        controller_key,
        keys,
        events_bind: a.events,
        events_advertise: a.advertise,
        extra_subscribers: extra,
        heartbeat: Duration::from_millis(a.heartbeat_ms),
        input,
    })
    .context("starting the probe agent")?;
    eprintln!(
        "streamon-ctl: probe {} publishing on {}, controller {}",
        a.id,
        agent.events_endpoint(),
        a.controller
    );
    agent.run(&forever()).context("running the probe agent")?;
    Ok(ExitCode::SUCCESS)
}

fn keys_cmd(k: KeysCommand) -> Result<ExitCode> {
    match k {
        KeysCommand::Gen { dir, name } => {
            let pair = keys::generate(&dir, &name)
                .with_context(|| format!("generating {}/{name}", dir.display()))?;
            println!("{}", curve::z85(&pair.public));
        }
        KeysCommand::Authorize {
            authorized,
            name,
            public,
        } => {
            let p = keys::authorize(&authorized, &name, &public)
                .with_context(|| format!("admitting {}", public.display()))?;
            println!("{}", p.display());
        }
        KeysCommand::Provision {
            controller_pub,
            authorized,
            probe,
            out,
        } => {
            let pair = keys::provision(&controller_pub, &authorized, &probe, &out)
                .with_context(|| format!("provisioning {probe}"))?;
            println!("{}", curve::z85(&pair.public));
        }
        KeysCommand::Show { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let key = curve::parse_z85(&text).with_context(|| format!("{}", file.display()))?;
            if file.extension().is_some_and(|e| e == "key") {
                bail!("{} is a secret key; show its .pub", file.display());
            }
            println!("{}", curve::z85(&key));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn app_cmd(a: AppCommand) -> Result<ExitCode> {
    let named = |name: Option<String>, file: &PathBuf| -> Result<(String, String)> {
        let xml =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let name = name.unwrap_or_else(|| {
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok((name, xml))
    };
    let (api, path, body) = match a {
        AppCommand::Deploy { api, name, file } => {
            let (app, xml) = named(name, &file)?;
            let b = serde_json::json!({"probe": api.probe, "app": app, "xml": xml});
            (api, "/api/deploy", b)
        }
        AppCommand::Swap { api, name, file } => {
            let (app, xml) = named(name, &file)?;
            let b = serde_json::json!({"probe": api.probe, "app": app, "xml": xml});
            (api, "/api/swap", b)
        }
        AppCommand::Start { api, name } => {
            let b = serde_json::json!({"probe": api.probe, "app": name});
            (api, "/api/start", b)
        }
        AppCommand::Stop { api, name } => {
            let b = serde_json::json!({"probe": api.probe, "app": name});
            (api, "/api/stop", b)
        }
        AppCommand::Remove { api, name } => {
            let b = serde_json::json!({"probe": api.probe, "app": name});
            (api, "/api/remove", b)
        }
        AppCommand::Status { api } => {
            let b = serde_json::json!({"probe": api.probe});
            (api, "/api/status", b)
        }
    };
    let (status, answer) =
        streamon_ctl::http::request(&api.api, "POST", path, Some(body.to_string().as_bytes()))
            .with_context(|| format!("asking the controller at {}", api.api))?;
    let text = String::from_utf8_lossy(&answer);
    if status == 200 {
        println!("{text}");
        Ok(ExitCode::SUCCESS)
    } else {
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.into_owned());
        eprintln!("streamon-ctl: the controller refused: {msg}");
        Ok(ExitCode::from(2))
    }
}
