//! A deterministic simulation of the Raft core (`kraftd::raft::core`): several voters and an
//! observer exchange requests over a simulated network that loses, duplicates, delays and
//! reorders messages, is partitioned and healed, while nodes crash and restart. Every seed
//! replays exactly. Checked all along: one leader per epoch, logs that agree on an (offset,
//! epoch) agree on everything before it, every committed entry stays in every later leader's log
//! and is never lost, and, once the network heals, the quorum elects a leader and commits again.
//!
//! Voters come and go meanwhile (KIP-853): the leader is asked to add a spare observer or remove
//! a voter, itself included, one change at a time. Checked besides: every node's voter set is
//! the one its own log defines (the newest Voters entry, committed or not), no log ever holds
//! more than one uncommitted Voters entry, and a change reported done is committed.
//!
//! A failing seed is printed; replay it with `RAFT_SIM_SEED=<seed> cargo test --test raft_sim`.
//! `RAFT_SIM_SEEDS=<n>` runs more seeds.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use kraftd::raft::core::{
    Action, BatchMeta, LogSummary, RaftCore, Request, Response, Role, Timeouts, VoterChange,
    VoterChangeError,
};
use kraftd::raft::quorum_state::ElectionState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    epoch: i32,
    /// 0 marks a control record (LeaderChange or Voters); proposals carry unique ids.
    value: u64,
    /// A Voters record: bit `id` set for each voter.
    voters: Option<u32>,
}

impl Entry {
    fn proposal(epoch: i32, value: u64) -> Entry {
        Entry {
            epoch,
            value,
            voters: None,
        }
    }
}

fn voter_mask(ids: impl IntoIterator<Item = i32>) -> u32 {
    ids.into_iter().fold(0, |m, id| m | (1 << id))
}

fn voter_ids(mask: u32) -> Vec<i32> {
    (0..32).filter(|id| mask & (1 << id) != 0).collect()
}

/// The voter set a log defines: its newest Voters entry (with its offset), else the initial set.
fn voters_of(log: &[Entry], initial: u32) -> (Option<usize>, u32) {
    log.iter()
        .enumerate()
        .rev()
        .find_map(|(i, e)| e.voters.map(|v| (Some(i), v)))
        .unwrap_or((None, initial))
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

enum Event {
    Tick(i32),
    Request {
        from: i32,
        to: i32,
        id: u64,
        request: Request,
    },
    Response {
        from: i32,
        to: i32,
        id: u64,
        response: Response,
        entries: Vec<Entry>,
    },
    Propose,
    Crash(i32),
    Restart(i32),
    Partition,
    Heal,
    /// Ask the leader to add or remove a voter.
    ChangeVoters,
}

struct Node {
    core: Option<RaftCore>,
    /// What survives a crash: the quorum-state and the flushed log (every append is flushed
    /// before the core hears of it, as the driver does).
    election: ElectionState,
    log: Vec<Entry>,
    /// Entries carried by the Fetch answer being handled.
    pending_fetch: Vec<Entry>,
    next_tick: Option<u64>,
    high_watermark: i64,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    voters: Vec<i32>,
    nodes: BTreeMap<i32, Node>,
    /// Pairs that cannot talk.
    cut: BTreeSet<(i32, i32)>,
    leaders: BTreeMap<i32, i32>,
    committed: Vec<Entry>,
    next_value: u64,
    loss: u64,
    duplicate: u64,
    timeouts: Timeouts,
    /// Voter changes asked for, refused at once, and reported done (committed).
    changes_asked: u64,
    changes_refused: u64,
    changes_done: u64,
    /// Every `VoterChangeDone`, in order.
    answers: Vec<(VoterChange, Result<(), VoterChangeError>)>,
}

#[derive(Debug, Clone, Copy)]
enum Ask {
    Add(i32),
    Remove(i32),
    Update(i32),
}

impl Sim {
    fn new(seed: u64, voters: usize, observers: usize) -> Sim {
        let mut rng = Rng(seed);
        let voter_ids: Vec<i32> = (1..=voters as i32).collect();
        let mut nodes = BTreeMap::new();
        for id in 1..=(voters + observers) as i32 {
            nodes.insert(
                id,
                Node {
                    core: None,
                    election: ElectionState::default(),
                    log: Vec::new(),
                    pending_fetch: Vec::new(),
                    next_tick: None,
                    high_watermark: 0,
                },
            );
        }
        let loss = rng.below(20);
        let duplicate = rng.below(10);
        Sim {
            seed,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            voters: voter_ids,
            nodes,
            cut: BTreeSet::new(),
            leaders: BTreeMap::new(),
            committed: Vec::new(),
            next_value: 1,
            loss,
            duplicate,
            timeouts: Timeouts::default(),
            changes_asked: 0,
            changes_refused: 0,
            changes_done: 0,
            answers: Vec::new(),
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "raft simulation seed {} failed at t={}ms: {what}\nreplay: RAFT_SIM_SEED={} cargo test --test raft_sim",
            self.seed, self.now, self.seed
        );
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, event);
    }

    fn latency(&mut self) -> u64 {
        1 + self.rng.below(15)
    }

    fn start_node(&mut self, id: i32) {
        let seed = self.rng.next();
        let now = self.now;
        let node = self.nodes.get_mut(&id).expect("node");
        let mut epochs: Vec<(i32, i64)> = Vec::new();
        for (offset, e) in node.log.iter().enumerate() {
            if epochs.last().is_none_or(|&(last, _)| e.epoch > last) {
                epochs.push((e.epoch, offset as i64));
            }
        }
        let summary = LogSummary {
            start_offset: 0,
            end_offset: node.log.len() as i64,
            epochs,
            snapshot: None,
        };
        node.high_watermark = 0;
        // What the driver finds in the log when it opens it: every Voters record.
        let history: Vec<(i64, Vec<i32>)> = node
            .log
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.voters.map(|v| (i as i64, voter_ids(v))))
            .collect();
        node.core = Some(
            RaftCore::new(
                id,
                self.voters.clone(),
                self.timeouts,
                node.election,
                summary,
                seed,
                now,
            )
            .with_voter_history(history),
        );
        let actions = node.core.as_mut().expect("core").start(now);
        self.execute(id, actions);
        self.reschedule_tick(id);
    }

    fn reschedule_tick(&mut self, id: i32) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(core) = &node.core else {
            return;
        };
        // Never busy-loop: a deadline of "now" runs one millisecond later.
        let at = core.next_deadline().max(self.now + 1);
        if node.next_tick.is_some_and(|t| t <= at) {
            return;
        }
        node.next_tick = Some(at);
        self.schedule(at, Event::Tick(id));
    }

    fn send(&mut self, from: i32, to: i32, event: Event) {
        if from == to || self.cut.contains(&(from, to)) || self.rng.chance(self.loss) {
            return;
        }
        let at = self.now + self.latency();
        if self.rng.chance(self.duplicate) {
            let again = match &event {
                Event::Request {
                    from,
                    to,
                    id,
                    request,
                } => Some(Event::Request {
                    from: *from,
                    to: *to,
                    id: *id,
                    request: request.clone(),
                }),
                Event::Response {
                    from,
                    to,
                    id,
                    response,
                    entries,
                } => Some(Event::Response {
                    from: *from,
                    to: *to,
                    id: *id,
                    response: response.clone(),
                    entries: entries.clone(),
                }),
                _ => None,
            };
            if let Some(e) = again {
                let later = at + self.latency();
                self.schedule(later, e);
            }
        }
        self.schedule(at, event);
    }

    fn execute(&mut self, id: i32, actions: Vec<Action>) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        let mut log_changed = false;
        while let Some(action) = queue.pop_front() {
            let now = self.now;
            log_changed |= matches!(
                action,
                Action::AppendFetched | Action::Truncate(_) | Action::AppendVoters { .. }
            );
            match action {
                Action::PersistElection(state) => {
                    self.nodes.get_mut(&id).expect("node").election = state;
                }
                Action::Send {
                    to,
                    id: request_id,
                    request,
                } => {
                    self.send(
                        id,
                        to,
                        Event::Request {
                            from: id,
                            to,
                            id: request_id,
                            request,
                        },
                    );
                }
                Action::AppendLeaderChange { epoch, leader_id } => {
                    assert_eq!(leader_id, id);
                    let node = self.nodes.get_mut(&id).expect("node");
                    node.log.push(Entry {
                        epoch,
                        value: 0,
                        voters: None,
                    });
                    let end = node.log.len() as i64;
                    let more = node.core.as_mut().expect("core").on_local_flush(end);
                    self.check_leader_completeness(id);
                    queue.extend(more);
                }
                Action::AppendFetched => {
                    let node = self.nodes.get_mut(&id).expect("node");
                    let entries = std::mem::take(&mut node.pending_fetch);
                    node.log.extend(entries);
                    let core_end = node.core.as_ref().expect("core").log().end_offset;
                    if core_end != node.log.len() as i64 {
                        let len = node.log.len();
                        self.fail(format!(
                            "node {id}: core thinks the log ends at {core_end}, it ends at {len}"
                        ));
                    }
                }
                Action::Truncate(to) => {
                    let node = self.nodes.get_mut(&id).expect("node");
                    if to < node.high_watermark {
                        let hw = node.high_watermark;
                        self.fail(format!(
                            "node {id} truncates to {to}, below its high watermark {hw}"
                        ));
                    }
                    node.log.truncate(to as usize);
                }
                Action::FetchSnapshot { .. } => {
                    self.fail("no snapshots in this simulation, yet one was asked for".into())
                }
                Action::AdvanceHighWatermark(hw) => {
                    let node = self.nodes.get_mut(&id).expect("node");
                    if hw < node.high_watermark {
                        self.fail(format!("node {id} high watermark went back to {hw}"));
                    }
                    node.high_watermark = hw;
                    if hw as usize > node.log.len() {
                        self.fail(format!("node {id} high watermark {hw} beyond its log"));
                    }
                    let prefix: Vec<Entry> = node.log[..hw as usize].to_vec();
                    self.commit(id, &prefix);
                }
                Action::LeaderChanged { epoch, leader_id } => {
                    if leader_id == Some(id) {
                        if let Some(&other) = self.leaders.get(&epoch)
                            && other != id
                        {
                            self.fail(format!("two leaders in epoch {epoch}: {other} and {id}"));
                        }
                        self.leaders.insert(epoch, id);
                    }
                    let _ = now;
                }
                Action::AppendVoters { epoch, voters } => {
                    let node = self.nodes.get_mut(&id).expect("node");
                    let core = node.core.as_mut().expect("core");
                    // The core put the set in force at the log end it knows: the record must
                    // land exactly there.
                    let at = core.voter_history().latest_offset();
                    if at != Some(node.log.len() as i64) {
                        let len = node.log.len();
                        self.fail(format!(
                            "node {id}: Voters record goes to offset {len}, the core placed it at {at:?}"
                        ));
                    }
                    node.log.push(Entry {
                        epoch,
                        value: 0,
                        voters: Some(voter_mask(voters)),
                    });
                    let end = node.log.len() as i64;
                    let more = node.core.as_mut().expect("core").on_local_flush(end);
                    queue.extend(more);
                }
                Action::VoterChangeDone { change, result } => {
                    if result.is_ok() {
                        self.changes_done += 1;
                        self.check_change_committed(id, change);
                    }
                    self.answers.push((change, result));
                }
            }
        }
        if log_changed {
            self.check_voters(id);
        }
    }

    /// A node's voter set is the one its log defines, and its log holds at most one Voters
    /// entry past what is committed.
    fn check_voters(&self, id: i32) {
        let node = &self.nodes[&id];
        let Some(core) = &node.core else {
            return;
        };
        let (offset, mask) = voters_of(&node.log, voter_mask(self.voters.iter().copied()));
        let core_mask = voter_mask(core.voters().iter().copied());
        let core_offset = core.voter_history().latest_offset();
        if core_mask != mask || core_offset != offset.map(|o| o as i64) {
            self.fail(format!(
                "node {id}: core voters {:?} (record at {core_offset:?}) but its log says {:?} (at {offset:?})",
                voter_ids(core_mask),
                voter_ids(mask)
            ));
        }
        // Consecutive sets differ by one voter, so their majorities overlap.
        let mut previous = voter_mask(self.voters.iter().copied());
        for (offset, mask) in node
            .log
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.voters?)))
        {
            if (previous ^ mask).count_ones() > 1 {
                self.fail(format!(
                    "node {id}: voters {:?} at offset {offset} follow {:?}",
                    voter_ids(mask),
                    voter_ids(previous)
                ));
            }
            previous = mask;
        }
        let uncommitted = node
            .log
            .iter()
            .skip(self.committed.len())
            .filter(|e| e.voters.is_some())
            .count();
        if uncommitted > 1 {
            self.fail(format!(
                "node {id}: {uncommitted} uncommitted Voters entries past offset {}",
                self.committed.len()
            ));
        }
    }

    /// A change reported done is committed: the newest committed Voters entry carries it.
    fn check_change_committed(&self, id: i32, change: VoterChange) {
        let node = &self.nodes[&id];
        let hw = node.high_watermark as usize;
        let (offset, mask) = voters_of(&node.log[..hw], voter_mask(self.voters.iter().copied()));
        let ok = offset.is_some()
            && match change {
                VoterChange::Add(v) => mask & (1 << v) != 0,
                VoterChange::Remove(v) => mask & (1 << v) == 0,
            };
        if !ok {
            self.fail(format!(
                "node {id} reported {change:?} done, but its committed voters are {:?}",
                voter_ids(mask)
            ));
        }
    }

    /// Asks a leader for one voter change: add a replica outside its set or remove one inside,
    /// keeping between 1 and 5 voters, sometimes the leader itself.
    fn change_voters(&mut self) {
        let leaders: Vec<i32> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.core.as_ref().is_some_and(|c| c.leader_epoch().is_some()))
            .map(|(&id, _)| id)
            .collect();
        if leaders.is_empty() {
            return;
        }
        let leader = leaders[self.rng.below(leaders.len() as u64) as usize];
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        let voters = self.nodes[&leader]
            .core
            .as_ref()
            .expect("core")
            .voters()
            .clone();
        let outside: Vec<i32> = ids
            .iter()
            .copied()
            .filter(|id| !voters.contains(id))
            .collect();
        let add = match voters.len() {
            0..=2 => true,
            5.. => false,
            _ => self.rng.chance(50),
        } && !outside.is_empty();
        let inside: Vec<i32> = voters.iter().copied().collect();
        let ask = if add {
            Ask::Add(outside[self.rng.below(outside.len() as u64) as usize])
        } else if self.rng.chance(10) {
            // UpdateRaftVoter: the same ids, new endpoints.
            Ask::Update(inside[self.rng.below(inside.len() as u64) as usize])
        } else {
            Ask::Remove(inside[self.rng.below(inside.len() as u64) as usize])
        };
        self.changes_asked += 1;
        if self.ask(leader, ask).is_err() {
            self.changes_refused += 1;
        }
    }

    /// Hands a voter change to `leader`'s core, as the driver does with AddRaftVoter,
    /// RemoveRaftVoter and UpdateRaftVoter; returns whether it was accepted.
    fn ask(&mut self, leader: i32, ask: Ask) -> Result<(), VoterChangeError> {
        let now = self.now;
        let core = self
            .nodes
            .get_mut(&leader)
            .and_then(|n| n.core.as_mut())
            .expect("core");
        let result = match ask {
            Ask::Add(id) => core.add_voter(now, id),
            Ask::Remove(id) => core.remove_voter(now, id),
            Ask::Update(id) => core.update_voter(now, id),
        };
        let result = result.map(|actions| self.execute(leader, actions));
        self.reschedule_tick(leader);
        result
    }

    /// The one node that leads, if exactly one does.
    fn leader(&self) -> Option<i32> {
        let leaders: Vec<i32> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.core.as_ref().is_some_and(|c| c.leader_epoch().is_some()))
            .map(|(&id, _)| id)
            .collect();
        match leaders[..] {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Records entries below a node's high watermark as committed, checking they agree with
    /// everything committed before.
    fn commit(&mut self, id: i32, prefix: &[Entry]) {
        let common = prefix.len().min(self.committed.len());
        if prefix[..common] != self.committed[..common] {
            let at = (0..common)
                .find(|&i| prefix[i] != self.committed[i])
                .unwrap_or(0);
            self.fail(format!(
                "node {id} committed {:?} at offset {at}, but {:?} was committed there",
                prefix[at], self.committed[at]
            ));
        }
        if prefix.len() > self.committed.len() {
            self.committed.extend_from_slice(&prefix[common..]);
        }
    }

    fn check_leader_completeness(&self, id: i32) {
        let log = &self.nodes[&id].log;
        if log.len() < self.committed.len() || log[..self.committed.len()] != self.committed[..] {
            self.fail(format!(
                "leader {id} lacks committed entries: log {} entries, {} committed",
                log.len(),
                self.committed.len()
            ));
        }
    }

    fn check_log_matching(&self) {
        let logs: Vec<(i32, &Vec<Entry>)> =
            self.nodes.iter().map(|(&id, n)| (id, &n.log)).collect();
        for (i, (a, la)) in logs.iter().enumerate() {
            for (b, lb) in &logs[i + 1..] {
                let common = la.len().min(lb.len());
                // The last offset where both hold the same epoch: all before it must agree.
                if let Some(last) = (0..common).rev().find(|&k| la[k].epoch == lb[k].epoch)
                    && la[..=last] != lb[..=last]
                {
                    self.fail(format!(
                        "logs of {a} and {b} share epoch {} at offset {last} but differ before",
                        la[last].epoch
                    ));
                }
            }
        }
    }

    fn handle(&mut self, event: Event) {
        if std::env::var("RAFT_SIM_TRACE").is_ok() {
            let what = match &event {
                Event::Tick(id) => format!("tick {id}"),
                Event::Request {
                    from, to, request, ..
                } => format!("{from}->{to} {request:?}"),
                Event::Response {
                    from, to, response, ..
                } => format!("{from}->{to} {response:?}"),
                Event::Propose => "propose".into(),
                Event::Crash(id) => format!("crash {id}"),
                Event::Restart(id) => format!("restart {id}"),
                Event::Partition => "partition".into(),
                Event::Heal => "heal".into(),
                Event::ChangeVoters => "change voters".into(),
            };
            let roles: Vec<String> = self
                .nodes
                .iter()
                .map(|(id, n)| match &n.core {
                    Some(c) => format!("{id}:{}@{}{:?}", c.role().name(), c.epoch(), c.voters()),
                    None => format!("{id}:down"),
                })
                .collect();
            eprintln!("t={} {what} | {}", self.now, roles.join(" "));
        }
        match event {
            Event::Tick(id) => {
                let now = self.now;
                let Some(node) = self.nodes.get_mut(&id) else {
                    return;
                };
                if node.next_tick != Some(now) {
                    return;
                }
                node.next_tick = None;
                let Some(core) = node.core.as_mut() else {
                    return;
                };
                let actions = core.tick(now);
                self.execute(id, actions);
                self.reschedule_tick(id);
            }
            Event::Request {
                from,
                to,
                id,
                request,
            } => {
                let now = self.now;
                let Some(core) = self.nodes.get_mut(&to).and_then(|n| n.core.as_mut()) else {
                    return;
                };
                let (mut response, actions) = core.handle_request(now, from, request);
                self.execute(to, actions);
                let mut entries = Vec::new();
                if let Response::Fetch(f) = &mut response
                    && let Some(start) = f.read_from.take()
                {
                    let log = &self.nodes[&to].log;
                    let start = start.max(0) as usize;
                    let end = log.len().min(start + 1 + self.rng.below(8) as usize);
                    for (i, e) in log.iter().enumerate().take(end).skip(start) {
                        entries.push(*e);
                        f.batches.push(BatchMeta {
                            base_offset: i as i64,
                            last_offset: i as i64,
                            epoch: e.epoch,
                            voters: e.voters.map(voter_ids),
                        });
                    }
                }
                self.send(
                    to,
                    from,
                    Event::Response {
                        from: to,
                        to: from,
                        id,
                        response,
                        entries,
                    },
                );
                self.reschedule_tick(to);
            }
            Event::Response {
                from,
                to,
                id,
                response,
                entries,
            } => {
                let now = self.now;
                let Some(node) = self.nodes.get_mut(&to) else {
                    return;
                };
                let Some(core) = node.core.as_mut() else {
                    return;
                };
                node.pending_fetch = entries;
                let actions = core.handle_response(now, from, id, response);
                self.execute(to, actions);
                self.nodes.get_mut(&to).expect("node").pending_fetch.clear();
                self.reschedule_tick(to);
            }
            Event::Propose => {
                let leaders: Vec<i32> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.core.as_ref().is_some_and(|c| c.leader_epoch().is_some()))
                    .map(|(&id, _)| id)
                    .collect();
                for id in leaders {
                    let value = self.next_value;
                    self.next_value += 1;
                    let node = self.nodes.get_mut(&id).expect("node");
                    let core = node.core.as_mut().expect("core");
                    let epoch = core.leader_epoch().expect("leader");
                    node.log.push(Entry::proposal(epoch, value));
                    let end = node.log.len() as i64;
                    let actions = node.core.as_mut().expect("core").on_local_flush(end);
                    self.execute(id, actions);
                    self.reschedule_tick(id);
                }
            }
            Event::Crash(id) => {
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.core = None;
                    node.next_tick = None;
                    node.pending_fetch.clear();
                }
            }
            Event::Restart(id) => {
                if self.nodes[&id].core.is_none() {
                    self.start_node(id);
                }
            }
            Event::Partition => {
                // Cut a random group of nodes off from the rest, both ways.
                let ids: Vec<i32> = self.nodes.keys().copied().collect();
                let side: BTreeSet<i32> = ids
                    .iter()
                    .copied()
                    .filter(|_| self.rng.chance(40))
                    .collect();
                self.cut.clear();
                for &a in &ids {
                    for &b in &ids {
                        if side.contains(&a) != side.contains(&b) {
                            self.cut.insert((a, b));
                        }
                    }
                }
            }
            Event::Heal => self.cut.clear(),
            Event::ChangeVoters => self.change_voters(),
        }
    }

    fn run_until(&mut self, end: u64) {
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > end {
                break;
            }
            self.queue.pop();
            self.now = at;
            let event = self.events.remove(&seq).expect("event");
            self.handle(event);
            if seq.is_multiple_of(64) {
                self.check_log_matching();
            }
        }
        self.now = end;
    }

    fn run(&mut self) {
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for &id in &ids {
            self.start_node(id);
        }
        // A turbulent phase: faults of every kind at random.
        let turbulent_ms = 20_000;
        let mut t = 0;
        while t < turbulent_ms {
            t += 20 + self.rng.below(200);
            self.schedule(t, Event::Propose);
            match self.rng.below(100) {
                0..=2 => {
                    let id = ids[self.rng.below(ids.len() as u64) as usize];
                    self.schedule(t, Event::Crash(id));
                    let back = t + 100 + self.rng.below(4000);
                    self.schedule(back, Event::Restart(id));
                }
                3..=4 => {
                    self.schedule(t, Event::Partition);
                    let heal = t + 200 + self.rng.below(5000);
                    self.schedule(heal, Event::Heal);
                }
                5..=12 => self.schedule(t, Event::ChangeVoters),
                _ => {}
            }
        }
        self.run_until(turbulent_ms);
        // A calm phase: no faults; the quorum must settle and commit what is proposed now.
        self.cut.clear();
        self.loss = 0;
        self.duplicate = 0;
        for &id in &ids {
            if self.nodes[&id].core.is_none() {
                self.start_node(id);
            }
        }
        let calm_start = self.now;
        let mut t = calm_start;
        while t < calm_start + 15_000 {
            t += 200;
            self.schedule(t, Event::Propose);
        }
        self.run_until(calm_start + 20_000);
        self.check_log_matching();
        let leaders: Vec<(i32, i32)> = self
            .nodes
            .iter()
            .filter_map(|(&id, n)| {
                n.core
                    .as_ref()
                    .and_then(|c| c.leader_epoch())
                    .map(|e| (id, e))
            })
            .collect();
        if leaders.len() != 1 {
            let roles: Vec<String> = self
                .nodes
                .iter()
                .map(|(id, n)| {
                    let c = n.core.as_ref().expect("core");
                    format!("{id}:{}@{}", c.role().name(), c.epoch())
                })
                .collect();
            self.fail(format!(
                "after 20 s of calm, leaders {leaders:?}; roles {roles:?}"
            ));
        }
        let max_value = self.next_value;
        let committed_late = self
            .committed
            .iter()
            .any(|e| e.value > 0 && e.value + 20 >= max_value);
        if !committed_late {
            self.fail(format!(
                "after 20 s of calm, the newest proposals are not committed ({} committed entries)",
                self.committed.len()
            ));
        }
        // Every node, observers too, caught up on what is committed.
        for (&id, node) in &self.nodes {
            if node.log.len() < self.committed.len()
                || node.log[..self.committed.len()] != self.committed[..]
            {
                self.fail(format!("node {id} did not catch up on the committed log"));
            }
        }
        // All agree on the voters, and the leader is one of them (a leader that removed itself
        // resigned once that committed).
        let (leader, _) = leaders[0];
        let voters = self.nodes[&leader]
            .core
            .as_ref()
            .expect("core")
            .voters()
            .clone();
        if !voters.contains(&leader) {
            self.fail(format!(
                "leader {leader} is not among its voters {voters:?}"
            ));
        }
        for (&id, node) in &self.nodes {
            let theirs = node.core.as_ref().expect("core").voters();
            if *theirs != voters {
                self.fail(format!(
                    "after 20 s of calm, node {id} has voters {theirs:?}, the leader {voters:?}"
                ));
            }
        }
    }
}

/// Runs one seed; returns (voter changes asked, refused at once, committed).
fn run_seed(seed: u64) -> (u64, u64, u64) {
    let voters = if seed.is_multiple_of(3) { 5 } else { 3 };
    // Without an observer, a voter must be removed before one can be added.
    let observers = (seed % 2) as usize;
    let mut sim = Sim::new(seed, voters, observers);
    sim.run();
    assert!(
        !sim.committed.is_empty(),
        "seed {seed}: nothing was ever committed"
    );
    (sim.changes_asked, sim.changes_refused, sim.changes_done)
}

#[test]
fn raft_core_survives_faults_over_many_seeds() {
    if let Ok(seed) = std::env::var("RAFT_SIM_SEED") {
        run_seed(seed.parse().expect("RAFT_SIM_SEED is a number"));
        return;
    }
    let seeds: u64 = std::env::var("RAFT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    // A different range each run widens coverage over time; the printed seed replays.
    let base: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        * 1_000_003;
    let (mut asked, mut refused, mut done) = (0, 0, 0);
    for i in 0..seeds {
        if std::env::var("RAFT_SIM_VERBOSE").is_ok() {
            eprintln!("seed {}", base.wrapping_add(i));
        }
        let (a, r, d) = run_seed(base.wrapping_add(i));
        asked += a;
        refused += r;
        done += d;
    }
    eprintln!(
        "{seeds} seeds from {base}: {asked} voter changes asked, {refused} refused at once, {done} committed"
    );
    // The simulation must actually exercise membership changes, not just survive them.
    assert!(
        seeds < 100 || done * 10 >= seeds,
        "only {done} voter changes committed over {seeds} seeds"
    );
}

#[test]
fn three_voters_elect_one_leader_without_faults() {
    let mut sim = Sim::new(42, 3, 0);
    sim.loss = 0;
    sim.duplicate = 0;
    let ids: Vec<i32> = sim.nodes.keys().copied().collect();
    for id in ids {
        sim.start_node(id);
    }
    for t in (100..5000).step_by(100) {
        sim.schedule(t, Event::Propose);
    }
    sim.run_until(6000);
    let leaders: Vec<i32> = sim
        .nodes
        .iter()
        .filter(|(_, n)| matches!(n.core.as_ref().map(|c| c.role()), Some(Role::Leader(_))))
        .map(|(&id, _)| id)
        .collect();
    assert_eq!(leaders.len(), 1, "one leader");
    // Every node holds the same committed log, proposals included.
    let proposals = sim.committed.iter().filter(|e| e.value > 0).count();
    assert!(proposals >= 20, "committed {proposals} proposals");
    for node in sim.nodes.values() {
        assert_eq!(&node.log[..sim.committed.len()], &sim.committed[..]);
    }
}

#[test]
fn voters_come_and_go_without_faults() {
    // Voters 1-3, spares 4 and 5: grow to five voters, then remove the leader and one more.
    let mut sim = Sim::new(7, 3, 2);
    sim.loss = 0;
    sim.duplicate = 0;
    let ids: Vec<i32> = sim.nodes.keys().copied().collect();
    for id in ids {
        sim.start_node(id);
    }
    for t in (100..20_000).step_by(100) {
        sim.schedule(t, Event::Propose);
    }
    sim.run_until(3000);
    let first = sim.leader().expect("a leader within 3 s");
    for (add, at) in [(4, 5000), (5, 7000)] {
        assert_eq!(sim.ask(first, Ask::Add(add)), Ok(()));
        sim.run_until(at);
        assert_eq!(sim.answers.pop(), Some((VoterChange::Add(add), Ok(()))));
    }
    let five = BTreeSet::from([1, 2, 3, 4, 5]);
    for node in sim.nodes.values() {
        assert_eq!(node.core.as_ref().expect("core").voters(), &five);
    }
    // A second change while one is under way is refused with REQUEST_TIMED_OUT.
    let other = *five.iter().find(|&&v| v != first).expect("another voter");
    assert_eq!(sim.ask(first, Ask::Remove(first)), Ok(()));
    assert_eq!(
        sim.ask(first, Ask::Remove(other)).map_err(|e| e.code()),
        Err(7)
    );
    sim.run_until(10_000);
    assert_eq!(
        sim.answers.pop(),
        Some((VoterChange::Remove(first), Ok(())))
    );
    // The old leader resigned once its removal committed; the others elected one of them.
    let second = sim.leader().expect("a new leader");
    assert_ne!(second, first);
    let four: BTreeSet<i32> = five.iter().copied().filter(|&v| v != first).collect();
    let third = *four.iter().find(|&&v| v != second).expect("a third voter");
    assert_eq!(sim.ask(second, Ask::Remove(third)), Ok(()));
    sim.run_until(22_000);
    assert_eq!(
        sim.answers.pop(),
        Some((VoterChange::Remove(third), Ok(())))
    );
    let three: BTreeSet<i32> = four.iter().copied().filter(|&v| v != third).collect();
    assert_eq!(sim.leader(), Some(second));
    for (&id, node) in &sim.nodes {
        let core = node.core.as_ref().expect("core");
        assert_eq!(core.voters(), &three, "node {id}");
        // The removed voters, the old leader too, keep replicating as observers.
        assert_eq!(core.is_voter(), three.contains(&id), "node {id}");
        assert_eq!(&node.log[..sim.committed.len()], &sim.committed[..]);
    }
    let proposals = sim.committed.iter().filter(|e| e.value > 0).count();
    assert!(proposals >= 150, "committed {proposals} proposals");
}
