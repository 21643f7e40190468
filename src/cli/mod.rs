//! The `kraftd` command line, mirroring Kafka's scripts: `storage` (kafka-storage.sh), `start`
//! (kafka-server-start.sh), `quorum` (kafka-metadata-quorum.sh) and `version`. Errors are printed here as one line with the fix.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod daemon;
mod metadata;
mod quorum;
mod start;
mod storage;

#[derive(Parser)]
#[command(
    name = "kraftd",
    about = "A Kafka server in KRaft mode",
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Format and inspect log directories (like kafka-storage.sh).
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Start a node (like kafka-server-start.sh).
    Start(StartArgs),
    /// Inspect the metadata log.
    #[command(subcommand)]
    Metadata(MetadataCommand),
    /// Describe the metadata quorum and change its voters (like kafka-metadata-quorum.sh).
    #[command(subcommand)]
    Quorum(QuorumCommand),
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum MetadataCommand {
    /// Print every snapshot and record of the metadata log (`__cluster_metadata-0`), read-only.
    Dump {
        #[arg(short = 'c', long = "config", required_unless_present = "snapshot")]
        config: Option<PathBuf>,
        /// Print only this snapshot (`.checkpoint`) or segment file.
        #[arg(long, value_name = "PATH", conflicts_with = "config")]
        snapshot: Option<PathBuf>,
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

#[derive(Subcommand)]
enum QuorumCommand {
    /// Leader, epoch, high watermark, follower lag and the voters (describe --status).
    Status(quorum::QuorumArgs),
    /// Each voter's and observer's log end offset, lag and last contact (describe
    /// --replication).
    Replication(quorum::ReplicationArgs),
    /// Make a running controller, fetching as an observer, a voter (add-controller).
    #[command(alias = "add-controller")]
    AddVoter(quorum::AddVoterArgs),
    /// Remove a voter (remove-controller).
    #[command(alias = "remove-controller")]
    RemoveVoter(quorum::RemoveVoterArgs),
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Print a new cluster id.
    RandomUuid,
    /// Write meta.properties into every log dir and the metadata log dir.
    Format {
        /// The cluster id (from `kraftd storage random-uuid`).
        #[arg(short = 't', long = "cluster-id")]
        cluster_id: String,
        /// The server.properties file.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Skip directories that are already formatted instead of failing.
        #[arg(short = 'g', long = "ignore-formatted")]
        ignore_formatted: bool,
        /// Format this controller as the only voter of a new dynamic quorum (KIP-853): writes
        /// the bootstrap snapshot naming it.
        #[arg(short = 's', long, conflicts_with_all = ["initial_controllers", "no_initial_controllers"])]
        standalone: bool,
        /// The initial voters of a new dynamic quorum, the same list on every node:
        /// id@host:port:directoryId,...
        #[arg(
            short = 'I',
            long,
            value_name = "VOTERS",
            conflicts_with = "no_initial_controllers"
        )]
        initial_controllers: Option<String>,
        /// Format without initial voters: the node joins a dynamic quorum formatted elsewhere.
        #[arg(short = 'N', long)]
        no_initial_controllers: bool,
        /// Override a config key for this command.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Show what is formatted where, and any mismatch.
    Info {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

#[derive(clap::Args)]
pub(crate) struct StartArgs {
    /// The server.properties file.
    #[arg(short = 'c', long = "config", required_unless_present = "config_file")]
    config: Option<PathBuf>,
    /// The server.properties file, given positionally as to kafka-server-start.sh.
    #[arg(conflicts_with = "config")]
    config_file: Option<PathBuf>,
    /// Override a config key (repeatable), like kafka-server-start.sh --override.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Format unformatted log dirs on first start with a fresh cluster id (says so in the log).
    #[arg(long)]
    auto_format: bool,
    /// Detach, write a pid file and a log file; return 0 once the node serves.
    #[arg(long, alias = "daemon-mode")]
    daemon: bool,
    /// With --daemon: where the pid goes.
    #[arg(long, default_value = "kraftd.pid")]
    pid_file: PathBuf,
    /// With --daemon: where the log goes.
    #[arg(long, default_value = "kraftd.log")]
    log_file: PathBuf,
}

impl StartArgs {
    fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| self.config_file.clone())
            .unwrap_or_default()
    }
}

/// Parses `key=value` overrides; the error names the bad one.
fn parse_overrides(raw: &[String]) -> Result<Vec<(String, String)>, String> {
    raw.iter()
        .map(|o| match o.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(format!(
                "--override {o}: expected KEY=VALUE. Fix: write it as --override log.dirs=/data/kraftd"
            )),
        })
        .collect()
}

/// Runs the command line; returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            println!("kraftd {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Storage(StorageCommand::RandomUuid) => {
            println!("{}", crate::log::meta_properties::random_uuid());
            Ok(())
        }
        Command::Storage(StorageCommand::Format {
            cluster_id,
            config,
            ignore_formatted,
            standalone,
            initial_controllers,
            no_initial_controllers,
            overrides,
        }) => {
            let quorum = match (standalone, initial_controllers, no_initial_controllers) {
                (true, _, _) => storage::InitialQuorum::Standalone,
                (_, Some(voters), _) => storage::InitialQuorum::InitialControllers(voters),
                (_, _, true) => storage::InitialQuorum::NoInitialControllers,
                _ => storage::InitialQuorum::Unset,
            };
            parse_overrides(&overrides)
                .and_then(|o| storage::format(&config, &o, &cluster_id, ignore_formatted, &quorum))
        }
        Command::Storage(StorageCommand::Info { config, overrides }) => {
            parse_overrides(&overrides).and_then(|o| storage::info(&config, &o))
        }
        Command::Start(args) => start::run(args),
        Command::Metadata(MetadataCommand::Dump {
            config,
            snapshot,
            overrides,
        }) => match (snapshot, config) {
            (Some(path), _) => metadata::dump_file(&path, &mut std::io::stdout().lock()),
            (None, config) => parse_overrides(&overrides)
                .and_then(|o| storage::load_config(&config.unwrap_or_default(), &o))
                .and_then(|c| metadata::dump(&c.metadata_log_dir(), &mut std::io::stdout().lock())),
        },
        Command::Quorum(QuorumCommand::Status(args)) => quorum::status(args),
        Command::Quorum(QuorumCommand::Replication(args)) => quorum::replication(args),
        Command::Quorum(QuorumCommand::AddVoter(args)) => quorum::add_voter(args),
        Command::Quorum(QuorumCommand::RemoveVoter(args)) => quorum::remove_voter(args),
    };
    match result {
        Ok(()) => 0,
        Err(line) => {
            eprintln!("kraftd: {line}");
            1
        }
    }
}

/// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (Type=notify units).
pub(crate) fn notify_systemd(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let path = path.to_string_lossy().to_string();
    if let Some(abstract_name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name) {
            let _ = sock.send_to_addr(state.as_bytes(), &addr);
        }
    } else {
        let _ = sock.send_to(state.as_bytes(), path);
    }
}
