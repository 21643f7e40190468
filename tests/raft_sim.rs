//! A deterministic simulation of the Raft core (`kraftd::raft::core`): several voters and an
//! observer exchange requests over a simulated network that loses, duplicates, delays and
//! reorders messages, is partitioned and healed, while nodes crash and restart. Every seed
//! replays exactly. Checked all along: one leader per epoch, logs that agree on an (offset,
//! epoch) agree on everything before it, every committed entry stays in every later leader's log
//! and is never lost, and, once the network heals, the quorum elects a leader and commits again.
//!
//! A failing seed is printed; replay it with `RAFT_SIM_SEED=<seed> cargo test --test raft_sim`.
//! `RAFT_SIM_SEEDS=<n>` runs more seeds.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use kraftd::raft::core::{
    Action, BatchMeta, LogSummary, RaftCore, Request, Response, Role, Timeouts,
};
use kraftd::raft::quorum_state::ElectionState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    epoch: i32,
    /// 0 marks a LeaderChange record; proposals carry unique ids.
    value: u64,
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
        node.core = Some(RaftCore::new(
            id,
            self.voters.clone(),
            self.timeouts,
            node.election,
            summary,
            seed,
            now,
        ));
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
        while let Some(action) = queue.pop_front() {
            let now = self.now;
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
                    node.log.push(Entry { epoch, value: 0 });
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
                Action::AppendVoters { .. } | Action::VoterChangeDone { .. } => {
                    self.fail("no voter changes in this simulation, yet one was made".into())
                }
            }
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
            };
            let roles: Vec<String> = self
                .nodes
                .iter()
                .map(|(id, n)| match &n.core {
                    Some(c) => format!("{id}:{}@{}", c.role().name(), c.epoch()),
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
                            voters: None,
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
                    node.log.push(Entry { epoch, value });
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
    }
}

fn run_seed(seed: u64) {
    let voters = if seed.is_multiple_of(3) { 5 } else { 3 };
    let observers = (seed % 2) as usize;
    let mut sim = Sim::new(seed, voters, observers);
    sim.run();
    assert!(
        !sim.committed.is_empty(),
        "seed {seed}: nothing was ever committed"
    );
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
    for i in 0..seeds {
        if std::env::var("RAFT_SIM_VERBOSE").is_ok() {
            eprintln!("seed {}", base.wrapping_add(i));
        }
        run_seed(base.wrapping_add(i));
    }
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
