//! Classic consumer groups with librdkafka: partitions split between members, committed offsets
//! resumed after a consumer restart and after a kraftd restart, and group administration.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::Node;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const TIMEOUT: Duration = Duration::from_secs(30);

fn node() -> Node {
    // Kafka's sample configs set this to 0 for development; 3 s would only slow the tests.
    Node::start(&[("group.initial.rebalance.delay.ms", "0")])
}

async fn create_topic(node: &Node, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .create()
        .expect("admin");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for r in admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create")
    {
        r.expect("created");
    }
}

async fn produce(node: &Node, topic: &str, from: usize, to: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .create()
        .expect("producer");
    for i in from..to {
        let key = format!("k{i}");
        let value = format!("v{i}");
        producer
            .send(FutureRecord::to(topic).key(&key).payload(&value), TIMEOUT)
            .await
            .expect("delivered");
    }
}

fn consumer(node: &Node, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("consumer")
}

/// Polls every consumer until `want` distinct values arrived in total; returns each consumer's
/// (partition, value) list.
fn drain(consumers: &[&BaseConsumer], want: usize) -> Vec<Vec<(i32, String)>> {
    let mut got: Vec<Vec<(i32, String)>> = vec![Vec::new(); consumers.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.iter().map(Vec::len).sum::<usize>() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want}",
            got.iter().map(Vec::len).sum::<usize>()
        );
        for (i, c) in consumers.iter().enumerate() {
            if let Some(m) = c.poll(Duration::from_millis(50)) {
                let m = match m {
                    Ok(m) => m,
                    // A consumer that lived through a kraftd restart reports the dropped
                    // connection once; it reconnects by itself.
                    Err(rdkafka::error::KafkaError::MessageConsumption(
                        rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure
                        | rdkafka::types::RDKafkaErrorCode::AllBrokersDown,
                    )) => continue,
                    Err(e) => panic!("consume: {e}"),
                };
                got[i].push((
                    m.partition(),
                    String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
                ));
            }
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_the_partitions_and_commits_resume_exactly() {
    let mut node = node();
    create_topic(&node, "orders", 4).await;

    let a = consumer(&node, "billing");
    let b = consumer(&node, "billing");
    a.subscribe(&["orders"]).unwrap();
    b.subscribe(&["orders"]).unwrap();
    // Wait until both members hold an assignment of the same generation.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = a.poll(Duration::from_millis(50));
        let _ = b.poll(Duration::from_millis(50));
        let (pa, pb) = (
            a.assignment().unwrap().count(),
            b.assignment().unwrap().count(),
        );
        if pa + pb == 4 && pa > 0 && pb > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stable 2-member assignment: {pa}+{pb}"
        );
    }
    let pa: BTreeSet<i32> = a
        .assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect();
    let pb: BTreeSet<i32> = b
        .assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect();
    assert!(pa.is_disjoint(&pb), "{pa:?} / {pb:?}");
    assert_eq!(pa.union(&pb).copied().collect::<Vec<_>>(), vec![0, 1, 2, 3]);

    // Produced once the split is stable, so each record has exactly one owner.
    produce(&node, "orders", 0, 400).await;
    let got = drain(&[&a, &b], 400);
    let all: BTreeSet<String> = got.iter().flatten().map(|(_, v)| v.clone()).collect();
    assert_eq!(all.len(), 400, "every record exactly once across the group");
    for (p, _) in &got[0] {
        assert!(pa.contains(p));
    }
    for (p, _) in &got[1] {
        assert!(pb.contains(p));
    }
    a.commit_consumer_state(CommitMode::Sync).expect("commit a");
    b.commit_consumer_state(CommitMode::Sync).expect("commit b");
    drop(a);
    drop(b);

    // More records; a new member of the group resumes exactly after the committed offsets,
    // also across a kraftd restart.
    produce(&node, "orders", 400, 500).await;
    node.restart();
    let c = consumer(&node, "billing");
    c.subscribe(&["orders"]).unwrap();
    let got = drain(&[&c], 100);
    let values: BTreeSet<String> = got[0].iter().map(|(_, v)| v.clone()).collect();
    let expected: BTreeSet<String> = (400..500).map(|i| format!("v{i}")).collect();
    assert_eq!(values, expected, "resumed exactly where committed");
    // Nothing more arrives (no duplicates of 0..400).
    assert!(c.poll(Duration::from_millis(1500)).is_none());
    let committed = c.committed(TIMEOUT).expect("committed offsets");
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| e.offset().to_raw().unwrap_or(0))
        .sum();
    assert_eq!(total, 400, "the 400 committed before the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_leaves_hands_its_partitions_to_the_survivor() {
    let node = node();
    create_topic(&node, "jobs", 2).await;
    let a = consumer(&node, "workers");
    let b = consumer(&node, "workers");
    a.subscribe(&["jobs"]).unwrap();
    b.subscribe(&["jobs"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = a.poll(Duration::from_millis(50));
        let _ = b.poll(Duration::from_millis(50));
        if a.assignment().unwrap().count() == 1 && b.assignment().unwrap().count() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no 1+1 split");
    }
    // b leaves (LeaveGroup on close): a gets both partitions.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.assignment().unwrap().count() != 2 {
        let _ = a.poll(Duration::from_millis(50));
        assert!(Instant::now() < deadline, "survivor did not take over");
    }
    produce(&node, "jobs", 0, 50).await;
    let got = drain(&[&a], 50);
    let partitions: BTreeSet<i32> = got[0].iter().map(|(p, _)| *p).collect();
    assert_eq!(partitions, BTreeSet::from([0, 1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_listed_described_and_deleted() {
    let node = node();
    create_topic(&node, "audit", 1).await;
    produce(&node, "audit", 0, 10).await;
    let c = consumer(&node, "auditors");
    c.subscribe(&["audit"]).unwrap();
    let _ = drain(&[&c], 10);
    c.commit_consumer_state(CommitMode::Sync).unwrap();
    let groups = c
        .fetch_group_list(Some("auditors"), TIMEOUT)
        .expect("group list");
    let g = &groups.groups()[0];
    assert_eq!(g.name(), "auditors");
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(g.members().len(), 1);
    assert_eq!(g.members()[0].client_id(), "rdkafka");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .create()
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    // Not while a member is active.
    let r = admin.delete_groups(&["auditors"], &opts).await.unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        rdkafka::types::RDKafkaErrorCode::NonEmptyGroup
    );
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = admin.delete_groups(&["auditors"], &opts).await.unwrap();
        if r[0].is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group never became deletable: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Gone, with its offsets: a new member starts from the beginning again.
    let c = consumer(&node, "auditors");
    c.subscribe(&["audit"]).unwrap();
    let got = drain(&[&c], 10);
    let offsets: BTreeMap<String, i32> = got[0].iter().map(|(p, v)| (v.clone(), *p)).collect();
    assert_eq!(offsets.len(), 10);
}

fn kip848_consumer(node: &Node, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_group_assigns_on_the_server_and_resumes_from_commits() {
    let node = Node::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.consumer.heartbeat.interval.ms", "300"),
        ("group.consumer.session.timeout.ms", "6000"),
    ]);
    create_topic(&node, "kip848", 4).await;
    produce(&node, "kip848", 0, 200).await;
    let a = kip848_consumer(&node, "new-protocol");
    let b = kip848_consumer(&node, "new-protocol");
    a.subscribe(&["kip848"]).unwrap();
    b.subscribe(&["kip848"]).unwrap();
    // Records polled while the assignment settles count too.
    let mut early: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for c in [&a, &b] {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                early.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
        }
        let (pa, pb) = (
            a.assignment().unwrap().count(),
            b.assignment().unwrap().count(),
        );
        if pa == 2 && pb == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 2+2 server-side assignment: {pa}+{pb}"
        );
    }
    // Until every record was seen (a partition that moved while the group settled may deliver
    // some twice: nothing was committed yet).
    let mut all: BTreeSet<String> = early.into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while all.len() < 200 {
        assert!(
            Instant::now() < deadline,
            "only {} of 200 records",
            all.len()
        );
        for c in [&a, &b] {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                all.insert(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
        }
    }
    a.commit_consumer_state(CommitMode::Sync).expect("commit a");
    b.commit_consumer_state(CommitMode::Sync).expect("commit b");
    drop(a);
    // b takes over a's partitions after a leaves.
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.assignment().unwrap().count() != 4 {
        let _ = b.poll(Duration::from_millis(50));
        assert!(
            Instant::now() < deadline,
            "survivor did not get all 4 partitions"
        );
    }
    produce(&node, "kip848", 200, 240).await;
    let got = drain(&[&b], 40);
    let values: BTreeSet<String> = got[0].iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(values, (200..240).map(|i| format!("v{i}")).collect());
}

/// (state, group epoch, members' (id, epoch)).
type Described848 = (String, i32, Vec<(String, i32)>);

/// ConsumerGroupDescribe over a raw connection: (state, group epoch, members' (id, epoch)),
/// retried (as clients do) while the coordinator is still loading its partition.
fn describe_kip848(node: &Node, group: &str) -> Described848 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match describe_kip848_once(node, group) {
            Ok(described) => return described,
            // COORDINATOR_LOAD_IN_PROGRESS
            Err(14) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(code) => panic!("ConsumerGroupDescribe failed with error {code}"),
        }
    }
}

fn describe_kip848_once(node: &Node, group: &str) -> Result<Described848, i16> {
    use bytes::BytesMut;
    use kafka_protocol::messages::{
        ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId,
        RequestHeader, ResponseHeader,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", node.client_port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let key = ApiKey::ConsumerGroupDescribe;
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(0)
        .with_correlation_id(1)
        .encode(&mut buf, key.request_header_version(0))
        .unwrap();
    ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))])
        .encode(&mut buf, 0)
        .unwrap();
    s.write_all(&(buf.len() as u32).to_be_bytes()).unwrap();
    s.write_all(&buf).unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).unwrap();
    let mut body = bytes::Bytes::from(body);
    ResponseHeader::decode(&mut body, key.response_header_version(0)).unwrap();
    let r = ConsumerGroupDescribeResponse::decode(&mut body, 0).unwrap();
    let g = &r.groups[0];
    if g.error_code != 0 {
        return Err(g.error_code);
    }
    let mut members: Vec<(String, i32)> = g
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_epoch))
        .collect();
    members.sort();
    Ok((g.group_state.to_string(), g.group_epoch, members))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_group_state_survives_a_kraftd_restart() {
    let mut node = Node::start(&[
        ("group.consumer.heartbeat.interval.ms", "300"),
        ("group.consumer.session.timeout.ms", "10000"),
    ]);
    create_topic(&node, "durable-848", 4).await;
    let a = kip848_consumer(&node, "durable-group");
    let b = kip848_consumer(&node, "durable-group");
    a.subscribe(&["durable-848"]).unwrap();
    b.subscribe(&["durable-848"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = a.poll(Duration::from_millis(50));
        let _ = b.poll(Duration::from_millis(50));
        if a.assignment().unwrap().count() == 2 && b.assignment().unwrap().count() == 2 {
            let (state, _, _) = describe_kip848(&node, "durable-group");
            if state == "Stable" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no stable 2+2 group");
    }
    let before = describe_kip848(&node, "durable-group");
    assert_eq!(before.2.len(), 2);
    // Stop the members from heartbeating while the node restarts, so what the restarted node
    // knows comes from __consumer_offsets alone.
    drop(a);
    drop(b);
    let after_leave = describe_kip848(&node, "durable-group");
    assert_eq!(after_leave.0, "Empty", "members left on close");
    node.restart();
    let restored = describe_kip848(&node, "durable-group");
    assert_eq!(
        restored, after_leave,
        "the group epoch and (no) members were replayed"
    );
    assert!(restored.1 > before.1, "leaving bumped the group epoch");

    // A member that stays up while the coordinator restarts keeps its id and epoch: the
    // restarted node knows it from __consumer_offsets, so no rebalance happens.
    let c = kip848_consumer(&node, "durable-group");
    c.subscribe(&["durable-848"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.assignment().unwrap().count() != 4 {
        let _ = c.poll(Duration::from_millis(50));
        assert!(Instant::now() < deadline, "no assignment");
    }
    let (_, epoch, members) = describe_kip848(&node, "durable-group");
    node.restart();
    let (_, epoch_after, members_after) = describe_kip848(&node, "durable-group");
    assert_eq!((epoch_after, &members_after), (epoch, &members));
    // And it goes on consuming without a new assignment.
    produce(&node, "durable-848", 0, 20).await;
    let got = drain(&[&c], 20);
    assert_eq!(got[0].len(), 20);
    assert_eq!(describe_kip848(&node, "durable-group").1, epoch);
}
