//! `kraftd quorum status|replication`, like `kafka-metadata-quorum.sh --bootstrap-controller ...
//! describe --status|--replication`: asks a controller for DescribeQuorum, follows
//! NOT_LEADER_OR_FOLLOWER to the leader (only the leader knows every replica's progress) and
//! prints Kafka's layout, or JSON. Everything comes from the wire: this module must not read a
//! local config or data dir, so it works from any host that can reach a controller.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::{self, ReplicaState};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, DescribeClusterRequest, DescribeQuorumRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::log::meta_properties::kafka_uuid_string;
use crate::network::client::{ClientError, KafkaConnection};

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

/// The leader's answer, reduced to what the two views print.
#[derive(Debug, Clone)]
struct QuorumInfo {
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

fn query(args: &QuorumArgs) -> Result<QuorumInfo, String> {
    let addrs = parse_bootstrap(&args.bootstrap_controller)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
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

fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{code} ({e})"),
        None => code.to_string(),
    }
}

/// One DescribeQuorum exchange with `addr`, preceded by ApiVersions to pick the version and to
/// tell a broker listener (which does not serve DescribeQuorum) from a controller's.
async fn describe_at(addr: &str, deadline: Instant) -> Result<Reply, Failure> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let unreachable = |e: ClientError| match e {
        ClientError::Protocol { .. } => fatal_not_kafka(addr, &e),
        _ => Failure::Unreachable(reason(&e)),
    };
    if left().is_zero() {
        return Err(Failure::Unreachable("no time left".to_string()));
    }
    let mut conn = KafkaConnection::connect(addr, CLIENT_ID, left())
        .await
        .map_err(unreachable)?;
    let versions = conn
        .send(
            API_VERSIONS_VERSION,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION"))),
            left(),
        )
        .await
        .map_err(unreachable)?;
    if versions.error_code != 0 {
        return Err(Failure::Fatal(format!(
            "{addr} refused ApiVersions with error {}. Fix: pass the host:port of a kraftd or \
             Kafka 3.3+ controller with --bootstrap-controller",
            error_name(versions.error_code)
        )));
    }
    let range = |key: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
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
        .map_err(unreachable)?;
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

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
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
}
