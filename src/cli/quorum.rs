//! `kraftd quorum status|replication|add-voter|remove-voter`, like `kafka-metadata-quorum.sh
//! --bootstrap-controller ... describe --status|--replication|add-controller|remove-controller`:
//! asks a controller for DescribeQuorum, follows NOT_LEADER_OR_FOLLOWER to the leader (only the
//! leader knows every replica's progress and changes the voters) and prints Kafka's layout, or
//! JSON, or sends the leader AddRaftVoter/RemoveRaftVoter. Everything comes from the wire, so it
//! works from any host that can reach a controller, except what add-voter must know of the
//! controller it adds: its config and the directory id in its meta.properties, read on its host.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_raft_voter_request;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::{self, ReplicaState};
use kafka_protocol::messages::{
    AddRaftVoterRequest, ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeClusterRequest,
    DescribeQuorumRequest, RemoveRaftVoterRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::config::ServerConfig;
use crate::log::meta_properties::{MetaProperties, kafka_uuid_string, parse_kafka_uuid};
use crate::network::client::{ClientError, KafkaConnection, host_port};
use crate::raft::snapshot::VoterSpec;

const CLIENT_ID: &str = "kraftd-quorum";
const METADATA_TOPIC: &str = "__cluster_metadata";
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// v2 is the first to carry `nodes`, which is how a non-leader tells us where the leader is.
const DESCRIBE_QUORUM_MAX_VERSION: i16 = 2;
/// ApiVersions v3 is flexible and understood by every KRaft-era server (Kafka 2.4+).
const API_VERSIONS_VERSION: i16 = 3;
/// DescribeCluster v1 is the first with an endpoint type; 2 asks for controllers (KIP-919).
const DESCRIBE_CLUSTER_VERSION: i16 = 1;
const ENDPOINT_TYPE_CONTROLLER: i8 = 2;
/// The most one AddRaftVoter/RemoveRaftVoter may take at the leader (catching up, committing).
const VOTER_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than that we wait for the answer, so the leader's own timeout answer arrives.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);
/// Pause between rounds while the quorum elects a leader or the named leader is unreachable.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// The width of Kafka's `describe --status` keys, colon included, so columns line up the same.
const STATUS_KEY_WIDTH: usize = 24;

const FIX_ADDRESS: &str = "Fix: start a controller there, or pass the host:port of a running \
    controller's CONTROLLER listener (an entry of controller.quorum.voters) with \
    --bootstrap-controller";

#[derive(clap::Args)]
pub(crate) struct QuorumArgs {
    /// Controllers to ask: host:port of their CONTROLLER listener, comma-separated.
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT...]")]
    bootstrap_controller: String,
    /// Give up after this many milliseconds in all (connecting, following the leader, waiting
    /// out an election).
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Print JSON instead of Kafka's text layout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub(crate) struct ReplicationArgs {
    #[command(flatten)]
    quorum: QuorumArgs,
    /// Print the timestamps as "N ms ago" instead of epoch milliseconds (as Kafka's
    /// --human-readable).
    #[arg(long)]
    human_readable: bool,
}

#[derive(clap::Args)]
pub(crate) struct AddVoterArgs {
    /// Controllers to ask: host:port of their CONTROLLER listener, comma-separated.
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT...]")]
    bootstrap_controller: String,
    /// The server.properties of the controller to add (run this on its host: its directory id
    /// is read from the meta.properties of its metadata log dir).
    #[arg(short = 'c', long = "config", visible_alias = "command-config")]
    config: PathBuf,
    /// Override a key of that config, as given to its `kraftd start`.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Give up after this many milliseconds in all (finding the leader, following it when it
    /// changes); each AddRaftVoter waits at most 30 s of it for the new voter to catch up.
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
}

#[derive(clap::Args)]
pub(crate) struct RemoveVoterArgs {
    /// Controllers to ask: host:port of their CONTROLLER listener, comma-separated.
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT...]")]
    bootstrap_controller: String,
    /// The node id of the voter to remove.
    #[arg(short = 'i', long, value_parser = clap::value_parser!(i32).range(0..))]
    controller_id: i32,
    /// Its directory id as `kraftd quorum status` prints it; by default the one the leader
    /// reports for that voter.
    #[arg(short = 'd', long, value_name = "DIRECTORY_ID")]
    controller_directory_id: Option<String>,
    /// Give up after this many milliseconds in all (finding the leader, following it when it
    /// changes, waiting for the change to commit).
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
}

/// One replica of the metadata partition as the leader reports it. Timestamps are the leader's
/// wall clock in ms; None where the leader sent -1 (never fetched, or a v0 answer).
#[derive(Debug, Clone, PartialEq)]
struct Replica {
    id: i32,
    directory_id: uuid::Uuid,
    log_end_offset: i64,
    last_fetch_timestamp: Option<i64>,
    last_caught_up_timestamp: Option<i64>,
}

/// The leader's answer, reduced to what the views print and the voter changes need.
#[derive(Debug, Clone)]
struct QuorumInfo {
    /// The address the leader answered at: where requests only the leader serves go.
    leader_addr: String,
    cluster_id: Option<String>,
    leader_id: i32,
    leader_epoch: i32,
    high_watermark: i64,
    voters: Vec<Replica>,
    observers: Vec<Replica>,
    /// Node id -> its controller endpoints as Kafka prints them (`NAME://host:port`).
    endpoints: BTreeMap<i32, Vec<String>>,
}

impl QuorumInfo {
    fn leader(&self) -> Result<&Replica, String> {
        self.voters
            .iter()
            .find(|v| v.id == self.leader_id)
            .ok_or_else(|| {
                format!(
                    "the quorum leader {} is not among the voters it reports. Fix: retry; if it \
                     persists, the leader's voter set is inconsistent (check its log)",
                    self.leader_id
                )
            })
    }
}

pub(crate) fn status(args: QuorumArgs) -> Result<(), String> {
    let info = query(&args)?;
    let text = if args.json {
        status_json(&info)?
    } else {
        status_text(&info)?
    };
    print(&text);
    Ok(())
}

pub(crate) fn replication(args: ReplicationArgs) -> Result<(), String> {
    let info = query(&args.quorum)?;
    let text = if args.quorum.json {
        replication_json(&info)?
    } else {
        replication_text(&info, args.human_readable.then(now_ms))?
    };
    print(&text);
    Ok(())
}

/// `kafka-metadata-quorum.sh add-controller`: makes the controller of `args.config`, which must
/// already run and fetch the metadata log as an observer, a voter.
pub(crate) fn add_voter(args: AddVoterArgs) -> Result<(), String> {
    let addrs = parse_bootstrap(&args.bootstrap_controller)?;
    let overrides = super::parse_overrides(&args.overrides)?;
    let config = super::storage::load_config(&args.config, &overrides)?;
    let meta = MetaProperties::read(&config.metadata_log_dir()).map_err(|e| e.to_string())?;
    let joining = joining_controller(&config, meta)?;
    let added = added_line(&joining.voter);
    let deadline = Instant::now() + Duration::from_millis(args.timeout_ms.max(1));
    let change = VoterChange::Add(joining);
    runtime()?.block_on(change_at_leader(&addrs, deadline, args.timeout_ms, &change))?;
    print(&format!("{added}\n"));
    Ok(())
}

/// `kafka-metadata-quorum.sh remove-controller`.
pub(crate) fn remove_voter(args: RemoveVoterArgs) -> Result<(), String> {
    let addrs = parse_bootstrap(&args.bootstrap_controller)?;
    let directory_id = args
        .controller_directory_id
        .as_deref()
        .map(parse_directory_id)
        .transpose()?;
    let deadline = Instant::now() + Duration::from_millis(args.timeout_ms.max(1));
    let change = VoterChange::Remove {
        id: args.controller_id,
        directory_id,
    };
    let removed =
        runtime()?.block_on(change_at_leader(&addrs, deadline, args.timeout_ms, &change))?;
    print(&format!(
        "Removed controller {} with directory id {}\n",
        args.controller_id,
        kafka_uuid_string(&removed)
    ));
    Ok(())
}

/// One write, errors ignored: a reader that went away (`| head`) is not our failure.
fn print(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The views (pure, so they are unit-tested without a server).

/// Kafka's `describe --status`: the largest lag is that of the voter with the smallest log end
/// offset (the first such in the voters' order, as Kafka's `min`); its lag in time is how far its
/// last catch-up trails the leader's.
fn max_follower_lag(info: &QuorumInfo) -> Result<(i64, i64), String> {
    let leader = info.leader()?;
    // `min_by_key` keeps the first of equal minimums, as Java's `Stream.min` does.
    let laggard = info
        .voters
        .iter()
        .min_by_key(|v| v.log_end_offset)
        .unwrap_or(leader);
    let lag = leader.log_end_offset - laggard.log_end_offset;
    let lag_time_ms = if laggard.id == leader.id {
        0
    } else {
        match (
            leader.last_caught_up_timestamp,
            laggard.last_caught_up_timestamp,
        ) {
            (Some(l), Some(f)) => l - f,
            _ => -1,
        }
    };
    Ok((lag, lag_time_ms))
}

/// `{"id": 1, "directoryId": null, "endpoints": ["CONTROLLER://host:9093"]}` as Kafka prints a
/// voter in CurrentVoters (its own format, not serde's).
fn replica_summary(info: &QuorumInfo, r: &Replica) -> String {
    let mut s = format!("{{\"id\": {}, \"directoryId\": ", r.id);
    match directory_id(r) {
        Some(id) => {
            let _ = write!(s, "\"{id}\"");
        }
        None => s.push_str("null"),
    }
    if let Some(eps) = info.endpoints.get(&r.id).filter(|e| !e.is_empty()) {
        let quoted: Vec<String> = eps.iter().map(|e| format!("\"{e}\"")).collect();
        let _ = write!(s, ", \"endpoints\": [{}]", quoted.join(", "));
    }
    s.push('}');
    s
}

/// Kafka prints the all-zero directory id (a replica without one, or a pre-v2 answer) as null.
fn directory_id(r: &Replica) -> Option<String> {
    (!r.directory_id.is_nil()).then(|| kafka_uuid_string(&r.directory_id))
}

fn replica_list(info: &QuorumInfo, replicas: &[Replica]) -> String {
    let items: Vec<String> = replicas.iter().map(|r| replica_summary(info, r)).collect();
    format!("[{}]", items.join(", "))
}

fn status_text(info: &QuorumInfo) -> Result<String, String> {
    let (lag, lag_time_ms) = max_follower_lag(info)?;
    let mut lines: Vec<(&str, String)> = Vec::new();
    // DescribeQuorum carries no cluster id; it is known only when the controller also answers
    // DescribeCluster (KIP-919), so the line is left out rather than printed empty.
    if let Some(id) = &info.cluster_id {
        lines.push(("ClusterId", id.clone()));
    }
    lines.extend([
        ("LeaderId", info.leader_id.to_string()),
        ("LeaderEpoch", info.leader_epoch.to_string()),
        ("HighWatermark", info.high_watermark.to_string()),
        ("MaxFollowerLag", lag.to_string()),
        ("MaxFollowerLagTimeMs", lag_time_ms.to_string()),
        ("CurrentVoters", replica_list(info, &info.voters)),
        ("CurrentObservers", replica_list(info, &info.observers)),
    ]);
    let mut out = String::new();
    for (key, value) in lines {
        let _ = writeln!(out, "{:<STATUS_KEY_WIDTH$}{value}", format!("{key}:"));
    }
    Ok(out)
}

/// The JSON views: field names as Kafka's text labels in camelCase, in the same order (structs
/// rather than `json!`, whose map would sort them); unknown values are null rather than -1.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusJson<'a> {
    cluster_id: Option<&'a str>,
    leader_id: i32,
    leader_epoch: i32,
    high_watermark: i64,
    max_follower_lag: i64,
    max_follower_lag_time_ms: i64,
    current_voters: Vec<ReplicaJson<'a>>,
    current_observers: Vec<ReplicaJson<'a>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplicaJson<'a> {
    id: i32,
    directory_id: Option<String>,
    endpoints: &'a [String],
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplicationRowJson {
    node_id: i32,
    directory_id: Option<String>,
    log_end_offset: i64,
    lag: i64,
    last_fetch_timestamp: Option<i64>,
    last_caught_up_timestamp: Option<i64>,
    status: &'static str,
}

fn to_json(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|e| format!("cannot write JSON: {e}"))
}

fn status_json(info: &QuorumInfo) -> Result<String, String> {
    let (lag, lag_time_ms) = max_follower_lag(info)?;
    let summary = |r: &Replica| ReplicaJson {
        id: r.id,
        directory_id: directory_id(r),
        endpoints: info.endpoints.get(&r.id).map_or(&[], Vec::as_slice),
    };
    to_json(&StatusJson {
        cluster_id: info.cluster_id.as_deref(),
        leader_id: info.leader_id,
        leader_epoch: info.leader_epoch,
        high_watermark: info.high_watermark,
        max_follower_lag: lag,
        max_follower_lag_time_ms: lag_time_ms,
        current_voters: info.voters.iter().map(summary).collect(),
        current_observers: info.observers.iter().map(summary).collect(),
    })
}

/// Rows in Kafka's order: the leader, the other voters, then the observers.
fn replication_rows(info: &QuorumInfo) -> Result<Vec<(&Replica, i64, &'static str)>, String> {
    let leader = info.leader()?;
    let lag = |r: &Replica| leader.log_end_offset - r.log_end_offset;
    let mut rows = vec![(leader, 0, "Leader")];
    rows.extend(
        info.voters
            .iter()
            .filter(|v| v.id != leader.id)
            .map(|v| (v, lag(v), "Follower")),
    );
    rows.extend(info.observers.iter().map(|o| (o, lag(o), "Observer")));
    Ok(rows)
}

/// Kafka's table: every cell padded to its column's width and followed by a tab. `now_ms` given
/// means --human-readable.
fn replication_text(info: &QuorumInfo, now_ms: Option<i64>) -> Result<String, String> {
    let when = |t: Option<i64>| match (t, now_ms) {
        (None, _) => "-1".to_string(),
        (Some(t), None) => t.to_string(),
        // The timestamp is the leader's clock, the subtraction ours: a few ms of skew between
        // hosts must not make the command fail (Kafka's does), so a future time reads 0 ms ago.
        (Some(t), Some(now)) => format!("{} ms ago", (now - t).max(0)),
    };
    let header = [
        "NodeId",
        "DirectoryId",
        "LogEndOffset",
        "Lag",
        "LastFetchTimestamp",
        "LastCaughtUpTimestamp",
        "Status",
    ]
    .map(String::from)
    .to_vec();
    let mut table = vec![header];
    for (r, lag, status) in replication_rows(info)? {
        table.push(vec![
            r.id.to_string(),
            kafka_uuid_string(&r.directory_id),
            r.log_end_offset.to_string(),
            lag.to_string(),
            when(r.last_fetch_timestamp),
            when(r.last_caught_up_timestamp),
            status.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| table.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &table {
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(out, "{cell:<width$}\t");
        }
        out.push('\n');
    }
    Ok(out)
}

fn replication_json(info: &QuorumInfo) -> Result<String, String> {
    let rows: Vec<ReplicationRowJson> = replication_rows(info)?
        .into_iter()
        .map(|(r, lag, status)| ReplicationRowJson {
            node_id: r.id,
            directory_id: directory_id(r),
            log_end_offset: r.log_end_offset,
            lag,
            last_fetch_timestamp: r.last_fetch_timestamp,
            last_caught_up_timestamp: r.last_caught_up_timestamp,
            status,
        })
        .collect();
    to_json(&rows)
}

// ---------------------------------------------------------------------------------------------
// Finding the leader.

/// What one controller said.
enum Reply {
    Leader(QuorumInfo),
    /// It does not lead; `leader` is the leader's id and address when it knows them.
    NotLeader {
        leader_id: Option<i32>,
        leader_addr: Option<String>,
    },
}

enum Failure {
    /// Nothing (usable) came back: refused, timed out, reset. Another address may do better.
    Unreachable(String),
    /// It answered, but not as a controller can; retrying will not help. The whole error line.
    Fatal(String),
}

/// `host:port[,host:port...]`, checked before any connection so a typo is named as one.
fn parse_bootstrap(raw: &str) -> Result<Vec<String>, String> {
    let fix = "Fix: write it as --bootstrap-controller localhost:9093[,host2:9093]";
    let addrs: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    if addrs.is_empty() {
        return Err(format!(
            "--bootstrap-controller '{raw}' names no controller. {fix}"
        ));
    }
    for a in &addrs {
        let ok = a.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            return Err(format!(
                "--bootstrap-controller: '{a}' is not host:port. {fix}"
            ));
        }
    }
    Ok(addrs)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))
}

fn query(args: &QuorumArgs) -> Result<QuorumInfo, String> {
    let addrs = parse_bootstrap(&args.bootstrap_controller)?;
    let runtime = runtime()?;
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    runtime.block_on(find_leader(
        &addrs,
        Instant::now() + timeout,
        args.timeout_ms,
    ))
}

/// Asks each bootstrap address in turn and follows a non-leader's pointer to the leader. Once
/// some controller has answered, rounds repeat until the deadline (an election or a failover is
/// under way, a node may be restarting); when none could be reached in the first round there is
/// nothing to wait for, and the error says so at once.
async fn find_leader(
    addrs: &[String],
    deadline: Instant,
    timeout_ms: u64,
) -> Result<QuorumInfo, String> {
    let mut last_note = String::new();
    let mut ever_answered = false;
    loop {
        let mut unreachable: Vec<String> = Vec::new();
        let mut answered = false;
        for addr in addrs {
            match describe_at(addr, deadline).await {
                Ok(Reply::Leader(info)) => return Ok(info),
                Ok(Reply::NotLeader {
                    leader_id,
                    leader_addr,
                }) => {
                    answered = true;
                    last_note = match (leader_id, leader_addr) {
                        (Some(id), Some(leader_addr)) => {
                            match describe_at(&leader_addr, deadline).await {
                                Ok(Reply::Leader(info)) => return Ok(info),
                                Ok(Reply::NotLeader { .. }) => format!(
                                    "{addr} names node {id} at {leader_addr} as leader, which says it \
                                 is not"
                                ),
                                Err(Failure::Unreachable(why)) => format!(
                                    "{addr} names node {id} at {leader_addr} as leader, which cannot \
                                 be reached ({why})"
                                ),
                                Err(Failure::Fatal(line)) => return Err(line),
                            }
                        }
                        (Some(id), None) => format!(
                            "{addr} names node {id} as leader but not its address; add node \
                             {id}'s controller host:port to --bootstrap-controller"
                        ),
                        (None, _) => format!("{addr} knows no leader yet"),
                    };
                }
                Err(Failure::Unreachable(why)) => unreachable.push(format!("{addr} ({why})")),
                Err(Failure::Fatal(line)) => return Err(line),
            }
        }
        let unreachable = unreachable.join(", ");
        if !answered && !ever_answered {
            return Err(if addrs.len() == 1 {
                format!("cannot reach {unreachable}. {FIX_ADDRESS}")
            } else {
                format!("cannot reach any of {unreachable}. {FIX_ADDRESS}")
            });
        }
        ever_answered = true;
        // The deadline is checked after the pause too, so that a round never starts only to
        // find no time left, which would hide what the last answer said.
        let timed_out = || {
            let also = if unreachable.is_empty() {
                String::new()
            } else {
                format!("; no answer from {unreachable}")
            };
            format!(
                "no leader of the metadata quorum answered within {timeout_ms} ms: \
                 {last_note}{also}. Fix: a majority of the voters must run and reach each \
                 other (see the controllers' logs); to wait longer for an election, raise \
                 --timeout-ms"
            )
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(timed_out());
        }
        tokio::time::sleep(RETRY_BACKOFF.min(deadline - now)).await;
        if Instant::now() >= deadline {
            return Err(timed_out());
        }
    }
}

/// Why a connection failed, in a few lower-case words for the error line.
fn reason(e: &ClientError) -> String {
    use std::io::ErrorKind;
    let io = |e: &std::io::Error| match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::ConnectionReset => "connection reset".to_string(),
        ErrorKind::UnexpectedEof => "connection closed".to_string(),
        ErrorKind::TimedOut => "timed out".to_string(),
        _ => {
            let text = e.to_string();
            // "... (os error 113)" says nothing more to a reader than the words before it.
            match text.rfind(" (os error ") {
                Some(i) => text[..i].to_lowercase(),
                None => text.to_lowercase(),
            }
        }
    };
    match e {
        ClientError::Connect { source, .. } | ClientError::Io { source, .. } => io(source),
        ClientError::Timeout { timeout_ms, .. } => format!("no answer within {timeout_ms} ms"),
        ClientError::Protocol { problem, .. } => problem.clone(),
    }
}

fn fatal_not_kafka(addr: &str, e: &ClientError) -> Failure {
    Failure::Fatal(format!(
        "{addr} does not answer as a Kafka controller ({}). Fix: pass the host:port of a \
         CONTROLLER listener (an entry of controller.quorum.voters) with --bootstrap-controller",
        reason(e)
    ))
}

/// `35 (UNSUPPORTED_VERSION)`: the code and, when known, Kafka's name for it.
fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => code.to_string(),
        Some(_) => format!("{code} ({})", kafka_error_name(code)),
    }
}

/// What a failed exchange with `addr` means: a peer that answers with something other than Kafka
/// is the wrong address, anything else may get better.
fn failure(addr: &str, e: ClientError) -> Failure {
    match e {
        ClientError::Protocol { .. } => fatal_not_kafka(addr, &e),
        _ => Failure::Unreachable(reason(&e)),
    }
}

/// A connection to `addr` and the API versions it serves (ApiVersions), which tells a
/// controller listener from a broker's and picks the versions to speak.
async fn open(
    addr: &str,
    deadline: Instant,
) -> Result<(KafkaConnection, ApiVersionsResponse), Failure> {
    let left = || deadline.saturating_duration_since(Instant::now());
    if left().is_zero() {
        return Err(Failure::Unreachable("no time left".to_string()));
    }
    let mut conn = KafkaConnection::connect(addr, CLIENT_ID, left())
        .await
        .map_err(|e| failure(addr, e))?;
    let versions = conn
        .send(
            API_VERSIONS_VERSION,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION"))),
            left(),
        )
        .await
        .map_err(|e| failure(addr, e))?;
    if versions.error_code != 0 {
        return Err(Failure::Fatal(format!(
            "{addr} refused ApiVersions with error {}. Fix: pass the host:port of a kraftd or \
             Kafka 3.3+ controller with --bootstrap-controller",
            error_name(versions.error_code)
        )));
    }
    Ok((conn, versions))
}

/// The (min, max) versions of `key` an ApiVersions answer lists.
fn served(versions: &ApiVersionsResponse, key: ApiKey) -> Option<(i16, i16)> {
    versions
        .api_keys
        .iter()
        .find(|k| k.api_key == key as i16)
        .map(|k| (k.min_version, k.max_version))
}

/// One DescribeQuorum exchange with `addr`, preceded by ApiVersions to pick the version and to
/// tell a broker listener (which does not serve DescribeQuorum) from a controller's.
async fn describe_at(addr: &str, deadline: Instant) -> Result<Reply, Failure> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let (mut conn, versions) = open(addr, deadline).await?;
    let range = |key: ApiKey| served(&versions, key);
    let Some((min, max)) = range(ApiKey::DescribeQuorum) else {
        return Err(Failure::Fatal(format!(
            "{addr} does not serve DescribeQuorum: it is not a controller listener (a broker's \
             client port?). Fix: pass the host:port of a CONTROLLER listener (an entry of \
             controller.quorum.voters, 9093 in config/server.properties) with \
             --bootstrap-controller"
        )));
    };
    let version = max.min(DESCRIBE_QUORUM_MAX_VERSION);
    if version < min {
        return Err(Failure::Fatal(format!(
            "{addr} serves DescribeQuorum only from v{min}, this kraftd speaks up to \
             v{DESCRIBE_QUORUM_MAX_VERSION}. Fix: use a kraftd as new as the controller"
        )));
    }
    let request = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let response = conn
        .send(version, &request, left())
        .await
        .map_err(|e| failure(addr, e))?;
    if response.error_code != 0 {
        return Err(Failure::Fatal(format!(
            "{addr} answered DescribeQuorum with error {}{}. Fix: check that controller's log",
            error_name(response.error_code),
            message_suffix(&response.error_message)
        )));
    }
    let Some(partition) = response
        .topics
        .iter()
        .filter(|t| t.topic_name.0.as_str() == METADATA_TOPIC)
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == 0)
    else {
        return Err(Failure::Fatal(format!(
            "{addr} answered DescribeQuorum without {METADATA_TOPIC}-0. Fix: pass the host:port \
             of a KRaft controller with --bootstrap-controller"
        )));
    };
    let endpoints = endpoints_of(&response.nodes);
    let leader_id = (partition.leader_id.0 >= 0).then_some(partition.leader_id.0);
    match partition.error_code {
        0 => {}
        NOT_LEADER_OR_FOLLOWER => {
            return Ok(Reply::NotLeader {
                leader_id,
                leader_addr: leader_id.and_then(|id| address_of(&response.nodes, id)),
            });
        }
        code => {
            return Err(Failure::Fatal(format!(
                "{addr} answered DescribeQuorum for {METADATA_TOPIC}-0 with error {}{}. Fix: \
                 check that controller's log",
                error_name(code),
                message_suffix(&partition.error_message)
            )));
        }
    }
    let Some(leader_id) = leader_id else {
        return Ok(Reply::NotLeader {
            leader_id: None,
            leader_addr: None,
        });
    };
    // DescribeCluster is only for the ClusterId line: a controller that does not serve it, or a
    // failure here, leaves the line out rather than failing the command.
    let mut cluster_id = None;
    if range(ApiKey::DescribeCluster).is_some_and(|(_, max)| max >= DESCRIBE_CLUSTER_VERSION) {
        let request =
            DescribeClusterRequest::default().with_endpoint_type(ENDPOINT_TYPE_CONTROLLER);
        if let Ok(r) = conn.send(DESCRIBE_CLUSTER_VERSION, &request, left()).await
            && r.error_code == 0
        {
            cluster_id = Some(r.cluster_id.to_string());
        }
    }
    let replica = |r: &ReplicaState| Replica {
        id: r.replica_id.0,
        directory_id: r.replica_directory_id,
        log_end_offset: r.log_end_offset,
        last_fetch_timestamp: (r.last_fetch_timestamp != -1).then_some(r.last_fetch_timestamp),
        last_caught_up_timestamp: (r.last_caught_up_timestamp != -1)
            .then_some(r.last_caught_up_timestamp),
    };
    Ok(Reply::Leader(QuorumInfo {
        leader_addr: addr.to_string(),
        cluster_id,
        leader_id,
        leader_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: partition.current_voters.iter().map(replica).collect(),
        observers: partition.observers.iter().map(replica).collect(),
        endpoints,
    }))
}

fn message_suffix(message: &Option<StrBytes>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

/// `NAME://host:port`, IPv6 hosts in brackets, as Kafka's RaftVoterEndpoint prints.
fn endpoints_of(nodes: &[describe_quorum_response::Node]) -> BTreeMap<i32, Vec<String>> {
    nodes
        .iter()
        .map(|n| {
            let eps = n
                .listeners
                .iter()
                .map(|l| format!("{}://{}", l.name, host_port(&l.host, l.port)))
                .collect();
            (n.node_id.0, eps)
        })
        .collect()
}

fn address_of(nodes: &[describe_quorum_response::Node], id: i32) -> Option<String> {
    let node = nodes.iter().find(|n| n.node_id.0 == id)?;
    let l = node.listeners.first()?;
    Some(host_port(&l.host, l.port))
}

// ---------------------------------------------------------------------------------------------
// Changing the voters (KIP-853).

/// The controller `add-voter` makes a voter, as Kafka's add-controller reads it from the
/// controller's own config and meta.properties.
#[derive(Debug, Clone, PartialEq)]
struct JoiningController {
    voter: VoterSpec,
    /// Sent with the request, so that a controller formatted for another cluster is refused.
    cluster_id: String,
}

enum VoterChange {
    Add(JoiningController),
    /// `directory_id` None: the one the leader reports for voter `id`.
    Remove {
        id: i32,
        directory_id: Option<uuid::Uuid>,
    },
}

impl VoterChange {
    fn id(&self) -> i32 {
        match self {
            VoterChange::Add(j) => j.voter.id,
            VoterChange::Remove { id, .. } => *id,
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            VoterChange::Add(_) => "add",
            VoterChange::Remove { .. } => "remove",
        }
    }
}

/// Node id, directory id and controller endpoints of the controller `config` describes; `meta`
/// is the meta.properties of its metadata log dir (None: not formatted).
fn joining_controller(
    config: &ServerConfig,
    meta: Option<MetaProperties>,
) -> Result<JoiningController, String> {
    let file = config.source().display();
    let id = config.node_id;
    if !config.is_controller() {
        return Err(format!(
            "{file}: process.roles does not include controller, so node {id} cannot become a \
             voter. Fix: pass the config of the controller to add (process.roles=controller or \
             broker,controller) with -c"
        ));
    }
    let metadata_dir = config.metadata_log_dir();
    let meta_path = MetaProperties::path_in(&metadata_dir);
    let Some(meta) = meta else {
        return Err(format!(
            "{} is not formatted (no meta.properties), so node {id} has no directory id yet. \
             Fix: run kraftd storage format -t <the quorum's cluster id> -c {file} \
             --no-initial-controllers first, start the node, then add it",
            metadata_dir.display()
        ));
    };
    if meta.node_id != id {
        return Err(format!(
            "{} belongs to node {} but {file} sets node.id={id}. Fix: pass the config this \
             metadata log dir was formatted with",
            meta_path.display(),
            meta.node_id
        ));
    }
    let directory_id = meta
        .directory_id
        .as_deref()
        .and_then(parse_kafka_uuid)
        .filter(|d| !d.is_nil())
        .ok_or_else(|| {
            format!(
                "{} has no valid directory.id, which names this controller among the voters. \
                 Fix: format the metadata log dir again with kraftd storage format \
                 --no-initial-controllers (it writes one)",
                meta_path.display()
            )
        })?;
    Ok(JoiningController {
        voter: VoterSpec {
            id,
            directory_id,
            endpoints: controller_endpoints(config)?,
        },
        cluster_id: meta.cluster_id,
    })
}

/// The controller listeners the other voters will connect to, as Kafka's add-controller takes
/// them: the `advertised.listeners` entry of each of `controller.listener.names`, else its
/// `listeners` entry. A wildcard host only says where to bind, not where to connect.
fn controller_endpoints(config: &ServerConfig) -> Result<Vec<(String, String, u16)>, String> {
    let file = config.source().display();
    if config.advertised_controller_listeners.is_empty() {
        return Err(format!(
            "{file}: none of controller.listener.names ({}) is in listeners or \
             advertised.listeners, so the voters could not reach node {}. Fix: add \
             CONTROLLER://<this host>:9093 to listeners and set controller.listener.names=CONTROLLER",
            config.controller_listener_names.join(","),
            config.node_id
        ));
    }
    config
        .advertised_controller_listeners
        .iter()
        .map(|l| {
            let host = l.host.as_deref().unwrap_or_default();
            let wildcard = host.is_empty()
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_unspecified());
            if wildcard {
                return Err(format!(
                    "{file}: controller listener {} has no address the other voters can connect \
                     to ('{}' binds every interface). Fix: add {}://<this host's name or IP>:{} \
                     to advertised.listeners",
                    l.name,
                    host_port(host, l.port),
                    l.name,
                    l.port
                ));
            }
            Ok((l.name.clone(), host.to_string(), l.port))
        })
        .collect()
}

/// Kafka's add-controller line.
fn added_line(voter: &VoterSpec) -> String {
    let endpoints: Vec<String> = voter
        .endpoints
        .iter()
        .map(|(name, host, port)| format!("{name}://{}", host_port(host, *port)))
        .collect();
    format!(
        "Added controller {} with directory id {} and endpoints: {}",
        voter.id,
        kafka_uuid_string(&voter.directory_id),
        endpoints.join(", ")
    )
}

fn parse_directory_id(raw: &str) -> Result<uuid::Uuid, String> {
    let id = parse_kafka_uuid(raw.trim()).ok_or_else(|| {
        format!(
            "--controller-directory-id '{raw}' is not a Kafka uuid (22 characters of URL-safe \
             base64). Fix: copy the voter's directoryId from kraftd quorum status, or leave the \
             option out to use the one the leader reports"
        )
    })?;
    // The zero uuid (AAAAAAAAAAAAAAAAAAAAAA) names a voter of a static quorum, which has none.
    Ok(id)
}

/// The directory id the leader reports for voter `id`: remove-voter without
/// --controller-directory-id.
fn voter_directory_id(info: &QuorumInfo, id: i32) -> Result<uuid::Uuid, String> {
    let Some(voter) = info.voters.iter().find(|v| v.id == id) else {
        let ids: Vec<String> = info.voters.iter().map(|v| v.id.to_string()).collect();
        return Err(format!(
            "cannot remove controller {id}: VOTER_NOT_FOUND: the leader (node {}) lists the \
             voters {}. Fix: pass the id of a voter (kraftd quorum status lists them)",
            info.leader_id,
            ids.join(", ")
        ));
    };
    // A voter of a static quorum (controller.quorum.voters) has none: the zero uuid names it.
    Ok(voter.directory_id)
}

/// Kafka's name of an error code (`REQUEST_TIMED_OUT`), as its tools print it.
fn kafka_error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => format!("error code {code}"),
        Some(e) => {
            let mut name = String::new();
            for (i, c) in e.to_string().chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
    }
}

/// What to do about the leader's refusal `code`.
fn fix_for(change: &VoterChange, code: i16) -> String {
    let id = change.id();
    let static_quorum = "the leader's quorum is static (controller.quorum.voters, kraft.version \
        0) and does not change its voters by itself, as kraftd's does: on Apache Kafka, upgrade \
        the kraft.version feature to 1 first";
    match (change, code) {
        (VoterChange::Add(_), 7) => "start the new controller first (it must be fetching the \
            metadata log as an observer) and retry once it has caught up; a voter change already \
            under way must finish first"
            .to_string(),
        (VoterChange::Add(_), 126) => format!(
            "nothing to do: controller {id} is already a voter (kraftd quorum status lists them)"
        ),
        (VoterChange::Add(j), 104) => format!(
            "the new controller was formatted with cluster id {}, not the quorum's: format it \
             again with the quorum's cluster id (the ClusterId line of kraftd quorum status) and \
             --no-initial-controllers",
            j.cluster_id
        ),
        (VoterChange::Add(_), 42) => "correct what the message names in the new controller's \
            config or meta.properties, then retry"
            .to_string(),
        (VoterChange::Remove { .. }, 7) => "a majority of the remaining voters must run and be \
            caught up to commit the change (see kraftd quorum replication); a voter change \
            already under way must finish first. Then retry"
            .to_string(),
        (VoterChange::Remove { .. }, 127) => format!(
            "controller {id} with that directory id is not a voter, or is the last one (kraftd \
             quorum status lists the voters and their directory ids)"
        ),
        (VoterChange::Remove { .. }, 42) => {
            "pass the voter's id and directoryId as kraftd quorum status prints them".to_string()
        }
        (_, 35) => static_quorum.to_string(),
        _ => "see the leader's log for the reason".to_string(),
    }
}

/// The one error line for a leader's refusal. `retried_unanswered`: an earlier attempt got no
/// answer, so it may be what made the change the leader now refuses as done.
fn refusal(
    change: &VoterChange,
    info: &QuorumInfo,
    code: i16,
    message: Option<&str>,
    retried_unanswered: bool,
) -> String {
    let message = match message.map(str::trim) {
        Some(m) if !m.is_empty() => format!(": {}", m.trim_end_matches('.')),
        _ => String::new(),
    };
    let lost = if retried_unanswered
        && matches!(
            (change, code),
            (VoterChange::Add(_), 126) | (VoterChange::Remove { .. }, 127)
        ) {
        " (an earlier attempt got no answer and may have made the change)"
    } else {
        ""
    };
    format!(
        "cannot {} controller {}: the leader (node {} at {}) answered {}{message}{lost}. Fix: {}",
        change.verb(),
        change.id(),
        info.leader_id,
        info.leader_addr,
        kafka_error_name(code),
        fix_for(change, code)
    )
}

/// Finds the leader and asks it for `change`, following the leadership until `deadline` when
/// it moves (NOT_LEADER_OR_FOLLOWER, or no answer). Returns the directory id of the voter
/// changed.
async fn change_at_leader(
    addrs: &[String],
    deadline: Instant,
    timeout_ms: u64,
    change: &VoterChange,
) -> Result<uuid::Uuid, String> {
    let mut unanswered = false;
    loop {
        let info = find_leader(addrs, deadline, timeout_ms).await?;
        let addr = info.leader_addr.as_str();
        let (directory_id, answer) = match change {
            VoterChange::Add(j) => {
                let wait = change_wait(deadline);
                let request = add_request(j, wait);
                let answer = send_change(addr, &request, wait, deadline)
                    .await
                    .map(|r| (r.error_code, r.error_message.map(|m| m.to_string())));
                (j.voter.directory_id, answer)
            }
            VoterChange::Remove { id, directory_id } => {
                let directory_id = match directory_id {
                    Some(d) => *d,
                    None => voter_directory_id(&info, *id)?,
                };
                let request = RemoveRaftVoterRequest::default()
                    .with_cluster_id(info.cluster_id.clone().map(StrBytes::from_string))
                    .with_voter_id(*id)
                    .with_voter_directory_id(directory_id);
                let answer = send_change(addr, &request, change_wait(deadline), deadline)
                    .await
                    .map(|r| (r.error_code, r.error_message.map(|m| m.to_string())));
                (directory_id, answer)
            }
        };
        let note = match answer {
            Ok((0, _)) => return Ok(directory_id),
            Ok((NOT_LEADER_OR_FOLLOWER, message)) => format!(
                "node {} at {addr} no longer leads{}",
                info.leader_id,
                message.map(|m| format!(" ({m})")).unwrap_or_default()
            ),
            Ok((code, message)) => {
                return Err(refusal(change, &info, code, message.as_deref(), unanswered));
            }
            Err(Failure::Unreachable(why)) => {
                unanswered = true;
                format!("the leader (node {}) at {addr}: {why}", info.leader_id)
            }
            Err(Failure::Fatal(line)) => return Err(line),
        };
        if Instant::now() + RETRY_BACKOFF >= deadline {
            return Err(format!(
                "cannot {} controller {}: no leader took the request within {timeout_ms} ms; \
                 last, {note}. Fix: a majority of the voters must run and reach each other; to \
                 wait longer, raise --timeout-ms",
                change.verb(),
                change.id()
            ));
        }
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
}

/// AddRaftVoter for `j`; `wait` bounds how long the leader may take (catch-up and commit).
fn add_request(j: &JoiningController, wait: Duration) -> AddRaftVoterRequest {
    let listeners = j
        .voter
        .endpoints
        .iter()
        .map(|(name, host, port)| {
            add_raft_voter_request::Listener::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_host(StrBytes::from_string(host.clone()))
                .with_port(*port)
        })
        .collect();
    AddRaftVoterRequest::default()
        .with_cluster_id(Some(StrBytes::from_string(j.cluster_id.clone())))
        .with_timeout_ms(i32::try_from(wait.as_millis()).unwrap_or(i32::MAX))
        .with_voter_id(j.voter.id)
        .with_voter_directory_id(j.voter.directory_id)
        .with_listeners(listeners)
}

/// How long one voter change may take at the leader: the request's share of what is left.
fn change_wait(deadline: Instant) -> Duration {
    VOTER_CHANGE_TIMEOUT
        .min(deadline.saturating_duration_since(Instant::now()))
        .max(Duration::from_millis(1))
}

/// One AddRaftVoter or RemoveRaftVoter exchange with `addr`; the answer is awaited a little
/// longer than the leader may take, so that its own REQUEST_TIMED_OUT arrives.
async fn send_change<R: Request>(
    addr: &str,
    request: &R,
    wait: Duration,
    deadline: Instant,
) -> Result<R::Response, Failure> {
    let (mut conn, versions) = open(addr, deadline).await?;
    let name = ApiKey::try_from(R::KEY)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("api key {}", R::KEY));
    let v0 = ApiKey::try_from(R::KEY)
        .ok()
        .and_then(|k| served(&versions, k))
        .is_some_and(|(min, max)| min <= 0 && 0 <= max);
    if !v0 {
        return Err(Failure::Fatal(format!(
            "{addr} does not serve {name} v0: its controller predates KIP-853 voter changes. \
             Fix: upgrade the controllers (Kafka 3.9+ or this kraftd) and format the quorum with \
             --standalone or --initial-controllers"
        )));
    }
    conn.send(0, request, wait + ANSWER_MARGIN)
        .await
        .map_err(|e| failure(addr, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(id: i32, leo: i64, caught_up: Option<i64>) -> Replica {
        Replica {
            id,
            directory_id: uuid::Uuid::nil(),
            log_end_offset: leo,
            last_fetch_timestamp: caught_up,
            last_caught_up_timestamp: caught_up,
        }
    }

    fn three_voters() -> QuorumInfo {
        QuorumInfo {
            leader_addr: "h2:9093".to_string(),
            cluster_id: None,
            leader_id: 2,
            leader_epoch: 7,
            high_watermark: 100,
            voters: vec![
                replica(1, 90, Some(1_000)),
                replica(2, 100, Some(1_500)),
                replica(3, 95, Some(1_400)),
            ],
            observers: vec![replica(4, 80, None)],
            endpoints: BTreeMap::from([
                (1, vec!["CONTROLLER://h1:9093".to_string()]),
                (2, vec!["CONTROLLER://h2:9093".to_string()]),
            ]),
        }
    }

    #[test]
    fn status_reports_the_most_lagging_voter_like_kafka() {
        let text = status_text(&three_voters()).expect("status");
        assert_eq!(
            text,
            "LeaderId:               2\n\
             LeaderEpoch:            7\n\
             HighWatermark:          100\n\
             MaxFollowerLag:         10\n\
             MaxFollowerLagTimeMs:   500\n\
             CurrentVoters:          [{\"id\": 1, \"directoryId\": null, \"endpoints\": [\"CONTROLLER://h1:9093\"]}, \
             {\"id\": 2, \"directoryId\": null, \"endpoints\": [\"CONTROLLER://h2:9093\"]}, \
             {\"id\": 3, \"directoryId\": null}]\n\
             CurrentObservers:       [{\"id\": 4, \"directoryId\": null}]\n"
        );
    }

    #[test]
    fn a_caught_up_quorum_has_no_lag_and_a_lone_leader_none_either() {
        let mut info = three_voters();
        for v in &mut info.voters {
            v.log_end_offset = 100;
        }
        // Voter 1 comes first among the equal minimums, so it is Kafka's laggard: lag 0, and
        // its lag in time is the leader's catch-up minus its own.
        assert_eq!(max_follower_lag(&info), Ok((0, 500)));
        info.voters.retain(|v| v.id == 2);
        assert_eq!(max_follower_lag(&info), Ok((0, 0)));
    }

    #[test]
    fn unknown_catch_up_time_is_minus_one() {
        let mut info = three_voters();
        info.voters[0].last_caught_up_timestamp = None;
        assert_eq!(max_follower_lag(&info), Ok((10, -1)));
    }

    #[test]
    fn a_leader_missing_from_the_voters_is_an_error_not_a_panic() {
        let mut info = three_voters();
        info.leader_id = 9;
        assert!(status_text(&info).is_err());
        assert!(replication_text(&info, None).is_err());
    }

    #[test]
    fn replication_lists_leader_then_followers_then_observers_in_kafkas_table() {
        let text = replication_text(&three_voters(), None).expect("table");
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split('\t').map(str::trim_end).collect())
            .collect();
        assert_eq!(
            rows[0],
            [
                "NodeId",
                "DirectoryId",
                "LogEndOffset",
                "Lag",
                "LastFetchTimestamp",
                "LastCaughtUpTimestamp",
                "Status",
                ""
            ]
        );
        let summary: Vec<(&str, &str, &str)> =
            rows[1..].iter().map(|r| (r[0], r[3], r[6])).collect();
        assert_eq!(
            summary,
            [
                ("2", "0", "Leader"),
                ("1", "10", "Follower"),
                ("3", "5", "Follower"),
                ("4", "20", "Observer")
            ]
        );
        assert_eq!(rows[4][4], "-1", "unknown timestamps print as -1");
        // Every cell is padded to its column, so the tabs line up.
        let first_tab: Vec<usize> = text.lines().map(|l| l.find('\t').unwrap_or(0)).collect();
        assert!(first_tab.iter().all(|&i| i == "NodeId".len()));
    }

    #[test]
    fn human_readable_timestamps_are_ms_ago_and_never_negative() {
        let text = replication_text(&three_voters(), Some(2_000)).expect("table");
        assert!(text.contains("500 ms ago"), "{text}");
        // A leader clock ahead of ours reads as just now, not as a negative age.
        let text = replication_text(&three_voters(), Some(0)).expect("table");
        let leader_row = text.lines().nth(1).unwrap_or_default();
        assert!(leader_row.contains("\t0 ms ago"), "{text}");
    }

    #[test]
    fn bootstrap_addresses_are_checked_before_connecting() {
        assert_eq!(
            parse_bootstrap("a:9093, [::1]:9094 ,"),
            Ok(vec!["a:9093".to_string(), "[::1]:9094".to_string()])
        );
        for bad in ["", ",", "a", "a:", ":9093", "a:0", "a:70000", "a:x"] {
            let err = parse_bootstrap(bad).expect_err(bad);
            assert!(err.contains("Fix: "), "{err}");
        }
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(host_port("::1", 9093), "[::1]:9093");
        assert_eq!(host_port("h", 9093), "h:9093");
    }

    // ---- add-voter / remove-voter ----

    /// A controller joining a dynamic quorum, as in Kafka's quickstart for a second controller.
    const JOINING: &str = "\
process.roles=controller
node.id=2
controller.quorum.bootstrap.servers=ctrl1:9093
listeners=CONTROLLER://0.0.0.0:9095
advertised.listeners=CONTROLLER://ctrl2:9095
controller.listener.names=CONTROLLER
log.dirs=/var/lib/kraftd
";
    const DIR2: &str = "MvDxzVmcRsaTz33bUuRU6A";

    fn config(text: &str) -> ServerConfig {
        ServerConfig::from_str(
            text,
            std::path::Path::new("/etc/kraftd/ctrl2.properties"),
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn formatted(node_id: i32, directory_id: Option<&str>) -> Option<MetaProperties> {
        Some(MetaProperties {
            version: 1,
            cluster_id: "u79uuCXFSG-TEKL0JOGOlQ".to_string(),
            node_id,
            directory_id: directory_id.map(String::from),
        })
    }

    fn voter(id: i32, dir: &str, endpoints: &[(&str, &str, u16)]) -> VoterSpec {
        VoterSpec {
            id,
            directory_id: parse_kafka_uuid(dir).expect("uuid"),
            endpoints: endpoints
                .iter()
                .map(|(n, h, p)| (n.to_string(), h.to_string(), *p))
                .collect(),
        }
    }

    #[test]
    fn the_joining_controller_is_its_node_id_directory_id_and_advertised_endpoint() {
        let joining =
            joining_controller(&config(JOINING), formatted(2, Some(DIR2))).expect("joining");
        assert_eq!(
            joining,
            JoiningController {
                voter: voter(2, DIR2, &[("CONTROLLER", "ctrl2", 9095)]),
                cluster_id: "u79uuCXFSG-TEKL0JOGOlQ".to_string(),
            }
        );
        assert_eq!(
            added_line(&joining.voter),
            format!(
                "Added controller 2 with directory id {DIR2} and endpoints: CONTROLLER://ctrl2:9095"
            )
        );
    }

    #[test]
    fn without_an_advertised_entry_the_listener_is_used_unless_it_is_a_wildcard() {
        let no_advertised = JOINING.replace("advertised.listeners=CONTROLLER://ctrl2:9095\n", "");
        let c = config(&no_advertised.replace("0.0.0.0", "[::1]"));
        assert_eq!(
            controller_endpoints(&c),
            Ok(vec![("CONTROLLER".to_string(), "::1".to_string(), 9095)])
        );
        assert_eq!(
            added_line(&voter(2, DIR2, &[("CONTROLLER", "::1", 9095)])),
            format!(
                "Added controller 2 with directory id {DIR2} and endpoints: CONTROLLER://[::1]:9095"
            )
        );
        // (The config loader itself refuses to advertise 0.0.0.0, as Kafka's.)
        for bind_all in ["", "[::]"] {
            let c = config(&no_advertised.replace("0.0.0.0", bind_all));
            let err = controller_endpoints(&c).expect_err(bind_all);
            assert!(
                err.starts_with(
                    "/etc/kraftd/ctrl2.properties: controller listener CONTROLLER has no address"
                ) && err.contains(
                    "Fix: add CONTROLLER://<this host's name or IP>:9095 to advertised.listeners"
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn add_voter_refuses_what_cannot_become_a_voter_with_the_fix() {
        let c = config(JOINING);
        let err = joining_controller(&c, None).expect_err("not formatted");
        assert!(
            err.starts_with("/var/lib/kraftd is not formatted")
                && err.contains("Fix: run kraftd storage format -t <the quorum's cluster id> -c /etc/kraftd/ctrl2.properties --no-initial-controllers first"),
            "{err}"
        );
        let err = joining_controller(&c, formatted(3, Some(DIR2))).expect_err("other node");
        assert!(err.contains("belongs to node 3 but"), "{err}");
        for bad in [None, Some("not-a-uuid"), Some("AAAAAAAAAAAAAAAAAAAAAA")] {
            let err = joining_controller(&c, formatted(2, bad)).expect_err("no directory id");
            assert!(err.contains("has no valid directory.id"), "{err}");
        }
        let broker = JOINING
            .replace("process.roles=controller", "process.roles=broker")
            .replace(
                "listeners=CONTROLLER://0.0.0.0:9095",
                "listeners=PLAINTEXT://:9092",
            )
            .replace(
                "advertised.listeners=CONTROLLER://ctrl2:9095",
                "advertised.listeners=PLAINTEXT://ctrl2:9092",
            );
        let err =
            joining_controller(&config(&broker), formatted(2, Some(DIR2))).expect_err("broker");
        assert!(
            err.contains(
                "process.roles does not include controller, so node 2 cannot become a voter. Fix: "
            ),
            "{err}"
        );
    }

    #[test]
    fn add_voter_sends_the_voter_its_endpoints_and_its_cluster_id() {
        let joining =
            joining_controller(&config(JOINING), formatted(2, Some(DIR2))).expect("joining");
        let r = add_request(&joining, Duration::from_secs(30));
        assert_eq!(r.cluster_id.as_deref(), Some("u79uuCXFSG-TEKL0JOGOlQ"));
        assert_eq!(r.timeout_ms, 30_000);
        assert_eq!(r.voter_id, 2);
        assert_eq!(kafka_uuid_string(&r.voter_directory_id), DIR2);
        let listeners: Vec<(&str, &str, u16)> = r
            .listeners
            .iter()
            .map(|l| (l.name.as_str(), l.host.as_str(), l.port))
            .collect();
        assert_eq!(listeners, [("CONTROLLER", "ctrl2", 9095)]);
    }

    #[test]
    fn remove_voter_takes_the_directory_id_the_leader_reports() {
        let mut info = three_voters();
        let dir = parse_kafka_uuid(DIR2).expect("uuid");
        info.voters[2].directory_id = dir;
        assert_eq!(voter_directory_id(&info, 3), Ok(dir));
        let err = voter_directory_id(&info, 9).expect_err("unknown");
        assert_eq!(
            err,
            "cannot remove controller 9: VOTER_NOT_FOUND: the leader (node 2) lists the voters \
             1, 2, 3. Fix: pass the id of a voter (kraftd quorum status lists them)"
        );
        // A static voter has no directory id: the zero uuid names it.
        assert_eq!(voter_directory_id(&info, 1), Ok(uuid::Uuid::nil()));
        assert_eq!(parse_directory_id(DIR2), Ok(dir));
        assert!(parse_directory_id("x").is_err());
        assert_eq!(
            parse_directory_id("AAAAAAAAAAAAAAAAAAAAAA"),
            Ok(uuid::Uuid::nil())
        );
    }

    #[test]
    fn error_codes_print_as_kafkas_names() {
        assert_eq!(kafka_error_name(7), "REQUEST_TIMED_OUT");
        assert_eq!(kafka_error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(kafka_error_name(126), "DUPLICATE_VOTER");
        assert_eq!(kafka_error_name(127), "VOTER_NOT_FOUND");
        assert_eq!(kafka_error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(kafka_error_name(9999), "error code 9999");
        assert_eq!(error_name(35), "35 (UNSUPPORTED_VERSION)");
        assert_eq!(error_name(9999), "9999");
    }

    #[test]
    fn a_refusal_is_one_line_with_the_leader_the_error_the_reason_and_the_fix() {
        let info = three_voters();
        let add = VoterChange::Add(JoiningController {
            voter: voter(4, DIR2, &[("CONTROLLER", "ctrl4", 9093)]),
            cluster_id: "u79uuCXFSG-TEKL0JOGOlQ".to_string(),
        });
        let line = refusal(
            &add,
            &info,
            7,
            Some("timed out waiting for replica 4 to catch up with the leader's log"),
            false,
        );
        assert_eq!(
            line,
            "cannot add controller 4: the leader (node 2 at h2:9093) answered REQUEST_TIMED_OUT: \
             timed out waiting for replica 4 to catch up with the leader's log. Fix: start the \
             new controller first (it must be fetching the metadata log as an observer) and \
             retry once it has caught up; a voter change already under way must finish first"
        );
        assert!(!line.contains('\n'));
        let line = refusal(&add, &info, 126, None, true);
        assert!(
            line.contains("answered DUPLICATE_VOTER (an earlier attempt got no answer")
                && line.contains("Fix: nothing to do: controller 4 is already a voter"),
            "{line}"
        );
        assert!(
            refusal(&add, &info, 104, None, false)
                .contains("formatted with cluster id u79uuCXFSG-TEKL0JOGOlQ")
        );
        let remove = VoterChange::Remove {
            id: 3,
            directory_id: None,
        };
        let line = refusal(
            &remove,
            &info,
            127,
            Some("replica 3 is not a voter, or is the only one"),
            false,
        );
        assert!(
            line.starts_with("cannot remove controller 3: the leader (node 2 at h2:9093) answered VOTER_NOT_FOUND: replica 3 is not a voter, or is the only one. Fix: "),
            "{line}"
        );
        for change in [&add, &remove] {
            assert!(fix_for(change, 35).contains("quorum is static"));
            assert!(fix_for(change, -1).contains("leader's log"));
        }
    }
}
