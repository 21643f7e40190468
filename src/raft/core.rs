//! The Raft state machine of KIP-595 with KIP-996 pre-vote: requests, responses, ticks and local
//! log progress go in; actions (persist the election state, send a request, append or truncate
//! the log, advance the high watermark) come out. No sockets, clock or disk here: time is a
//! number of milliseconds handed in, randomness a seeded generator, the log a summary of offsets
//! and epochs. The same core runs under the driver and under the simulator in `tests/`.
//!
//! Roles are their own types, named as in Kafka's `QuorumState`: Unattached, Prospective,
//! Candidate, Leader, Follower, Resigned. Replication is pull-based: followers and observers send
//! Fetch with their log end offset and last epoch; the leader answers with records, a divergence
//! point to truncate to, or the snapshot to load. The leader's fetch offsets of voters move the
//! high watermark.
//!
//! The voter set is log state (KIP-853): a KRaft Voters control record takes effect as soon as
//! it is appended, committed or not, and truncating it away restores the set before it. The core
//! keeps the (offset, voter set) history without the records' bytes: the leader asks for a
//! Voters record with `Action::AppendVoters`; a follower's driver marks the fetched batches that
//! hold one. The leader changes the set one voter at a time (AddRaftVoter, RemoveRaftVoter), only
//! once its own epoch and the previous change are committed, so any two consecutive sets have
//! overlapping majorities.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;

use super::quorum_state::ElectionState;

/// Kafka's error codes that travel in Raft responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftErrorCode {
    /// FENCED_LEADER_EPOCH (74): the sender's epoch is older than ours.
    FencedLeaderEpoch,
    /// NOT_LEADER_OR_FOLLOWER (6): ask the leader we name instead.
    NotLeaderOrFollower,
    /// UNKNOWN_LEADER_EPOCH (75): the sender is ahead of us.
    UnknownLeaderEpoch,
    /// INCONSISTENT_VOTER_SET (94): the request came from a node that is not a voter.
    InconsistentVoterSet,
}

impl RaftErrorCode {
    pub fn code(self) -> i16 {
        self.kafka().code()
    }

    fn kafka(self) -> ResponseError {
        match self {
            RaftErrorCode::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch,
            RaftErrorCode::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower,
            RaftErrorCode::UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch,
            RaftErrorCode::InconsistentVoterSet => ResponseError::InconsistentVoterSet,
        }
    }

    pub fn from_code(code: i16) -> Option<RaftErrorCode> {
        [
            RaftErrorCode::FencedLeaderEpoch,
            RaftErrorCode::NotLeaderOrFollower,
            RaftErrorCode::UnknownLeaderEpoch,
            RaftErrorCode::InconsistentVoterSet,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }
}

/// A snapshot of the log up to (not including) `end_offset`, whose last record has `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotId {
    pub end_offset: i64,
    pub epoch: i32,
}

/// One record batch of a Fetch answer: its offsets and the leader epoch it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMeta {
    pub base_offset: i64,
    pub last_offset: i64,
    pub epoch: i32,
    /// The voter ids of the KRaft Voters control record this batch holds, if it holds one: the
    /// set takes effect (at `last_offset`) as soon as the batch is appended.
    pub voters: Option<Vec<i32>>,
}

/// A change of the voter set a leader was asked for (AddRaftVoter, RemoveRaftVoter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoterChange {
    Add(i32),
    Remove(i32),
}

/// Why the leader refused, or gave up on, a voter change; each is one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoterChangeError {
    #[error("this node is not the leader ({})", match leader_id {
        Some(id) => format!("node {id} leads"),
        None => "no leader is known yet".to_string(),
    })]
    NotLeader { leader_id: Option<i32> },
    #[error("timed out waiting for the leader to handle the previous voter change")]
    ChangePending,
    #[error("timed out waiting for the leader to commit its epoch and fence earlier voter changes")]
    NoHighWatermark,
    #[error(
        "timed out waiting for the voters to commit the latest voter change at offset {offset} (high watermark {high_watermark})"
    )]
    UncommittedVoters { offset: i64, high_watermark: i64 },
    #[error("timed out waiting for replica {voter_id} to catch up with the leader's log")]
    NotCaughtUp { voter_id: i32 },
    #[error("timed out waiting for the voter change at offset {offset} to commit")]
    NotCommitted { offset: i64 },
    #[error("replica {voter_id} is already a voter")]
    DuplicateVoter { voter_id: i32 },
    #[error("replica {voter_id} is not a voter, or is the only one")]
    VoterNotFound { voter_id: i32 },
    /// The request itself is wrong (no endpoint on the controller listener, a zero directory
    /// id where one is needed, ...); the text says what.
    #[error("{0}")]
    Invalid(String),
    /// The driver stopped before the change was answered.
    #[error("the metadata quorum is shutting down on this node")]
    Shutdown,
}

impl VoterChangeError {
    /// The error code of the AddRaftVoter / RemoveRaftVoter / UpdateRaftVoter response.
    pub fn code(&self) -> i16 {
        match self {
            VoterChangeError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
            // Kafka's answer to everything that may succeed when retried.
            VoterChangeError::ChangePending
            | VoterChangeError::NoHighWatermark
            | VoterChangeError::UncommittedVoters { .. }
            | VoterChangeError::NotCaughtUp { .. }
            | VoterChangeError::NotCommitted { .. } => ResponseError::RequestTimedOut,
            VoterChangeError::DuplicateVoter { .. } => ResponseError::DuplicateVoter,
            VoterChangeError::VoterNotFound { .. } => ResponseError::VoterNotFound,
            VoterChangeError::Invalid(_) => ResponseError::InvalidRequest,
            VoterChangeError::Shutdown => ResponseError::UnknownServerError,
        }
        .code()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteRequest {
    pub epoch: i32,
    pub candidate_id: i32,
    pub last_epoch: i32,
    pub end_offset: i64,
    pub pre_vote: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteResponse {
    pub error: Option<RaftErrorCode>,
    pub epoch: i32,
    pub leader_id: Option<i32>,
    pub granted: bool,
    pub pre_vote: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeginEpochRequest {
    pub epoch: i32,
    pub leader_id: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndEpochRequest {
    pub epoch: i32,
    pub leader_id: i32,
    /// Voters in the order the resigning leader prefers them as successor.
    pub preferred_successors: Vec<i32>,
}

/// The answer to BeginQuorumEpoch and EndQuorumEpoch: our view of the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochResponse {
    pub error: Option<RaftErrorCode>,
    pub epoch: i32,
    pub leader_id: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub epoch: i32,
    pub replica_id: i32,
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    pub error: Option<RaftErrorCode>,
    pub epoch: i32,
    pub leader_id: Option<i32>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Truncate to this point before fetching again.
    pub diverging: Option<(i32, i64)>,
    /// Fetch this snapshot: the log below the fetch offset is gone.
    pub snapshot: Option<SnapshotId>,
    /// Leader side: the offset the driver reads records from. Follower side: unused.
    pub read_from: Option<i64>,
    /// Leader side: the answer carries a high watermark this replica has not been sent yet, so
    /// the driver answers at once instead of holding an empty fetch (followers learn a commit
    /// without waiting out the long-poll). Follower side: unused.
    pub high_watermark_news: bool,
    /// Follower side: the batches the driver decoded from the answer.
    pub batches: Vec<BatchMeta>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Vote(VoteRequest),
    BeginEpoch(BeginEpochRequest),
    EndEpoch(EndEpochRequest),
    Fetch(FetchRequest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Vote(VoteResponse),
    BeginEpoch(EpochResponse),
    EndEpoch(EpochResponse),
    Fetch(FetchResponse),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the quorum-state file; must be durable before any later action runs.
    PersistElection(ElectionState),
    /// Send a request to a node (a voter by id; observers find voters the same way). The answer
    /// comes back through `handle_response` with the same `id`.
    Send { to: i32, id: u64, request: Request },
    /// The new leader's first record of its epoch (the LeaderChange control record). The driver
    /// appends and flushes it, then reports `on_local_flush`.
    AppendLeaderChange { epoch: i32, leader_id: i32 },
    /// Append the batches of the Fetch answer just handed in (they follow our log end) and flush.
    AppendFetched,
    /// Cut the log so that it ends at this offset, then carry on with the actions after it.
    Truncate(i64),
    /// The log below the fetch offset is gone at the leader: fetch this snapshot and call
    /// `on_snapshot_loaded` when it is installed.
    FetchSnapshot { from: i32, snapshot: SnapshotId },
    /// Records below this offset are committed.
    AdvanceHighWatermark(i64),
    /// Who leads now (None while unknown).
    LeaderChanged { epoch: i32, leader_id: Option<i32> },
    /// Leader: append a KRaft Voters control record naming exactly `voters` in `epoch`, before
    /// any other record, flush, then report `on_local_flush`. The set is already in force: the
    /// core placed it at the log end offset it knows.
    AppendVoters { epoch: i32, voters: Vec<i32> },
    /// The AddRaftVoter or RemoveRaftVoter the leader accepted is over: answer it.
    VoterChangeDone {
        change: VoterChange,
        result: Result<(), VoterChangeError>,
    },
}

/// Timeouts, in milliseconds, with Kafka's `controller.quorum.*` defaults.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub election_ms: u64,
    pub fetch_ms: u64,
    pub election_backoff_max_ms: u64,
    pub request_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            election_ms: 1000,
            fetch_ms: 2000,
            election_backoff_max_ms: 1000,
            request_ms: 2000,
        }
    }
}

/// What the core knows of the local log: where it starts and ends and where each epoch began.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogSummary {
    pub start_offset: i64,
    pub end_offset: i64,
    /// (epoch, start offset) in increasing order, as Kafka's leader-epoch-checkpoint.
    pub epochs: Vec<(i32, i64)>,
    /// The newest snapshot, if any; the log below its end offset may be gone.
    pub snapshot: Option<SnapshotId>,
}

impl LogSummary {
    pub fn last_epoch(&self) -> i32 {
        self.epochs
            .last()
            .map(|&(e, _)| e)
            .or(self.snapshot.map(|s| s.epoch))
            .unwrap_or(0)
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch <= `epoch` we hold, and where it ends.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let idx = self.epochs.partition_point(|&(e, _)| e <= epoch);
        if idx == 0 {
            return self
                .snapshot
                .filter(|s| s.epoch <= epoch)
                .map(|s| (s.epoch, s.end_offset));
        }
        let (found, _) = self.epochs[idx - 1];
        let end = self
            .epochs
            .get(idx)
            .map(|&(_, start)| start)
            .unwrap_or(self.end_offset);
        Some((found, end))
    }

    fn record_append(&mut self, epoch: i32, base_offset: i64, end_offset: i64) {
        if self.epochs.last().is_none_or(|&(e, _)| epoch > e) {
            self.epochs.push((epoch, base_offset));
        }
        self.end_offset = end_offset;
    }

    fn truncate_to(&mut self, offset: i64) {
        self.epochs.retain(|&(_, start)| start < offset);
        self.end_offset = offset;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnattachedState {
    pub epoch: i32,
    pub voted_id: Option<i32>,
    /// A leader this node knew in `epoch` (an observer keeps fetching from it).
    pub leader_hint: Option<i32>,
    pub election_deadline: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProspectiveState {
    pub epoch: i32,
    pub voted_id: Option<i32>,
    /// The leader this node stopped hearing from: voters that still name it do not pull us
    /// back to following it (we just timed out on it).
    pub left_leader: Option<i32>,
    pub granted: BTreeSet<i32>,
    pub rejected: BTreeSet<i32>,
    pub election_deadline: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateState {
    pub epoch: i32,
    pub granted: BTreeSet<i32>,
    pub rejected: BTreeSet<i32>,
    pub election_deadline: u64,
}

/// What the leader knows of one replica (voter or observer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaProgress {
    /// The replica's log end offset, as its last valid Fetch said.
    pub end_offset: i64,
    /// When it last fetched (ms, the driver's clock), if ever in this epoch.
    pub last_fetch_ms: Option<u64>,
    /// When it was last known to be caught up to our log end.
    pub last_caught_up_ms: Option<u64>,
    /// Our log end offset when it last fetched.
    pub last_fetch_leader_end: i64,
    /// The high watermark our last answer to it carried.
    pub high_watermark_sent: i64,
}

impl ReplicaProgress {
    fn unknown() -> Self {
        ReplicaProgress {
            end_offset: -1,
            last_fetch_ms: None,
            last_caught_up_ms: None,
            last_fetch_leader_end: -1,
            high_watermark_sent: -1,
        }
    }

    /// A Fetch at `fetch_offset` while our log ends at `leader_end`. As Kafka's `ReplicaState`:
    /// a replica that reached where our log ended at its previous fetch was caught up as of
    /// that fetch, so a steady stream of appends does not make a keeping-up replica look behind.
    fn record_fetch(&mut self, now: u64, fetch_offset: i64, leader_end: i64) {
        if fetch_offset >= leader_end {
            self.last_caught_up_ms = Some(now);
        } else if self.last_fetch_leader_end > 0 && fetch_offset >= self.last_fetch_leader_end {
            self.last_caught_up_ms = self.last_caught_up_ms.max(self.last_fetch_ms);
        }
        self.last_fetch_leader_end = leader_end;
        self.last_fetch_ms = Some(now);
        self.end_offset = fetch_offset;
    }
}

/// The voter change a leader is carrying out; one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingVoterChange {
    pub change: VoterChange,
    /// The offset of its Voters record once appended (an added voter must catch up first).
    pub offset: Option<i64>,
    /// Unanswered by then, it is answered REQUEST_TIMED_OUT (the record, if appended, stays).
    pub deadline: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    pub epoch: i32,
    /// The offset of this epoch's first record (its LeaderChange): nothing is committed in this
    /// epoch until the high watermark passes it.
    pub epoch_start_offset: i64,
    pub voters: BTreeMap<i32, ReplicaProgress>,
    pub observers: BTreeMap<i32, ReplicaProgress>,
    /// Voters that have not yet acknowledged BeginQuorumEpoch (nor fetched).
    pub unacknowledged: BTreeSet<i32>,
    pub begin_epoch_resend_at: u64,
    /// Since when a majority has not fetched; the leader resigns after 1.5 × fetch timeout.
    pub check_quorum_deadline: u64,
    pub voter_change: Option<PendingVoterChange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    pub epoch: i32,
    pub leader_id: i32,
    pub voted_id: Option<i32>,
    /// Without a successful fetch by then, the leader is presumed gone.
    pub fetch_deadline: u64,
    /// When the in-flight Fetch is given up on, if one is in flight.
    pub fetch_in_flight_until: Option<u64>,
    /// The in-flight Fetch's id: a late or repeated answer must not start a second fetch chain.
    pub fetch_in_flight_id: u64,
    /// Waiting for a snapshot to be installed; no fetches meanwhile.
    pub fetching_snapshot: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResignedState {
    pub epoch: i32,
    pub election_deadline: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Unattached(UnattachedState),
    Prospective(ProspectiveState),
    Candidate(CandidateState),
    Leader(LeaderState),
    Follower(FollowerState),
    Resigned(ResignedState),
}

impl Role {
    pub fn epoch(&self) -> i32 {
        match self {
            Role::Unattached(s) => s.epoch,
            Role::Prospective(s) => s.epoch,
            Role::Candidate(s) => s.epoch,
            Role::Leader(s) => s.epoch,
            Role::Follower(s) => s.epoch,
            Role::Resigned(s) => s.epoch,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Role::Unattached(_) => "unattached",
            Role::Prospective(_) => "prospective",
            Role::Candidate(_) => "candidate",
            Role::Leader(_) => "leader",
            Role::Follower(_) => "follower",
            Role::Resigned(_) => "resigned",
        }
    }
}

/// The voter set as the log defines it (KIP-853): the set the log starts with (from the
/// snapshot or the configuration), then each Voters record at its offset. The newest rules from
/// the moment it is appended; truncating the log drops the records past its new end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterHistory {
    initial: BTreeSet<i32>,
    /// (offset of the Voters record, its voters), offsets increasing.
    records: Vec<(i64, BTreeSet<i32>)>,
}

impl VoterHistory {
    pub fn new(initial: BTreeSet<i32>) -> Self {
        VoterHistory {
            initial,
            records: Vec::new(),
        }
    }

    pub fn latest(&self) -> &BTreeSet<i32> {
        self.records.last().map(|(_, v)| v).unwrap_or(&self.initial)
    }

    /// The offset of the newest Voters record, if the log holds one.
    pub fn latest_offset(&self) -> Option<i64> {
        self.records.last().map(|&(o, _)| o)
    }

    /// The set in force at `offset` (records at or below it count).
    pub fn at(&self, offset: i64) -> &BTreeSet<i32> {
        let idx = self.records.partition_point(|&(o, _)| o <= offset);
        match idx {
            0 => &self.initial,
            i => &self.records[i - 1].1,
        }
    }

    /// A Voters record at `offset`; one at or below the newest is a replay and changes nothing.
    fn append(&mut self, offset: i64, voters: BTreeSet<i32>) {
        if self.latest_offset().is_none_or(|o| o < offset) {
            self.records.push((offset, voters));
        }
    }

    /// The log now ends at `end_offset`: records at or past it are gone.
    fn truncate_to(&mut self, end_offset: i64) {
        self.records.retain(|&(o, _)| o < end_offset);
    }

    /// The log below `start_offset` is gone: only the newest record below it still matters.
    fn trim_before(&mut self, start_offset: i64) {
        let below = self.records.partition_point(|&(o, _)| o < start_offset);
        if below > 1 {
            self.records.drain(..below - 1);
        }
    }
}

/// True when every majority of `a` overlaps every majority of `b`: they differ by at most one
/// voter, the condition that makes a one-at-a-time change safe.
fn one_voter_apart(a: &BTreeSet<i32>, b: &BTreeSet<i32>) -> bool {
    a.difference(b).count() + b.difference(a).count() <= 1
}

/// splitmix64: a tiny seeded generator, so elections replay exactly under a seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next() % bound }
    }
}

pub struct RaftCore {
    node_id: i32,
    /// The latest voter set (`voter_history.latest()`), kept apart so that it can be read while
    /// the role is borrowed mutably.
    voters: BTreeSet<i32>,
    voter_history: VoterHistory,
    timeouts: Timeouts,
    role: Role,
    log: LogSummary,
    high_watermark: i64,
    rng: Rng,
    now: u64,
    /// Observers without a leader ask the voters in turn.
    next_bootstrap: usize,
    /// `controller.quorum.bootstrap.servers`, under ids of their own (the driver's): observers
    /// without a leader ask these instead of the voters, which they may not know yet.
    bootstrap: Vec<i32>,
    next_request_id: u64,
    /// (epoch, leader) this node stopped hearing from: other voters that still name it do not
    /// pull us back to following it; only the leader itself does.
    unreachable_leader: Option<(i32, i32)>,
}

impl RaftCore {
    /// `election` is what the quorum-state file held; `log` what the local log holds.
    pub fn new(
        node_id: i32,
        voters: Vec<i32>,
        timeouts: Timeouts,
        election: ElectionState,
        log: LogSummary,
        seed: u64,
        now: u64,
    ) -> Self {
        let high_watermark = log.snapshot.map(|s| s.end_offset).unwrap_or(0);
        let voters: BTreeSet<i32> = voters.into_iter().collect();
        let mut core = RaftCore {
            node_id,
            voter_history: VoterHistory::new(voters.clone()),
            voters,
            timeouts,
            role: Role::Unattached(UnattachedState {
                epoch: 0,
                voted_id: None,
                leader_hint: None,
                election_deadline: 0,
            }),
            log,
            high_watermark,
            rng: Rng(seed ^ (node_id as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)),
            now,
            next_bootstrap: 0,
            bootstrap: Vec::new(),
            next_request_id: 1,
            unreachable_leader: None,
        };
        let deadline = core.random_election_deadline();
        core.role = match election.leader_id {
            Some(leader_id) if leader_id != node_id => Role::Follower(FollowerState {
                epoch: election.epoch,
                leader_id,
                voted_id: election.voted_id,
                fetch_deadline: now + timeouts.fetch_ms,
                fetch_in_flight_until: None,
                fetch_in_flight_id: 0,
                fetching_snapshot: false,
            }),
            // A leader that restarts does not know the followers' positions: it steps down, and
            // keeps its vote so it cannot vote for another node in the same epoch.
            _ => Role::Unattached(UnattachedState {
                epoch: election.epoch,
                voted_id: election.voted_id.or(election.leader_id),
                leader_hint: None,
                election_deadline: deadline,
            }),
        };
        core
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The latest voter set: the newest Voters record in the log, committed or not.
    pub fn voters(&self) -> &BTreeSet<i32> {
        &self.voters
    }

    pub fn voter_history(&self) -> &VoterHistory {
        &self.voter_history
    }

    /// The Voters records the local log holds (offset, voter ids), oldest first: the driver
    /// finds them when it opens the log and hands them in before `start`. The set given to
    /// `new` is the one in force before the first of them.
    pub fn with_voter_history(mut self, records: Vec<(i64, Vec<i32>)>) -> Self {
        for (offset, voters) in records {
            self.voter_history
                .append(offset, voters.into_iter().collect());
        }
        self.voters = self.voter_history.latest().clone();
        self
    }

    /// The ids the driver gave `controller.quorum.bootstrap.servers`: observers find the
    /// leader through them (KIP-853), as Kafka's do when the bootstrap servers are set.
    pub fn with_bootstrap_servers(mut self, ids: Vec<i32>) -> Self {
        self.bootstrap = ids;
        self
    }

    pub fn log(&self) -> &LogSummary {
        &self.log
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn epoch(&self) -> i32 {
        self.role.epoch()
    }

    pub fn is_voter(&self) -> bool {
        self.voters.contains(&self.node_id)
    }

    fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The voter history changed (an append, a truncation, a snapshot): its latest set rules
    /// from now on. A leader moves replicas between its voter and observer progress, as Kafka's
    /// `LeaderState` does, so that the high watermark and check-quorum count the new set.
    fn on_voters_changed(&mut self) {
        let latest = self.voter_history.latest();
        if *latest == self.voters {
            return;
        }
        self.voters = latest.clone();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let mut old_voters = std::mem::take(&mut leader.voters);
        for &id in &self.voters {
            let progress = old_voters
                .remove(&id)
                .or_else(|| leader.observers.remove(&id))
                .unwrap_or_else(ReplicaProgress::unknown);
            leader.voters.insert(id, progress);
        }
        // A voter that left keeps replicating, as an observer.
        leader.observers.extend(old_voters);
        leader.unacknowledged.retain(|id| self.voters.contains(id));
    }

    /// The leader this node knows of in its current epoch.
    pub fn leader_id(&self) -> Option<i32> {
        match &self.role {
            Role::Leader(_) => Some(self.node_id),
            Role::Follower(f) => Some(f.leader_id),
            _ => None,
        }
    }

    /// The epoch proposals may be appended in, if this node leads.
    pub fn leader_epoch(&self) -> Option<i32> {
        match &self.role {
            Role::Leader(l) => Some(l.epoch),
            _ => None,
        }
    }

    fn election_state(&self) -> ElectionState {
        let (leader_id, voted_id) = match &self.role {
            Role::Unattached(s) => (None, s.voted_id),
            Role::Prospective(s) => (None, s.voted_id),
            Role::Candidate(_) => (None, Some(self.node_id)),
            Role::Leader(_) | Role::Resigned(_) => (Some(self.node_id), Some(self.node_id)),
            Role::Follower(s) => (Some(s.leader_id), s.voted_id),
        };
        ElectionState {
            epoch: self.role.epoch(),
            leader_id,
            voted_id,
        }
    }

    fn random_election_deadline(&mut self) -> u64 {
        self.now + self.timeouts.election_ms + self.rng.below(self.timeouts.election_ms)
    }

    fn random_backoff(&mut self) -> u64 {
        self.now + 1 + self.rng.below(self.timeouts.election_backoff_max_ms)
    }

    /// The earliest time `tick` has something to do.
    pub fn next_deadline(&self) -> u64 {
        match &self.role {
            Role::Unattached(s) => {
                if self.is_voter() {
                    s.election_deadline
                } else {
                    // An observer looking for the leader retries on the request timeout.
                    s.election_deadline.min(self.now + self.timeouts.request_ms)
                }
            }
            Role::Prospective(s) => s.election_deadline,
            Role::Candidate(s) => s.election_deadline,
            Role::Resigned(s) => s.election_deadline,
            Role::Follower(s) => match s.fetch_in_flight_until {
                Some(t) => t.min(s.fetch_deadline),
                None => self.now,
            },
            Role::Leader(s) => s
                .begin_epoch_resend_at
                .min(s.check_quorum_deadline)
                .min(s.voter_change.map_or(u64::MAX, |c| c.deadline)),
        }
    }

    /// Gives every request a distinct id, so its answer can be matched to it.
    fn number(&mut self, mut actions: Vec<Action>) -> Vec<Action> {
        for a in &mut actions {
            if let Action::Send { id, .. } = a
                && *id == 0
            {
                *id = self.next_request_id;
                self.next_request_id += 1;
            }
        }
        actions
    }

    /// Called once the driver is up.
    pub fn start(&mut self, now: u64) -> Vec<Action> {
        let actions = self.start_inner(now);
        self.number(actions)
    }

    fn start_inner(&mut self, now: u64) -> Vec<Action> {
        self.now = now;
        let mut actions = vec![Action::LeaderChanged {
            epoch: self.role.epoch(),
            leader_id: self.leader_id(),
        }];
        if self.is_voter() && self.voters.len() == 1 {
            // The only voter needs nobody's vote; no pre-vote either.
            actions.extend(self.become_candidate());
            return actions;
        }
        if !self.is_voter()
            && let Role::Unattached(s) = &mut self.role
        {
            // An observer has no election to wait for: it asks for the leader at once.
            s.election_deadline = now;
        }
        actions.extend(self.tick_inner(now));
        actions
    }

    /// Moves time forward to `now` and fires whatever timer expired.
    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        let actions = self.tick_inner(now);
        self.number(actions)
    }

    fn tick_inner(&mut self, now: u64) -> Vec<Action> {
        self.now = self.now.max(now);
        let now = self.now;
        let mut actions = Vec::new();
        match &mut self.role {
            Role::Unattached(s) => {
                if self.voters.contains(&self.node_id) {
                    if now >= s.election_deadline {
                        actions.extend(self.become_prospective());
                    }
                } else if now >= s.election_deadline {
                    s.election_deadline = now + self.timeouts.request_ms;
                    actions.extend(self.observer_discover());
                }
            }
            Role::Prospective(s) => {
                if now >= s.election_deadline {
                    // Nobody answered enough: try again after a random backoff.
                    let epoch = s.epoch;
                    let voted_id = s.voted_id;
                    let deadline = self.random_backoff();
                    self.role = Role::Unattached(UnattachedState {
                        epoch,
                        voted_id,
                        leader_hint: None,
                        election_deadline: deadline,
                    });
                }
            }
            Role::Candidate(s) => {
                if now >= s.election_deadline {
                    // The vote split or was lost: back off, then ask again (pre-vote first).
                    let epoch = s.epoch;
                    let deadline = self.random_backoff();
                    self.role = Role::Unattached(UnattachedState {
                        epoch,
                        voted_id: Some(self.node_id),
                        leader_hint: None,
                        election_deadline: deadline,
                    });
                }
            }
            Role::Resigned(s) => {
                if now >= s.election_deadline {
                    if self.voters.contains(&self.node_id) {
                        actions.extend(self.become_prospective());
                    } else {
                        // A leader removed from the voters carries on as an observer, in a newer
                        // epoch so that its old epoch's answers are not taken for a leader's
                        // (as Kafka's pollResigned).
                        let epoch = s.epoch + 1;
                        actions.extend(self.become_unattached(epoch, None));
                    }
                }
            }
            Role::Follower(s) => {
                if now >= s.fetch_deadline {
                    if self.voters.contains(&self.node_id) {
                        actions.extend(self.become_prospective());
                    } else {
                        // An observer forgets the silent leader and asks the voters again.
                        let epoch = s.epoch;
                        self.role = Role::Unattached(UnattachedState {
                            epoch,
                            voted_id: None,
                            leader_hint: None,
                            election_deadline: now + self.timeouts.request_ms,
                        });
                        actions.push(Action::LeaderChanged {
                            epoch,
                            leader_id: None,
                        });
                        actions.extend(self.observer_discover());
                    }
                } else if s.fetching_snapshot {
                    // The driver reports back with on_snapshot_loaded.
                } else if s.fetch_in_flight_until.is_none_or(|t| now >= t) {
                    actions.extend(self.send_fetch());
                }
            }
            Role::Leader(s) => {
                if let Some(pending) = s.voter_change
                    && now >= pending.deadline
                {
                    s.voter_change = None;
                    let error = match (pending.offset, pending.change) {
                        (Some(offset), _) => VoterChangeError::NotCommitted { offset },
                        (None, VoterChange::Add(voter_id) | VoterChange::Remove(voter_id)) => {
                            VoterChangeError::NotCaughtUp { voter_id }
                        }
                    };
                    actions.push(Action::VoterChangeDone {
                        change: pending.change,
                        result: Err(error),
                    });
                }
                if now >= s.check_quorum_deadline {
                    let majority = self.voters.len() / 2 + 1;
                    let window = self.timeouts.fetch_ms * 3 / 2;
                    let live = s
                        .voters
                        .iter()
                        .filter(|&(&id, p)| {
                            id == self.node_id
                                || p.last_fetch_ms
                                    .is_some_and(|t| now.saturating_sub(t) < window)
                        })
                        .count();
                    if live < majority {
                        // A leader cut off from a majority steps down instead of accepting
                        // writes it can never commit (KIP-996's check quorum).
                        actions.extend(self.resign_inner());
                        return actions;
                    }
                    s.check_quorum_deadline = now + window;
                }
                if now >= s.begin_epoch_resend_at {
                    s.begin_epoch_resend_at = now + self.timeouts.request_ms;
                    let epoch = s.epoch;
                    for &to in &s.unacknowledged {
                        actions.push(Action::Send {
                            id: 0,
                            to,
                            request: Request::BeginEpoch(BeginEpochRequest {
                                epoch,
                                leader_id: self.node_id,
                            }),
                        });
                    }
                }
            }
        }
        actions
    }

    fn observer_discover(&mut self) -> Vec<Action> {
        let targets: Vec<i32> = if self.bootstrap.is_empty() {
            self.voters.iter().copied().collect()
        } else {
            self.bootstrap.clone()
        };
        if targets.is_empty() {
            return Vec::new();
        }
        let to = targets[self.next_bootstrap % targets.len()];
        self.next_bootstrap = self.next_bootstrap.wrapping_add(1);
        vec![Action::Send {
            id: 0,
            to,
            request: Request::Fetch(self.fetch_request()),
        }]
    }

    fn fetch_request(&self) -> FetchRequest {
        FetchRequest {
            epoch: self.role.epoch(),
            replica_id: self.node_id,
            fetch_offset: self.log.end_offset,
            last_fetched_epoch: self.log.last_epoch(),
        }
    }

    fn send_fetch(&mut self) -> Vec<Action> {
        let request = self.fetch_request();
        let until = self.now + self.timeouts.request_ms;
        let Role::Follower(f) = &mut self.role else {
            return Vec::new();
        };
        let id = self.next_request_id;
        self.next_request_id += 1;
        f.fetch_in_flight_until = Some(until);
        f.fetch_in_flight_id = id;
        vec![Action::Send {
            id,
            to: f.leader_id,
            request: Request::Fetch(request),
        }]
    }

    /// Leader steps down for a graceful shutdown (or on losing its majority): tells the other
    /// voters so they elect a successor without waiting for the fetch timeout.
    pub fn resign(&mut self) -> Vec<Action> {
        let actions = self.resign_inner();
        self.number(actions)
    }

    fn resign_inner(&mut self) -> Vec<Action> {
        let abandoned = self.abandon_voter_change(None);
        let Role::Leader(leader) = &self.role else {
            return Vec::new();
        };
        let epoch = leader.epoch;
        let mut successors: Vec<(i64, i32)> = leader
            .voters
            .iter()
            .filter(|&(&id, _)| id != self.node_id)
            .map(|(&id, p)| (p.end_offset, id))
            .collect();
        successors.sort_by(|a, b| b.cmp(a));
        let preferred: Vec<i32> = successors.iter().map(|&(_, id)| id).collect();
        let deadline = self.random_election_deadline();
        self.role = Role::Resigned(ResignedState {
            epoch,
            election_deadline: deadline,
        });
        let mut actions: Vec<Action> = abandoned.into_iter().collect();
        actions.push(Action::LeaderChanged {
            epoch,
            leader_id: None,
        });
        for &to in &preferred {
            actions.push(Action::Send {
                id: 0,
                to,
                request: Request::EndEpoch(EndEpochRequest {
                    epoch,
                    leader_id: self.node_id,
                    preferred_successors: preferred.clone(),
                }),
            });
        }
        actions
    }

    fn become_prospective(&mut self) -> Vec<Action> {
        if !self.is_voter() {
            return Vec::new();
        }
        let (epoch, voted_id) = match &self.role {
            Role::Unattached(s) => (s.epoch, s.voted_id),
            Role::Follower(s) => (s.epoch, s.voted_id),
            Role::Resigned(s) => (s.epoch, Some(self.node_id)),
            Role::Prospective(s) => (s.epoch, s.voted_id),
            Role::Candidate(s) => (s.epoch, Some(self.node_id)),
            Role::Leader(_) => return Vec::new(),
        };
        let left_leader = match &self.role {
            Role::Resigned(_) => Some(self.node_id),
            Role::Prospective(s) => s.left_leader,
            _ => self.leader_id(),
        };
        if let Some(leader) = left_leader {
            self.unreachable_leader = Some((epoch, leader));
        }
        let had_leader = left_leader.is_some() && !matches!(self.role, Role::Prospective(_));
        let deadline = self.random_election_deadline();
        self.role = Role::Prospective(ProspectiveState {
            epoch,
            voted_id,
            left_leader,
            granted: BTreeSet::from([self.node_id]),
            rejected: BTreeSet::new(),
            election_deadline: deadline,
        });
        let mut actions = Vec::new();
        if had_leader {
            actions.push(Action::LeaderChanged {
                epoch,
                leader_id: None,
            });
        }
        if self.majority() <= 1 {
            actions.extend(self.become_candidate());
            return actions;
        }
        actions.extend(self.vote_requests(epoch + 1, true));
        actions
    }

    fn become_candidate(&mut self) -> Vec<Action> {
        let epoch = self.role.epoch() + 1;
        let deadline = self.random_election_deadline();
        self.role = Role::Candidate(CandidateState {
            epoch,
            granted: BTreeSet::from([self.node_id]),
            rejected: BTreeSet::new(),
            election_deadline: deadline,
        });
        let mut actions = vec![
            Action::PersistElection(self.election_state()),
            Action::LeaderChanged {
                epoch,
                leader_id: None,
            },
        ];
        if self.majority() <= 1 {
            actions.extend(self.become_leader());
            return actions;
        }
        actions.extend(self.vote_requests(epoch, false));
        actions
    }

    /// A (pre-)vote request for `epoch` to every other voter.
    fn vote_requests(&self, epoch: i32, pre_vote: bool) -> Vec<Action> {
        let request = VoteRequest {
            epoch,
            candidate_id: self.node_id,
            last_epoch: self.log.last_epoch(),
            end_offset: self.log.end_offset,
            pre_vote,
        };
        self.voters
            .iter()
            .filter(|&&v| v != self.node_id)
            .map(|&to| Action::Send {
                id: 0,
                to,
                request: Request::Vote(request.clone()),
            })
            .collect()
    }

    fn become_leader(&mut self) -> Vec<Action> {
        let epoch = self.role.epoch();
        debug_assert!(matches!(self.role, Role::Candidate(_)));
        let now = self.now;
        let voters = self
            .voters
            .iter()
            .map(|&v| {
                let mut progress = ReplicaProgress::unknown();
                if v == self.node_id {
                    progress.end_offset = self.log.end_offset;
                    progress.last_fetch_ms = Some(now);
                    progress.last_caught_up_ms = Some(now);
                }
                (v, progress)
            })
            .collect();
        let unacknowledged: BTreeSet<i32> = self
            .voters
            .iter()
            .copied()
            .filter(|&v| v != self.node_id)
            .collect();
        self.role = Role::Leader(LeaderState {
            epoch,
            epoch_start_offset: self.log.end_offset,
            voters,
            observers: BTreeMap::new(),
            unacknowledged: unacknowledged.clone(),
            begin_epoch_resend_at: now + self.timeouts.request_ms,
            check_quorum_deadline: now + self.timeouts.fetch_ms * 3 / 2,
            voter_change: None,
        });
        let mut actions = vec![
            Action::PersistElection(self.election_state()),
            Action::LeaderChanged {
                epoch,
                leader_id: Some(self.node_id),
            },
            Action::AppendLeaderChange {
                epoch,
                leader_id: self.node_id,
            },
        ];
        for to in unacknowledged {
            actions.push(Action::Send {
                id: 0,
                to,
                request: Request::BeginEpoch(BeginEpochRequest {
                    epoch,
                    leader_id: self.node_id,
                }),
            });
        }
        actions
    }

    /// Follows `leader_id` in `epoch` (which is >= ours).
    fn become_follower(&mut self, epoch: i32, leader_id: i32) -> Vec<Action> {
        debug_assert!(epoch >= self.role.epoch());
        if let Role::Follower(f) = &mut self.role
            && f.epoch == epoch
            && f.leader_id == leader_id
        {
            f.fetch_deadline = self.now + self.timeouts.fetch_ms;
            return Vec::new();
        }
        let abandoned = self.abandon_voter_change(Some(leader_id));
        let voted_id = match &self.role {
            Role::Unattached(s) if s.epoch == epoch => s.voted_id,
            Role::Prospective(s) if s.epoch == epoch => s.voted_id,
            Role::Candidate(s) if s.epoch == epoch => Some(self.node_id),
            _ => None,
        };
        self.role = Role::Follower(FollowerState {
            epoch,
            leader_id,
            voted_id,
            fetch_deadline: self.now + self.timeouts.fetch_ms,
            fetch_in_flight_until: None,
            fetch_in_flight_id: 0,
            fetching_snapshot: false,
        });
        let mut actions: Vec<Action> = abandoned.into_iter().collect();
        actions.push(Action::PersistElection(self.election_state()));
        actions.push(Action::LeaderChanged {
            epoch,
            leader_id: Some(leader_id),
        });
        actions.extend(self.send_fetch());
        actions
    }

    /// Moves to a newer epoch whose leader we do not know.
    fn become_unattached(&mut self, epoch: i32, voted_id: Option<i32>) -> Vec<Action> {
        let abandoned = self.abandon_voter_change(None);
        let deadline = self.random_election_deadline();
        self.role = Role::Unattached(UnattachedState {
            epoch,
            voted_id,
            leader_hint: None,
            election_deadline: deadline,
        });
        let mut actions: Vec<Action> = abandoned.into_iter().collect();
        actions.push(Action::PersistElection(self.election_state()));
        actions.push(Action::LeaderChanged {
            epoch,
            leader_id: None,
        });
        actions
    }

    /// A leader stepping down answers the voter change under way NOT_LEADER_OR_FOLLOWER, as
    /// Kafka's `LeaderState.close`; its Voters record, if appended, may still commit under the
    /// next leader.
    fn abandon_voter_change(&mut self, leader_id: Option<i32>) -> Option<Action> {
        let Role::Leader(l) = &mut self.role else {
            return None;
        };
        let pending = l.voter_change.take()?;
        Some(Action::VoterChangeDone {
            change: pending.change,
            result: Err(VoterChangeError::NotLeader { leader_id }),
        })
    }

    /// Any message naming a newer epoch (and maybe its leader) moves us there first.
    fn observe_epoch(&mut self, epoch: i32, leader_id: Option<i32>) -> Vec<Action> {
        let current = self.role.epoch();
        if epoch < current {
            return Vec::new();
        }
        match leader_id {
            Some(leader) if leader == self.node_id => Vec::new(),
            // Hearsay about the leader we just gave up on does not bring us back to it.
            Some(leader)
                if epoch == current && self.unreachable_leader == Some((epoch, leader)) =>
            {
                Vec::new()
            }
            Some(leader) => {
                if epoch > current || self.leader_id().is_none() {
                    self.become_follower(epoch, leader)
                } else {
                    Vec::new()
                }
            }
            None if epoch > current => self.become_unattached(epoch, None),
            None => Vec::new(),
        }
    }

    /// A request from another node (`_from`: each request names its sender itself, which is
    /// what the core goes by). Returns the answer and what to do.
    pub fn handle_request(
        &mut self,
        now: u64,
        _from: i32,
        request: Request,
    ) -> (Response, Vec<Action>) {
        let (response, actions) = self.handle_request_inner(now, request);
        (response, self.number(actions))
    }

    fn handle_request_inner(&mut self, now: u64, request: Request) -> (Response, Vec<Action>) {
        self.now = self.now.max(now);
        match request {
            Request::Vote(r) => {
                let (resp, actions) = self.handle_vote(r);
                (Response::Vote(resp), actions)
            }
            Request::BeginEpoch(r) => {
                let (resp, actions) = self.handle_begin_epoch(r);
                (Response::BeginEpoch(resp), actions)
            }
            Request::EndEpoch(r) => {
                let (resp, actions) = self.handle_end_epoch(r);
                (Response::EndEpoch(resp), actions)
            }
            Request::Fetch(r) => {
                let (resp, actions) = self.handle_fetch(r);
                (Response::Fetch(resp), actions)
            }
        }
    }

    fn log_is_up_to_date(&self, last_epoch: i32, end_offset: i64) -> bool {
        (last_epoch, end_offset) >= (self.log.last_epoch(), self.log.end_offset)
    }

    fn handle_vote(&mut self, r: VoteRequest) -> (VoteResponse, Vec<Action>) {
        let mut actions = Vec::new();
        let reject = |core: &RaftCore, error: Option<RaftErrorCode>| VoteResponse {
            error,
            epoch: core.role.epoch(),
            leader_id: core.leader_id(),
            granted: false,
            pre_vote: r.pre_vote,
        };
        // No check that the candidate, or this node, is a voter: voter sets differ while a change
        // spreads, and a replica whose log lacks the record that made it a voter must still vote
        // for it to count (KIP-853; Raft's single-server changes). The candidate counts only
        // the votes of its own set.
        if r.epoch < self.role.epoch() {
            return (
                reject(self, Some(RaftErrorCode::FencedLeaderEpoch)),
                actions,
            );
        }
        let up_to_date = self.log_is_up_to_date(r.last_epoch, r.end_offset);
        if r.pre_vote {
            // A pre-vote changes nothing here. It is refused while we still hear from a leader,
            // so a node that was cut off cannot disrupt a healthy quorum when it comes back.
            let leader_alive = match &self.role {
                Role::Leader(_) => true,
                Role::Follower(f) => self.now < f.fetch_deadline,
                _ => false,
            };
            let granted = up_to_date && !leader_alive;
            return (
                VoteResponse {
                    error: None,
                    epoch: self.role.epoch(),
                    leader_id: self.leader_id(),
                    granted,
                    pre_vote: true,
                },
                actions,
            );
        }
        if r.epoch > self.role.epoch() {
            if matches!(self.role, Role::Leader(_)) {
                actions.push(Action::LeaderChanged {
                    epoch: r.epoch,
                    leader_id: None,
                });
            }
            actions.extend(self.become_unattached(r.epoch, None));
        }
        let can_vote = match &self.role {
            Role::Unattached(s) => s.voted_id.is_none_or(|v| v == r.candidate_id),
            Role::Prospective(s) => s.voted_id.is_none_or(|v| v == r.candidate_id),
            Role::Follower(s) => s.voted_id == Some(r.candidate_id),
            _ => false,
        };
        let granted = can_vote && up_to_date;
        if granted {
            let already = match &self.role {
                Role::Unattached(s) => s.voted_id == Some(r.candidate_id),
                Role::Prospective(s) => s.voted_id == Some(r.candidate_id),
                _ => true,
            };
            if !already {
                let deadline = self.random_election_deadline();
                self.role = Role::Unattached(UnattachedState {
                    epoch: r.epoch,
                    voted_id: Some(r.candidate_id),
                    leader_hint: None,
                    election_deadline: deadline,
                });
                actions.push(Action::PersistElection(self.election_state()));
            }
        }
        (
            VoteResponse {
                error: None,
                epoch: self.role.epoch(),
                leader_id: self.leader_id(),
                granted,
                pre_vote: false,
            },
            actions,
        )
    }

    fn epoch_response(&self, error: Option<RaftErrorCode>) -> EpochResponse {
        EpochResponse {
            error,
            epoch: self.role.epoch(),
            leader_id: self.leader_id(),
        }
    }

    fn handle_begin_epoch(&mut self, r: BeginEpochRequest) -> (EpochResponse, Vec<Action>) {
        if r.epoch < self.role.epoch() {
            return (
                self.epoch_response(Some(RaftErrorCode::FencedLeaderEpoch)),
                Vec::new(),
            );
        }
        if r.epoch == self.role.epoch()
            && let Role::Leader(_) | Role::Resigned(_) = self.role
        {
            // Two leaders in one epoch cannot happen; refuse rather than follow.
            return (
                self.epoch_response(Some(RaftErrorCode::InconsistentVoterSet)),
                Vec::new(),
            );
        }
        self.unreachable_leader = None;
        let actions = self.become_follower(r.epoch, r.leader_id);
        (self.epoch_response(None), actions)
    }

    fn handle_end_epoch(&mut self, r: EndEpochRequest) -> (EpochResponse, Vec<Action>) {
        if r.epoch < self.role.epoch() {
            return (
                self.epoch_response(Some(RaftErrorCode::FencedLeaderEpoch)),
                Vec::new(),
            );
        }
        let mut actions = Vec::new();
        if r.epoch > self.role.epoch() {
            actions.extend(self.become_unattached(r.epoch, None));
        }
        let following_sender =
            matches!(&self.role, Role::Follower(f) if f.leader_id == r.leader_id);
        if following_sender || matches!(self.role, Role::Unattached(_)) {
            // The preferred successor tries at once; the others give it a head start.
            let rank = r
                .preferred_successors
                .iter()
                .position(|&v| v == self.node_id)
                .unwrap_or(r.preferred_successors.len()) as u64;
            let head_start = if rank == 0 {
                0
            } else {
                (self.timeouts.election_backoff_max_ms / 4).max(1) * rank
                    + self
                        .rng
                        .below(self.timeouts.election_backoff_max_ms / 4 + 1)
            };
            let epoch = self.role.epoch();
            self.unreachable_leader = Some((epoch, r.leader_id));
            let voted_id = match &self.role {
                Role::Follower(f) => f.voted_id,
                Role::Unattached(s) => s.voted_id,
                _ => None,
            };
            self.role = Role::Unattached(UnattachedState {
                epoch,
                voted_id,
                leader_hint: None,
                election_deadline: self.now + head_start,
            });
            if following_sender {
                actions.push(Action::PersistElection(self.election_state()));
                actions.push(Action::LeaderChanged {
                    epoch,
                    leader_id: None,
                });
            }
            if head_start == 0 {
                actions.extend(self.become_prospective());
            }
        }
        (self.epoch_response(None), actions)
    }

    fn fetch_error(&self, error: RaftErrorCode) -> FetchResponse {
        FetchResponse {
            error: Some(error),
            epoch: self.role.epoch(),
            leader_id: self.leader_id(),
            high_watermark: -1,
            log_start_offset: self.log.start_offset,
            diverging: None,
            snapshot: None,
            read_from: None,
            high_watermark_news: false,
            batches: Vec::new(),
        }
    }

    fn handle_fetch(&mut self, r: FetchRequest) -> (FetchResponse, Vec<Action>) {
        let mut actions = Vec::new();
        if r.epoch > self.role.epoch() {
            // The fetcher knows a newer epoch than we do; it will tell us its leader, or the
            // leader will. Until then we cannot serve it.
            return (self.fetch_error(RaftErrorCode::UnknownLeaderEpoch), actions);
        }
        let Role::Leader(_) = &self.role else {
            return (
                self.fetch_error(RaftErrorCode::NotLeaderOrFollower),
                actions,
            );
        };
        if r.epoch < self.role.epoch() {
            return (self.fetch_error(RaftErrorCode::FencedLeaderEpoch), actions);
        }
        let mut response = FetchResponse {
            error: None,
            epoch: self.role.epoch(),
            leader_id: Some(self.node_id),
            high_watermark: self.high_watermark,
            log_start_offset: self.log.start_offset,
            diverging: None,
            snapshot: None,
            read_from: None,
            high_watermark_news: false,
            batches: Vec::new(),
        };
        let valid = self.validate_fetch_position(r.fetch_offset, r.last_fetched_epoch);
        match valid {
            FetchPosition::Valid => response.read_from = Some(r.fetch_offset),
            FetchPosition::Diverging(epoch, end) => {
                response.diverging = Some((epoch, end));
                return (response, actions);
            }
            FetchPosition::SnapshotNeeded(id) => {
                response.snapshot = Some(id);
                return (response, actions);
            }
        }
        let now = self.now;
        let log_end = self.log.end_offset;
        let is_voter = self.voters.contains(&r.replica_id);
        let Role::Leader(leader) = &mut self.role else {
            return (response, actions);
        };
        leader.unacknowledged.remove(&r.replica_id);
        let map = if is_voter {
            &mut leader.voters
        } else {
            &mut leader.observers
        };
        let progress = map
            .entry(r.replica_id)
            .or_insert_with(ReplicaProgress::unknown);
        progress.record_fetch(now, r.fetch_offset, log_end);
        if is_voter {
            actions.extend(self.maybe_advance_high_watermark());
            response.high_watermark = self.high_watermark;
        } else {
            // The replica an AddRaftVoter waits for may just have caught up.
            actions.extend(self.maybe_append_added_voter());
        }
        if let Role::Leader(leader) = &mut self.role
            && let Some(progress) = leader
                .voters
                .get_mut(&r.replica_id)
                .or_else(|| leader.observers.get_mut(&r.replica_id))
        {
            response.high_watermark_news = response.high_watermark > progress.high_watermark_sent;
            progress.high_watermark_sent = response.high_watermark;
        }
        (response, actions)
    }

    fn validate_fetch_position(&self, fetch_offset: i64, last_fetched_epoch: i32) -> FetchPosition {
        // Below our log start the records are gone: only the snapshot can bring it forward.
        if fetch_offset < self.log.start_offset
            && let Some(snapshot) = self.log.snapshot
        {
            return FetchPosition::SnapshotNeeded(snapshot);
        }
        if fetch_offset == 0 && last_fetched_epoch == 0 {
            return FetchPosition::Valid;
        }
        match self.log.end_offset_for_epoch(last_fetched_epoch) {
            Some((epoch, end)) if epoch == last_fetched_epoch && fetch_offset <= end => {
                FetchPosition::Valid
            }
            Some((epoch, end)) => FetchPosition::Diverging(epoch, end.min(fetch_offset)),
            None => match self.log.snapshot {
                Some(s) => FetchPosition::SnapshotNeeded(s),
                None => FetchPosition::Diverging(0, 0),
            },
        }
    }

    /// An answer to a request this node sent to `from`.
    pub fn handle_response(
        &mut self,
        now: u64,
        from: i32,
        id: u64,
        response: Response,
    ) -> Vec<Action> {
        let actions = self.handle_response_inner(now, from, id, response);
        self.number(actions)
    }

    fn handle_response_inner(
        &mut self,
        now: u64,
        from: i32,
        id: u64,
        response: Response,
    ) -> Vec<Action> {
        self.now = self.now.max(now);
        if let (Response::Fetch(_), Role::Follower(f)) = (&response, &self.role)
            && f.fetch_in_flight_id != id
        {
            return Vec::new();
        }
        match response {
            Response::Vote(r) => self.handle_vote_response(from, r),
            Response::BeginEpoch(r) => {
                let mut actions = self.observe_epoch(r.epoch, r.leader_id);
                if r.error.is_none()
                    && let Role::Leader(l) = &mut self.role
                    && l.epoch == r.epoch
                {
                    l.unacknowledged.remove(&from);
                }
                actions.shrink_to_fit();
                actions
            }
            Response::EndEpoch(r) => self.observe_epoch(r.epoch, r.leader_id),
            Response::Fetch(r) => self.handle_fetch_response(from, r),
        }
    }

    /// A request to `to` got no answer (connection refused, timeout): forget it was in flight.
    pub fn handle_request_failed(&mut self, now: u64, to: i32, id: u64) -> Vec<Action> {
        self.now = self.now.max(now);
        {
            if let Role::Follower(f) = &mut self.role
                && f.leader_id == to
                && f.fetch_in_flight_id == id
            {
                // Retry after a short pause rather than hammering a dead leader.
                f.fetch_in_flight_until = Some(self.now + self.timeouts.request_ms.min(100));
            }
        }
        Vec::new()
    }

    fn handle_vote_response(&mut self, from: i32, r: VoteResponse) -> Vec<Action> {
        if r.leader_id == Some(from) {
            // The leader answered us itself: it is reachable after all.
            self.unreachable_leader = None;
        }
        if r.epoch > self.role.epoch() {
            return self.observe_epoch(r.epoch, r.leader_id);
        }
        let mut probe = None;
        if let Some(leader) = r.leader_id
            && r.epoch == self.role.epoch()
            && leader != self.node_id
            && !matches!(self.role, Role::Leader(_))
        {
            if self.unreachable_leader != Some((r.epoch, leader)) {
                return self.observe_epoch(r.epoch, Some(leader));
            }
            if !self.voters.contains(&leader) && !r.granted {
                // The leader we timed out on is not in our voter set (our log lacks the record
                // that made it a voter), so it never answers our votes: ask it directly whether
                // it still leads. Its own answer brings us back to it; a voter's word alone
                // would not, as that leader may be gone.
                probe = Some(Action::Send {
                    id: 0,
                    to: leader,
                    request: Request::Fetch(self.fetch_request()),
                });
            }
        }
        let mut actions: Vec<Action> = probe.into_iter().collect();
        actions.extend(self.count_vote(from, r));
        actions
    }

    /// A vote (or pre-vote) answer in our current election.
    fn count_vote(&mut self, from: i32, r: VoteResponse) -> Vec<Action> {
        if !self.voters.contains(&from) {
            // An answer from a replica our set does not count (it left it meanwhile).
            return Vec::new();
        }
        let majority = self.majority();
        let voters = self.voters.len();
        match &mut self.role {
            Role::Prospective(s) if r.pre_vote && r.epoch <= s.epoch + 1 => {
                // A voter still in an older epoch can never follow us back down to it: our
                // epoch is durable. Only a real election moves it forward, so its refusal
                // counts for going ahead.
                if r.granted || r.epoch < s.epoch {
                    s.granted.insert(from);
                } else {
                    s.rejected.insert(from);
                }
                if s.granted.len() >= majority {
                    return self.become_candidate();
                }
                if s.rejected.len() > voters.saturating_sub(majority) {
                    // A majority refused: wait a backoff, then maybe try again.
                    let (epoch, voted_id) = (s.epoch, s.voted_id);
                    let deadline = self.random_backoff() + self.timeouts.election_ms;
                    self.role = Role::Unattached(UnattachedState {
                        epoch,
                        voted_id,
                        leader_hint: None,
                        election_deadline: deadline,
                    });
                }
                Vec::new()
            }
            Role::Candidate(s) if !r.pre_vote && r.epoch == s.epoch => {
                if r.granted {
                    s.granted.insert(from);
                } else {
                    s.rejected.insert(from);
                }
                if s.granted.len() >= majority {
                    return self.become_leader();
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn handle_fetch_response(&mut self, from: i32, r: FetchResponse) -> Vec<Action> {
        if let Some(error) = r.error {
            let mut actions = Vec::new();
            if let Role::Follower(f) = &mut self.role
                && f.leader_id == from
            {
                f.fetch_in_flight_until = Some(self.now + self.timeouts.request_ms.min(100));
            }
            match error {
                RaftErrorCode::FencedLeaderEpoch | RaftErrorCode::NotLeaderOrFollower => {
                    actions.extend(self.observe_epoch(r.epoch, r.leader_id));
                }
                _ => {}
            }
            return actions;
        }
        let Some(leader) = r.leader_id else {
            return Vec::new();
        };
        if r.epoch > self.role.epoch()
            || (r.epoch == self.role.epoch() && self.leader_id().is_none())
        {
            if leader == from {
                // The leader answered us itself: it is reachable after all.
                self.unreachable_leader = None;
            }
            let mut actions = self.observe_epoch(r.epoch, Some(leader));
            // The answer was to an older fetch; fetch again in the new epoch.
            if let Role::Follower(f) = &mut self.role {
                f.fetch_in_flight_until = None;
            }
            actions.extend(self.tick_inner(self.now));
            return actions;
        }
        let now = self.now;
        let fetch_ms = self.timeouts.fetch_ms;
        let Role::Follower(f) = &mut self.role else {
            return Vec::new();
        };
        // Only the answer to the fetch in flight counts: a duplicate or a late answer would
        // start a second fetch chain.
        if f.epoch != r.epoch || f.leader_id != from {
            return Vec::new();
        }
        f.fetch_deadline = now + fetch_ms;
        f.fetch_in_flight_until = None;
        let mut actions = Vec::new();
        if let Some((epoch, end)) = r.diverging {
            let local_end = self
                .log
                .end_offset_for_epoch(epoch)
                .map(|(_, end)| end)
                .unwrap_or(self.log.start_offset);
            let to = end
                .min(local_end)
                .max(self.high_watermark.min(self.log.end_offset));
            let to = to.max(self.log.start_offset);
            if to < self.log.end_offset {
                self.log.truncate_to(to);
                // A Voters record cut off no longer counts: the set before it rules again.
                self.voter_history.truncate_to(to);
                self.on_voters_changed();
                actions.push(Action::Truncate(to));
            }
            // No high watermark from this answer: our log past the divergence point is not
            // known to match the leader's yet.
            actions.extend(self.send_fetch());
            return actions;
        } else if let Some(snapshot) = r.snapshot {
            f.fetching_snapshot = true;
            actions.push(Action::FetchSnapshot { from, snapshot });
            return actions;
        } else if let Some(first) = r.batches.first() {
            if first.base_offset != self.log.end_offset {
                // An answer to a position we no longer hold; fetch again from our end.
                actions.extend(self.send_fetch());
                return actions;
            }
            for b in &r.batches {
                self.log
                    .record_append(b.epoch, b.base_offset, b.last_offset + 1);
                if let Some(voters) = &b.voters {
                    // In force once appended, committed or not (KIP-853).
                    self.voter_history
                        .append(b.last_offset, voters.iter().copied().collect());
                }
            }
            self.on_voters_changed();
            actions.push(Action::AppendFetched);
        }
        let hw = r.high_watermark.min(self.log.end_offset);
        if hw > self.high_watermark {
            self.high_watermark = hw;
            actions.push(Action::AdvanceHighWatermark(hw));
        }
        actions.extend(self.send_fetch());
        actions
    }

    /// The driver installed `snapshot` as the start of the local log; `voters` are the ids of
    /// its Voters record, None when it has none (the set given to `new` applies then).
    pub fn on_snapshot_loaded(
        &mut self,
        now: u64,
        snapshot: SnapshotId,
        voters: Option<Vec<i32>>,
    ) -> Vec<Action> {
        let actions = self.on_snapshot_loaded_inner(now, snapshot, voters);
        self.number(actions)
    }

    fn on_snapshot_loaded_inner(
        &mut self,
        now: u64,
        snapshot: SnapshotId,
        voters: Option<Vec<i32>>,
    ) -> Vec<Action> {
        self.now = self.now.max(now);
        self.log = LogSummary {
            start_offset: snapshot.end_offset,
            end_offset: snapshot.end_offset,
            epochs: Vec::new(),
            snapshot: Some(snapshot),
        };
        // Our old log is gone, and with it whatever Voters records it held.
        self.voter_history.records.clear();
        if let Some(voters) = voters {
            self.voter_history
                .append(snapshot.end_offset - 1, voters.into_iter().collect());
        }
        self.on_voters_changed();
        let mut actions = Vec::new();
        if snapshot.end_offset > self.high_watermark {
            self.high_watermark = snapshot.end_offset;
            actions.push(Action::AdvanceHighWatermark(snapshot.end_offset));
        }
        if let Role::Follower(f) = &mut self.role {
            f.fetching_snapshot = false;
            f.fetch_in_flight_until = None;
            actions.extend(self.send_fetch());
        }
        actions
    }

    /// The fetch of a snapshot failed; go back to fetching the log (which asks again).
    pub fn on_snapshot_failed(&mut self, now: u64) {
        self.now = self.now.max(now);
        if let Role::Follower(f) = &mut self.role {
            f.fetching_snapshot = false;
            f.fetch_in_flight_until = Some(self.now + self.timeouts.request_ms.min(100));
        }
    }

    /// The driver took a snapshot locally and may drop the log below `log_start_offset`.
    pub fn on_snapshot_taken(&mut self, snapshot: SnapshotId, log_start_offset: i64) {
        if self.log.snapshot.is_none_or(|s| s < snapshot) {
            self.log.snapshot = Some(snapshot);
        }
        if log_start_offset > self.log.start_offset {
            let start = log_start_offset.min(self.log.end_offset);
            self.log.start_offset = start;
            // Keep the epoch the new start lies in (from the start on), as Kafka's
            // truncateFromStart does, so divergence checks still find it.
            let keep_from = self
                .log
                .epochs
                .partition_point(|&(_, s)| s <= start)
                .saturating_sub(1);
            self.log.epochs.drain(..keep_from);
            if let Some(first) = self.log.epochs.first_mut()
                && first.1 < start
            {
                first.1 = start;
            }
            self.voter_history.trim_before(start);
        }
    }

    /// The leader appended (and flushed) records of its epoch; the log now ends at `end_offset`.
    pub fn on_local_flush(&mut self, end_offset: i64) -> Vec<Action> {
        debug_assert!(end_offset >= self.high_watermark);
        let Role::Leader(leader) = &mut self.role else {
            return Vec::new();
        };
        let epoch = leader.epoch;
        let base = self.log.end_offset;
        if end_offset > base {
            self.log.record_append(epoch, base, end_offset);
        }
        // A leader removing itself is an observer of its own set until the change commits.
        let me = match leader.voters.get_mut(&self.node_id) {
            Some(me) => Some(me),
            None => leader.observers.get_mut(&self.node_id),
        };
        if let Some(me) = me {
            me.end_offset = end_offset;
            me.last_fetch_ms = Some(self.now);
            me.last_caught_up_ms = Some(self.now);
        }
        self.maybe_advance_high_watermark()
    }

    fn maybe_advance_high_watermark(&mut self) -> Vec<Action> {
        let Role::Leader(leader) = &self.role else {
            return Vec::new();
        };
        let mut offsets: Vec<i64> = leader.voters.values().map(|p| p.end_offset).collect();
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&candidate) = offsets.get(self.majority() - 1) else {
            return Vec::new();
        };
        // Raft's commit rule: only an entry of the leader's own epoch commits by counting. With
        // a new voter set the count may come out lower: the high watermark never goes back.
        if candidate > leader.epoch_start_offset && candidate > self.high_watermark {
            self.high_watermark = candidate;
            let mut actions = vec![Action::AdvanceHighWatermark(candidate)];
            actions.extend(self.on_leader_commit());
            return actions;
        }
        Vec::new()
    }

    /// The leader's high watermark moved: a voter change whose record it passed is done, and a
    /// leader the committed set leaves out steps down (KIP-853). It leads until then so that
    /// the change removing it can commit.
    fn on_leader_commit(&mut self) -> Vec<Action> {
        let hw = self.high_watermark;
        let mut actions = Vec::new();
        if let Role::Leader(l) = &mut self.role
            && let Some(pending) = l.voter_change
            && pending.offset.is_some_and(|o| hw > o)
        {
            l.voter_change = None;
            actions.push(Action::VoterChangeDone {
                change: pending.change,
                result: Ok(()),
            });
        }
        if !self.is_voter() && self.voter_history.latest_offset().is_some_and(|o| hw > o) {
            actions.extend(self.resign_inner());
        }
        actions
    }

    /// Refuses a voter change unless this node leads, none is under way, and both this epoch
    /// and the newest Voters record are committed (Kafka's AddVoterHandler checks): then the
    /// new set differs by one voter from one a majority already holds.
    fn check_voter_change(&self) -> Result<(), VoterChangeError> {
        let Role::Leader(l) = &self.role else {
            return Err(VoterChangeError::NotLeader {
                leader_id: self.leader_id(),
            });
        };
        if l.voter_change.is_some() {
            return Err(VoterChangeError::ChangePending);
        }
        if self.high_watermark <= l.epoch_start_offset {
            return Err(VoterChangeError::NoHighWatermark);
        }
        if let Some(offset) = self.voter_history.latest_offset()
            && offset >= self.high_watermark
        {
            return Err(VoterChangeError::UncommittedVoters {
                offset,
                high_watermark: self.high_watermark,
            });
        }
        Ok(())
    }

    /// AddRaftVoter: makes `voter_id`, a replica fetching from this leader as an observer, a
    /// voter. Refused at once (see `check_voter_change`, and DUPLICATE_VOTER); otherwise the
    /// Voters record is appended as soon as the replica has caught up with our log, and
    /// `Action::VoterChangeDone` answers once the new set commits it, or after the request
    /// timeout.
    pub fn add_voter(&mut self, now: u64, voter_id: i32) -> Result<Vec<Action>, VoterChangeError> {
        self.now = self.now.max(now);
        self.check_voter_change()?;
        if self.voters.contains(&voter_id) {
            return Err(VoterChangeError::DuplicateVoter { voter_id });
        }
        let deadline = self.now + self.timeouts.request_ms;
        if let Role::Leader(l) = &mut self.role {
            l.voter_change = Some(PendingVoterChange {
                change: VoterChange::Add(voter_id),
                offset: None,
                deadline,
            });
        }
        let actions = self.maybe_append_added_voter();
        Ok(self.number(actions))
    }

    /// RemoveRaftVoter: appends the Voters record without `voter_id` at once;
    /// `Action::VoterChangeDone` answers once the new set commits it, or after the request
    /// timeout. A leader that removes itself leads until then, and resigns.
    pub fn remove_voter(
        &mut self,
        now: u64,
        voter_id: i32,
    ) -> Result<Vec<Action>, VoterChangeError> {
        self.now = self.now.max(now);
        self.check_voter_change()?;
        if !self.voters.contains(&voter_id) || self.voters.len() == 1 {
            return Err(VoterChangeError::VoterNotFound { voter_id });
        }
        let mut voters = self.voters.clone();
        voters.remove(&voter_id);
        let deadline = self.now + self.timeouts.request_ms;
        let (offset, actions) = self.append_voters(voters);
        if let Role::Leader(l) = &mut self.role {
            l.voter_change = Some(PendingVoterChange {
                change: VoterChange::Remove(voter_id),
                offset: Some(offset),
                deadline,
            });
        }
        Ok(self.number(actions))
    }

    /// UpdateRaftVoter: a voter's endpoints or supported versions changed, not the set of ids.
    /// Appends a Voters record with the same voters (the driver writes the new endpoints) and is
    /// answered at once, as Kafka does; the next change waits for it to commit.
    pub fn update_voter(
        &mut self,
        now: u64,
        voter_id: i32,
    ) -> Result<Vec<Action>, VoterChangeError> {
        self.now = self.now.max(now);
        self.check_voter_change()?;
        if !self.voters.contains(&voter_id) {
            return Err(VoterChangeError::VoterNotFound { voter_id });
        }
        let (_, actions) = self.append_voters(self.voters.clone());
        Ok(self.number(actions))
    }

    /// The replica an AddRaftVoter waits for has caught up: append the set with it. "Caught
    /// up" means it reached our log end, or where it stood at its previous fetch, within the
    /// last fetch timeout, so it will not hold the high watermark back for long.
    fn maybe_append_added_voter(&mut self) -> Vec<Action> {
        let Role::Leader(l) = &self.role else {
            return Vec::new();
        };
        let Some(PendingVoterChange {
            change: VoterChange::Add(voter_id),
            offset: None,
            ..
        }) = l.voter_change
        else {
            return Vec::new();
        };
        let caught_up = l
            .observers
            .get(&voter_id)
            .and_then(|p| p.last_caught_up_ms)
            .is_some_and(|t| t + self.timeouts.fetch_ms >= self.now);
        if !caught_up {
            return Vec::new();
        }
        let mut voters = self.voters.clone();
        voters.insert(voter_id);
        let (offset, actions) = self.append_voters(voters);
        if let Role::Leader(l) = &mut self.role
            && let Some(pending) = &mut l.voter_change
        {
            pending.offset = Some(offset);
        }
        actions
    }

    /// Leader: puts `voters` in force at our log end and asks the driver for the record.
    fn append_voters(&mut self, voters: BTreeSet<i32>) -> (i64, Vec<Action>) {
        let Role::Leader(l) = &self.role else {
            return (self.log.end_offset, Vec::new());
        };
        let epoch = l.epoch;
        let offset = self.log.end_offset;
        debug_assert!(one_voter_apart(&self.voters, &voters));
        debug_assert!(
            self.voter_history
                .latest_offset()
                .is_none_or(|o| o < offset)
        );
        self.voter_history.append(offset, voters.clone());
        self.on_voters_changed();
        let mut actions = vec![Action::AppendVoters {
            epoch,
            voters: voters.into_iter().collect(),
        }];
        // Without a voter that lagged, a majority may already hold more.
        actions.extend(self.maybe_advance_high_watermark());
        (offset, actions)
    }
}

enum FetchPosition {
    Valid,
    Diverging(i32, i64),
    SnapshotNeeded(SnapshotId),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(epoch: i32, end: i64) -> RaftCore {
        RaftCore::new(
            1,
            vec![1],
            Timeouts::default(),
            ElectionState {
                epoch,
                leader_id: Some(1),
                voted_id: Some(1),
            },
            LogSummary {
                start_offset: 0,
                end_offset: end,
                epochs: vec![(epoch, 0)],
                snapshot: None,
            },
            7,
            0,
        )
    }

    #[test]
    fn only_voter_elects_itself_and_commits_its_epoch() {
        let mut core = single(4, 10);
        let actions = core.start(0);
        assert!(actions.contains(&Action::PersistElection(ElectionState {
            epoch: 5,
            leader_id: Some(1),
            voted_id: Some(1)
        })));
        assert!(actions.contains(&Action::AppendLeaderChange {
            epoch: 5,
            leader_id: 1
        }));
        assert_eq!(core.leader_epoch(), Some(5));
        // Old entries do not commit until the new epoch's LeaderChange (offset 10) is durable.
        assert_eq!(core.on_local_flush(10), vec![]);
        assert_eq!(
            core.on_local_flush(11),
            vec![Action::AdvanceHighWatermark(11)]
        );
        assert_eq!(core.log().epochs, vec![(4, 0), (5, 10)]);
    }

    #[test]
    fn end_offset_for_epoch_follows_kafka() {
        let log = LogSummary {
            start_offset: 0,
            end_offset: 30,
            epochs: vec![(1, 0), (3, 10), (4, 25)],
            snapshot: None,
        };
        assert_eq!(log.end_offset_for_epoch(1), Some((1, 10)));
        assert_eq!(log.end_offset_for_epoch(2), Some((1, 10)));
        assert_eq!(log.end_offset_for_epoch(3), Some((3, 25)));
        assert_eq!(log.end_offset_for_epoch(9), Some((4, 30)));
        assert_eq!(log.end_offset_for_epoch(0), None);
    }

    #[test]
    fn voter_refuses_a_candidate_with_a_shorter_log() {
        let mut core = RaftCore::new(
            2,
            vec![1, 2, 3],
            Timeouts::default(),
            ElectionState::default(),
            LogSummary {
                start_offset: 0,
                end_offset: 5,
                epochs: vec![(1, 0)],
                snapshot: None,
            },
            1,
            0,
        );
        let (resp, _) = core.handle_request(
            0,
            3,
            Request::Vote(VoteRequest {
                epoch: 2,
                candidate_id: 3,
                last_epoch: 1,
                end_offset: 4,
                pre_vote: false,
            }),
        );
        let Response::Vote(v) = resp else { panic!() };
        assert!(!v.granted);
        assert_eq!(v.epoch, 2);
        let (resp, actions) = core.handle_request(
            0,
            1,
            Request::Vote(VoteRequest {
                epoch: 2,
                candidate_id: 1,
                last_epoch: 1,
                end_offset: 5,
                pre_vote: false,
            }),
        );
        let Response::Vote(v) = resp else { panic!() };
        assert!(v.granted);
        assert!(actions.contains(&Action::PersistElection(ElectionState {
            epoch: 2,
            leader_id: None,
            voted_id: Some(1)
        })));
    }

    #[test]
    fn leader_sends_the_divergence_point() {
        let mut core = single(3, 20);
        core.voters = BTreeSet::from([1, 2, 3]);
        core.log.epochs = vec![(1, 0), (3, 8)];
        core.role = Role::Candidate(CandidateState {
            epoch: 4,
            granted: BTreeSet::from([1]),
            rejected: BTreeSet::new(),
            election_deadline: 100,
        });
        core.become_leader();
        core.on_local_flush(21);
        let (resp, _) = core.handle_request(
            0,
            2,
            Request::Fetch(FetchRequest {
                epoch: 4,
                replica_id: 2,
                fetch_offset: 12,
                last_fetched_epoch: 2,
            }),
        );
        let Response::Fetch(f) = resp else { panic!() };
        assert_eq!(f.diverging, Some((1, 8)));
        assert_eq!(f.read_from, None);
    }
    /// Node 1 leading `voters` in epoch 2: its LeaderChange is at offset 10 and, once the
    /// others fetch, committed.
    fn leader_of(voters: &[i32]) -> RaftCore {
        let mut core = RaftCore::new(
            1,
            voters.to_vec(),
            Timeouts::default(),
            ElectionState {
                epoch: 1,
                leader_id: None,
                voted_id: Some(1),
            },
            LogSummary {
                start_offset: 0,
                end_offset: 10,
                epochs: vec![(1, 0)],
                snapshot: None,
            },
            7,
            0,
        );
        core.role = Role::Candidate(CandidateState {
            epoch: 2,
            granted: BTreeSet::from([1]),
            rejected: BTreeSet::new(),
            election_deadline: 100,
        });
        core.become_leader();
        core.on_local_flush(11);
        core
    }

    fn fetch(core: &mut RaftCore, now: u64, replica_id: i32, fetch_offset: i64) -> Vec<Action> {
        let epoch = core.epoch();
        let (resp, actions) = core.handle_request(
            now,
            replica_id,
            Request::Fetch(FetchRequest {
                epoch,
                replica_id,
                fetch_offset,
                last_fetched_epoch: epoch,
            }),
        );
        let Response::Fetch(f) = resp else { panic!() };
        assert_eq!(f.error, None);
        actions
    }

    fn done(change: VoterChange, result: Result<(), VoterChangeError>) -> Action {
        Action::VoterChangeDone { change, result }
    }

    #[test]
    fn voter_history_follows_appends_truncation_and_snapshots() {
        let mut h = VoterHistory::new(BTreeSet::from([1, 2, 3]));
        h.append(5, BTreeSet::from([1, 2, 3, 4]));
        h.append(9, BTreeSet::from([2, 3, 4]));
        // A replayed record changes nothing.
        h.append(9, BTreeSet::from([1]));
        assert_eq!(h.latest(), &BTreeSet::from([2, 3, 4]));
        assert_eq!(h.at(4), &BTreeSet::from([1, 2, 3]));
        assert_eq!(h.at(5), &BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(h.latest_offset(), Some(9));
        // Cutting the log at 9 drops the record at 9: the set before it rules again.
        h.truncate_to(9);
        assert_eq!(h.latest(), &BTreeSet::from([1, 2, 3, 4]));
        h.append(12, BTreeSet::from([1, 2, 4]));
        h.append(20, BTreeSet::from([1, 2]));
        // A snapshot at 15 keeps the record in force at its start and those after.
        h.trim_before(15);
        assert_eq!(h.records.len(), 2);
        assert_eq!(h.at(14), &BTreeSet::from([1, 2, 4]));
        h.truncate_to(0);
        assert_eq!(h.latest(), &BTreeSet::from([1, 2, 3]));
        assert!(one_voter_apart(
            &BTreeSet::from([1, 2, 3]),
            &BTreeSet::from([1, 2, 3, 4])
        ));
        assert!(!one_voter_apart(
            &BTreeSet::from([1, 2, 3]),
            &BTreeSet::from([1, 2, 4])
        ));
    }

    #[test]
    fn voter_changes_wait_for_the_leaders_epoch_to_commit() {
        let mut follower = RaftCore::new(
            2,
            vec![1, 2, 3],
            Timeouts::default(),
            ElectionState::default(),
            LogSummary::default(),
            1,
            0,
        );
        assert_eq!(
            follower.add_voter(0, 4),
            Err(VoterChangeError::NotLeader { leader_id: None })
        );
        let mut core = leader_of(&[1, 2, 3]);
        // The LeaderChange at 10 is not committed yet: no high watermark to fence older changes.
        let err = core.add_voter(0, 4).unwrap_err();
        assert_eq!(err, VoterChangeError::NoHighWatermark);
        assert_eq!(err.code(), 7);
        assert_eq!(
            fetch(&mut core, 1, 2, 11),
            vec![Action::AdvanceHighWatermark(11)]
        );
        let err = core.add_voter(1, 2).unwrap_err();
        assert_eq!(err, VoterChangeError::DuplicateVoter { voter_id: 2 });
        assert_eq!(err.code(), 126);
        let err = core.remove_voter(1, 4).unwrap_err();
        assert_eq!(err, VoterChangeError::VoterNotFound { voter_id: 4 });
        assert_eq!(err.code(), 127);
        assert!(core.add_voter(1, 4).is_ok());
        assert_eq!(
            core.remove_voter(1, 3),
            Err(VoterChangeError::ChangePending)
        );
    }

    #[test]
    fn added_voter_joins_once_caught_up_and_commits_with_the_new_majority() {
        let mut core = leader_of(&[1, 2, 3]);
        fetch(&mut core, 1, 2, 11);
        core.on_local_flush(15);
        // Replica 4 fetches as an observer, behind our log end (15): no Voters record yet.
        assert_eq!(fetch(&mut core, 2, 4, 12), vec![]);
        assert_eq!(core.add_voter(3, 4), Ok(vec![]));
        assert_eq!(core.voters(), &BTreeSet::from([1, 2, 3]));
        // Caught up: the set with 4 is in force at our log end (15) before it is even flushed.
        assert_eq!(
            fetch(&mut core, 4, 4, 15),
            vec![Action::AppendVoters {
                epoch: 2,
                voters: vec![1, 2, 3, 4]
            }]
        );
        assert_eq!(core.voters(), &BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(core.voter_history().latest_offset(), Some(15));
        let Role::Leader(l) = core.role() else {
            panic!()
        };
        assert!(l.voters.contains_key(&4) && !l.observers.contains_key(&4));
        assert_eq!(core.on_local_flush(16), vec![]);
        // Two of four voters hold offset 16: no majority of the new set.
        assert_eq!(
            fetch(&mut core, 5, 2, 16),
            vec![Action::AdvanceHighWatermark(15)]
        );
        assert_eq!(
            fetch(&mut core, 6, 4, 16),
            vec![
                Action::AdvanceHighWatermark(16),
                done(VoterChange::Add(4), Ok(()))
            ]
        );
        let Role::Leader(l) = core.role() else {
            panic!()
        };
        assert_eq!(l.voter_change, None);
        // The next change is allowed now that this one is committed.
        assert!(core.remove_voter(7, 4).is_ok());
    }

    #[test]
    fn added_voter_that_never_catches_up_times_out() {
        let mut core = leader_of(&[1, 2, 3]);
        fetch(&mut core, 1, 2, 11);
        assert_eq!(core.add_voter(10, 4), Ok(vec![]));
        assert!(core.next_deadline() <= 10 + core.timeouts.request_ms);
        let actions = core.tick(10 + core.timeouts.request_ms);
        assert!(actions.contains(&done(
            VoterChange::Add(4),
            Err(VoterChangeError::NotCaughtUp { voter_id: 4 })
        )));
        assert_eq!(core.voters(), &BTreeSet::from([1, 2, 3]));
        assert_eq!(core.voter_history().latest_offset(), None);
    }

    #[test]
    fn uncommitted_voters_record_blocks_the_next_change_even_after_a_time_out() {
        let mut core = leader_of(&[1, 2, 3]);
        fetch(&mut core, 1, 2, 11);
        assert_eq!(
            core.remove_voter(2, 3),
            Ok(vec![Action::AppendVoters {
                epoch: 2,
                voters: vec![1, 2]
            }])
        );
        core.on_local_flush(12);
        let actions = core.tick(2 + core.timeouts.request_ms);
        assert!(actions.contains(&done(
            VoterChange::Remove(3),
            Err(VoterChangeError::NotCommitted { offset: 11 })
        )));
        assert_eq!(
            core.add_voter(2 + core.timeouts.request_ms, 3),
            Err(VoterChangeError::UncommittedVoters {
                offset: 11,
                high_watermark: 11
            })
        );
    }

    #[test]
    fn leader_that_removes_itself_leads_until_committed_then_observes() {
        let mut core = leader_of(&[1, 2, 3]);
        fetch(&mut core, 1, 2, 11);
        fetch(&mut core, 1, 3, 11);
        assert_eq!(
            core.remove_voter(2, 1),
            Ok(vec![Action::AppendVoters {
                epoch: 2,
                voters: vec![2, 3]
            }])
        );
        assert!(!core.is_voter());
        core.on_local_flush(12);
        // Our own log end does not count any more: both 2 and 3 must hold the record.
        assert_eq!(fetch(&mut core, 3, 2, 12), vec![]);
        let actions = fetch(&mut core, 4, 3, 12);
        assert_eq!(actions[0], Action::AdvanceHighWatermark(12));
        assert_eq!(actions[1], done(VoterChange::Remove(1), Ok(())));
        // Then it resigns, naming the voters of the new set as successors, furthest first.
        assert!(actions.contains(&Action::LeaderChanged {
            epoch: 2,
            leader_id: None
        }));
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Send { to: 2, request: Request::EndEpoch(e), .. } if e.preferred_successors == vec![3, 2]
        )));
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::Send { to: 1, .. }))
        );
        assert!(matches!(core.role(), Role::Resigned(_)));
        // An observer does not stand for election: it moves to a newer epoch and looks for
        // the leader instead.
        let deadline = core.next_deadline();
        let actions = core.tick(deadline);
        assert!(actions.contains(&Action::PersistElection(ElectionState {
            epoch: 3,
            leader_id: None,
            voted_id: None
        })));
        assert!(matches!(core.role(), Role::Unattached(s) if s.epoch == 3));
        assert!(!actions.iter().any(|a| matches!(
            a,
            Action::Send {
                request: Request::Vote(_),
                ..
            }
        )));
    }

    #[test]
    fn leader_stepping_down_answers_the_change_under_way() {
        let mut core = leader_of(&[1, 2, 3]);
        fetch(&mut core, 1, 2, 11);
        assert!(core.add_voter(1, 4).is_ok());
        let (_, actions) = core.handle_request(
            2,
            3,
            Request::BeginEpoch(BeginEpochRequest {
                epoch: 3,
                leader_id: 3,
            }),
        );
        assert_eq!(
            actions[0],
            done(
                VoterChange::Add(4),
                Err(VoterChangeError::NotLeader { leader_id: Some(3) })
            )
        );
        assert_eq!(core.leader_id(), Some(3));
    }

    fn follower_of(leader: i32, voters: &[i32], node_id: i32) -> RaftCore {
        RaftCore::new(
            node_id,
            voters.to_vec(),
            Timeouts::default(),
            ElectionState {
                epoch: 2,
                leader_id: Some(leader),
                voted_id: None,
            },
            LogSummary {
                start_offset: 0,
                end_offset: 10,
                epochs: vec![(1, 0)],
                snapshot: None,
            },
            3,
            0,
        )
    }

    fn fetched(batches: Vec<BatchMeta>, diverging: Option<(i32, i64)>) -> Response {
        Response::Fetch(FetchResponse {
            error: None,
            epoch: 2,
            leader_id: Some(1),
            high_watermark: 10,
            log_start_offset: 0,
            diverging,
            snapshot: None,
            read_from: None,
            high_watermark_news: false,
            batches,
        })
    }

    #[test]
    fn observer_becomes_a_voter_when_it_appends_the_set_and_truncation_undoes_it() {
        let mut core = follower_of(1, &[1, 2, 3], 4);
        let actions = core.start(0);
        let Some(Action::Send { id, .. }) =
            actions.iter().find(|a| matches!(a, Action::Send { .. }))
        else {
            panic!("no fetch")
        };
        assert!(!core.is_voter());
        let batch = |offset: i64, voters: Option<Vec<i32>>| BatchMeta {
            base_offset: offset,
            last_offset: offset,
            epoch: 2,
            voters,
        };
        let actions = core.handle_response(
            1,
            1,
            *id,
            fetched(
                vec![
                    batch(10, None),
                    batch(11, Some(vec![1, 2, 3, 4])),
                    batch(12, None),
                ],
                None,
            ),
        );
        assert_eq!(actions[0], Action::AppendFetched);
        assert!(core.is_voter());
        assert_eq!(core.voter_history().latest_offset(), Some(11));
        let Some(Action::Send { id, .. }) =
            actions.iter().find(|a| matches!(a, Action::Send { .. }))
        else {
            panic!("no fetch")
        };
        // The leader diverges past the record: it stays.
        let actions = core.handle_response(2, 1, *id, fetched(vec![], Some((2, 12))));
        assert_eq!(actions[0], Action::Truncate(12));
        assert!(core.is_voter());
        let Some(Action::Send { id, .. }) =
            actions.iter().find(|a| matches!(a, Action::Send { .. }))
        else {
            panic!("no fetch")
        };
        // It diverges before the record: the record is cut off and the set before it rules.
        let actions = core.handle_response(3, 1, *id, fetched(vec![], Some((1, 10))));
        assert_eq!(actions[0], Action::Truncate(10));
        assert!(!core.is_voter());
        assert_eq!(core.voters(), &BTreeSet::from([1, 2, 3]));
        assert_eq!(core.voter_history().latest_offset(), None);
    }

    #[test]
    fn voter_history_survives_a_restart_and_a_snapshot_load() {
        let core = follower_of(1, &[1, 2, 3], 2)
            .with_voter_history(vec![(4, vec![1, 2, 3, 4]), (8, vec![1, 2, 4])]);
        assert_eq!(core.voters(), &BTreeSet::from([1, 2, 4]));
        let mut core = core;
        core.start(0);
        let snapshot = SnapshotId {
            end_offset: 50,
            epoch: 2,
        };
        core.on_snapshot_loaded(1, snapshot, Some(vec![1, 2, 4, 5]));
        assert_eq!(core.voters(), &BTreeSet::from([1, 2, 4, 5]));
        assert_eq!(core.voter_history().latest_offset(), Some(49));
        // A snapshot without a Voters record: the configured set.
        core.on_snapshot_loaded(2, snapshot, None);
        assert_eq!(core.voters(), &BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn a_replica_votes_whether_or_not_its_log_makes_it_a_voter() {
        // Replica 4 does not know yet that it was added; candidate 5 is not in its set either.
        let mut core = RaftCore::new(
            4,
            vec![1, 2, 3],
            Timeouts::default(),
            ElectionState::default(),
            LogSummary::default(),
            1,
            0,
        );
        let (resp, actions) = core.handle_request(
            0,
            5,
            Request::Vote(VoteRequest {
                epoch: 3,
                candidate_id: 5,
                last_epoch: 2,
                end_offset: 12,
                pre_vote: false,
            }),
        );
        let Response::Vote(v) = resp else { panic!() };
        assert_eq!((v.error, v.granted), (None, true));
        assert!(actions.contains(&Action::PersistElection(ElectionState {
            epoch: 3,
            leader_id: None,
            voted_id: Some(5)
        })));
    }

    #[test]
    fn prospective_asks_a_leader_outside_its_set_directly() {
        // Voter 2's log says {1, 2, 3}; the leader, 5, was added by a record it lacks. It timed
        // out on 5 and stands for election; voter 1 refuses, as it still hears from 5.
        let mut core = follower_of(5, &[1, 2, 3], 2);
        core.start(0);
        let deadline = core.timeouts.fetch_ms;
        core.tick(deadline);
        assert!(matches!(core.role(), Role::Prospective(_)));
        let actions = core.handle_response(
            deadline + 1,
            1,
            99,
            Response::Vote(VoteResponse {
                error: None,
                epoch: 2,
                leader_id: Some(5),
                granted: false,
                pre_vote: true,
            }),
        );
        let [
            Action::Send {
                to: 5,
                request: Request::Fetch(f),
                ..
            },
        ] = &actions[..]
        else {
            panic!("{actions:?}")
        };
        assert_eq!((f.epoch, f.fetch_offset), (2, 10));
        assert!(matches!(core.role(), Role::Prospective(_)));
    }
}
