//! KIP-631 on the wire: BrokerRegistration and BrokerHeartbeat sent to the real binary's
//! CONTROLLER listener by a "broker 2" that this test plays, and what clients then see of it
//! (DescribeCluster, Metadata, `kraftd metadata dump`), including fencing after
//! `broker.session.timeout.ms` without heartbeats.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{Node, run_kraftd};
use kafka_protocol::messages::broker_registration_request::{Feature, Listener};
use kafka_protocol::messages::{
    ApiKey, BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId, BrokerRegistrationRequest,
    BrokerRegistrationResponse, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest,
    MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use uuid::Uuid;

const READ_TIMEOUT: Duration = Duration::from_secs(10);
const SESSION_TIMEOUT_MS: u64 = 1500;
const BROKER: i32 = 2;
const BROKER_PORT: u16 = 19_092;

struct Conn {
    stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            correlation_id: 0,
        }
    }

    fn send<T: Encodable>(&mut self, key: ApiKey, version: i16, body: &T) -> i32 {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("broker-2")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .expect("header");
        body.encode(&mut buf, version).expect("body");
        let mut framed = (buf.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&buf);
        self.stream.write_all(&framed).expect("write");
        self.correlation_id
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        let correlation_id = self.send(key, version, req);
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .unwrap_or_else(|e| panic!("no answer to {key:?} v{version}: {e}"));
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).expect("response body");
        let mut frame = Bytes::from(body);
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .expect("response header");
        assert_eq!(header.correlation_id, correlation_id);
        let resp = Resp::decode(&mut frame, version).expect("response body decodes");
        assert!(frame.is_empty(), "{key:?} v{version}: trailing bytes");
        resp
    }

    /// The server must close the connection without answering.
    fn expect_closed(&mut self) {
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("expected a close, got {n} bytes"),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ),
                "expected a close, got {e}"
            ),
        }
    }
}

fn cluster_id(node: &Node) -> String {
    let text = std::fs::read_to_string(node.data_dir().join("meta.properties")).expect("meta");
    text.lines()
        .find_map(|l| l.strip_prefix("cluster.id="))
        .expect("cluster.id")
        .to_string()
}

fn registration(cluster_id: &str, incarnation: u128) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(BROKER))
        .with_cluster_id(StrBytes::from_string(cluster_id.to_string()))
        .with_incarnation_id(Uuid::from_u128(incarnation))
        .with_listeners(vec![
            Listener::default()
                .with_name(StrBytes::from_static_str("PLAINTEXT"))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(BROKER_PORT)
                .with_security_protocol(0),
        ])
        .with_features(vec![
            Feature::default()
                .with_name(StrBytes::from_static_str("metadata.version"))
                .with_min_supported_version(1)
                .with_max_supported_version(21),
        ])
        .with_rack(Some(StrBytes::from_static_str("rack-b")))
        .with_log_dirs(vec![Uuid::from_u128(0xfeed << 64)])
}

fn heartbeat(epoch: i64, offset: i64) -> BrokerHeartbeatRequest {
    BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(BROKER))
        .with_broker_epoch(epoch)
        .with_current_metadata_offset(offset)
        .with_want_fence(false)
        .with_want_shut_down(false)
}

/// Broker 2 as DescribeCluster v2 lists it (fenced included): (host, port, rack, fenced).
fn described(node: &Node) -> Option<(String, i32, Option<String>, bool)> {
    let mut c = Conn::open(node.client_port);
    let resp: DescribeClusterResponse = c.call(
        ApiKey::DescribeCluster,
        2,
        &DescribeClusterRequest::default().with_include_fenced_brokers(true),
    );
    assert_eq!(resp.error_code, 0);
    resp.brokers
        .iter()
        .find(|b| b.broker_id.0 == BROKER)
        .map(|b| {
            (
                b.host.to_string(),
                b.port,
                b.rack.as_ref().map(|r| r.to_string()),
                b.is_fenced,
            )
        })
}

fn metadata_brokers(node: &Node) -> Vec<i32> {
    let mut c = Conn::open(node.client_port);
    let resp: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    let mut ids: Vec<i32> = resp.brokers.iter().map(|b| b.node_id.0).collect();
    ids.sort();
    ids
}

#[test]
fn a_broker_registers_heartbeats_and_is_fenced_when_it_goes_silent() {
    let session = SESSION_TIMEOUT_MS.to_string();
    let mut node = Node::start(&[
        ("broker.session.timeout.ms", &session),
        ("broker.heartbeat.interval.ms", "200"),
    ]);
    let cluster = cluster_id(&node);
    let mut c = Conn::open(node.controller_port);

    // Another cluster's broker is refused.
    let wrong: BrokerRegistrationResponse = c.call(
        ApiKey::BrokerRegistration,
        4,
        &registration("c29tZU90aGVyQ2x1c3Rlcg", 1),
    );
    assert_eq!((wrong.error_code, wrong.broker_epoch), (104, -1));

    // Registered: fenced until it says it caught up with its registration.
    let reg: BrokerRegistrationResponse =
        c.call(ApiKey::BrokerRegistration, 4, &registration(&cluster, 1));
    assert_eq!(reg.error_code, 0);
    let epoch = reg.broker_epoch;
    assert!(epoch > 0, "epoch {epoch}");
    assert_eq!(
        described(&node),
        Some((
            "127.0.0.1".into(),
            BROKER_PORT as i32,
            Some("rack-b".into()),
            true
        ))
    );
    assert_eq!(
        metadata_brokers(&node),
        vec![1],
        "a fenced broker is not offered"
    );

    let stale: BrokerHeartbeatResponse =
        c.call(ApiKey::BrokerHeartbeat, 1, &heartbeat(epoch + 1, epoch));
    assert_eq!((stale.error_code, stale.is_fenced), (77, true));
    let behind: BrokerHeartbeatResponse =
        c.call(ApiKey::BrokerHeartbeat, 1, &heartbeat(epoch, epoch - 1));
    assert_eq!(
        (behind.error_code, behind.is_caught_up, behind.is_fenced),
        (0, false, true)
    );
    let caught_up: BrokerHeartbeatResponse =
        c.call(ApiKey::BrokerHeartbeat, 0, &heartbeat(epoch, epoch));
    assert_eq!(
        (
            caught_up.error_code,
            caught_up.is_caught_up,
            caught_up.is_fenced,
            caught_up.should_shut_down
        ),
        (0, true, false, false)
    );
    assert_eq!(described(&node).map(|d| d.3), Some(false));
    assert_eq!(metadata_brokers(&node), vec![1, 2]);

    // The same incarnation again keeps its epoch; another one is a duplicate while it lives.
    let again: BrokerRegistrationResponse =
        c.call(ApiKey::BrokerRegistration, 2, &registration(&cluster, 1));
    assert_eq!((again.error_code, again.broker_epoch), (0, epoch));
    let dup: BrokerRegistrationResponse =
        c.call(ApiKey::BrokerRegistration, 4, &registration(&cluster, 2));
    assert_eq!(dup.error_code, 101);

    // Silence: fenced after the session timeout, not before.
    let silent_from = Instant::now();
    let fenced_at = loop {
        if described(&node).is_some_and(|d| d.3) {
            break silent_from.elapsed();
        }
        assert!(
            silent_from.elapsed() < Duration::from_secs(15),
            "broker 2 was never fenced"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        fenced_at >= Duration::from_millis(SESSION_TIMEOUT_MS - 200),
        "fenced after {fenced_at:?}, before its session timed out"
    );
    assert_eq!(
        metadata_brokers(&node),
        vec![1],
        "node 1 heartbeats itself:\n{}",
        node.log()
    );
    let (code, dump, err) = run_kraftd(&[
        "metadata",
        "dump",
        "-c",
        node.config_path.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        dump.contains(&format!(
            "BrokerRegistrationChangeRecord(brokerId=2, brokerEpoch={epoch}, fenced=1"
        )),
        "{dump}"
    );

    // A fenced broker's old incarnation no longer blocks a new one.
    let next: BrokerRegistrationResponse =
        c.call(ApiKey::BrokerRegistration, 4, &registration(&cluster, 2));
    assert_eq!(next.error_code, 0);
    assert!(next.broker_epoch > epoch);

    // The lifecycle APIs are not served on the client listener.
    let mut client = Conn::open(node.client_port);
    client.send(ApiKey::BrokerRegistration, 4, &registration(&cluster, 3));
    client.expect_closed();
    assert_eq!(node.stop().code(), Some(0));
}

#[test]
fn a_node_killed_while_unfenced_comes_back_without_waiting_out_its_session() {
    // A session far longer than the start timeout: if the restarted node had to wait for its
    // old incarnation's session to expire, it could not start in time.
    let mut node = Node::start(&[("broker.session.timeout.ms", "120000")]);
    node.kill();
    let started = Instant::now();
    node.launch(&[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "restart took {:?}",
        started.elapsed()
    );
    assert_eq!(metadata_brokers(&node), vec![1]);
    assert_eq!(node.stop().code(), Some(0));
}
