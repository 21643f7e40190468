//! The Raft state machine, after KIP-595: inputs (start, tick, local log progress) go in, a list
//! of actions (persist the election state, write the epoch's LeaderChange record, advance the high
//! watermark) comes out. No sockets, clock or disk here, so the same core runs under the driver
//! and under a simulator.
//!
//! Roles are their own types, named as in Kafka's `QuorumState`. Today the core elects itself
//! when it is the only voter; the RPC-driven transitions of a multi-voter quorum plug into the
//! same roles.

use std::collections::BTreeMap;

use super::quorum_state::ElectionState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnattachedState {
    pub epoch: i32,
    pub voted_id: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateState {
    pub epoch: i32,
    pub granted: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    pub epoch: i32,
    /// The offset of this epoch's first record (its LeaderChange): nothing is committed in this
    /// epoch until the high watermark passes it.
    pub epoch_start_offset: i64,
    /// The end offset each voter has durably stored.
    pub match_offsets: BTreeMap<i32, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    pub epoch: i32,
    pub leader_id: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Unattached(UnattachedState),
    Candidate(CandidateState),
    Leader(LeaderState),
    Follower(FollowerState),
}

impl Role {
    pub fn epoch(&self) -> i32 {
        match self {
            Role::Unattached(s) => s.epoch,
            Role::Candidate(s) => s.epoch,
            Role::Leader(s) => s.epoch,
            Role::Follower(s) => s.epoch,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the quorum-state file; must be durable before anything else in the list.
    PersistElection(ElectionState),
    /// The new leader's first record of its epoch.
    AppendLeaderChange { epoch: i32, leader_id: i32 },
    /// Records below this offset are committed.
    AdvanceHighWatermark(i64),
    /// Who leads now (None while unknown).
    LeaderChanged { epoch: i32, leader_id: Option<i32> },
}

pub struct RaftCore {
    node_id: i32,
    voters: Vec<i32>,
    role: Role,
    log_end_offset: i64,
    high_watermark: i64,
}

impl RaftCore {
    /// `election` is what the quorum-state file held; `log_end_offset` where the local log ends.
    pub fn new(
        node_id: i32,
        voters: Vec<i32>,
        election: ElectionState,
        log_end_offset: i64,
    ) -> Self {
        let role = match election.leader_id {
            Some(leader_id) if leader_id != node_id => Role::Follower(FollowerState {
                epoch: election.epoch,
                leader_id,
            }),
            // A leader that restarts resigns: it does not know the followers' positions.
            _ => Role::Unattached(UnattachedState {
                epoch: election.epoch,
                voted_id: election.voted_id,
            }),
        };
        RaftCore {
            node_id,
            voters,
            role,
            log_end_offset,
            high_watermark: 0,
        }
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn is_voter(&self) -> bool {
        self.voters.contains(&self.node_id)
    }

    fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The epoch proposals may be appended in, if this node leads.
    pub fn leader_epoch(&self) -> Option<i32> {
        match &self.role {
            Role::Leader(l) => Some(l.epoch),
            _ => None,
        }
    }

    /// Called once the driver is up; an only voter elects itself at once.
    pub fn start(&mut self) -> Vec<Action> {
        if self.is_voter() && self.voters.len() == 1 {
            return self.transition_to_candidate();
        }
        Vec::new()
    }

    fn transition_to_candidate(&mut self) -> Vec<Action> {
        let epoch = self.role.epoch() + 1;
        self.role = Role::Candidate(CandidateState {
            epoch,
            granted: vec![self.node_id],
        });
        let mut actions = vec![Action::PersistElection(ElectionState {
            epoch,
            leader_id: None,
            voted_id: Some(self.node_id),
        })];
        if self.majority() <= 1 {
            actions.extend(self.transition_to_leader());
        }
        actions
    }

    fn transition_to_leader(&mut self) -> Vec<Action> {
        let epoch = self.role.epoch();
        debug_assert!(matches!(self.role, Role::Candidate(_)));
        let mut match_offsets = BTreeMap::new();
        for &v in &self.voters {
            match_offsets.insert(
                v,
                if v == self.node_id {
                    self.log_end_offset
                } else {
                    0
                },
            );
        }
        self.role = Role::Leader(LeaderState {
            epoch,
            epoch_start_offset: self.log_end_offset,
            match_offsets,
        });
        vec![
            Action::PersistElection(ElectionState {
                epoch,
                leader_id: Some(self.node_id),
                voted_id: Some(self.node_id),
            }),
            Action::LeaderChanged {
                epoch,
                leader_id: Some(self.node_id),
            },
            Action::AppendLeaderChange {
                epoch,
                leader_id: self.node_id,
            },
        ]
    }

    /// The local log now ends at `end_offset` and everything below it is durable.
    pub fn on_local_flush(&mut self, end_offset: i64) -> Vec<Action> {
        debug_assert!(end_offset >= self.high_watermark);
        self.log_end_offset = end_offset;
        let node_id = self.node_id;
        if let Role::Leader(leader) = &mut self.role {
            leader.match_offsets.insert(node_id, end_offset);
        }
        self.maybe_advance_high_watermark()
    }

    fn maybe_advance_high_watermark(&mut self) -> Vec<Action> {
        let Role::Leader(leader) = &self.role else {
            return Vec::new();
        };
        let mut offsets: Vec<i64> = leader.match_offsets.values().copied().collect();
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&candidate) = offsets.get(self.majority() - 1) else {
            return Vec::new();
        };
        // Raft's commit rule: only an entry of the leader's own epoch commits by counting.
        if candidate > leader.epoch_start_offset && candidate > self.high_watermark {
            self.high_watermark = candidate;
            return vec![Action::AdvanceHighWatermark(candidate)];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_voter_elects_itself_and_commits_its_epoch() {
        let mut core = RaftCore::new(
            1,
            vec![1],
            ElectionState {
                epoch: 4,
                leader_id: Some(1),
                voted_id: Some(1),
            },
            10,
        );
        let actions = core.start();
        assert_eq!(
            actions,
            vec![
                Action::PersistElection(ElectionState {
                    epoch: 5,
                    leader_id: None,
                    voted_id: Some(1)
                }),
                Action::PersistElection(ElectionState {
                    epoch: 5,
                    leader_id: Some(1),
                    voted_id: Some(1)
                }),
                Action::LeaderChanged {
                    epoch: 5,
                    leader_id: Some(1)
                },
                Action::AppendLeaderChange {
                    epoch: 5,
                    leader_id: 1
                },
            ]
        );
        assert_eq!(core.leader_epoch(), Some(5));
        // Old entries do not commit until the new epoch's LeaderChange (offset 10) is durable.
        assert_eq!(core.on_local_flush(10), vec![]);
        assert_eq!(
            core.on_local_flush(11),
            vec![Action::AdvanceHighWatermark(11)]
        );
        assert_eq!(core.high_watermark(), 11);
    }

    #[test]
    fn non_voter_and_multi_voter_wait() {
        let mut observer = RaftCore::new(9, vec![1], ElectionState::default(), 0);
        assert!(observer.start().is_empty());
        let mut three = RaftCore::new(1, vec![1, 2, 3], ElectionState::default(), 0);
        assert!(three.start().is_empty());
        assert_eq!(three.leader_epoch(), None);
    }
}
