//! `kraftd start`: load and validate the config, check (or, with --auto-format, create) the
//! storage, run the node until SIGTERM/SIGINT, then shut down cleanly and exit 0.

use tracing::{info, warn};

use super::storage::{
    InitialQuorum, all_dirs, check_formatted, format_dirs, format_dirs_with_voters, initial_voters,
};
use super::{StartArgs, parse_overrides};
use crate::config::{ProcessRole, ServerConfig};
use crate::log::meta_properties::{MetaProperties, random_uuid};

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KRAFTD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

pub(crate) fn run(args: StartArgs) -> Result<(), String> {
    if args.daemon {
        return super::daemon::spawn(&args);
    }
    init_logging();
    // A fatal error is printed once, by cli::run, as the one line on stderr.
    run_node(&args)
}

fn run_node(args: &StartArgs) -> Result<(), String> {
    let started = std::time::Instant::now();
    let config_path = args.config_path();
    let overrides = parse_overrides(&args.overrides)?;
    let config = ServerConfig::load(&config_path, &overrides).map_err(|e| e.to_string())?;
    for w in &config.warnings {
        warn!("{w}");
    }
    if args.auto_format {
        auto_format(&config)?;
    }
    let cluster_id = check_formatted(&config, &config_path)?;
    // A bug that panics in any task must stop the whole node with its cause, not leave it
    // serving without the part that died (a panicked task is otherwise silent to its peers).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(
            "kraftd stops on an internal error (a bug; please report it with this log): {info}"
        );
        default_hook(info);
        std::process::exit(101);
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kraftd")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        // Handlers first: a SIGTERM that arrives while the node starts (or right after READY=1)
        // must mean a clean shutdown, not the default disposition's instant death.
        let signals = Signals::install()?;
        let node_id = config.node_id;
        let server = crate::server::start(config, cluster_id.clone()).await?;
        let addrs: Vec<String> = server
            .bound
            .iter()
            .map(|(n, a)| format!("{n}={a}"))
            .collect();
        info!(
            node_id,
            cluster_id = %cluster_id,
            listeners = %addrs.join(","),
            startup_ms = started.elapsed().as_millis() as u64,
            "kraftd started"
        );
        crate::server::notify_ready();
        let failure = tokio::select! {
            _ = signals.wait() => None,
            why = server.failed() => Some(why),
        };
        super::notify_systemd("STOPPING=1");
        let result = server.shutdown().await;
        if let Some(why) = failure {
            if let Some(pid) = crate::server::pid_file_from_env() {
                let _ = std::fs::remove_file(pid);
            }
            return Err(format!("{why}. Fix: check the disk holding metadata.log.dir (or log.dirs), then restart the node"));
        }
        if let Some(pid) = crate::server::pid_file_from_env() {
            let _ = std::fs::remove_file(pid);
        }
        result
    })
}

/// Formats every unformatted dir, with the cluster id of any dir already formatted, else a new
/// one; says so in the log.
fn auto_format(config: &ServerConfig) -> Result<(), String> {
    let dirs = all_dirs(config);
    let mut existing = None;
    let mut unformatted = false;
    for d in &dirs {
        match MetaProperties::read(d).map_err(|e| e.to_string())? {
            Some(mp) => existing = existing.or(Some(mp.cluster_id)),
            None => unformatted = true,
        }
    }
    if !unformatted {
        return Ok(());
    }
    let (cluster_id, fresh) = match existing {
        Some(id) => (id, false),
        None => (random_uuid(), true),
    };
    // A controller of a quorum found through controller.quorum.bootstrap.servers is formatted
    // --standalone, as Kafka 4.x's quickstart does by hand; everything else as a static quorum.
    let dynamic_controller = config.controller_quorum_voters.is_empty()
        && config.process_roles.contains(&ProcessRole::Controller);
    if dynamic_controller {
        let voters = initial_voters(config, &InitialQuorum::Standalone)?;
        format_dirs_with_voters(config, &cluster_id, true, voters.as_deref(), |line| {
            info!("{line}")
        })?;
    } else {
        format_dirs(config, &cluster_id, true, |line| info!("{line}"))?;
    }
    if fresh {
        info!(cluster_id = %cluster_id, "--auto-format: formatted empty log dirs with a new cluster id");
    } else {
        info!(cluster_id = %cluster_id, "--auto-format: formatted the empty log dirs with the existing cluster id");
    }
    Ok(())
}

/// SIGTERM and SIGINT, installed before the node starts.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate())
            .map_err(|e| format!("cannot install the SIGTERM handler: {e}"))?;
        let int = signal(SignalKind::interrupt())
            .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;
        Ok(Signals { term, int })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => info!("received SIGTERM"),
            _ = self.int.recv() => info!("received SIGINT"),
        }
    }
}
