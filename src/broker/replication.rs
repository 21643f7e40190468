//! A partition's replication state as Kafka's `Partition` keeps it beside the log: the leader
//! epoch and partition epoch from the image, this replica's role, and — while it leads — what it
//! knows of each follower (Kafka's `Replica`), the ISR with any AlterPartition in flight
//! (KIP-497's pending states), and how far the high watermark may move.
//!
//! Pure state: no log, no clock, no network. Callers pass the time, the leader's log end offset
//! and what the image says about brokers; the ISR changes it decides are returned as
//! `AlterIsr` requests for the caller to send.

use std::collections::{BTreeMap, HashMap};

use super::BrokerError;
use crate::metadata::{MetadataImage, PartitionRegistration};

/// What the image says of each registered broker, for ISR eligibility (Kafka's
/// `isReplicaIsrEligible` and `getAliveBrokerEpoch`).
#[derive(Debug, Clone, Default)]
pub struct BrokerStates {
    brokers: HashMap<i32, BrokerLiveness>,
}

#[derive(Debug, Clone, Copy)]
struct BrokerLiveness {
    epoch: i64,
    fenced: bool,
    in_controlled_shutdown: bool,
}

impl BrokerStates {
    pub fn from_image(image: &MetadataImage) -> BrokerStates {
        BrokerStates {
            brokers: image
                .brokers
                .values()
                .map(|b| {
                    (
                        b.id,
                        BrokerLiveness {
                            epoch: b.epoch,
                            fenced: b.fenced,
                            in_controlled_shutdown: b.in_controlled_shutdown,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The epoch of a registered, unfenced broker.
    pub fn alive_epoch(&self, broker: i32) -> Option<i64> {
        self.brokers
            .get(&broker)
            .filter(|b| !b.fenced)
            .map(|b| b.epoch)
    }

    /// Whether `broker` may be in an ISR: registered, unfenced, not shutting down, and (when
    /// its fetches carried one) with the epoch its fetches carried.
    fn isr_eligible(&self, broker: i32, fetched_with_epoch: Option<i64>) -> bool {
        let Some(b) = self.brokers.get(&broker) else {
            return false;
        };
        !b.fenced
            && !b.in_controlled_shutdown
            && fetched_with_epoch.is_some_and(|e| e == -1 || e == b.epoch)
    }
}

/// What the leader knows of one follower from its fetches (Kafka's `ReplicaState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// -1 until the follower fetches from this leader.
    pub log_start_offset: i64,
    /// The offset of its last fetch; -1 until it fetches.
    pub log_end_offset: i64,
    /// The largest leader log end offset seen at one of its fetches.
    last_fetch_leader_log_end_offset: i64,
    last_fetch_time_ms: Option<i64>,
    /// The latest time it was known to have read up to the leader's log end offset.
    last_caught_up_time_ms: Option<i64>,
    /// The broker epoch its fetches carry (Fetch v15+), `None` until it fetches.
    broker_epoch: Option<i64>,
}

impl FollowerState {
    fn unknown(last_caught_up_time_ms: Option<i64>) -> FollowerState {
        FollowerState {
            log_start_offset: -1,
            log_end_offset: -1,
            last_fetch_leader_log_end_offset: -1,
            last_fetch_time_ms: None,
            last_caught_up_time_ms,
            broker_epoch: None,
        }
    }

    /// Kafka's `isCaughtUp`: at the leader's end, or there within the last `max_lag_ms`.
    fn is_caught_up(&self, leader_end_offset: i64, now_ms: i64, max_lag_ms: i64) -> bool {
        leader_end_offset == self.log_end_offset
            || self
                .last_caught_up_time_ms
                .is_some_and(|t| now_ms - t <= max_lag_ms)
    }
}

/// The ISR as the leader holds it: committed (as the image or the controller's last answer
/// says), or with one AlterPartition in flight. Only one change is in flight at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsrState {
    Committed {
        isr: Vec<i32>,
    },
    /// `new_replica` is counted for the high watermark already (the "maximal" ISR): if the
    /// change fails, waiting for one replica more was only stricter.
    PendingExpand {
        isr: Vec<i32>,
        new_replica: i32,
        change_id: u64,
    },
    /// The removed replicas still count until the controller commits: the high watermark must
    /// not pass them on a change that may fail.
    PendingShrink {
        isr: Vec<i32>,
        removed: Vec<i32>,
        change_id: u64,
    },
}

impl IsrState {
    /// The committed ISR.
    pub fn isr(&self) -> &[i32] {
        match self {
            IsrState::Committed { isr }
            | IsrState::PendingExpand { isr, .. }
            | IsrState::PendingShrink { isr, .. } => isr,
        }
    }

    /// Kafka's `maximalIsr`: the committed ISR plus a replica being added.
    pub fn maximal_contains(&self, replica: i32) -> bool {
        self.isr().contains(&replica)
            || matches!(self, IsrState::PendingExpand { new_replica, .. } if *new_replica == replica)
    }

    pub fn maximal_len(&self) -> usize {
        self.isr().len() + usize::from(matches!(self, IsrState::PendingExpand { .. }))
    }

    fn in_flight(&self) -> Option<u64> {
        match self {
            IsrState::Committed { .. } => None,
            IsrState::PendingExpand { change_id, .. }
            | IsrState::PendingShrink { change_id, .. } => Some(*change_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// This leader epoch's first offset (Kafka's `leaderEpochStartOffsetOpt`): a follower joins
    /// the ISR only once it has reached it.
    pub epoch_start_offset: i64,
    pub isr: IsrState,
    pub followers: BTreeMap<i32, FollowerState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Opened, but the image names no leader (or none applied yet): nobody is served.
    Leaderless,
    Leader(LeaderState),
    Follower {
        leader_id: i32,
    },
}

/// An ISR change for the controller (one partition of an AlterPartition request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterIsr {
    /// Matches the pending state this change was sent for; a response for another is stale.
    pub change_id: u64,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// (broker id, broker epoch or -1 when unknown), as AlterPartition v3's NewIsrWithEpochs.
    pub new_isr: Vec<(i32, i64)>,
}

/// The controller's answer to one partition of an AlterPartition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterIsrOutcome {
    Committed {
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    Failed {
        error_code: i16,
    },
}

/// What `apply_registration` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The image is older than what this replica already knows (its partition epoch is lower).
    Stale,
    /// Leader in a leader epoch it did not lead before: the caller marks the epoch's start in
    /// the log.
    NewLeaderEpoch,
    /// Still leader in the same epoch (an ISR change, say).
    SameLeaderEpoch,
    Follower,
    Leaderless,
}

/// Kafka's error codes for AlterPartition answers the leader reacts to.
mod codes {
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
    pub const INELIGIBLE_REPLICA: i16 = 107;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const INVALID_UPDATE_VERSION: i16 = 95;
    pub const INVALID_REQUEST: i16 = 42;
    pub const NEW_LEADER_ELECTED: i16 = 108;
}

#[derive(Debug, Clone)]
pub struct ReplicationState {
    node_id: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub role: Role,
    /// The topic's min.insync.replicas.
    pub min_insync_replicas: i32,
    /// replica.lag.time.max.ms.
    pub max_lag_ms: i64,
    next_change_id: u64,
}

impl ReplicationState {
    pub fn new(node_id: i32, max_lag_ms: i64) -> ReplicationState {
        ReplicationState {
            node_id,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            role: Role::Leaderless,
            min_insync_replicas: 1,
            max_lag_ms,
            next_change_id: 0,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    pub fn leader(&self) -> Option<&LeaderState> {
        match &self.role {
            Role::Leader(l) => Some(l),
            _ => None,
        }
    }

    /// Kafka's `makeLeader` / `makeFollower` from a registration in the image.
    /// `log_end_offset` is this replica's, used as a new leader epoch's start.
    pub fn apply_registration(
        &mut self,
        reg: &PartitionRegistration,
        log_end_offset: i64,
        now_ms: i64,
    ) -> Transition {
        // The partition epoch also moves with AlterPartition answers, which can arrive before
        // the image that holds them: an older image is skipped, as Kafka does.
        if reg.partition_epoch < self.partition_epoch {
            return Transition::Stale;
        }
        let new_epoch = reg.leader_epoch > self.leader_epoch;
        self.replicas = reg.replicas.clone();
        self.partition_epoch = reg.partition_epoch;
        if reg.leader != self.node_id {
            self.leader_epoch = reg.leader_epoch;
            if reg.leader < 0 {
                self.role = Role::Leaderless;
                return Transition::Leaderless;
            }
            self.role = Role::Follower {
                leader_id: reg.leader,
            };
            return Transition::Follower;
        }
        let was_leader = self.is_leader();
        let isr = IsrState::Committed {
            isr: reg.isr.clone(),
        };
        let followers: Vec<i32> = reg
            .replicas
            .iter()
            .copied()
            .filter(|&r| r != self.node_id)
            .collect();
        let old = match std::mem::replace(&mut self.role, Role::Leaderless) {
            Role::Leader(l) => Some(l),
            _ => None,
        };
        let mut leader = match old {
            Some(l) if !new_epoch => LeaderState { isr, ..l },
            Some(l) => LeaderState {
                epoch_start_offset: log_end_offset,
                isr,
                followers: l.followers,
            },
            None => LeaderState {
                epoch_start_offset: log_end_offset,
                isr,
                followers: BTreeMap::new(),
            },
        };
        // Followers are the replicas but this one; Kafka's `resetReplicaState` on a new epoch:
        // an ISR member counts as caught up now, anyone else not until it fetches.
        let mut known = std::mem::take(&mut leader.followers);
        for &f in &followers {
            let in_isr = reg.isr.contains(&f);
            let state = match known.remove(&f) {
                Some(s) if was_leader && !new_epoch => s,
                Some(s) if was_leader => FollowerState {
                    last_fetch_leader_log_end_offset: log_end_offset,
                    last_fetch_time_ms: in_isr.then_some(now_ms),
                    last_caught_up_time_ms: in_isr.then_some(now_ms),
                    ..s
                },
                _ => FollowerState::unknown(in_isr.then_some(now_ms)),
            };
            leader.followers.insert(f, state);
        }
        self.leader_epoch = reg.leader_epoch;
        self.role = Role::Leader(leader);
        if new_epoch || !was_leader {
            Transition::NewLeaderEpoch
        } else {
            Transition::SameLeaderEpoch
        }
    }

    /// min(min.insync.replicas, replication factor), as Kafka's `effectiveMinIsr`.
    pub fn effective_min_isr(&self) -> usize {
        (self.min_insync_replicas.max(1) as usize).min(self.replicas.len().max(1))
    }

    pub fn is_under_min_isr(&self) -> bool {
        self.leader()
            .is_some_and(|l| l.isr.isr().len() < self.effective_min_isr())
    }

    /// Kafka's `maybeIncrementLeaderHW`: the smallest log end offset among the maximal ISR and
    /// the followers that are caught up and eligible to join it. `None` when not leading or
    /// under min ISR (the high watermark then stays where it is).
    pub fn high_watermark_candidate(
        &self,
        leader_log_end_offset: i64,
        now_ms: i64,
        brokers: &BrokerStates,
    ) -> Option<i64> {
        let leader = self.leader()?;
        if self.is_under_min_isr() {
            return None;
        }
        let mut hw = leader_log_end_offset;
        for (&id, f) in &leader.followers {
            let waits_for_it = leader.isr.maximal_contains(id)
                || (f.is_caught_up(leader_log_end_offset, now_ms, self.max_lag_ms)
                    && brokers.isr_eligible(id, f.broker_epoch));
            if f.log_end_offset < hw && waits_for_it {
                hw = f.log_end_offset;
            }
        }
        Some(hw)
    }

    /// Kafka's `lowWatermarkIfLeader`: the smallest log start offset among this replica and the
    /// followers on live brokers that reported one. DeleteRecords is done once it reaches the
    /// requested offset. `None` when not leading.
    pub fn low_watermark(
        &self,
        local_log_start_offset: i64,
        brokers: &BrokerStates,
    ) -> Option<i64> {
        let leader = self.leader()?;
        Some(
            leader
                .followers
                .iter()
                .filter(|&(&id, f)| f.log_start_offset >= 0 && brokers.alive_epoch(id).is_some())
                .map(|(_, f)| f.log_start_offset)
                .fold(local_log_start_offset, i64::min),
        )
    }

    /// The log start offset a follower reported at its last fetch (-1 before one).
    pub fn follower_log_start_offset(&self, replica_id: i32) -> i64 {
        self.leader()
            .and_then(|l| l.followers.get(&replica_id))
            .map_or(-1, |f| f.log_start_offset)
    }

    /// Checks a follower's fetch against this leader (Kafka's `followerReplicaOrThrow` and the
    /// broker-epoch fence of `updateFetchStateOrThrow`).
    pub fn check_follower(
        &self,
        replica_id: i32,
        broker_epoch: i64,
        brokers: &BrokerStates,
    ) -> Result<(), BrokerError> {
        let Some(leader) = self.leader() else {
            return Err(BrokerError::NotLeaderOrFollower);
        };
        if !leader.followers.contains_key(&replica_id) {
            // The leader epoch matched but the replica is not assigned (yet): Kafka answers
            // UNKNOWN_LEADER_EPOCH so the follower retries.
            return Err(BrokerError::UnknownLeaderEpoch);
        }
        if broker_epoch != -1
            && brokers
                .alive_epoch(replica_id)
                .is_some_and(|e| e > broker_epoch)
        {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        Ok(())
    }

    /// Records a follower's fetch (Kafka's `updateFetchStateOrThrow`); `leader_log_end_offset`
    /// is the leader's end when the fetch was read. Returns whether the follower's end moved.
    pub fn update_follower(
        &mut self,
        replica_id: i32,
        fetch_offset: i64,
        follower_log_start_offset: i64,
        broker_epoch: i64,
        leader_log_end_offset: i64,
        now_ms: i64,
    ) -> bool {
        let Role::Leader(leader) = &mut self.role else {
            return false;
        };
        let Some(f) = leader.followers.get_mut(&replica_id) else {
            return false;
        };
        let caught_up_at = if fetch_offset >= leader_log_end_offset {
            Some(now_ms)
        } else if fetch_offset >= f.last_fetch_leader_log_end_offset {
            f.last_fetch_time_ms
        } else {
            None
        };
        let moved = f.log_end_offset != fetch_offset;
        *f = FollowerState {
            log_start_offset: follower_log_start_offset,
            log_end_offset: fetch_offset,
            last_fetch_leader_log_end_offset: leader_log_end_offset
                .max(f.last_fetch_leader_log_end_offset),
            last_fetch_time_ms: Some(now_ms),
            last_caught_up_time_ms: f.last_caught_up_time_ms.max(caught_up_at),
            broker_epoch: Some(broker_epoch),
        };
        moved
    }

    /// Kafka's `maybeExpandIsr`: a follower outside the ISR that has reached the high watermark
    /// and this epoch's start joins it (the change is pending until the controller answers).
    pub fn maybe_expand_isr(
        &mut self,
        replica_id: i32,
        high_watermark: i64,
        brokers: &BrokerStates,
        local_broker_epoch: i64,
    ) -> Option<AlterIsr> {
        let leader = self.leader()?;
        if leader.isr.in_flight().is_some() || leader.isr.isr().contains(&replica_id) {
            return None;
        }
        let f = leader.followers.get(&replica_id)?;
        if !brokers.isr_eligible(replica_id, f.broker_epoch)
            || f.log_end_offset < high_watermark
            || f.log_end_offset < leader.epoch_start_offset
        {
            return None;
        }
        let mut new_isr = leader.isr.isr().to_vec();
        new_isr.push(replica_id);
        let change_id = self.next_change_id();
        let alter = self.alter_isr(change_id, &new_isr, local_broker_epoch);
        if let Role::Leader(leader) = &mut self.role {
            let isr = leader.isr.isr().to_vec();
            leader.isr = IsrState::PendingExpand {
                isr,
                new_replica: replica_id,
                change_id,
            };
        }
        Some(alter)
    }

    /// Kafka's `getOutOfSyncReplicas`: ISR followers not caught up within replica.lag.time.max.ms.
    pub fn out_of_sync_replicas(&self, leader_log_end_offset: i64, now_ms: i64) -> Vec<i32> {
        let Some(leader) = self.leader() else {
            return Vec::new();
        };
        if leader.isr.in_flight().is_some() {
            return Vec::new();
        }
        leader
            .isr
            .isr()
            .iter()
            .copied()
            .filter(|&r| r != self.node_id)
            .filter(|r| {
                leader
                    .followers
                    .get(r)
                    .is_none_or(|f| !f.is_caught_up(leader_log_end_offset, now_ms, self.max_lag_ms))
            })
            .collect()
    }

    /// Kafka's `maybeShrinkIsr`: drops the out-of-sync followers (pending until committed).
    pub fn maybe_shrink_isr(
        &mut self,
        leader_log_end_offset: i64,
        now_ms: i64,
        local_broker_epoch: i64,
    ) -> Option<AlterIsr> {
        let removed = self.out_of_sync_replicas(leader_log_end_offset, now_ms);
        if removed.is_empty() {
            return None;
        }
        let isr = self.leader()?.isr.isr().to_vec();
        let new_isr: Vec<i32> = isr
            .iter()
            .copied()
            .filter(|r| !removed.contains(r))
            .collect();
        let change_id = self.next_change_id();
        let alter = self.alter_isr(change_id, &new_isr, local_broker_epoch);
        if let Role::Leader(leader) = &mut self.role {
            leader.isr = IsrState::PendingShrink {
                isr,
                removed,
                change_id,
            };
        }
        Some(alter)
    }

    fn next_change_id(&mut self) -> u64 {
        self.next_change_id += 1;
        self.next_change_id
    }

    /// The request for `new_isr`, each member with the broker epoch its fetches carried (this
    /// broker's own for itself; -1 when unknown, which the controller does not check).
    fn alter_isr(&self, change_id: u64, new_isr: &[i32], local_broker_epoch: i64) -> AlterIsr {
        let followers = self.leader().map(|l| &l.followers);
        AlterIsr {
            change_id,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            new_isr: new_isr
                .iter()
                .map(|&r| {
                    let epoch = if r == self.node_id {
                        local_broker_epoch
                    } else {
                        followers
                            .and_then(|f| f.get(&r))
                            .and_then(|f| f.broker_epoch)
                            .unwrap_or(-1)
                    };
                    (r, epoch)
                })
                .collect(),
        }
    }

    /// The pending ISR change `change_id`, if that is still the one in flight.
    pub fn pending_change(&self, change_id: u64) -> Option<Vec<i32>> {
        let leader = self.leader()?;
        (leader.isr.in_flight() == Some(change_id)).then(|| match &leader.isr {
            IsrState::PendingExpand {
                isr, new_replica, ..
            } => {
                let mut v = isr.clone();
                v.push(*new_replica);
                v
            }
            IsrState::PendingShrink { isr, removed, .. } => isr
                .iter()
                .copied()
                .filter(|r| !removed.contains(r))
                .collect(),
            IsrState::Committed { isr } => isr.clone(),
        })
    }

    /// Kafka's `handleAlterPartitionUpdate` / `handleAlterPartitionError` for change
    /// `change_id`. Returns whether to send the same change again.
    pub fn handle_alter_isr(&mut self, change_id: u64, outcome: &AlterIsrOutcome) -> bool {
        let current_epoch = self.leader_epoch;
        let current_partition_epoch = self.partition_epoch;
        let Role::Leader(leader) = &mut self.role else {
            return false;
        };
        if leader.isr.in_flight() != Some(change_id) {
            // The state moved on (a new image, another change): this answer is out of date.
            return false;
        }
        match outcome {
            AlterIsrOutcome::Committed {
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                if *leader_epoch != current_epoch || *partition_epoch < current_partition_epoch {
                    // Stale; the image will bring the truth.
                    return false;
                }
                leader.isr = IsrState::Committed { isr: isr.clone() };
                self.partition_epoch = *partition_epoch;
                false
            }
            AlterIsrOutcome::Failed { error_code } => match *error_code {
                // The controller says the request was not applied: back to the committed ISR.
                codes::OPERATION_NOT_ATTEMPTED | codes::INELIGIBLE_REPLICA => {
                    leader.isr = IsrState::Committed {
                        isr: leader.isr.isr().to_vec(),
                    };
                    false
                }
                // This replica's view is out of date: stay pending until the image says more.
                codes::UNKNOWN_TOPIC_OR_PARTITION
                | codes::UNKNOWN_TOPIC_ID
                | codes::FENCED_LEADER_EPOCH
                | codes::INVALID_UPDATE_VERSION
                | codes::INVALID_REQUEST
                | codes::NEW_LEADER_ELECTED => false,
                // NOT_CONTROLLER, timeouts, anything else: try again.
                _ => true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::{MetadataRecord, RegisterBrokerRecord};

    const ME: i32 = 1;
    const LAG: i64 = 30_000;

    fn reg(
        replicas: &[i32],
        isr: &[i32],
        leader: i32,
        epoch: i32,
        pe: i32,
    ) -> PartitionRegistration {
        PartitionRegistration {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: epoch,
            partition_epoch: pe,
        }
    }

    fn brokers(ids: &[i32]) -> BrokerStates {
        let mut image = MetadataImage::default();
        for &id in ids {
            image.apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: id,
                broker_epoch: 100 + id as i64,
                fenced: false,
                ..RegisterBrokerRecord::default()
            }));
        }
        BrokerStates::from_image(&image)
    }

    fn leader_of(replicas: &[i32], isr: &[i32]) -> ReplicationState {
        let mut s = ReplicationState::new(ME, LAG);
        assert_eq!(
            s.apply_registration(&reg(replicas, isr, ME, 0, 0), 10, 1_000),
            Transition::NewLeaderEpoch
        );
        s
    }

    #[test]
    fn the_high_watermark_waits_for_every_isr_member() {
        let b = brokers(&[1, 2, 3]);
        let mut s = leader_of(&[1, 2, 3], &[1, 2, 3]);
        // Nobody has fetched: their end offsets are unknown, so nothing is committed.
        assert_eq!(s.high_watermark_candidate(10, 1_000, &b), Some(-1));
        s.update_follower(2, 10, 0, 102, 10, 1_100);
        assert_eq!(s.high_watermark_candidate(10, 1_100, &b), Some(-1));
        s.update_follower(3, 7, 0, 103, 10, 1_100);
        assert_eq!(s.high_watermark_candidate(10, 1_100, &b), Some(7));
        s.update_follower(3, 10, 0, 103, 10, 1_200);
        assert_eq!(s.high_watermark_candidate(10, 1_200, &b), Some(10));
    }

    #[test]
    fn a_lone_replica_commits_what_it_appends() {
        let s = leader_of(&[1], &[1]);
        assert_eq!(s.high_watermark_candidate(42, 0, &brokers(&[1])), Some(42));
    }

    #[test]
    fn under_min_isr_the_high_watermark_does_not_move() {
        let mut s = leader_of(&[1, 2, 3], &[1]);
        s.min_insync_replicas = 2;
        assert!(s.is_under_min_isr());
        assert_eq!(
            s.high_watermark_candidate(10, 0, &brokers(&[1, 2, 3])),
            None
        );
        // min.insync.replicas above the replication factor means all replicas.
        s.min_insync_replicas = 5;
        assert_eq!(s.effective_min_isr(), 3);
    }

    #[test]
    fn a_caught_up_follower_joins_the_isr_once_it_reaches_the_high_watermark() {
        let b = brokers(&[1, 2]);
        let mut s = leader_of(&[1, 2], &[1]);
        s.update_follower(2, 4, 0, 102, 10, 2_000);
        assert_eq!(s.maybe_expand_isr(2, 10, &b, 101), None, "behind the HW");
        s.update_follower(2, 10, 0, 102, 10, 2_100);
        let alter = s.maybe_expand_isr(2, 10, &b, 101).expect("expand");
        assert_eq!(alter.new_isr, vec![(1, 101), (2, 102)]);
        assert_eq!((alter.leader_epoch, alter.partition_epoch), (0, 0));
        // While pending, the new member already holds the high watermark back.
        assert!(s.leader().is_some_and(|l| l.isr.maximal_contains(2)));
        assert_eq!(
            s.maybe_expand_isr(2, 10, &b, 101),
            None,
            "one change at a time"
        );
        assert!(!s.handle_alter_isr(
            alter.change_id,
            &AlterIsrOutcome::Committed {
                leader_epoch: 0,
                partition_epoch: 1,
                isr: vec![1, 2],
            }
        ));
        assert_eq!(s.leader().map(|l| l.isr.isr().to_vec()), Some(vec![1, 2]));
        assert_eq!(s.partition_epoch, 1);
        // The image with partition epoch 0 that arrives late is skipped.
        assert_eq!(
            s.apply_registration(&reg(&[1, 2], &[1], ME, 0, 0), 10, 2_200),
            Transition::Stale
        );
    }

    #[test]
    fn a_fenced_or_restarted_follower_is_not_added() {
        let mut s = leader_of(&[1, 2], &[1]);
        // Its fetches carried epoch 90, but the image says it registered again as 102.
        s.update_follower(2, 10, 0, 90, 10, 2_000);
        assert_eq!(s.maybe_expand_isr(2, 10, &brokers(&[1, 2]), 101), None);
        assert_eq!(
            s.check_follower(2, 90, &brokers(&[1, 2])),
            Err(BrokerError::NotLeaderOrFollower)
        );
        assert_eq!(
            s.check_follower(3, 90, &brokers(&[1, 2])),
            Err(BrokerError::UnknownLeaderEpoch)
        );
    }

    #[test]
    fn a_follower_that_stops_fetching_leaves_the_isr_after_the_lag_time() {
        let mut s = leader_of(&[1, 2, 3], &[1, 2, 3]);
        s.update_follower(2, 10, 0, 102, 10, 1_000);
        s.update_follower(3, 10, 0, 103, 10, 1_000);
        // The leader appends up to 20; follower 2 keeps up, 3 is silent.
        s.update_follower(2, 20, 0, 102, 20, 1_000 + LAG);
        assert!(s.maybe_shrink_isr(20, 1_000 + LAG, 101).is_none());
        let alter = s.maybe_shrink_isr(20, 1_001 + LAG, 101).expect("shrink");
        assert_eq!(alter.new_isr, vec![(1, 101), (2, 102)]);
        // Until committed, 3 still holds the high watermark.
        assert_eq!(
            s.high_watermark_candidate(20, 1_001 + LAG, &brokers(&[1, 2, 3])),
            Some(10)
        );
        // NOT_CONTROLLER: retry the same change.
        assert!(s.handle_alter_isr(alter.change_id, &AlterIsrOutcome::Failed { error_code: 41 }));
        // INELIGIBLE_REPLICA: back to the committed ISR.
        assert!(!s.handle_alter_isr(
            alter.change_id,
            &AlterIsrOutcome::Failed { error_code: 107 }
        ));
        assert_eq!(
            s.leader().map(|l| l.isr.clone()),
            Some(IsrState::Committed { isr: vec![1, 2, 3] })
        );
    }

    #[test]
    fn a_follower_behind_but_fetching_up_to_earlier_ends_stays_in_sync() {
        // Kafka's lastCaughtUpTime rule: reading up to the leader end of its previous fetch
        // counts as caught up at that previous fetch's time.
        let mut s = leader_of(&[1, 2], &[1, 2]);
        s.update_follower(2, 10, 0, 102, 12, 1_000);
        s.update_follower(2, 12, 0, 102, 14, 20_000);
        s.update_follower(2, 14, 0, 102, 16, 40_000);
        // Never at the leader's end when fetching, yet it read up to 14 (the leader's end at
        // its fetch at 20 s) by 40 s: caught up at 20 s, so in sync until 20 s + the lag time.
        assert!(s.out_of_sync_replicas(16, 20_000 + LAG).is_empty());
        assert_eq!(s.out_of_sync_replicas(16, 20_001 + LAG), vec![2]);
    }

    #[test]
    fn a_new_leader_epoch_resets_what_is_known_of_followers() {
        let mut s = leader_of(&[1, 2], &[1, 2]);
        s.update_follower(2, 10, 0, 102, 10, 1_000);
        let t = s.apply_registration(&reg(&[1, 2], &[1, 2], ME, 1, 1), 15, 5_000);
        assert_eq!(t, Transition::NewLeaderEpoch);
        let l = s.leader().expect("leader");
        assert_eq!(l.epoch_start_offset, 15);
        assert_eq!(l.followers[&2].log_end_offset, 10);
        // Becoming a follower drops the leader state.
        assert_eq!(
            s.apply_registration(&reg(&[1, 2], &[2], 2, 2, 2), 15, 6_000),
            Transition::Follower
        );
        assert_eq!(s.role, Role::Follower { leader_id: 2 });
        assert_eq!(s.leader_epoch, 2);
    }
}
