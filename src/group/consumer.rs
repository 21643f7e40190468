//! KIP-848 consumer groups (`group.protocol=consumer`): the coordinator computes assignments
//! (the `uniform` and `range` assignors) and each member reconciles towards its target through
//! ConsumerGroupHeartbeat: partitions to give up are revoked first, and a partition is handed to
//! its new owner only once the old one released it. A group epoch counts membership and
//! subscription changes; a member's epoch reaches the group's when it has its target. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use kafka_protocol::ResponseError;
use uuid::Uuid;

/// topic id → partitions.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
pub const LEAVE_EPOCH: i32 = -1;
pub const LEAVE_STATIC_EPOCH: i32 = -2;

/// A subscribed topic as the metadata image has it: (name, id, partition count).
pub type TopicInfo = (String, Uuid, i32);

pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub subscribed: BTreeSet<String>,
    pub member_epoch: i32,
    /// The partitions this member owns now (what it was last told).
    pub assigned: Assignment,
    /// Partitions it must give up before its epoch can move on.
    pub pending_revocation: Assignment,
    revocation_started: Option<Instant>,
    last_heartbeat: Instant,
    /// The assignment last sent, so unchanged ones are not resent.
    last_sent: Option<Assignment>,
}

/// A change the coordinator must make durable in `__consumer_offsets` (as Kafka's
/// ConsumerGroup* records) before it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    GroupEpoch,
    MemberMetadata(String),
    MemberRemoved(String),
    TargetAssignment,
    CurrentAssignment(String),
}

pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: IndexMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics' (name, id, partitions) the target was computed from.
    subscription_metadata: Vec<TopicInfo>,
    /// group.consumer.max.size.
    pub max_size: usize,
    changes: Vec<Change>,
}

pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    /// What the member owns now (None when unchanged since its last heartbeat).
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    /// None when the member's assignment did not change since it was last sent.
    pub assignment: Option<Assignment>,
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(bs) => ps.difference(bs).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        if let Some(bs) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(bs).copied().collect();
            if !both.is_empty() {
                out.insert(*t, both);
            }
        }
    }
    out
}

fn contains(a: &Assignment, t: &Uuid, p: i32) -> bool {
    a.get(t).is_some_and(|ps| ps.contains(&p))
}

impl ConsumerGroup {
    pub fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor: UNIFORM.to_string(),
            members: IndexMap::new(),
            target: BTreeMap::new(),
            subscription_metadata: Vec::new(),
            max_size: usize::MAX,
            changes: Vec::new(),
        }
    }

    /// What changed since the last call, for the coordinator to persist.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    // ---- replay of persisted records (a coordinator loading its partition) ----

    pub fn restore_epoch(&mut self, epoch: i32) {
        self.group_epoch = epoch;
    }

    pub fn restore_assignment_epoch(&mut self, epoch: i32) {
        self.assignment_epoch = epoch;
    }

    #[allow(clippy::too_many_arguments)]
    pub fn restore_member(
        &mut self,
        member_id: &str,
        instance_id: Option<String>,
        rack_id: Option<String>,
        client_id: String,
        client_host: String,
        subscribed: Vec<String>,
        assignor: Option<String>,
        rebalance_timeout_ms: i32,
        now: Instant,
    ) {
        if let Some(a) = assignor {
            self.assignor = a;
        }
        let m = self
            .members
            .entry(member_id.to_string())
            .or_insert_with(|| ConsumerMember {
                member_id: member_id.to_string(),
                instance_id: None,
                rack_id: None,
                client_id: String::new(),
                client_host: String::new(),
                rebalance_timeout: Duration::ZERO,
                subscribed: BTreeSet::new(),
                member_epoch: 0,
                assigned: Assignment::new(),
                pending_revocation: Assignment::new(),
                revocation_started: None,
                last_heartbeat: now,
                last_sent: None,
            });
        m.instance_id = instance_id;
        m.rack_id = rack_id;
        m.client_id = client_id;
        m.client_host = client_host;
        m.subscribed = subscribed.into_iter().collect();
        m.rebalance_timeout = Duration::from_millis(rebalance_timeout_ms.max(0) as u64);
        m.last_heartbeat = now;
    }

    pub fn restore_member_removed(&mut self, member_id: &str) {
        self.members.shift_remove(member_id);
        self.target.remove(member_id);
    }

    pub fn restore_target(&mut self, member_id: &str, assignment: Assignment) {
        self.target.insert(member_id.to_string(), assignment);
    }

    pub fn restore_current(
        &mut self,
        member_id: &str,
        member_epoch: i32,
        assigned: Assignment,
        pending_revocation: Assignment,
        now: Instant,
    ) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.member_epoch = member_epoch;
            m.revocation_started = (!pending_revocation.is_empty()).then_some(now);
            m.assigned = assigned;
            m.pending_revocation = pending_revocation;
        }
    }

    /// After a replay: the subscription metadata the target was computed from, so an unchanged
    /// topic set does not bump the epoch again.
    pub fn restore_done(&mut self, topics: &dyn Fn(&str) -> Option<(Uuid, i32)>) {
        self.subscription_metadata = self.subscribed_topics(topics);
    }

    /// The state ConsumerGroupDescribe and ListGroups report.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || !m.pending_revocation.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Handles one heartbeat. `topics` resolves a subscribed topic name to its id and partition
    /// count from the current metadata image.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        now: Instant,
        topics: &dyn Fn(&str) -> Option<(Uuid, i32)>,
    ) -> Result<HeartbeatResult, ResponseError> {
        if let Some(a) = &req.server_assignor
            && a != UNIFORM
            && a != RANGE
        {
            return Err(ResponseError::UnsupportedAssignor);
        }
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == LEAVE_STATIC_EPOCH {
            if self.members.shift_remove(&req.member_id).is_none() {
                return Err(ResponseError::UnknownMemberId);
            }
            self.changes
                .push(Change::MemberRemoved(req.member_id.clone()));
            self.bump_epoch(topics);
            return Ok(HeartbeatResult {
                member_id: req.member_id,
                member_epoch: req.member_epoch,
                assignment: None,
            });
        }
        let mut changed = false;
        let mut metadata_changed = false;
        if req.member_epoch == 0 {
            // A join (or a rejoin after being fenced): start from nothing.
            if req.subscribed_topic_names.is_none() || req.rebalance_timeout_ms < 0 {
                return Err(ResponseError::InvalidRequest);
            }
            if !self.members.contains_key(&req.member_id)
                && req.instance_id.is_none()
                && self.members.len() >= self.max_size
            {
                return Err(ResponseError::GroupMaxSizeReached);
            }
            if let Some(instance) = &req.instance_id {
                // A static member coming back under a new id takes the old one's place.
                let old = self
                    .members
                    .values()
                    .find(|m| m.instance_id.as_deref() == Some(instance.as_str()))
                    .map(|m| m.member_id.clone());
                if let Some(old) = old
                    && old != req.member_id
                {
                    self.members.shift_remove(&old);
                    self.changes.push(Change::MemberRemoved(old));
                }
            }
            self.members.shift_remove(&req.member_id);
            self.members.insert(
                req.member_id.clone(),
                ConsumerMember {
                    member_id: req.member_id.clone(),
                    instance_id: req.instance_id.clone(),
                    rack_id: req.rack_id.clone(),
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64),
                    subscribed: BTreeSet::new(),
                    member_epoch: 0,
                    assigned: Assignment::new(),
                    pending_revocation: Assignment::new(),
                    revocation_started: None,
                    last_heartbeat: now,
                    last_sent: None,
                },
            );
            changed = true;
            metadata_changed = true;
        }
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if req.member_epoch > 0 && req.member_epoch != member.member_epoch {
            return Err(ResponseError::FencedMemberEpoch);
        }
        member.last_heartbeat = now;
        if let Some(names) = &req.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().cloned().collect();
            if names != member.subscribed {
                member.subscribed = names;
                changed = true;
                metadata_changed = true;
            }
        }
        if req.rebalance_timeout_ms > 0 {
            member.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
        }
        if let Some(a) = &req.server_assignor
            && *a != self.assignor
        {
            self.assignor = a.clone();
            changed = true;
            metadata_changed = true;
        }
        if metadata_changed {
            self.changes
                .push(Change::MemberMetadata(req.member_id.clone()));
        }
        // New topics or partitions matching a subscription move the group on too.
        if changed || self.metadata_changed(topics) {
            self.bump_epoch(topics);
        }
        self.reconcile(&req.member_id, req.owned.as_ref(), now);
        let member = self
            .members
            .get_mut(&req.member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        let send = if req.member_epoch == 0 || member.last_sent.as_ref() != Some(&member.assigned) {
            member.last_sent = Some(member.assigned.clone());
            Some(member.assigned.clone())
        } else {
            None
        };
        Ok(HeartbeatResult {
            member_id: member.member_id.clone(),
            member_epoch: member.member_epoch,
            assignment: send,
        })
    }

    fn subscribed_topics(&self, topics: &dyn Fn(&str) -> Option<(Uuid, i32)>) -> Vec<TopicInfo> {
        let names: BTreeSet<&String> = self.members.values().flat_map(|m| &m.subscribed).collect();
        names
            .into_iter()
            .filter_map(|n| topics(n).map(|(id, parts)| (n.clone(), id, parts)))
            .collect()
    }

    fn metadata_changed(&self, topics: &dyn Fn(&str) -> Option<(Uuid, i32)>) -> bool {
        self.subscribed_topics(topics) != self.subscription_metadata
    }

    fn bump_epoch(&mut self, topics: &dyn Fn(&str) -> Option<(Uuid, i32)>) {
        self.changes.push(Change::GroupEpoch);
        self.changes.push(Change::TargetAssignment);
        self.group_epoch += 1;
        self.subscription_metadata = self.subscribed_topics(topics);
        self.target = self.compute_target();
        self.assignment_epoch = self.group_epoch;
    }

    fn compute_target(&self) -> BTreeMap<String, Assignment> {
        let mut target: BTreeMap<String, Assignment> = self
            .members
            .keys()
            .map(|id| (id.clone(), Assignment::new()))
            .collect();
        if self.assignor == RANGE {
            // Per topic, contiguous ranges over the subscribers in member-id order.
            for (name, id, parts) in &self.subscription_metadata {
                let subs: Vec<&String> = self
                    .members
                    .values()
                    .filter(|m| m.subscribed.contains(name))
                    .map(|m| &m.member_id)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if subs.is_empty() {
                    continue;
                }
                let per = *parts as usize / subs.len();
                let extra = *parts as usize % subs.len();
                let mut next = 0i32;
                for (i, m) in subs.iter().enumerate() {
                    let n = per + usize::from(i < extra);
                    let set: BTreeSet<i32> = (next..next + n as i32).collect();
                    next += n as i32;
                    if !set.is_empty()
                        && let Some(t) = target.get_mut(*m)
                    {
                        t.insert(*id, set);
                    }
                }
            }
            return target;
        }
        // Uniform: balanced counts, keeping current owners where that stays balanced.
        let all: Vec<(String, Uuid, i32)> = self
            .subscription_metadata
            .iter()
            .flat_map(|(name, id, parts)| (0..*parts).map(move |p| (name.clone(), *id, p)))
            .collect();
        let subscribers = |name: &str| -> Vec<&String> {
            self.members
                .values()
                .filter(|m| m.subscribed.contains(name))
                .map(|m| &m.member_id)
                .collect()
        };
        let eligible: BTreeSet<&String> = self
            .members
            .values()
            .filter(|m| !m.subscribed.is_empty())
            .map(|m| &m.member_id)
            .collect();
        let quota = if eligible.is_empty() {
            0
        } else {
            all.len().div_ceil(eligible.len())
        };
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut unassigned = Vec::new();
        for (name, id, p) in &all {
            let owner = self.members.values().find(|m| {
                m.subscribed.contains(name)
                    && (contains(&m.assigned, id, *p) || contains(&m.pending_revocation, id, *p))
            });
            match owner {
                Some(m) if counts.get(&m.member_id).copied().unwrap_or(0) < quota => {
                    *counts.entry(m.member_id.clone()).or_default() += 1;
                    target
                        .entry(m.member_id.clone())
                        .or_default()
                        .entry(*id)
                        .or_default()
                        .insert(*p);
                }
                _ => unassigned.push((name.clone(), *id, *p)),
            }
        }
        for (name, id, p) in unassigned {
            let Some(m) = subscribers(&name)
                .into_iter()
                .min_by_key(|m| (counts.get(*m).copied().unwrap_or(0), (*m).clone()))
            else {
                continue;
            };
            *counts.entry(m.clone()).or_default() += 1;
            target
                .entry(m.clone())
                .or_default()
                .entry(id)
                .or_default()
                .insert(p);
        }
        target
    }

    /// Moves one member towards its target: revoke first, then take what others released.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: Instant) {
        let before = self.members.get(member_id).map(|m| {
            (
                m.member_epoch,
                m.assigned.clone(),
                m.pending_revocation.clone(),
            )
        });
        self.reconcile_inner(member_id, owned, now);
        let after = self.members.get(member_id).map(|m| {
            (
                m.member_epoch,
                m.assigned.clone(),
                m.pending_revocation.clone(),
            )
        });
        if before != after {
            self.changes
                .push(Change::CurrentAssignment(member_id.to_string()));
        }
    }

    fn reconcile_inner(&mut self, member_id: &str, owned: Option<&Assignment>, now: Instant) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let epoch = self.assignment_epoch;
        // What every other member still holds or has not yet released.
        let mut held_by_others = Assignment::new();
        for m in self.members.values().filter(|m| m.member_id != member_id) {
            for (t, ps) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                held_by_others.entry(*t).or_default().extend(ps);
            }
        }
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        if !member.pending_revocation.is_empty() {
            let released =
                owned.is_some_and(|o| intersect(o, &member.pending_revocation).is_empty());
            if !released {
                return;
            }
            member.pending_revocation.clear();
            member.revocation_started = None;
        }
        let revoke = minus(&member.assigned, &target);
        if !revoke.is_empty() {
            member.assigned = intersect(&member.assigned, &target);
            member.pending_revocation = revoke;
            member.revocation_started = Some(now);
            return;
        }
        let mut next = member.assigned.clone();
        for (t, ps) in &target {
            for p in ps {
                if !contains(&held_by_others, t, *p) {
                    next.entry(*t).or_default().insert(*p);
                }
            }
        }
        member.assigned = next;
        member.member_epoch = epoch;
    }

    /// Removes members whose session ran out or that did not revoke within their rebalance
    /// timeout; returns whether the group changed.
    pub fn tick(
        &mut self,
        now: Instant,
        session_timeout: Duration,
        topics: &dyn Fn(&str) -> Option<(Uuid, i32)>,
    ) -> bool {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now.duration_since(m.last_heartbeat) > session_timeout
                    || m.revocation_started
                        .is_some_and(|t| now.duration_since(t) > m.rebalance_timeout)
            })
            .map(|m| m.member_id.clone())
            .collect();
        if gone.is_empty() {
            return false;
        }
        for id in gone {
            self.members.shift_remove(&id);
            self.changes.push(Change::MemberRemoved(id));
        }
        self.bump_epoch(topics);
        true
    }

    pub fn assigned_count(&self, member_id: &str) -> usize {
        self.members
            .get(member_id)
            .map_or(0, |m| count(&m.assigned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Uuid = Uuid::from_u128(7);

    fn topics(name: &str) -> Option<(Uuid, i32)> {
        (name == "t").then_some((T, 6))
    }

    fn hb(member: &str, epoch: i32, owned: Option<Assignment>) -> HeartbeatRequest {
        HeartbeatRequest {
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: if epoch == 0 { 30_000 } else { -1 },
            subscribed_topic_names: (epoch == 0).then(|| vec!["t".to_string()]),
            server_assignor: None,
            owned,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    fn parts(a: &Option<Assignment>) -> BTreeSet<i32> {
        a.as_ref()
            .and_then(|a| a.get(&T).cloned())
            .unwrap_or_default()
    }

    #[test]
    fn second_member_waits_for_the_first_to_revoke() {
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(hb("a", 0, None), now, &topics).unwrap();
        assert_eq!(a.member_epoch, 1);
        assert_eq!(parts(&a.assignment), (0..6).collect());
        // b joins: the target splits 3/3, but b gets nothing until a revokes.
        let b = g.heartbeat(hb("b", 0, None), now, &topics).unwrap();
        assert_eq!(b.member_epoch, 2);
        assert!(parts(&b.assignment).is_empty());
        assert_eq!(g.state(), "Reconciling");
        let owned_all = a.assignment.clone();
        let a2 = g.heartbeat(hb("a", 1, owned_all), now, &topics).unwrap();
        let kept = parts(&a2.assignment);
        assert_eq!(kept.len(), 3);
        assert_eq!(a2.member_epoch, 1, "epoch waits for the revocation");
        // a confirms it released the other three; its epoch catches up.
        let a3 = g
            .heartbeat(hb("a", 1, a2.assignment.clone()), now, &topics)
            .unwrap();
        assert_eq!(a3.member_epoch, 2);
        // b now gets the released partitions.
        let b2 = g
            .heartbeat(hb("b", 2, Some(Assignment::new())), now, &topics)
            .unwrap();
        let got = parts(&b2.assignment);
        assert_eq!(got.len(), 3);
        assert!(got.is_disjoint(&kept));
        assert_eq!(g.state(), "Stable");
        // A stale epoch is fenced; an unknown member is told so.
        assert_eq!(
            g.heartbeat(hb("b", 1, None), now, &topics).unwrap_err(),
            ResponseError::FencedMemberEpoch
        );
        assert_eq!(
            g.heartbeat(hb("zz", 3, None), now, &topics).unwrap_err(),
            ResponseError::UnknownMemberId
        );
    }

    #[test]
    fn a_member_that_stops_heartbeating_is_removed_and_its_partitions_reassigned() {
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(hb("a", 0, None), now, &topics).unwrap();
        let _ = g.heartbeat(hb("b", 0, None), now, &topics).unwrap();
        let a2 = g.heartbeat(hb("a", 1, a.assignment), now, &topics).unwrap();
        let a3 = g
            .heartbeat(hb("a", 1, a2.assignment.clone()), now, &topics)
            .unwrap();
        let b2 = g
            .heartbeat(hb("b", 2, Some(Assignment::new())), now, &topics)
            .unwrap();
        assert_eq!(parts(&b2.assignment).len(), 3);
        // Only a keeps heartbeating; b's session runs out.
        let mid = now + Duration::from_secs(30);
        let _ = g
            .heartbeat(hb("a", a3.member_epoch, None), mid, &topics)
            .unwrap();
        let later = now + Duration::from_secs(46);
        assert!(g.tick(later, Duration::from_secs(45), &topics));
        assert_eq!(g.members.len(), 1);
        // a is told its new, complete assignment with the next epoch.
        let a4 = g
            .heartbeat(hb("a", a3.member_epoch, None), later, &topics)
            .unwrap();
        assert_eq!(a4.member_epoch, g.group_epoch);
        assert_eq!(parts(&a4.assignment), (0..6).collect());
    }

    #[test]
    fn range_assignor_gives_contiguous_ranges() {
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        let mut req = hb("a", 0, None);
        req.server_assignor = Some(RANGE.into());
        g.heartbeat(req, now, &topics).unwrap();
        let mut req = hb("b", 0, None);
        req.server_assignor = Some(RANGE.into());
        g.heartbeat(req, now, &topics).unwrap();
        assert_eq!(g.target["a"][&T], BTreeSet::from([0, 1, 2]));
        assert_eq!(g.target["b"][&T], BTreeSet::from([3, 4, 5]));
        g.max_size = 2;
        assert_eq!(
            g.heartbeat(hb("c", 0, None), now, &topics).unwrap_err(),
            ResponseError::GroupMaxSizeReached
        );
        g.max_size = usize::MAX;
        let mut bad = hb("c", 0, None);
        bad.server_assignor = Some("sticky".into());
        assert_eq!(
            g.heartbeat(bad, now, &topics).unwrap_err(),
            ResponseError::UnsupportedAssignor
        );
    }
}
