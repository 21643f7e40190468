//! The I/O shell around `RaftCore`: owns the metadata log (`__cluster_metadata-0`) and the
//! quorum-state file, feeds the core the clock, proposals, requests from other nodes and the
//! answers to its own requests, and carries out what it asks — durably, in order. It publishes
//! the high watermark and the leader; readers (the metadata loader) read committed batches
//! through the shared log handle. It also watches the quorum's health and says plainly, once per
//! change, when this node waits for a majority and which voters it cannot reach.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::LeaderChangeMessage;
use kafka_protocol::messages::leader_change_message::Voter as LeaderChangeVoter;
use kafka_protocol::protocol::Encodable;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use super::METADATA_LOG_DIR_NAME;
use super::core::{
    Action, FetchResponse, LogSummary, RaftCore, Request, Response, Role, SnapshotId, Timeouts,
    VoterChangeError,
};
use super::quorum_state::{ElectionState, QuorumStateFile};
use super::rpc;
use super::snapshot::{VoterSpec, control_type};
use super::voter_set::{
    VoterControl, VoterSet, controller_endpoint, encode_control_batch, kraft_version_value,
    same_directory, scan_control_records, voters_value,
};
use crate::log::{LogConfig, LogError, PartitionLog, ReadInfo};
use crate::network::client::{KafkaConnection, host_port};
use crate::protocol::record_batch::{self, BatchOptions, NewRecord};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaderAndEpoch {
    pub leader_id: Option<i32>,
    pub epoch: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error("this node is not the metadata quorum leader (leader: {0:?})")]
    NotLeader(Option<i32>),
    #[error("the raft driver has stopped")]
    Shutdown,
    #[error("metadata log: {0}")]
    Log(#[from] LogError),
    #[error("cannot encode a control record: {0}")]
    Encode(String),
    #[error("{0}")]
    QuorumState(#[from] super::quorum_state::QuorumStateError),
}

/// Events waiting for the driver; a full queue applies back-pressure to proposers and peers.
const EVENT_QUEUE: usize = 4096;
/// Proposals folded into one append + fsync.
const MAX_PROPOSALS_PER_APPEND: usize = 256;
/// Idle connections kept per peer.
const MAX_IDLE_CONNECTIONS_PER_PEER: usize = 4;
/// How often the driver looks at the quorum's health.
const HEALTH_CHECK_EVERY: Duration = Duration::from_millis(500);

struct Proposal {
    records: Vec<Bytes>,
    reply: oneshot::Sender<Result<(i64, i32), RaftError>>,
}

enum Event {
    Propose(Proposal),
    Inbound {
        from: i32,
        request: Request,
        /// Where the sender listens, when the request says (BeginQuorumEpoch's leader).
        endpoints: Vec<(String, String, u16)>,
        reply: oneshot::Sender<Response>,
    },
    Outbound {
        to: i32,
        id: u64,
        result: Result<Answer, String>,
    },
    Describe(oneshot::Sender<QuorumDescription>),
    /// AddRaftVoter / RemoveRaftVoter / UpdateRaftVoter (KIP-853), answered once the change is
    /// committed (add, remove) or appended (update), or refused.
    ChangeVoters {
        change: VoterChangeRequest,
        reply: oneshot::Sender<Result<(), VoterChangeError>>,
    },
    /// A snapshot fetched from the leader is on disk (or could not be fetched).
    SnapshotFetched(Result<SnapshotId, String>),
}

/// A peer's answer to one of our requests.
struct Answer {
    response: Response,
    /// Fetch: the records to append if the core says so.
    records: Bytes,
    /// (id, host, port) of nodes the answer names (the leader's endpoint, KIP-853).
    endpoints: Vec<(i32, String, u16)>,
}

impl Answer {
    fn of(response: Response) -> Answer {
        Answer {
            response,
            records: Bytes::new(),
            endpoints: Vec::new(),
        }
    }
}

/// A change of the voter set asked for over the CONTROLLER listener.
#[derive(Debug, Clone)]
pub enum VoterChangeRequest {
    /// Make this observer a voter, reachable at its endpoints.
    Add(VoterSpec),
    /// Remove the voter with this id and directory id.
    Remove { voter_id: i32, directory_id: Uuid },
    /// A voter's endpoints changed.
    Update(VoterSpec),
}

/// What `DescribeQuorum` reports: the leader's view of every replica.
#[derive(Debug, Clone, Default)]
pub struct QuorumDescription {
    pub leader_id: Option<i32>,
    pub epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<ReplicaDescription>,
    pub observers: Vec<ReplicaDescription>,
}

#[derive(Debug, Clone)]
pub struct ReplicaDescription {
    pub replica_id: i32,
    /// The voter's directory id as the Voters record holds it (nil when unknown).
    pub directory_id: Uuid,
    pub log_end_offset: i64,
    /// Wall-clock milliseconds, -1 when unknown.
    pub last_fetch_timestamp: i64,
    pub last_caught_up_timestamp: i64,
}

#[derive(Clone)]
pub struct RaftHandle {
    events: mpsc::Sender<Event>,
    high_watermark: watch::Receiver<i64>,
    leader: watch::Receiver<LeaderAndEpoch>,
    log_end: watch::Receiver<i64>,
    log: Arc<Mutex<PartitionLog>>,
    node_id: i32,
    dir: PathBuf,
    voters: watch::Receiver<Arc<Vec<VoterSpec>>>,
    controller_listener: String,
}

impl RaftHandle {
    /// `__cluster_metadata-0`: the log, `quorum-state` and the `.checkpoint` snapshots.
    pub fn partition_dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `records` as one batch; returns the offset of the last one and the epoch it was
    /// written in, once it is durable locally (not yet committed: see `wait_committed`).
    pub async fn propose(&self, records: Vec<Bytes>) -> Result<(i64, i32), RaftError> {
        let (reply, rx) = oneshot::channel();
        self.events
            .send(Event::Propose(Proposal { records, reply }))
            .await
            .map_err(|_| RaftError::Shutdown)?;
        rx.await.map_err(|_| RaftError::Shutdown)?
    }

    /// Waits until `offset`, written in `epoch`, is below the high watermark. Fails if this node
    /// stops leading `epoch` first: the record may then be lost, and the caller must say so.
    pub async fn wait_committed(&self, offset: i64, epoch: i32) -> Result<(), RaftError> {
        let mut hw = self.high_watermark.clone();
        let mut leader = self.leader.clone();
        let me = self.node_id;
        tokio::select! {
            r = hw.wait_for(|&hw| hw > offset) => r.map(|_| ()).map_err(|_| RaftError::Shutdown),
            r = leader.wait_for(|l| l.epoch != epoch || l.leader_id != Some(me)) => {
                let leader = r.map(|l| l.leader_id).unwrap_or(None);
                // It may have been committed just before the change.
                if *self.high_watermark.borrow() > offset {
                    Ok(())
                } else {
                    Err(RaftError::NotLeader(leader))
                }
            }
        }
    }

    pub fn high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.clone()
    }

    pub fn leader(&self) -> watch::Receiver<LeaderAndEpoch> {
        self.leader.clone()
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Committed batches from `offset` (whole batches, at least one if any).
    pub fn read_committed(&self, offset: i64, max_bytes: usize) -> Result<ReadInfo, RaftError> {
        let hw = *self.high_watermark.borrow();
        let log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
        Ok(log.read(offset, max_bytes, Some(hw), true)?)
    }

    /// A Vote, BeginQuorumEpoch or EndQuorumEpoch from another node.
    pub async fn handle_request(&self, from: i32, request: Request) -> Result<Response, RaftError> {
        self.handle_request_with_endpoints(from, request, Vec::new())
            .await
    }

    /// As `handle_request`, from a sender that named its endpoints (name, host, port).
    pub async fn handle_request_with_endpoints(
        &self,
        from: i32,
        request: Request,
        endpoints: Vec<(String, String, u16)>,
    ) -> Result<Response, RaftError> {
        let (reply, rx) = oneshot::channel();
        self.events
            .send(Event::Inbound {
                from,
                request,
                endpoints,
                reply,
            })
            .await
            .map_err(|_| RaftError::Shutdown)?;
        rx.await.map_err(|_| RaftError::Shutdown)
    }

    /// A Fetch from a follower or observer: the answer and the records to send. When there is
    /// nothing new, waits up to `max_wait_ms` for new records, as Kafka's leader does.
    pub async fn handle_fetch(
        &self,
        request: super::core::FetchRequest,
        max_wait_ms: i32,
    ) -> Result<(FetchResponse, Option<Bytes>), RaftError> {
        let from = request.replica_id;
        let response = self.handle_request(from, Request::Fetch(request)).await?;
        let Response::Fetch(mut response) = response else {
            return Err(RaftError::Shutdown);
        };
        let Some(read_from) = response.read_from.take() else {
            return Ok((response, None));
        };
        let mut log_end = self.log_end.clone();
        let hw_at_answer = response.high_watermark;
        if *log_end.borrow() <= read_from && max_wait_ms > 0 && !response.high_watermark_news {
            let mut hw = self.high_watermark.clone();
            let wait = Duration::from_millis(max_wait_ms.clamp(0, 10_000) as u64);
            // Wake on new records, or on a new high watermark the follower has not seen.
            let _ = tokio::time::timeout(wait, async {
                tokio::select! {
                    _ = log_end.wait_for(|&end| end > read_from) => {}
                    _ = hw.wait_for(|&hw| hw > hw_at_answer) => {}
                }
            })
            .await;
        }
        let current = *self.leader.borrow();
        if current.epoch == response.epoch && current.leader_id == response.leader_id {
            response.high_watermark = response.high_watermark.max(*self.high_watermark.borrow());
        }
        let info = {
            let log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
            log.read(read_from, rpc::FETCH_MAX_BYTES as usize, None, true)?
        };
        Ok((response, Some(info.records)))
    }

    /// AddRaftVoter (KIP-853): makes `voter`, a replica fetching from this leader as an observer,
    /// a voter. Answers once the new voter set is committed, or with the reason it was not.
    pub async fn add_voter(&self, voter: VoterSpec) -> Result<(), VoterChangeError> {
        self.change_voters(VoterChangeRequest::Add(voter)).await
    }

    /// RemoveRaftVoter (KIP-853): answers once the voter set without it is committed.
    pub async fn remove_voter(
        &self,
        voter_id: i32,
        directory_id: Uuid,
    ) -> Result<(), VoterChangeError> {
        self.change_voters(VoterChangeRequest::Remove {
            voter_id,
            directory_id,
        })
        .await
    }

    /// UpdateRaftVoter (KIP-853): a voter announces its (new) endpoints.
    pub async fn update_voter(&self, voter: VoterSpec) -> Result<(), VoterChangeError> {
        self.change_voters(VoterChangeRequest::Update(voter)).await
    }

    async fn change_voters(&self, change: VoterChangeRequest) -> Result<(), VoterChangeError> {
        let (reply, rx) = oneshot::channel();
        self.events
            .send(Event::ChangeVoters { change, reply })
            .await
            .map_err(|_| VoterChangeError::Shutdown)?;
        rx.await.map_err(|_| VoterChangeError::Shutdown)?
    }

    /// The voters in force (the newest Voters record, or the configured set) with their
    /// endpoints; changes as the log does.
    pub fn voters(&self) -> watch::Receiver<Arc<Vec<VoterSpec>>> {
        self.voters.clone()
    }

    /// Each voter's id and the address of its controller listener endpoint.
    pub fn voter_addresses(&self) -> Vec<VoterAddress> {
        self.voters
            .borrow()
            .iter()
            .filter_map(|spec| {
                let (_, host, port) = controller_endpoint(spec, &self.controller_listener)?;
                Some(VoterAddress {
                    id: spec.id,
                    host: host.clone(),
                    port: *port,
                })
            })
            .collect()
    }

    pub async fn describe(&self) -> Result<QuorumDescription, RaftError> {
        let (reply, rx) = oneshot::channel();
        self.events
            .send(Event::Describe(reply))
            .await
            .map_err(|_| RaftError::Shutdown)?;
        rx.await.map_err(|_| RaftError::Shutdown)
    }
}

/// A voter as `controller.quorum.voters` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterAddress {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl VoterAddress {
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }
}

pub struct RaftConfig {
    pub node_id: i32,
    pub cluster_id: String,
    /// `controller.quorum.voters` (a static quorum); empty when the voters come from the log.
    pub voters: Vec<VoterAddress>,
    /// `controller.quorum.bootstrap.servers`: where an observer that knows no leader asks.
    pub bootstrap_servers: Vec<(String, u16)>,
    /// The first of `controller.quorum.listener.names`: the endpoint of each voter we dial.
    pub controller_listener: String,
    /// This node as a Voters record would name it (its directory id and advertised controller
    /// endpoints); None for a broker-only node. A voter whose recorded endpoints differ tells
    /// the leader (UpdateRaftVoter), so the others find it at its new address.
    pub local_voter: Option<VoterSpec>,
    /// `controller.quorum.auto.join.enable`: a controller that is not a voter of a dynamic
    /// quorum asks the leader to add it (AddRaftVoter), as Kafka 4.1's do.
    pub auto_join: bool,
    pub metadata_log_dir: PathBuf,
    pub timeouts: Timeouts,
    /// Snapshots the metadata loader writes; the core learns of each (it may then answer a
    /// fetch below the log start with the snapshot).
    pub snapshots_written: Option<watch::Receiver<Option<super::snapshot::SnapshotId>>>,
    /// The metadata log's segment size (`metadata.log.segment.bytes`).
    pub segment_bytes: u64,
    /// Kafka's `metadata.max.retention.bytes`: once a snapshot covers them, the oldest
    /// segments go while the log is larger than this (negative: kept forever).
    pub retention_bytes: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RaftStartError {
    #[error("{0}")]
    QuorumState(#[from] super::quorum_state::QuorumStateError),
    #[error("metadata log {dir}: {source}")]
    Log { dir: PathBuf, source: LogError },
    #[error("{0}")]
    Snapshot(#[from] super::snapshot::SnapshotError),
    #[error(
        "controller.quorum.voters names voters {configured:?} but this node's metadata log was formed with voters {stored:?} ({path}): {diff}. The voters of a running quorum change one at a time through the quorum itself, never by editing the list (two different lists could each elect a leader). Fix: set controller.quorum.voters back to ids {stored:?} (their host:port may change freely) and start the node; then, with the quorum running, {how}. No data is lost either way"
    )]
    VotersChanged {
        path: PathBuf,
        stored: Vec<i32>,
        configured: Vec<i32>,
        diff: String,
        how: String,
    },
    #[error(
        "this node knows no voter of the metadata quorum: controller.quorum.voters is empty, controller.quorum.bootstrap.servers is empty and the metadata log in {dir} holds no voter set. Fix: set controller.quorum.bootstrap.servers to the controllers' host:port"
    )]
    NoVoters { dir: PathBuf },
}

struct PendingChange {
    change: VoterChangeRequest,
    reply: oneshot::Sender<Result<(), VoterChangeError>>,
}

/// The id a bootstrap server is known by before we learn its node id (Kafka numbers them
/// -2, -3, ... too).
fn bootstrap_id(index: i32) -> i32 {
    -2 - index
}

/// What this node last heard from a peer.
#[derive(Debug, Clone)]
enum PeerStatus {
    Reached,
    Unreachable(String),
}

struct Peer {
    addr: String,
    idle: Arc<Mutex<Vec<KafkaConnection>>>,
    status: Option<PeerStatus>,
}

pub struct RaftDriver {
    core: RaftCore,
    config: RaftConfig,
    log: Arc<Mutex<PartitionLog>>,
    quorum_state: QuorumStateFile,
    events_tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    high_watermark: watch::Sender<i64>,
    leader: watch::Sender<LeaderAndEpoch>,
    log_end: watch::Sender<i64>,
    voters: watch::Sender<Arc<Vec<VoterSpec>>>,
    /// The voter sets over the log with their endpoints (the core keeps the ids).
    voter_set: VoterSet,
    /// The voter change under way at the core, with the endpoints it brings and whom to answer.
    pending_change: Option<PendingChange>,
    /// When this controller last asked the leader about itself: UpdateRaftVoter for its
    /// endpoints, or AddRaftVoter under auto-join (core clock).
    self_request_at: Option<u64>,
    /// What this node's requests name of it.
    caller: Arc<Caller>,
    /// Everyone we may send to: voters past and present by id, bootstrap servers by
    /// `bootstrap_id`. Addresses come from Voters records, the configuration and the leader
    /// endpoints that Fetch answers name.
    peers: BTreeMap<i32, Peer>,
    started: Instant,
    /// The records of the Fetch answer being handled (AppendFetched appends them).
    pending_records: Bytes,
    /// Since when no leader is known (core clock).
    leaderless_since: Option<u64>,
    dir: PathBuf,
    last_health_report: Option<String>,
}

impl RaftDriver {
    pub fn open(config: RaftConfig) -> Result<(RaftDriver, RaftHandle), RaftStartError> {
        let dir = metadata_partition_dir(&config.metadata_log_dir);
        let log_config = LogConfig {
            segment_bytes: config.segment_bytes.max(1024),
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&dir, log_config).map_err(|source| RaftStartError::Log {
            dir: dir.clone(),
            source,
        })?;
        // Half-written snapshots from a crash are removed; the newest whole one is known to
        // the core, and its Voters record (KIP-853) is the set the log starts with.
        super::snapshot::clean_snapshot_dir(&dir)?;
        let latest_snapshot = super::snapshot::latest_snapshot(&dir)?;
        let (snapshot_voters, snapshot_kraft_version) = match latest_snapshot {
            Some(id) => {
                let snap = super::snapshot::read_snapshot(&id.path_in(&dir))?;
                (
                    snap.voters.as_ref().map(VoterSpec::from_record),
                    snap.kraft_version,
                )
            }
            None => (None, 0),
        };
        let configured_specs: Vec<VoterSpec> = config
            .voters
            .iter()
            .map(|v| VoterSpec {
                id: v.id,
                directory_id: Uuid::nil(),
                endpoints: vec![(config.controller_listener.clone(), v.host.clone(), v.port)],
            })
            .collect();
        let mut voter_set = match snapshot_voters {
            Some(voters) => VoterSet::new(voters, snapshot_kraft_version),
            None => VoterSet::new(configured_specs.clone(), 0),
        };
        for (offset, control) in read_control_records(&log)? {
            voter_set.apply(offset, control);
        }

        let quorum_state = QuorumStateFile::new(&dir);
        let stored = quorum_state.read()?;
        let mut configured: Vec<i32> = config.voters.iter().map(|v| v.id).collect();
        configured.sort_unstable();
        if voter_set.kraft_version() == 0 {
            // A static quorum: the configured list is the voter set, and must not change.
            if let Some(mut formed) = stored.as_ref().and_then(|s| s.voters.clone()) {
                formed.sort_unstable();
                if formed != configured {
                    return Err(voters_changed_error(
                        &config,
                        quorum_state.path(),
                        formed,
                        configured,
                    ));
                }
            }
        } else if !configured.is_empty() && configured != voter_set.latest_ids() {
            warn!(
                configured = ?configured,
                log = ?voter_set.latest_ids(),
                "controller.quorum.voters differs from the voter set in the metadata log, which rules since voters were added or removed (KIP-853); the configured list only helps to find the voters. Fix: list the log's voters in controller.quorum.voters, or replace it with controller.quorum.bootstrap.servers"
            );
        }
        if voter_set.latest().is_empty() && config.bootstrap_servers.is_empty() {
            return Err(RaftStartError::NoVoters { dir });
        }
        let election = stored.map(|s| s.election).unwrap_or_default();
        let latest = latest_snapshot.map(|s| SnapshotId {
            end_offset: s.end_offset,
            epoch: s.epoch,
        });
        let summary = LogSummary {
            start_offset: log.log_start_offset(),
            end_offset: log.log_end_offset(),
            epochs: log.leader_epochs().to_vec(),
            snapshot: latest,
        };
        // The set before the log's first Voters record: the snapshot's, or the configured one.
        let initial_ids = voter_set.initial_ids();
        let bootstrap_ids: Vec<i32> = (0..config.bootstrap_servers.len() as i32)
            .map(bootstrap_id)
            .collect();
        let core = RaftCore::new(
            config.node_id,
            initial_ids,
            config.timeouts,
            election,
            summary,
            rand_seed(),
            0,
        )
        .with_voter_history(voter_set.history_ids())
        .with_bootstrap_servers(bootstrap_ids);
        let log_end_offset = log.log_end_offset();
        let log = Arc::new(Mutex::new(log));
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (hw_tx, hw_rx) = watch::channel(0);
        let (leader_tx, leader_rx) = watch::channel(LeaderAndEpoch {
            leader_id: None,
            epoch: election.epoch,
        });
        let (end_tx, end_rx) = watch::channel(log_end_offset);
        let (voters_tx, voters_rx) = watch::channel(Arc::new(voter_set.latest().to_vec()));
        let handle = RaftHandle {
            events: events_tx.clone(),
            high_watermark: hw_rx,
            leader: leader_rx,
            log_end: end_rx,
            log: log.clone(),
            node_id: config.node_id,
            dir: dir.clone(),
            voters: voters_rx,
            controller_listener: config.controller_listener.clone(),
        };
        let mut driver = RaftDriver {
            core,
            log,
            quorum_state,
            events_tx,
            events,
            high_watermark: hw_tx,
            leader: leader_tx,
            log_end: end_tx,
            voters: voters_tx,
            voter_set,
            pending_change: None,
            self_request_at: None,
            caller: Arc::new(Caller {
                cluster_id: config.cluster_id.clone(),
                node_id: config.node_id,
                local_endpoints: config
                    .local_voter
                    .as_ref()
                    .map(|v| v.endpoints.clone())
                    .unwrap_or_default(),
            }),
            peers: BTreeMap::new(),
            started: Instant::now(),
            pending_records: Bytes::new(),
            leaderless_since: Some(0),
            last_health_report: None,
            dir,
            config,
        };
        for (i, (host, port)) in driver
            .config
            .bootstrap_servers
            .clone()
            .into_iter()
            .enumerate()
        {
            driver.learn_address(bootstrap_id(i as i32), &host, port);
        }
        for spec in configured_specs {
            driver.learn_voter(&spec);
        }
        driver.voters_changed();
        Ok((driver, handle))
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Where to reach node `id` from now on; a new address drops the pooled connections.
    fn learn_address(&mut self, id: i32, host: &str, port: u16) {
        if id == self.config.node_id {
            return;
        }
        let addr = host_port(host, port);
        if self.peers.get(&id).is_some_and(|p| p.addr == addr) {
            return;
        }
        self.peers.insert(
            id,
            Peer {
                addr,
                idle: Arc::new(Mutex::new(Vec::new())),
                status: None,
            },
        );
    }

    fn learn_voter(&mut self, spec: &VoterSpec) {
        if let Some((_, host, port)) = controller_endpoint(spec, &self.config.controller_listener) {
            let host = host.clone();
            self.learn_address(spec.id, &host, *port);
        }
    }

    /// The voter set may have changed (an append, a truncation, a snapshot): publish it and
    /// learn its voters' addresses.
    fn voters_changed(&mut self) {
        let latest = self.voter_set.latest().to_vec();
        for spec in &latest {
            self.learn_voter(spec);
        }
        if self.voters.borrow().as_slice() != latest.as_slice() {
            info!(
                voters = ?self.voter_set.latest_ids(),
                kraft_version = self.voter_set.kraft_version(),
                "metadata quorum voter set"
            );
            self.voters.send_replace(Arc::new(latest));
        }
    }

    /// A voter of a dynamic quorum whose recorded endpoints (or directory id, unknown after a
    /// static quorum's upgrade) differ from its own has them updated, as Kafka's voters do: a
    /// follower sends UpdateRaftVoter to the leader, a leader writes the record itself. Retried
    /// every request timeout until the log agrees.
    fn announce_endpoints(&mut self) -> Result<(), RaftError> {
        let Some(me) = self.config.local_voter.clone() else {
            return Ok(());
        };
        // A voter is named by its id and directory id: a metadata dir formatted without one
        // (by an old tool) cannot be named, and is left as the log records it.
        if self.voter_set.kraft_version() < super::snapshot::KRAFT_VERSION_1
            || me.directory_id.is_nil()
        {
            return Ok(());
        }
        let Some(recorded) = self.voter_set.get(me.id) else {
            return Ok(());
        };
        if recorded.endpoints == me.endpoints && !recorded.directory_id.is_nil() {
            return Ok(());
        }
        let now = self.now();
        if self
            .self_request_at
            .is_some_and(|t| now < t + self.config.timeouts.request_ms)
        {
            return Ok(());
        }
        self.self_request_at = Some(now);
        match self.core.role() {
            Role::Leader(_) => {
                if self.pending_change.is_some() {
                    return Ok(());
                }
                info!(voter = %me, "recording this leader's own new endpoints in the voter set");
                // Nobody waits for the answer; failures are retried on the next round.
                let (reply, _) = oneshot::channel();
                self.handle_event(Event::ChangeVoters {
                    change: VoterChangeRequest::Update(me),
                    reply,
                })
            }
            Role::Follower(f) => {
                let Some(peer) = self.peers.get(&f.leader_id) else {
                    return Ok(());
                };
                info!(
                    leader = f.leader_id,
                    voter = %me,
                    "announcing this voter's endpoints to the leader (UpdateRaftVoter)"
                );
                let task = send_update_voter(
                    peer.addr.clone(),
                    self.config.cluster_id.clone(),
                    f.epoch,
                    me,
                    Duration::from_millis(self.config.timeouts.request_ms),
                );
                tokio::spawn(async move {
                    if let Err(e) = task.await {
                        warn!(error = %e, "UpdateRaftVoter failed; retrying later");
                    }
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `controller.quorum.auto.join.enable`: an observer controller of a dynamic quorum that
    /// follows a leader asks it to be added, every other request timeout until it is a voter
    /// (the leader adds it once it has caught up; until then it answers REQUEST_TIMED_OUT).
    fn maybe_auto_join(&mut self) {
        if !self.config.auto_join || self.core.is_voter() {
            return;
        }
        let Some(me) = self.config.local_voter.clone() else {
            return;
        };
        if me.directory_id.is_nil()
            || me.endpoints.is_empty()
            || self.voter_set.kraft_version() < super::snapshot::KRAFT_VERSION_1
        {
            return;
        }
        let Role::Follower(f) = self.core.role() else {
            return;
        };
        let Some(peer) = self.peers.get(&f.leader_id) else {
            return;
        };
        let now = self.now();
        if self
            .self_request_at
            .is_some_and(|t| now < t + 2 * self.config.timeouts.request_ms)
        {
            return;
        }
        self.self_request_at = Some(now);
        info!(
            leader = f.leader_id,
            voter = %me,
            "asking the leader to make this controller a voter (controller.quorum.auto.join.enable)"
        );
        let task = send_add_voter(
            peer.addr.clone(),
            self.config.cluster_id.clone(),
            me,
            Duration::from_millis(self.config.timeouts.request_ms),
        );
        tokio::spawn(async move {
            if let Err(e) = task.await {
                info!(error = %e, "not a voter yet; asking again");
            }
        });
    }

    /// AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter: checked here against what only the
    /// driver knows (directory ids, endpoints), then handed to the core, which decides when the
    /// Voters record is written and when the change is over.
    fn change_voters(
        &mut self,
        change: VoterChangeRequest,
    ) -> Result<Vec<Action>, VoterChangeError> {
        if self.pending_change.is_some() {
            return Err(VoterChangeError::ChangePending);
        }
        let now = self.now();
        match &change {
            VoterChangeRequest::Add(spec) | VoterChangeRequest::Update(spec) => {
                if controller_endpoint(spec, &self.config.controller_listener).is_none() {
                    return Err(VoterChangeError::Invalid(format!(
                        "voter {} names no endpoint; it needs one for the controller listener {}",
                        spec.id, self.config.controller_listener
                    )));
                }
                if let VoterChangeRequest::Update(_) = change
                    && let Some(known) = self.voter_set.get(spec.id)
                    && !same_directory(known.directory_id, spec.directory_id)
                {
                    return Err(VoterChangeError::VoterNotFound { voter_id: spec.id });
                }
            }
            VoterChangeRequest::Remove {
                voter_id,
                directory_id,
            } => {
                // Exactly the directory id the voter set holds: the zero uuid names a voter of
                // a static quorum, which has none, and nothing else.
                if let Some(known) = self.voter_set.get(*voter_id)
                    && known.directory_id != *directory_id
                {
                    return Err(VoterChangeError::Invalid(format!(
                        "voter {voter_id} has directory id {}, not {}",
                        crate::log::meta_properties::kafka_uuid_string(&known.directory_id),
                        crate::log::meta_properties::kafka_uuid_string(directory_id)
                    )));
                }
            }
        }
        match &change {
            VoterChangeRequest::Add(spec) => self.core.add_voter(now, spec.id),
            VoterChangeRequest::Remove { voter_id, .. } => self.core.remove_voter(now, *voter_id),
            VoterChangeRequest::Update(spec) => self.core.update_voter(now, spec.id),
        }
    }

    /// Leader: writes the Voters record the core asked for. The voters keep the endpoints the
    /// log knows, but for the one being added or updated. A static quorum's first change also
    /// writes kraft.version 1 (right after the Voters record, which is where the core placed
    /// the new set), so every node follows the log's set from then on.
    fn append_voters(&mut self, epoch: i32, ids: &[i32]) -> Result<(), RaftError> {
        let changed = match self.pending_change.as_ref().map(|p| &p.change) {
            Some(VoterChangeRequest::Add(spec) | VoterChangeRequest::Update(spec)) => Some(spec),
            _ => None,
        };
        let specs: Vec<VoterSpec> = ids
            .iter()
            .map(|&id| match changed {
                Some(spec) if spec.id == id => spec.clone(),
                _ => self.voter_set.get(id).cloned().unwrap_or(VoterSpec {
                    id,
                    directory_id: Uuid::nil(),
                    endpoints: Vec::new(),
                }),
            })
            .collect();
        let upgrade = self.voter_set.kraft_version() < super::snapshot::KRAFT_VERSION_1;
        let mut batches = vec![(
            control_type::KRAFT_VOTERS,
            voters_value(&specs).map_err(RaftError::Encode)?,
        )];
        if upgrade {
            batches.push((
                control_type::KRAFT_VERSION,
                kraft_version_value(super::snapshot::KRAFT_VERSION_1).map_err(RaftError::Encode)?,
            ));
        }
        let (offset, end) = self.append_control_batches(epoch, &batches)?;
        self.voter_set.apply(offset, VoterControl::Voters(specs));
        if upgrade {
            self.voter_set.apply(
                offset + 1,
                VoterControl::KRaftVersion(super::snapshot::KRAFT_VERSION_1),
            );
            info!(
                offset,
                "kraft.version is now 1: the voter set lives in the metadata log (KIP-853)"
            );
        }
        self.voters_changed();
        let more = self.core.on_local_flush(end);
        self.execute(more)
    }

    /// Leader: appends one control batch per (type, value) in `epoch` and flushes. Returns the
    /// offset of the first and the new log end.
    fn append_control_batches(
        &mut self,
        epoch: i32,
        batches: &[(i16, Bytes)],
    ) -> Result<(i64, i64), RaftError> {
        let (first, end) = {
            let mut log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
            let first = log.log_end_offset();
            for (control_type, value) in batches {
                let mut batch = encode_control_batch(*control_type, value, now_ms());
                log.append_as_leader(&mut batch, epoch, now_ms())?;
            }
            log.flush()?;
            (first, log.log_end_offset())
        };
        self.log_end.send_replace(end);
        Ok((first, end))
    }

    /// Runs until `shutdown`; a leader then hands over (EndQuorumEpoch) before the log is
    /// flushed and closed.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), RaftError> {
        let actions = self.core.start(self.now());
        self.execute(actions)?;
        let mut health = tokio::time::interval(HEALTH_CHECK_EVERY);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut snapshots = self.config.snapshots_written.take();
        loop {
            let snapshot_written = async {
                match snapshots.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let deadline = self.core.next_deadline();
            let sleep_ms = deadline.saturating_sub(self.now());
            tokio::select! {
                event = self.events.recv() => {
                    let Some(event) = event else { break };
                    self.handle_event(event)?;
                }
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {
                    let actions = self.core.tick(self.now());
                    self.execute(actions)?;
                }
                _ = health.tick() => {
                    self.report_health();
                    self.announce_endpoints()?;
                    self.maybe_auto_join();
                }
                open = snapshot_written => {
                    let latest = match snapshots.as_ref() {
                        Some(rx) if open => *rx.borrow(),
                        _ => {
                            snapshots = None;
                            None
                        }
                    };
                    if let Some(s) = latest {
                        let id = SnapshotId { end_offset: s.end_offset, epoch: s.epoch };
                        let start = self.trim_below(id)?;
                        self.core.on_snapshot_taken(id, start);
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
        self.hand_over().await;
        self.events.close();
        let mut log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
        log.close_in_place()?;
        Ok(())
    }

    /// A leader that stops tells the other voters, so one of them takes over at once instead
    /// of after the fetch timeout.
    async fn hand_over(&mut self) {
        if self.core.leader_epoch().is_none() {
            return;
        }
        let actions = self.core.resign();
        let mut sends = Vec::new();
        for action in actions {
            match action {
                Action::Send { to, request, .. } => {
                    if let Some(peer) = self.peers.get(&to) {
                        sends.push(send_request(
                            peer.addr.clone(),
                            peer.idle.clone(),
                            self.caller.clone(),
                            to,
                            request,
                            Duration::from_millis(300),
                        ));
                    }
                }
                Action::LeaderChanged { epoch, leader_id } => {
                    self.leader
                        .send_replace(LeaderAndEpoch { leader_id, epoch });
                }
                _ => {}
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), futures_join_all(sends)).await;
        info!("resigned as metadata quorum leader");
    }

    fn handle_event(&mut self, event: Event) -> Result<(), RaftError> {
        match event {
            Event::Propose(first) => {
                let mut batch = vec![first];
                while batch.len() < MAX_PROPOSALS_PER_APPEND {
                    match self.events.try_recv() {
                        Ok(Event::Propose(p)) => batch.push(p),
                        Ok(other) => {
                            self.append_proposals(std::mem::take(&mut batch))?;
                            return self.handle_event(other);
                        }
                        Err(_) => break,
                    }
                }
                self.append_proposals(batch)
            }
            Event::Inbound {
                from,
                request,
                endpoints,
                reply,
            } => {
                // A new leader says where it listens now: its address in the voter set may be
                // old (it restarted elsewhere and has not committed the update yet).
                let sender = VoterSpec {
                    id: from,
                    directory_id: Uuid::nil(),
                    endpoints,
                };
                self.learn_voter(&sender);
                let (response, actions) = self.core.handle_request(self.now(), from, request);
                // Persist the election (e.g. a vote) before the answer leaves.
                self.execute(actions)?;
                let _ = reply.send(response);
                Ok(())
            }
            Event::Outbound { to, id, result } => {
                let now = self.now();
                match result {
                    Ok(answer) => {
                        if let Some(peer) = self.peers.get_mut(&to) {
                            peer.status = Some(PeerStatus::Reached);
                        }
                        for (node, host, port) in &answer.endpoints {
                            // A voter's address comes from the log; the leader's endpoint
                            // in an answer helps an observer that knows no voter yet.
                            if self.voter_set.get(*node).is_none() {
                                self.learn_address(*node, host, *port);
                            }
                        }
                        self.pending_records = answer.records;
                        let actions = self.core.handle_response(now, to, id, answer.response);
                        let r = self.execute(actions);
                        self.pending_records = Bytes::new();
                        r
                    }
                    Err(e) => {
                        if let Some(peer) = self.peers.get_mut(&to) {
                            peer.status = Some(PeerStatus::Unreachable(e));
                        }
                        let actions = self.core.handle_request_failed(now, to, id);
                        self.execute(actions)
                    }
                }
            }
            Event::Describe(reply) => {
                let _ = reply.send(self.describe());
                Ok(())
            }
            Event::ChangeVoters { change, reply } => {
                match self.change_voters(change.clone()) {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        Ok(())
                    }
                    Ok(actions) => {
                        let update = matches!(change, VoterChangeRequest::Update(_));
                        self.pending_change = Some(PendingChange { change, reply });
                        let r = self.execute(actions);
                        // An update is answered once its record is appended, as Kafka's.
                        if update && let Some(p) = self.pending_change.take() {
                            let _ = p.reply.send(Ok(()));
                        }
                        r
                    }
                }
            }
            Event::SnapshotFetched(Ok(id)) => {
                // The snapshot replaces the whole local log: it ends where the leader's
                // retained log begins.
                {
                    let mut log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
                    log.truncate_fully_and_start_at(id.end_offset)?;
                }
                self.log_end.send_replace(id.end_offset);
                info!(
                    end_offset = id.end_offset,
                    epoch = id.epoch,
                    "installed the leader's snapshot of the metadata log"
                );
                // The snapshot's Voters record (KIP-853) is the set the log now starts with.
                let file_id = super::snapshot::SnapshotId {
                    end_offset: id.end_offset,
                    epoch: id.epoch,
                };
                let snap = super::snapshot::read_snapshot(&file_id.path_in(&self.dir))
                    .map_err(|e| RaftError::Encode(e.to_string()))?;
                let voters = snap.voters.as_ref().map(VoterSpec::from_record);
                let ids = voters
                    .as_ref()
                    .map(|v| v.iter().map(|s| s.id).collect::<Vec<_>>());
                self.voter_set.reset_to_snapshot(voters, snap.kraft_version);
                self.voters_changed();
                let actions = self.core.on_snapshot_loaded(self.now(), id, ids);
                self.execute(actions)
            }
            Event::SnapshotFetched(Err(e)) => {
                warn!(error = %e, "could not fetch the leader's snapshot; retrying");
                self.core.on_snapshot_failed(self.now());
                Ok(())
            }
        }
    }

    /// After a snapshot at `id`, drops the oldest whole segments it covers while the log is
    /// larger than `metadata.max.retention.bytes` (Kafka's rule). Returns the log start.
    fn trim_below(&mut self, id: SnapshotId) -> Result<i64, RaftError> {
        let mut log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
        let limit = self.config.retention_bytes;
        if limit < 0 || log.size_in_bytes() as i64 <= limit {
            return Ok(log.log_start_offset());
        }
        // Only what is both in the snapshot and committed may go.
        let upto = id
            .end_offset
            .min(self.core.high_watermark())
            .min(log.log_end_offset());
        let before = log.log_start_offset();
        let start = log.delete_records_before(upto)?;
        self.voter_set.trim_before(start);
        if start > before {
            info!(
                log_start_offset = start,
                snapshot_end_offset = id.end_offset,
                "trimmed the metadata log below its snapshot"
            );
        }
        Ok(start)
    }

    fn describe(&self) -> QuorumDescription {
        let wall_now = now_ms();
        let core_now = self.now() as i64;
        let wall = |t: Option<u64>| t.map(|t| wall_now - (core_now - t as i64)).unwrap_or(-1);
        let mut d = QuorumDescription {
            leader_id: self.core.leader_id(),
            epoch: self.core.epoch(),
            high_watermark: self.core.high_watermark(),
            voters: Vec::new(),
            observers: Vec::new(),
        };
        if let Role::Leader(l) = self.core.role() {
            let voter_set = &self.voter_set;
            let describe = |(&id, p): (&i32, &super::core::ReplicaProgress)| ReplicaDescription {
                replica_id: id,
                directory_id: voter_set.get(id).map_or(Uuid::nil(), |v| v.directory_id),
                log_end_offset: p.end_offset,
                last_fetch_timestamp: wall(p.last_fetch_ms),
                last_caught_up_timestamp: wall(p.last_caught_up_ms),
            };
            d.voters = l.voters.iter().map(describe).collect();
            // The leader is always current with itself (as Kafka's RaftUtil reports it).
            let me = self.config.node_id;
            for v in d.voters.iter_mut().filter(|v| v.replica_id == me) {
                v.last_fetch_timestamp = wall_now;
                v.last_caught_up_timestamp = wall_now;
                v.log_end_offset = self.core.log().end_offset;
            }
            d.observers = l.observers.iter().map(describe).collect();
        }
        d
    }

    fn append_proposals(&mut self, proposals: Vec<Proposal>) -> Result<(), RaftError> {
        let Some(epoch) = self.core.leader_epoch() else {
            let leader = self.core.leader_id();
            for p in proposals {
                let _ = p.reply.send(Err(RaftError::NotLeader(leader)));
            }
            return Ok(());
        };
        let mut results = Vec::with_capacity(proposals.len());
        let end = {
            let mut log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
            for p in &proposals {
                let mut batch = encode_batch(&p.records);
                let info = log.append_as_leader(&mut batch, epoch, now_ms());
                results.push(info.map(|i| (i.last_offset, epoch)));
            }
            if let Err(e) = log.flush() {
                // A metadata log that cannot be made durable cannot be trusted: stop leading.
                error!(error = %e, "cannot flush the metadata log");
                return Err(e.into());
            }
            log.log_end_offset()
        };
        self.log_end.send_replace(end);
        let actions = self.core.on_local_flush(end);
        self.execute(actions)?;
        for (p, r) in proposals.into_iter().zip(results) {
            let _ = p.reply.send(r.map_err(RaftError::from));
        }
        Ok(())
    }

    fn execute(&mut self, actions: Vec<Action>) -> Result<(), RaftError> {
        for action in actions {
            match action {
                Action::PersistElection(state) => self.persist(&state)?,
                Action::LeaderChanged { epoch, leader_id } => {
                    self.on_leader_changed(epoch, leader_id);
                }
                Action::AppendLeaderChange { epoch, leader_id } => {
                    let voters: Vec<i32> = self.core.voters().iter().copied().collect();
                    let mut batches = vec![(
                        control_type::LEADER_CHANGE,
                        leader_change_value(leader_id, &voters)?,
                    )];
                    // A dynamic quorum whose voters are only in the (bootstrap) snapshot: put
                    // them into the log too, as Kafka's new leader does, so that replicas
                    // fetching the log from its start learn the voters and their endpoints.
                    let bootstrap_voters = self.voter_set.only_in_snapshot().then(|| {
                        (
                            self.voter_set.latest().to_vec(),
                            self.voter_set.kraft_version(),
                        )
                    });
                    if let Some((specs, version)) = &bootstrap_voters {
                        batches.push((
                            control_type::KRAFT_VERSION,
                            kraft_version_value(*version).map_err(RaftError::Encode)?,
                        ));
                        batches.push((
                            control_type::KRAFT_VOTERS,
                            voters_value(specs).map_err(RaftError::Encode)?,
                        ));
                    }
                    let (first, end) = self.append_control_batches(epoch, &batches)?;
                    if let Some((specs, version)) = bootstrap_voters {
                        self.voter_set
                            .apply(first + 1, VoterControl::KRaftVersion(version));
                        self.voter_set.apply(first + 2, VoterControl::Voters(specs));
                    }
                    let more = self.core.on_local_flush(end);
                    self.execute(more)?;
                }
                Action::AppendFetched => {
                    let records = std::mem::take(&mut self.pending_records);
                    let end = {
                        let mut log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
                        log.append_as_follower(&records, now_ms())?;
                        // A follower's fetch offset is its acknowledgement: durable first.
                        log.flush()?;
                        log.log_end_offset()
                    };
                    debug_assert_eq!(end, self.core.log().end_offset);
                    self.log_end.send_replace(end);
                    let controls = scan_control_records(&records);
                    if !controls.is_empty() {
                        for (offset, control) in controls {
                            self.voter_set.apply(offset, control);
                        }
                        self.voters_changed();
                    }
                }
                Action::Truncate(offset) => {
                    let end = {
                        let mut log = self.log.lock().map_err(|_| RaftError::Shutdown)?;
                        log.truncate_to(offset)?;
                        log.log_end_offset()
                    };
                    warn!(
                        offset,
                        "metadata log diverged from the leader's; truncated to the common point"
                    );
                    self.log_end.send_replace(end);
                    self.voter_set.truncate_to(offset);
                    self.voters_changed();
                }
                Action::FetchSnapshot { from, snapshot } => {
                    info!(
                        leader = from,
                        snapshot_end_offset = snapshot.end_offset,
                        snapshot_epoch = snapshot.epoch,
                        "the leader's log starts past ours: fetching its snapshot"
                    );
                    let Some(peer) = self.peers.get(&from) else {
                        self.core.on_snapshot_failed(self.now());
                        continue;
                    };
                    let task = fetch_snapshot(
                        peer.addr.clone(),
                        self.config.cluster_id.clone(),
                        self.config.node_id,
                        self.core.epoch(),
                        snapshot,
                        self.dir.clone(),
                        Duration::from_millis(self.config.timeouts.request_ms),
                    );
                    let events = self.events_tx.clone();
                    tokio::spawn(async move {
                        let result = task.await;
                        let _ = events.send(Event::SnapshotFetched(result)).await;
                    });
                }
                Action::AdvanceHighWatermark(hw) => {
                    self.high_watermark.send_replace(hw);
                }
                Action::Send { to, id, request } => self.send(to, id, request),
                Action::AppendVoters { epoch, voters } => self.append_voters(epoch, &voters)?,
                Action::VoterChangeDone { change, result } => {
                    match &result {
                        Ok(()) => info!(?change, "metadata quorum voter change committed"),
                        Err(e) => warn!(?change, error = %e, "metadata quorum voter change failed"),
                    }
                    if let Some(p) = self.pending_change.take() {
                        let _ = p.reply.send(result);
                    }
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, to: i32, id: u64, request: Request) {
        let Some(peer) = self.peers.get(&to) else {
            // A voter with no address: nothing to send to. The core times the request out.
            return;
        };
        let timeout = Duration::from_millis(
            self.config.timeouts.request_ms
                + if matches!(request, Request::Fetch(_)) {
                    rpc::FETCH_MAX_WAIT_MS as u64
                } else {
                    0
                },
        );
        let events = self.events_tx.clone();
        let fut = send_request(
            peer.addr.clone(),
            peer.idle.clone(),
            self.caller.clone(),
            to,
            request,
            timeout,
        );
        tokio::spawn(async move {
            let result = fut.await;
            let _ = events.send(Event::Outbound { to, id, result }).await;
        });
    }

    fn on_leader_changed(&mut self, epoch: i32, leader_id: Option<i32>) {
        let previous = *self.leader.borrow();
        if previous.leader_id == leader_id && previous.epoch == epoch {
            return;
        }
        match leader_id {
            Some(leader) => {
                if self.leaderless_since.take().is_some() && self.last_health_report.is_some() {
                    info!(leader, epoch, "the metadata quorum has a leader again");
                }
                self.last_health_report = None;
                if leader == self.config.node_id {
                    info!(epoch, "this node leads the metadata quorum");
                } else {
                    info!(leader, epoch, "following the metadata quorum leader");
                }
            }
            None => {
                if self.leaderless_since.is_none() {
                    self.leaderless_since = Some(self.now());
                }
            }
        }
        self.leader
            .send_replace(LeaderAndEpoch { leader_id, epoch });
    }

    /// While no leader is known for longer than an election takes, says once which voters this
    /// node reaches, which it cannot (and why), and how many a majority needs; again whenever
    /// that changes.
    fn report_health(&mut self) {
        let Some(since) = self.leaderless_since else {
            return;
        };
        let waited = self.now().saturating_sub(since);
        if waited < self.config.timeouts.election_ms * 2 + self.config.timeouts.fetch_ms {
            return;
        }
        let voters = self.core.voters().len();
        let needed = voters / 2 + 1;
        let mut reached = Vec::new();
        let mut unreachable = Vec::new();
        if self.core.is_voter() {
            reached.push(format!("{} (this node)", self.config.node_id));
        }
        // An observer that knows no voter yet asks the bootstrap servers (negative ids).
        let asked = |id: &i32| {
            if voters == 0 {
                *id < 0
            } else {
                self.core.voters().contains(id)
            }
        };
        for (id, peer) in self.peers.iter().filter(|(id, _)| asked(id)) {
            let name = if *id < 0 {
                peer.addr.clone()
            } else {
                format!("{id}@{}", peer.addr)
            };
            match &peer.status {
                Some(PeerStatus::Reached) => reached.push(name),
                Some(PeerStatus::Unreachable(why)) => unreachable.push(format!("{name} ({why})")),
                None => unreachable.push(format!("{name} (no answer yet)")),
            }
        }
        let report = if voters == 0 {
            format!(
                "this node knows no voter of the metadata quorum yet and no leader answered: it asks controller.quorum.bootstrap.servers; reached: [{}]; cannot reach: [{}]. Client requests get retriable errors until a leader is found. Fix: start the controllers, or check controller.quorum.bootstrap.servers",
                reached.join(", "),
                unreachable.join(", ")
            )
        } else {
            format!(
                "waiting for a majority of the metadata quorum: {needed} of {voters} voters are needed; reached {}: [{}]; cannot reach: [{}]. Client requests get retriable errors until a leader is elected. Fix: start the missing voters or check their controller listener addresses in controller.quorum.voters",
                reached.len(),
                reached.join(", "),
                unreachable.join(", ")
            )
        };
        // Compare without the error texts' volatile parts: only who is reached matters.
        if self.last_health_report.as_deref() != Some(report.as_str()) {
            warn!("{report}");
            self.last_health_report = Some(report);
        }
    }

    fn persist(&self, state: &ElectionState) -> Result<(), RaftError> {
        let voters: Vec<i32> = self.core.voters().iter().copied().collect();
        Ok(self.quorum_state.write(state, &voters)?)
    }
}

/// The refusal of a static quorum whose configured voters changed, with the way to make the
/// change the quorum supports: one voter at a time, through the running quorum.
fn voters_changed_error(
    config: &RaftConfig,
    path: &Path,
    stored: Vec<i32>,
    configured: Vec<i32>,
) -> RaftStartError {
    let added: Vec<i32> = configured
        .iter()
        .copied()
        .filter(|v| !stored.contains(v))
        .collect();
    let removed: Vec<i32> = stored
        .iter()
        .copied()
        .filter(|v| !configured.contains(v))
        .collect();
    // A voter of the stored set that the operator can point the commands at.
    let contact = config
        .voters
        .iter()
        .find(|v| v.id == config.node_id && stored.contains(&v.id))
        .or_else(|| config.voters.iter().find(|v| stored.contains(&v.id)))
        .map(|v| v.addr())
        .unwrap_or_else(|| "<a voter's host:port>".to_string());
    let mut diff = Vec::new();
    let mut how = Vec::new();
    if !added.is_empty() {
        diff.push(format!("added {added:?}"));
        for id in &added {
            how.push(format!(
                "add node {id}: give it controller.quorum.bootstrap.servers={contact} instead of controller.quorum.voters, run `kraftd storage format -t <cluster id> -c <its file> --no-initial-controllers` and start it, then `kraftd quorum add-voter --bootstrap-controller {contact} -c <its file>`"
            ));
        }
    }
    if !removed.is_empty() {
        diff.push(format!("removed {removed:?}"));
        for id in &removed {
            how.push(format!(
                "remove node {id} with `kraftd quorum remove-voter --bootstrap-controller {contact} --controller-id {id}`"
            ));
        }
    }
    RaftStartError::VotersChanged {
        path: path.to_path_buf(),
        stored,
        configured,
        diff: diff.join(", "),
        how: how.join("; "),
    }
}

/// The KIP-853 control records of the local log, oldest first: with the snapshot's voters they
/// give the voter set at every offset. Only control batches are decoded.
fn read_control_records(log: &PartitionLog) -> Result<Vec<(i64, VoterControl)>, RaftStartError> {
    let mut found = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let info = log
            .read(offset, 1 << 20, None, true)
            .map_err(|source| RaftStartError::Log {
                dir: log.dir().to_path_buf(),
                source,
            })?;
        if info.next_fetch_offset <= offset {
            break;
        }
        found.extend(scan_control_records(&info.records));
        offset = info.next_fetch_offset;
    }
    Ok(found)
}

/// Who sends the driver's requests: what every request names of this node.
struct Caller {
    cluster_id: String,
    node_id: i32,
    /// This node's controller endpoints, named in BeginQuorumEpoch when it leads.
    local_endpoints: Vec<(String, String, u16)>,
}

/// Sends one request to a peer over a pooled connection and converts the answer for the core.
async fn send_request(
    addr: String,
    idle: Arc<Mutex<Vec<KafkaConnection>>>,
    caller: Arc<Caller>,
    to: i32,
    request: Request,
    timeout: Duration,
) -> Result<Answer, String> {
    let Caller {
        cluster_id,
        node_id,
        local_endpoints,
    } = &*caller;
    let pooled = idle.lock().ok().and_then(|mut v| v.pop());
    let mut conn = match pooled {
        Some(c) => c,
        None => KafkaConnection::connect(&addr, &format!("kraftd-raft-{node_id}"), timeout)
            .await
            .map_err(|e| short_error(&e.to_string()))?,
    };
    let c = &mut conn;
    let result = match &request {
        Request::Vote(r) => {
            let req = rpc::vote_request(cluster_id, to, r);
            exchange(c, rpc::VOTE_VERSION, &req, timeout, |resp| {
                rpc::vote_response_from(resp, r.pre_vote).map(|v| Answer::of(Response::Vote(v)))
            })
            .await
        }
        Request::BeginEpoch(r) => {
            let req = rpc::begin_epoch_request(cluster_id, to, r, local_endpoints);
            exchange(c, rpc::BEGIN_EPOCH_VERSION, &req, timeout, |resp| {
                rpc::begin_epoch_response_from(resp).map(|v| Answer::of(Response::BeginEpoch(v)))
            })
            .await
        }
        Request::EndEpoch(r) => {
            let req = rpc::end_epoch_request(cluster_id, r);
            exchange(c, rpc::END_EPOCH_VERSION, &req, timeout, |resp| {
                rpc::end_epoch_response_from(resp).map(|v| Answer::of(Response::EndEpoch(v)))
            })
            .await
        }
        Request::Fetch(r) => {
            let req = rpc::fetch_request(cluster_id, r);
            exchange(c, rpc::FETCH_VERSION, &req, timeout, |resp| {
                rpc::fetch_response_from(resp).map(|(v, records)| Answer {
                    response: Response::Fetch(v),
                    records,
                    endpoints: rpc::node_endpoints(resp),
                })
            })
            .await
        }
    };
    if result.is_ok()
        && let Ok(mut v) = idle.lock()
        && v.len() < MAX_IDLE_CONNECTIONS_PER_PEER
    {
        v.push(conn);
    }
    result.map_err(|e| short_error(&e))
}

/// One request and its answer, converted for the core; any failure as text for the log.
async fn exchange<R: kafka_protocol::protocol::Request>(
    conn: &mut KafkaConnection,
    version: i16,
    request: &R,
    timeout: Duration,
    convert: impl FnOnce(&R::Response) -> Result<Answer, rpc::RpcError>,
) -> Result<Answer, String> {
    let response = conn
        .send(version, request, timeout)
        .await
        .map_err(|e| e.to_string())?;
    convert(&response).map_err(|e| e.to_string())
}

/// Asks the leader at `addr` to record `voter`'s endpoints (UpdateRaftVoter v0).
async fn send_update_voter(
    addr: String,
    cluster_id: String,
    epoch: i32,
    voter: VoterSpec,
    timeout: Duration,
) -> Result<(), String> {
    use kafka_protocol::messages::UpdateRaftVoterRequest;
    use kafka_protocol::messages::update_raft_voter_request::{KRaftVersionFeature, Listener};
    use kafka_protocol::protocol::StrBytes;
    let request = UpdateRaftVoterRequest::default()
        .with_cluster_id(Some(StrBytes::from_string(cluster_id)))
        .with_current_leader_epoch(epoch)
        .with_voter_id(voter.id)
        .with_voter_directory_id(voter.directory_id)
        .with_listeners(wire_listeners(&voter, |name, host, port| {
            Listener::default()
                .with_name(name)
                .with_host(host)
                .with_port(port)
        }))
        .with_k_raft_version_feature(
            KRaftVersionFeature::default()
                .with_min_supported_version(0)
                .with_max_supported_version(super::snapshot::KRAFT_VERSION_1),
        );
    ask_leader(&addr, voter.id, &request, timeout, |r| {
        (r.error_code != 0).then(|| format!("UpdateRaftVoter answered error {}", r.error_code))
    })
    .await
}

/// Sends this node's own voter request (v0) to the leader at `addr` and waits up to `wait` for
/// the answer; `refusal` reads an error out of it.
async fn ask_leader<R: kafka_protocol::protocol::Request>(
    addr: &str,
    node_id: i32,
    request: &R,
    wait: Duration,
    refusal: impl FnOnce(&R::Response) -> Option<String>,
) -> Result<(), String> {
    let mut conn = KafkaConnection::connect(addr, &format!("kraftd-raft-{node_id}"), wait)
        .await
        .map_err(|e| e.to_string())?;
    let response = conn
        .send(0, request, wait)
        .await
        .map_err(|e| e.to_string())?;
    refusal(&response).map_or(Ok(()), Err)
}

/// `voter`'s endpoints as a request's listeners (AddRaftVoter's and UpdateRaftVoter's are
/// different types of the same shape).
fn wire_listeners<L>(
    voter: &VoterSpec,
    listener: impl Fn(kafka_protocol::protocol::StrBytes, kafka_protocol::protocol::StrBytes, u16) -> L,
) -> Vec<L> {
    use kafka_protocol::protocol::StrBytes;
    voter
        .endpoints
        .iter()
        .map(|(name, host, port)| {
            listener(
                StrBytes::from_string(name.clone()),
                StrBytes::from_string(host.clone()),
                *port,
            )
        })
        .collect()
}

/// Asks the leader at `addr` to add `voter` (AddRaftVoter v0), waiting up to `timeout` there.
async fn send_add_voter(
    addr: String,
    cluster_id: String,
    voter: VoterSpec,
    timeout: Duration,
) -> Result<(), String> {
    use kafka_protocol::messages::AddRaftVoterRequest;
    use kafka_protocol::messages::add_raft_voter_request::Listener;
    use kafka_protocol::protocol::StrBytes;
    let request = AddRaftVoterRequest::default()
        .with_cluster_id(Some(StrBytes::from_string(cluster_id)))
        .with_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
        .with_voter_id(voter.id)
        .with_voter_directory_id(voter.directory_id)
        .with_listeners(wire_listeners(&voter, |name, host, port| {
            Listener::default()
                .with_name(name)
                .with_host(host)
                .with_port(port)
        }));
    // The leader answers once the change commits, or after the request's timeout.
    ask_leader(&addr, voter.id, &request, timeout * 2, |r| {
        (r.error_code != 0).then(|| {
            format!(
                "AddRaftVoter answered error {}: {}",
                r.error_code,
                r.error_message.as_deref().unwrap_or("")
            )
        })
    })
    .await
}

/// Bytes asked for per FetchSnapshot request.
const SNAPSHOT_CHUNK_BYTES: i32 = 1 << 20;

/// Downloads snapshot `id` from the leader at `addr` in chunks into `<id>.checkpoint.part`, then
/// makes it durable and renames it into place, as Kafka's follower does.
async fn fetch_snapshot(
    addr: String,
    cluster_id: String,
    node_id: i32,
    epoch: i32,
    id: SnapshotId,
    dir: PathBuf,
    timeout: Duration,
) -> Result<SnapshotId, String> {
    use kafka_protocol::messages::{
        BrokerId, FetchSnapshotRequest, TopicName, fetch_snapshot_request,
    };
    use kafka_protocol::protocol::StrBytes;
    use std::io::Write;
    let file_id = super::snapshot::SnapshotId {
        end_offset: id.end_offset,
        epoch: id.epoch,
    };
    let path = file_id.path_in(&dir);
    let part = path.with_extension("checkpoint.part");
    let mut file = std::fs::File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
    let mut conn = KafkaConnection::connect(&addr, &format!("kraftd-raft-{node_id}"), timeout)
        .await
        .map_err(|e| e.to_string())?;
    let mut position = 0i64;
    loop {
        let request = FetchSnapshotRequest::default()
            .with_cluster_id(Some(StrBytes::from_string(cluster_id.clone())))
            .with_replica_id(BrokerId(node_id))
            .with_max_bytes(SNAPSHOT_CHUNK_BYTES)
            .with_topics(vec![
                fetch_snapshot_request::TopicSnapshot::default()
                    .with_name(TopicName(StrBytes::from_static_str(rpc::METADATA_TOPIC)))
                    .with_partitions(vec![
                        fetch_snapshot_request::PartitionSnapshot::default()
                            .with_partition(0)
                            .with_current_leader_epoch(epoch)
                            .with_snapshot_id(
                                fetch_snapshot_request::SnapshotId::default()
                                    .with_end_offset(id.end_offset)
                                    .with_epoch(id.epoch),
                            )
                            .with_position(position),
                    ]),
            ]);
        let response = conn
            .send(1, &request, timeout)
            .await
            .map_err(|e| e.to_string())?;
        if response.error_code != 0 {
            return Err(format!(
                "FetchSnapshot failed with error {}",
                response.error_code
            ));
        }
        let p = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or("FetchSnapshot answer names no partition")?;
        if p.error_code != 0 {
            return Err(format!("FetchSnapshot failed with error {}", p.error_code));
        }
        if p.position != position || p.unaligned_records.is_empty() && position < p.size {
            return Err(format!(
                "FetchSnapshot answered position {} for {position}",
                p.position
            ));
        }
        file.write_all(&p.unaligned_records)
            .map_err(|e| format!("{}: {e}", part.display()))?;
        position += p.unaligned_records.len() as i64;
        if position >= p.size {
            break;
        }
    }
    file.sync_all()
        .map_err(|e| format!("{}: {e}", part.display()))?;
    drop(file);
    std::fs::rename(&part, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The whole file must read back as a snapshot (header, CRCs, footer) before it counts.
    if let Err(e) = super::snapshot::read_snapshot(&path) {
        let _ = std::fs::remove_file(&path);
        return Err(e.to_string());
    }
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(id)
}

/// "cannot connect to 127.0.0.1:9095: Connection refused (os error 111)" → "connection
/// refused": the address is printed beside it already.
fn short_error(e: &str) -> String {
    let lower = e.to_ascii_lowercase();
    for known in [
        "connection refused",
        "connection reset",
        "timed out",
        "no answer within",
        "broken pipe",
        "no route to host",
        "unexpected end of file",
    ] {
        if lower.contains(known) {
            return known.to_string();
        }
    }
    e.to_string()
}

/// Runs the hand-over sends side by side and waits for all of them.
async fn futures_join_all<F>(futures: Vec<F>)
where
    F: std::future::Future + Send + 'static,
    F::Output: Send,
{
    let mut set = tokio::task::JoinSet::new();
    for f in futures {
        set.spawn(f);
    }
    while set.join_next().await.is_some() {}
}

pub fn metadata_partition_dir(metadata_log_dir: &Path) -> PathBuf {
    metadata_log_dir.join(METADATA_LOG_DIR_NAME)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn rand_seed() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// Metadata records go into the log as an uncompressed v2 batch of key-less records, as Kafka's.
fn encode_batch(values: &[Bytes]) -> BytesMut {
    let ts = now_ms();
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord {
            key: None,
            value: Some(v),
            headers: &[],
            timestamp: ts,
        })
        .collect();
    BytesMut::from(&record_batch::encode_batch(&records, &BatchOptions::default())[..])
}

fn leader_change_value(leader_id: i32, voters: &[i32]) -> Result<Bytes, RaftError> {
    let voters: Vec<LeaderChangeVoter> = voters
        .iter()
        .map(|&v| LeaderChangeVoter::default().with_voter_id(v))
        .collect();
    let msg = LeaderChangeMessage::default()
        .with_version(0)
        .with_leader_id(leader_id.into())
        .with_voters(voters.clone())
        .with_granting_voters(voters);
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, 0)
        .map_err(|e| RaftError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}
