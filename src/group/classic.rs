//! A classic consumer group's state machine, as Kafka's GroupMetadata / GroupCoordinator:
//! Empty → PreparingRebalance → CompletingRebalance → Stable (and Dead once deleted), with
//! generations, member ids (KIP-394 member-id-required), static members (KIP-345) and session
//! and rebalance timeouts. JoinGroup and SyncGroup answers wait on oneshot channels that are
//! completed when the rebalance moves on; `tick` drives the timeouts. No I/O here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::records::{GroupValue, MemberValue, OffsetValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names DescribeGroups and ListGroups report.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED with its id (KIP-394).
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members: (member id, group instance id, metadata).
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub fn error(error: ResponseError, member_id: &str) -> JoinResult {
        JoinResult {
            error: error.code(),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..JoinResult::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ResponseError) -> SyncResult {
        SyncResult {
            error: error.code(),
            ..SyncResult::default()
        }
    }
}

pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    /// The metadata this member sent for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    /// In join order; the first becomes leader when the old one is gone.
    pub members: IndexMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, awaiting the member's second JoinGroup.
    pending_members: HashMap<String, Instant>,
    /// group.instance.id → member id (KIP-345).
    static_members: HashMap<String, String>,
    pub offsets: HashMap<(String, i32), OffsetValue>,
    /// PreparingRebalance: when the join phase ends even if members are missing.
    join_deadline: Option<Instant>,
    /// A new group waits this long for more members (group.initial.rebalance.delay.ms).
    initial_join_until: Option<Instant>,
    pub state_timestamp_ms: i64,
    /// group.max.size.
    pub max_size: usize,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

/// What the caller must do after a state change: persist this group's metadata, for example.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    pub persist_group: bool,
}

impl Group {
    pub fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: IndexMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            offsets: HashMap::new(),
            join_deadline: None,
            initial_join_until: None,
            state_timestamp_ms: now_ms(),
            max_size: usize::MAX,
        }
    }

    fn transition(&mut self, state: GroupState) {
        self.state = state;
        self.state_timestamp_ms = now_ms();
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Handles a JoinGroup; `Err(result)` answers at once, `Ok(rx)` answers when the join phase
    /// completes.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        initial_delay: Duration,
    ) -> Result<oneshot::Receiver<JoinResult>, Box<JoinResult>> {
        if self.state == GroupState::Dead {
            return Err(Box::new(JoinResult::error(
                ResponseError::CoordinatorNotAvailable,
                &req.member_id,
            )));
        }
        if !self.members.is_empty() || self.state != GroupState::Empty {
            if let Some(pt) = &self.protocol_type
                && *pt != req.protocol_type
            {
                return Err(Box::new(JoinResult::error(
                    ResponseError::InconsistentGroupProtocol,
                    &req.member_id,
                )));
            }
            let supported = self.members.values().all(|m| {
                m.protocols
                    .iter()
                    .any(|(p, _)| req.protocols.iter().any(|(q, _)| p == q))
            });
            if !supported {
                return Err(Box::new(JoinResult::error(
                    ResponseError::InconsistentGroupProtocol,
                    &req.member_id,
                )));
            }
        }
        let mut member_id = req.member_id.clone();
        if member_id.is_empty() {
            if let Some(instance) = &req.group_instance_id {
                // A static member rejoining with a new id fences the old one (KIP-345).
                let new_id = new_member_id(&req.client_id);
                if let Some(old) = self.static_members.get(instance).cloned()
                    && let Some(mut m) = self.members.shift_remove(&old)
                {
                    if let Some(w) = m.join_waiter.take() {
                        let _ = w.send(JoinResult::error(ResponseError::FencedInstanceId, &old));
                    }
                    if let Some(w) = m.sync_waiter.take() {
                        let _ = w.send(SyncResult::error(ResponseError::FencedInstanceId));
                    }
                    if self.leader.as_deref() == Some(old.as_str()) {
                        self.leader = Some(new_id.clone());
                    }
                    m.member_id = new_id.clone();
                    self.members.insert(new_id.clone(), m);
                }
                self.static_members.insert(instance.clone(), new_id.clone());
                member_id = new_id;
            } else if req.require_known_member_id {
                let id = new_member_id(&req.client_id);
                self.pending_members.insert(id.clone(), now);
                return Err(Box::new(JoinResult::error(
                    ResponseError::MemberIdRequired,
                    &id,
                )));
            } else {
                member_id = new_member_id(&req.client_id);
            }
        } else if !self.members.contains_key(&member_id)
            && self.pending_members.remove(&member_id).is_none()
        {
            return Err(Box::new(JoinResult::error(
                ResponseError::UnknownMemberId,
                &member_id,
            )));
        } else if let Some(instance) = &req.group_instance_id
            && self
                .static_members
                .get(instance)
                .is_some_and(|known| *known != member_id)
        {
            return Err(Box::new(JoinResult::error(
                ResponseError::FencedInstanceId,
                &member_id,
            )));
        }

        if !self.members.contains_key(&member_id) && self.members.len() >= self.max_size {
            return Err(Box::new(JoinResult::error(
                ResponseError::GroupMaxSizeReached,
                &member_id,
            )));
        }
        let (tx, rx) = oneshot::channel();
        let existing = self.members.get_mut(&member_id);
        let changed = match existing {
            Some(m) => {
                let changed = m.protocols != req.protocols;
                m.protocols = req.protocols.clone();
                m.session_timeout = req.session_timeout;
                m.rebalance_timeout = req.rebalance_timeout;
                m.last_heartbeat = now;
                m.join_waiter = Some(tx);
                changed
            }
            None => {
                self.members.insert(
                    member_id.clone(),
                    Member {
                        member_id: member_id.clone(),
                        group_instance_id: req.group_instance_id.clone(),
                        client_id: req.client_id.clone(),
                        client_host: req.client_host.clone(),
                        session_timeout: req.session_timeout,
                        rebalance_timeout: req.rebalance_timeout,
                        protocols: req.protocols.clone(),
                        assignment: Bytes::new(),
                        last_heartbeat: now,
                        join_waiter: Some(tx),
                        sync_waiter: None,
                    },
                );
                true
            }
        };
        if self.protocol_type.is_none() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance
                if !changed && self.leader.as_deref() != Some(member_id.as_str()) =>
            {
                // A follower rejoining with nothing new gets the current generation at once.
                if self.state == GroupState::Stable {
                    let result = self.join_result_for(&member_id);
                    if let Some(m) = self.members.get_mut(&member_id)
                        && let Some(w) = m.join_waiter.take()
                    {
                        let _ = w.send(result);
                    }
                    return Ok(rx);
                }
                self.prepare_rebalance(now, Duration::ZERO);
            }
            GroupState::Empty => self.prepare_rebalance(now, initial_delay),
            GroupState::PreparingRebalance => {}
            _ => self.prepare_rebalance(now, Duration::ZERO),
        }
        self.maybe_complete_join(now);
        Ok(rx)
    }

    fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        // Members waiting on SyncGroup learn that the group is rebalancing.
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(ResponseError::RebalanceInProgress));
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60));
        self.join_deadline = Some(now + timeout);
        self.initial_join_until = (self.state == GroupState::Empty && !initial_delay.is_zero())
            .then(|| now + initial_delay.min(timeout));
        self.transition(GroupState::PreparingRebalance);
    }

    fn join_result_for(&self, member_id: &str) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinResult {
            error: 0,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if is_leader {
                self.members
                    .values()
                    .map(|m| {
                        (
                            m.member_id.clone(),
                            m.group_instance_id.clone(),
                            m.metadata(&protocol),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Ends the join phase once every member rejoined (after a new group's initial delay), or at
    /// the rebalance deadline, dropping members that did not rejoin.
    pub fn maybe_complete_join(&mut self, now: Instant) -> Effects {
        if self.state != GroupState::PreparingRebalance {
            return Effects::default();
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        let delay_over = self.initial_join_until.is_none_or(|t| now >= t);
        let deadline_passed = self.join_deadline.is_some_and(|t| now >= t);
        if !((all_joined && delay_over) || deadline_passed) {
            return Effects::default();
        }
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.generation += 1;
        self.join_deadline = None;
        self.initial_join_until = None;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.transition(GroupState::Empty);
            return Effects {
                persist_group: true,
            };
        }
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.transition(GroupState::CompletingRebalance);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.last_heartbeat = now;
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(result);
                }
            }
        }
        Effects::default()
    }

    /// The protocol every member supports with the most first-choice votes, as Kafka's
    /// `selectProtocol`.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(p, _)| p)
            .filter(|p| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == *p))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates
            .iter()
            .map(|c| {
                let n = self
                    .members
                    .values()
                    .filter(|m| {
                        m.protocols
                            .iter()
                            .map(|(p, _)| p)
                            .find(|p| candidates.contains(p))
                            == Some(*c)
                    })
                    .count();
                (n, *c)
            })
            .collect();
        // Most votes; ties go to the first member's preference order.
        votes.sort_by_key(|v| std::cmp::Reverse(v.0));
        votes.first().map(|(_, p)| (*p).clone())
    }

    fn remove_member(&mut self, member_id: &str) {
        if let Some(mut m) = self.members.shift_remove(member_id) {
            if let Some(instance) = &m.group_instance_id {
                self.static_members.remove(instance);
            }
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(ResponseError::UnknownMemberId, member_id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(ResponseError::UnknownMemberId));
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    fn check_member(
        &self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance
            && let Some(known) = self.static_members.get(instance)
            && known != member_id
        {
            return Err(ResponseError::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// SyncGroup: the leader's assignments complete the rebalance (the caller persists the group
    /// and then calls `complete_sync`); followers wait for them.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<(oneshot::Receiver<SyncResult>, Effects), SyncResult> {
        if self.state == GroupState::Dead {
            return Err(SyncResult::error(ResponseError::CoordinatorNotAvailable));
        }
        self.check_member(member_id, instance, generation)
            .map_err(SyncResult::error)?;
        let (tx, rx) = oneshot::channel();
        match self.state {
            GroupState::PreparingRebalance | GroupState::Empty => {
                Err(SyncResult::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let _ = tx.send(self.sync_result_for(member_id));
                Ok((rx, Effects::default()))
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.sync_waiter = Some(tx);
                    m.last_heartbeat = Instant::now();
                }
                if self.leader.as_deref() == Some(member_id) {
                    for m in self.members.values_mut() {
                        m.assignment = Bytes::new();
                    }
                    for (id, assignment) in assignments {
                        if let Some(m) = self.members.get_mut(&id) {
                            m.assignment = assignment;
                        }
                    }
                    self.transition(GroupState::Stable);
                    return Ok((
                        rx,
                        Effects {
                            persist_group: true,
                        },
                    ));
                }
                Ok((rx, Effects::default()))
            }
            GroupState::Dead => Err(SyncResult::error(ResponseError::CoordinatorNotAvailable)),
        }
    }

    fn sync_result_for(&self, member_id: &str) -> SyncResult {
        SyncResult {
            error: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// After the group's assignment is durable (or failed to be): answer every waiting SyncGroup.
    pub fn complete_sync(&mut self, generation: i32, error: Option<ResponseError>) {
        if self.generation != generation || self.state != GroupState::Stable {
            return;
        }
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = match error {
                None => self.sync_result_for(&id),
                Some(e) => SyncResult::error(e),
            };
            if let Some(m) = self.members.get_mut(&id)
                && let Some(w) = m.sync_waiter.take()
            {
                let _ = w.send(result);
            }
        }
        if error.is_some() {
            self.prepare_rebalance(Instant::now(), Duration::ZERO);
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        match self.state {
            GroupState::Dead => return Err(ResponseError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(ResponseError::UnknownMemberId),
            _ => {}
        }
        if let Err(e) = self.check_member(member_id, instance, generation) {
            // During a rebalance an old generation is told to rejoin, not that it is illegal.
            if e == ResponseError::IllegalGeneration && self.state == GroupState::PreparingRebalance
            {
                return Err(ResponseError::RebalanceInProgress);
            }
            return Err(e);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat = now;
        }
        if self.state == GroupState::PreparingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup for one member (by id, or by group.instance.id for static members).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        now: Instant,
    ) -> Result<(), ResponseError> {
        let id = match instance {
            Some(instance) => {
                let known = self
                    .static_members
                    .get(instance)
                    .cloned()
                    .ok_or(ResponseError::UnknownMemberId)?;
                if !member_id.is_empty() && known != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
                known
            }
            None => member_id.to_string(),
        };
        if !self.members.contains_key(&id) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.remove_member(&id);
        self.after_membership_change(now);
        Ok(())
    }

    fn after_membership_change(&mut self, now: Instant) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation += 1;
                    self.protocol = None;
                    self.leader = None;
                    self.transition(GroupState::Empty);
                } else {
                    self.prepare_rebalance(now, Duration::ZERO);
                }
            }
            GroupState::PreparingRebalance => {
                self.maybe_complete_join(now);
            }
            _ => {}
        }
    }

    /// Expires members whose session ran out and ends overdue join phases.
    pub fn tick(&mut self, now: Instant) -> Effects {
        self.pending_members
            .retain(|_, since| now.duration_since(*since) < Duration::from_secs(300));
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none() && now.duration_since(m.last_heartbeat) > m.session_timeout
            })
            .map(|m| m.member_id.clone())
            .collect();
        let mut effects = Effects::default();
        if !expired.is_empty() {
            let was = self.state;
            for id in &expired {
                self.remove_member(id);
            }
            if self.state != GroupState::PreparingRebalance {
                self.after_membership_change(now);
            }
            if self.state == GroupState::Empty && was != GroupState::Empty {
                effects.persist_group = true;
            }
        }
        let e = self.maybe_complete_join(now);
        effects.persist_group |= e.persist_group;
        effects
    }

    /// Offsets of an Empty group older than the retention period (offsets.retention.minutes),
    /// removed from the group; the caller writes their tombstones.
    pub fn expire_offsets(&mut self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        if self.state != GroupState::Empty || now_ms - self.state_timestamp_ms < retention_ms {
            return Vec::new();
        }
        let expired: Vec<(String, i32)> = self
            .offsets
            .iter()
            .filter(|(_, v)| now_ms - v.commit_timestamp >= retention_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.offsets.remove(k);
        }
        expired
    }

    /// What goes into GroupMetadataValue.
    pub fn to_record(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout.as_millis() as i32,
                    session_timeout: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restores a group from its last GroupMetadataValue when a coordinator loads its partition:
    /// members must heartbeat within their session timeout or they expire.
    pub fn restore(&mut self, v: GroupValue, now: Instant) {
        self.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        self.generation = v.generation;
        self.protocol = v.protocol.clone();
        self.leader = v.leader;
        self.state_timestamp_ms = v.current_state_timestamp;
        self.members.clear();
        self.static_members.clear();
        let protocol = v.protocol.unwrap_or_default();
        for m in v.members {
            if let Some(instance) = &m.group_instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            self.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: Duration::from_millis(m.session_timeout.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout.max(0) as u64),
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    last_heartbeat: now,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join_req(member_id: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
                .collect(),
            require_known_member_id: true,
        }
    }

    /// The KIP-394 dance: MEMBER_ID_REQUIRED, then a join that waits for the phase to end.
    fn join_new(g: &mut Group, now: Instant) -> (String, oneshot::Receiver<JoinResult>) {
        let first = g
            .join(join_req("", &["range"]), now, Duration::ZERO)
            .unwrap_err();
        assert_eq!(first.error, ResponseError::MemberIdRequired.code());
        let id = first.member_id.clone();
        let rx = g
            .join(join_req(&id, &["range"]), now, Duration::ZERO)
            .unwrap();
        (id, rx)
    }

    #[test]
    fn two_members_form_a_generation_and_sync() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let (a, mut rx_a) = join_new(&mut g, now);
        // A lone member completes the join at once: generation 1, it leads.
        let ja = rx_a.try_recv().unwrap();
        assert_eq!(
            (ja.error, ja.generation_id, ja.leader.as_str()),
            (0, 1, a.as_str())
        );
        assert_eq!(ja.members.len(), 1);
        // A second member triggers a rebalance; it waits for `a` to rejoin.
        let (b, mut rx_b) = join_new(&mut g, now);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert!(rx_b.try_recv().is_err());
        assert_eq!(
            g.heartbeat(&a, None, 1, now),
            Err(ResponseError::RebalanceInProgress)
        );
        let mut rx_a = g
            .join(join_req(&a, &["range"]), now, Duration::ZERO)
            .unwrap();
        let ja = rx_a.try_recv().unwrap();
        let jb = rx_b.try_recv().unwrap();
        assert_eq!((ja.generation_id, jb.generation_id), (2, 2));
        assert_eq!(ja.leader, a);
        assert_eq!(ja.members.len(), 2);
        assert!(jb.members.is_empty());
        assert_eq!(ja.protocol_name.as_deref(), Some("range"));
        // The follower waits for the leader's assignment.
        let (mut sb, _) = g.sync(&b, None, 2, vec![]).unwrap();
        assert!(sb.try_recv().is_err());
        let (mut sa, effects) = g
            .sync(
                &a,
                None,
                2,
                vec![
                    (a.clone(), Bytes::from_static(b"A")),
                    (b.clone(), Bytes::from_static(b"B")),
                ],
            )
            .unwrap();
        assert!(effects.persist_group);
        assert_eq!(g.state, GroupState::Stable);
        g.complete_sync(2, None);
        assert_eq!(&sa.try_recv().unwrap().assignment[..], b"A");
        assert_eq!(&sb.try_recv().unwrap().assignment[..], b"B");
        assert_eq!(g.heartbeat(&b, None, 2, now), Ok(()));
        assert_eq!(
            g.heartbeat(&b, None, 1, now),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("nobody", None, 2, now),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn a_silent_member_expires_and_the_survivor_rebalances() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let (a, _) = join_new(&mut g, now);
        let (b, _rx_b) = join_new(&mut g, now);
        let _rx = g
            .join(join_req(&a, &["range"]), now, Duration::ZERO)
            .unwrap();
        g.sync(&a, None, 2, vec![]).unwrap();
        g.complete_sync(2, None);
        // Only `a` heartbeats; after b's session timeout b is gone and a must rejoin.
        let later = now + Duration::from_secs(11);
        assert_eq!(g.heartbeat(&a, None, 2, later), Ok(()));
        g.tick(later);
        assert!(!g.members.contains_key(&b));
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let mut rx = g
            .join(join_req(&a, &["range"]), later, Duration::ZERO)
            .unwrap();
        let j = rx.try_recv().unwrap();
        assert_eq!((j.generation_id, j.members.len()), (3, 1));
    }

    #[test]
    fn leave_empties_the_group_and_unknown_protocols_are_refused() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let (a, _) = join_new(&mut g, now);
        let err = g
            .join(join_req("", &["roundrobin-only"]), now, Duration::ZERO)
            .unwrap_err();
        assert_eq!(err.error, ResponseError::InconsistentGroupProtocol.code());
        g.leave(&a, None, now).unwrap();
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.leave(&a, None, now), Err(ResponseError::UnknownMemberId));
    }

    #[test]
    fn static_member_rejoining_fences_its_old_id() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let mut req = join_req("", &["range"]);
        req.group_instance_id = Some("i-1".into());
        let mut rx = g.join(req.clone(), now, Duration::ZERO).unwrap();
        let first = rx.try_recv().unwrap();
        // The same instance restarts (new member id): the old id is fenced.
        let _rx2 = g.join(req, now, Duration::ZERO).unwrap();
        assert_eq!(
            g.heartbeat(&first.member_id, Some("i-1"), first.generation_id, now),
            Err(ResponseError::FencedInstanceId)
        );
    }
}

#[cfg(test)]
mod limits {
    use super::*;

    #[test]
    fn group_max_size_and_offset_expiry() {
        let now = Instant::now();
        let mut g = Group::new("g");
        g.max_size = 1;
        let req = |id: &str| JoinRequest {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            require_known_member_id: false,
        };
        let _rx = g.join(req(""), now, Duration::ZERO).unwrap();
        let err = g.join(req(""), now, Duration::ZERO).unwrap_err();
        assert_eq!(err.error, ResponseError::GroupMaxSizeReached.code());

        let mut empty = Group::new("e");
        empty.state_timestamp_ms = 0;
        let v = |ts| OffsetValue {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: ts,
        };
        empty.offsets.insert(("old".into(), 0), v(1_000));
        empty.offsets.insert(("new".into(), 0), v(9_000));
        assert_eq!(
            empty.expire_offsets(10_000, 5_000),
            vec![("old".to_string(), 0)]
        );
        assert_eq!(empty.offsets.len(), 1);
    }
}
