//! Raw TCP against the client and CONTROLLER listeners of the real binary: ApiVersions (and
//! KIP-511), framing and parse failures that must close only the offending connection,
//! per-listener API exposure, pipelining order, and Produce validation errors.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::Node;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
    RequestHeader, ResponseHeader, TopicName, UpdateRaftVoterRequest, UpdateRaftVoterResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kraftd::protocol::record_batch::{BatchOptions, NewRecord, encode_batch};

/// Every read waits at most this: the server must answer or close, never leave us hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

fn start_node() -> Node {
    Node::start(&[("socket.request.max.bytes", "1048576")])
}

/// One raw connection with bounded reads.
struct Conn {
    stream: TcpStream,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn { stream }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    fn send<T: Encodable>(&mut self, key: ApiKey, version: i16, correlation_id: i32, body: &T) {
        let bytes = frame(key, version, correlation_id, body);
        self.send_raw(&bytes);
    }

    /// The next response frame (without its size prefix), or `None` on EOF / reset.
    fn recv_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        match self.stream.read_exact(&mut size) {
            Ok(()) => {}
            Err(e) if is_closed(&e) => return None,
            Err(e) => panic!("no response and no close within {READ_TIMEOUT:?}: {e}"),
        }
        let size = i32::from_be_bytes(size);
        assert!(
            (4..=64 * 1024 * 1024).contains(&size),
            "bad response size {size}"
        );
        let mut buf = vec![0u8; size as usize];
        self.stream
            .read_exact(&mut buf)
            .expect("response body after its size");
        Some(Bytes::from(buf))
    }

    fn recv<T: Decodable>(&mut self, key: ApiKey, version: i16, correlation_id: i32) -> T {
        let mut frame = self
            .recv_frame()
            .unwrap_or_else(|| panic!("connection closed instead of answering {key:?} v{version}"));
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .expect("response header");
        assert_eq!(header.correlation_id, correlation_id, "{key:?} v{version}");
        let body = T::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version} response does not decode: {e}"));
        assert!(
            frame.is_empty(),
            "{key:?} v{version}: {} trailing bytes",
            frame.len()
        );
        body
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        correlation_id: i32,
        req: &Req,
    ) -> Resp {
        self.send(key, version, correlation_id, req);
        self.recv(key, version, correlation_id)
    }

    /// The server must close this connection (EOF or reset) without sending anything.
    fn expect_closed(&mut self, what: &str) {
        let started = Instant::now();
        let mut buf = [0u8; 256];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => panic!(
                    "{what}: expected the connection closed, got {n} bytes: {:?}",
                    &buf[..n]
                ),
                Err(e) if is_closed(&e) => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "{what}: connection still open after {:?} ({e})",
                    started.elapsed()
                ),
            }
        }
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

/// A frame whose header claims `claimed` but whose body is encoded at `encoded_at`: a request
/// at a version kafka-protocol itself cannot encode.
fn frame_claiming<T: Encodable>(
    key: ApiKey,
    claimed: i16,
    encoded_at: i16,
    correlation_id: i32,
    body: &T,
) -> Vec<u8> {
    let mut bytes = frame(key, encoded_at, correlation_id, body);
    // size(4) api_key(2) api_version(2)
    bytes[6..8].copy_from_slice(&claimed.to_be_bytes());
    bytes
}

/// size prefix + request header + body, as a client sends it.
fn frame<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")))
        .encode(&mut buf, key.request_header_version(version))
        .expect("encode header");
    body.encode(&mut buf, version).expect("encode body");
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("kraftd-wire-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
}

/// (key, min, max) as listed in a response, sorted by key.
fn listed(resp: &ApiVersionsResponse) -> Vec<(i16, i16, i16)> {
    let mut v: Vec<_> = resp
        .api_keys
        .iter()
        .map(|a| (a.api_key, a.min_version, a.max_version))
        .collect();
    v.sort();
    v
}

fn table(apis: &[(ApiKey, i16, i16)]) -> Vec<(i16, i16, i16)> {
    let mut v: Vec<_> = apis.iter().map(|(k, a, b)| (*k as i16, *a, *b)).collect();
    v.sort();
    v
}

/// Small deterministic generator (xorshift64*), so junk is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A fresh connection still gets a correct ApiVersions and Metadata answer, and nothing
/// panicked.
fn assert_still_serving(node: &Node, after: &str) {
    let mut c = Conn::open(node.client_port);
    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, 7001, &api_versions_request());
    assert_eq!(resp.error_code, 0, "after {after}");
    assert_eq!(
        listed(&resp),
        table(kraftd::api::CLIENT_APIS),
        "after {after}"
    );
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        7002,
        &MetadataRequest::default().with_topics(None),
    );
    assert_eq!(md.brokers.len(), 1, "after {after}: {md:?}");
    assert_eq!(md.brokers[0].node_id, BrokerId(1));
    assert_eq!(md.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(md.brokers[0].port, i32::from(node.client_port));
    assert_eq!(md.controller_id, BrokerId(1), "after {after}");
    let log = node.log();
    assert!(!log.contains("panicked"), "after {after}:\n{log}");
}

// ---- ApiVersions ----

#[test]
fn api_versions_v3_and_v0_list_the_client_apis() {
    let mut node = start_node();
    let mut c = Conn::open(node.client_port);
    for (version, corr) in [(3i16, 11), (0, 12), (1, 13), (2, 14), (4, 15)] {
        let resp: ApiVersionsResponse =
            c.call(ApiKey::ApiVersions, version, corr, &api_versions_request());
        assert_eq!(resp.error_code, 0, "v{version}");
        let got = listed(&resp);
        assert_eq!(got, table(kraftd::api::CLIENT_APIS), "v{version}");
        for (key, name) in [
            (0, "Produce"),
            (1, "Fetch"),
            (3, "Metadata"),
            (18, "ApiVersions"),
        ] {
            let (_, min, max) = *got
                .iter()
                .find(|(k, _, _)| *k == key)
                .unwrap_or_else(|| panic!("v{version}: {name} ({key}) not listed"));
            assert!(0 <= min && min <= max, "{name}: {min}..{max}");
        }
        let api_versions = got.iter().find(|(k, _, _)| *k == 18).unwrap();
        assert_eq!(
            (api_versions.1, api_versions.2),
            (0, 4),
            "ApiVersions range"
        );
    }
    // v3 carries the supported metadata.version feature; v0 has no such field.
    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, 16, &api_versions_request());
    assert!(
        resp.supported_features
            .iter()
            .any(|f| f.name.as_str() == "metadata.version" && f.min_version <= f.max_version),
        "{:?}",
        resp.supported_features
    );
    assert_eq!(node.stop().code(), Some(0));
}

#[test]
fn every_claimed_metadata_and_api_versions_version_is_answered() {
    let mut node = start_node();
    let mut c = Conn::open(node.client_port);
    let claimed = |key: ApiKey| {
        kraftd::api::CLIENT_APIS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, a, b)| (*a, *b))
            .expect("claimed")
    };
    let (min, max) = claimed(ApiKey::Metadata);
    for v in min..=max {
        let md: MetadataResponse = c.call(
            ApiKey::Metadata,
            v,
            100 + i32::from(v),
            &MetadataRequest::default().with_topics(Some(vec![])),
        );
        assert_eq!(md.brokers.len(), 1, "Metadata v{v}");
        assert_eq!(md.brokers[0].port, i32::from(node.client_port), "v{v}");
    }
    let (min, max) = claimed(ApiKey::ApiVersions);
    for v in min..=max {
        let resp: ApiVersionsResponse = c.call(
            ApiKey::ApiVersions,
            v,
            200 + i32::from(v),
            &api_versions_request(),
        );
        assert_eq!(resp.error_code, 0, "ApiVersions v{v}");
    }
    assert_eq!(node.stop().code(), Some(0));
}

#[test]
fn api_versions_at_an_unknown_version_gets_a_v0_unsupported_version_answer() {
    let mut node = start_node();
    for port in [node.client_port, node.controller_port] {
        let mut c = Conn::open(port);
        // A client from the future: header v2, body in some newer flexible format.
        c.send_raw(&frame_claiming(
            ApiKey::ApiVersions,
            99,
            3,
            0x0102_0304,
            &api_versions_request(),
        ));
        let frame = c.recv_frame().expect("KIP-511 answer, not a close");
        // v0 response: correlation id, error_code=35, [api_keys: 1 entry (18, 0, 4)].
        let want: Vec<u8> = [
            &[0x01, 0x02, 0x03, 0x04][..],
            &35i16.to_be_bytes(),
            &1i32.to_be_bytes(),
            &18i16.to_be_bytes(),
            &0i16.to_be_bytes(),
            &4i16.to_be_bytes(),
        ]
        .concat();
        assert_eq!(frame.as_ref(), want.as_slice(), "port {port}");
        let mut b = frame.clone();
        let header = ResponseHeader::decode(&mut b, 0).expect("v0 header");
        assert_eq!(header.correlation_id, 0x0102_0304);
        let resp = ApiVersionsResponse::decode(&mut b, 0).expect("v0 body");
        assert_eq!(resp.error_code, 35);
        assert_eq!(listed(&resp), vec![(18, 0, 4)]);
        // The client then retries on the same connection with a version we serve.
        let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, 9, &api_versions_request());
        assert_eq!(resp.error_code, 0);
    }
    assert_eq!(node.stop().code(), Some(0));
}

// ---- requests that must close the connection, and only it ----

#[test]
fn bad_requests_close_only_their_connection() {
    let mut node = start_node();
    // An idle bystander connection must survive every bad request on other connections.
    let mut bystander = Conn::open(node.client_port);

    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();

    // Unknown api key 9999, otherwise a plausible v0 header.
    let mut unknown = Vec::new();
    unknown.extend_from_slice(&9999i16.to_be_bytes());
    unknown.extend_from_slice(&0i16.to_be_bytes());
    unknown.extend_from_slice(&1i32.to_be_bytes());
    unknown.extend_from_slice(&(-1i16).to_be_bytes());
    let mut with_size = (unknown.len() as i32).to_be_bytes().to_vec();
    with_size.extend_from_slice(&unknown);
    cases.push(("unknown api key 9999".into(), with_size));

    // Known keys at versions outside the claimed range.
    cases.push((
        "Produce v2 (below min 3)".into(),
        frame_claiming(ApiKey::Produce, 2, 3, 2, &ProduceRequest::default()),
    ));
    let metadata_max = kraftd::api::CLIENT_APIS
        .iter()
        .find(|(k, _, _)| *k == ApiKey::Metadata)
        .map(|(_, _, max)| *max)
        .unwrap();
    let above = frame_claiming(
        ApiKey::Metadata,
        metadata_max + 1,
        metadata_max,
        3,
        &MetadataRequest::default(),
    );
    cases.push((format!("Metadata v{}", metadata_max + 1), above));

    // Truncated bodies: the frame is complete, the request inside is cut short.
    let full = frame(
        ApiKey::Metadata,
        12,
        4,
        &MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(
                Some(TopicName(StrBytes::from_static_str("some-topic-name"))),
            ),
        ])),
    );
    let mut cut = full[4..full.len() - 12].to_vec();
    let mut truncated = (cut.len() as i32).to_be_bytes().to_vec();
    truncated.append(&mut cut);
    cases.push(("truncated Metadata v12 body".into(), truncated));
    let full = frame(ApiKey::ApiVersions, 3, 5, &api_versions_request());
    let mut cut = full[4..full.len() - 6].to_vec();
    let mut truncated = (cut.len() as i32).to_be_bytes().to_vec();
    truncated.append(&mut cut);
    cases.push(("truncated ApiVersions v3 body".into(), truncated));
    // Shorter than a request header.
    cases.push(("4-byte frame".into(), vec![0, 0, 0, 4, 0, 18, 0, 3]));

    // Junk: random 1 KiB, size prefix included (seeds chosen so the prefix is not 8..=1 MiB).
    for seed in [0x5eed_0001u64, 0x5eed_0002, 0x5eed_0003] {
        let junk = Rng(seed).bytes(1024);
        let size = i32::from_be_bytes([junk[0], junk[1], junk[2], junk[3]]);
        assert!(
            !(8..=MAX_REQUEST_BYTES as i32).contains(&size),
            "seed {seed:#x}: prefix {size} is a valid size; pick another seed"
        );
        cases.push((format!("random 1 KiB (seed {seed:#x})"), junk));
    }

    // Size prefixes the server must refuse before allocating.
    cases.push(("negative size".into(), (-16i32).to_be_bytes().to_vec()));
    cases.push(("size 0".into(), 0i32.to_be_bytes().to_vec()));
    cases.push(("size 2 GiB - 1".into(), i32::MAX.to_be_bytes().to_vec()));
    cases.push((
        "size 2 GiB (0x80000000)".into(),
        0x8000_0000u32.to_be_bytes().to_vec(),
    ));
    cases.push((
        "size socket.request.max.bytes + 1".into(),
        ((MAX_REQUEST_BYTES + 1) as i32).to_be_bytes().to_vec(),
    ));

    for (what, bytes) in &cases {
        let mut c = Conn::open(node.client_port);
        // First prove this connection works, so the close is caused by the bad request.
        let ok: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, 1, &api_versions_request());
        assert_eq!(ok.error_code, 0, "{what}");
        c.send_raw(bytes);
        c.expect_closed(what);
        assert_still_serving(&node, what);
    }

    // Junk with a valid size prefix: a 1020-byte frame of random bytes reaches the dispatcher.
    for seed in 1..=20u64 {
        let mut c = Conn::open(node.client_port);
        let mut bytes = 1020i32.to_be_bytes().to_vec();
        bytes.extend(Rng(seed).bytes(1020));
        c.send_raw(&bytes);
        c.expect_closed(&format!("framed random 1020 bytes (seed {seed})"));
    }
    // Valid header, random body, for every key the client listener serves.
    for (i, (key, _min, max)) in kraftd::api::CLIENT_APIS.iter().enumerate() {
        let mut c = Conn::open(node.client_port);
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(*key as i16)
            .with_request_api_version(*max)
            .with_correlation_id(77)
            .with_client_id(Some(StrBytes::from_static_str("junk")))
            .encode(&mut body, key.request_header_version(*max))
            .unwrap();
        body.extend_from_slice(&Rng(1000 + i as u64).bytes(200));
        let mut bytes = (body.len() as i32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        c.send_raw(&bytes);
        // Random bytes may happen to parse; then an answer with our correlation id is fine.
        if let Some(mut resp) = c.recv_frame() {
            let h = ResponseHeader::decode(&mut resp, key.response_header_version(*max))
                .expect("header");
            assert_eq!(h.correlation_id, 77, "{key:?}");
        }
    }
    assert_still_serving(&node, "random bodies");

    // A request whose size prefix promises more than is ever sent: the peer's half-close ends it.
    let mut c = Conn::open(node.client_port);
    c.send_raw(&[0, 0, 1, 0, 0, 18, 0, 3]);
    c.stream.shutdown(Shutdown::Write).expect("half-close");
    c.expect_closed("frame cut short by EOF");

    // The bystander saw none of it.
    let resp: ApiVersionsResponse =
        bystander.call(ApiKey::ApiVersions, 3, 42, &api_versions_request());
    assert_eq!(resp.error_code, 0);
    assert_still_serving(&node, "all bad requests");
    assert_eq!(
        node.stop().code(),
        Some(0),
        "the node must still stop cleanly"
    );
}

// ---- CONTROLLER listener ----

#[test]
fn controller_listener_serves_only_controller_apis() {
    let mut node = start_node();
    let mut c = Conn::open(node.controller_port);
    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, 1, &api_versions_request());
    assert_eq!(resp.error_code, 0);
    let got = listed(&resp);
    assert_eq!(got, table(kraftd::api::CONTROLLER_APIS));
    assert!(got.iter().any(|(k, _, _)| *k == 18), "{got:?}");
    // Produce (0) and Metadata (3) are client APIs; Fetch (1) is served here only for the
    // metadata log (Raft), from v13 (topic ids).
    assert!(
        !got.iter().any(|(k, _, _)| [0, 3].contains(k)),
        "client APIs listed on the controller listener: {got:?}"
    );
    assert!(got.contains(&(1, 13, 17)), "{got:?}");
    for raft_api in [52, 53, 54, 55] {
        assert!(
            got.iter().any(|(k, _, _)| *k == raft_api),
            "{raft_api}: {got:?}"
        );
    }

    let batch = encode_batch(&[record(b"v", 0)], &BatchOptions::default());
    c.send(ApiKey::Produce, 9, 2, &produce_request("t", 0, -1, batch));
    c.expect_closed("Produce on the CONTROLLER listener");

    let mut c = Conn::open(node.controller_port);
    c.send(
        ApiKey::Metadata,
        12,
        3,
        &MetadataRequest::default().with_topics(None),
    );
    c.expect_closed("Metadata on the CONTROLLER listener");

    // The controller listener still answers, and the client listener is unaffected.
    let mut c = Conn::open(node.controller_port);
    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 0, 4, &api_versions_request());
    assert_eq!(resp.error_code, 0);
    assert_still_serving(&node, "client APIs on the controller listener");
    assert_eq!(node.stop().code(), Some(0));
}

/// The KIP-853 voter-change APIs claimed on the CONTROLLER listener answer every request with an
/// error code on the same connection: malformed voters are refused with the reason before the
/// Raft driver sees them, and a single static voter can neither gain nor lose a voter.
#[test]
fn voter_change_apis_answer_on_the_controller_listener() {
    let mut node = start_node();
    let mut c = Conn::open(node.controller_port);
    let dir = uuid::Uuid::from_u128(0x5eed);

    // Kafka's default cluster id is the empty string: another cluster's request.
    let resp: AddRaftVoterResponse =
        c.call(ApiKey::AddRaftVoter, 0, 1, &AddRaftVoterRequest::default());
    assert_eq!(resp.error_code, 104, "INCONSISTENT_CLUSTER_ID: {resp:?}");

    let no_listeners = AddRaftVoterRequest::default()
        .with_cluster_id(None)
        .with_timeout_ms(1_000)
        .with_voter_id(2)
        .with_voter_directory_id(dir);
    let resp: AddRaftVoterResponse = c.call(ApiKey::AddRaftVoter, 0, 2, &no_listeners);
    assert_eq!(resp.error_code, 42, "INVALID_REQUEST: {resp:?}");
    let message = resp.error_message.as_deref().unwrap_or_default();
    assert!(message.contains("names no listener"), "{message}");

    // A well-formed voter that is not fetching: whatever the driver says, it is an error.
    let add = no_listeners.with_listeners(vec![
        kafka_protocol::messages::add_raft_voter_request::Listener::default()
            .with_name(StrBytes::from_static_str("CONTROLLER"))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(1),
    ]);
    let resp: AddRaftVoterResponse = c.call(ApiKey::AddRaftVoter, 0, 3, &add);
    assert_ne!(resp.error_code, 0, "{resp:?}");

    let remove = RemoveRaftVoterRequest::default()
        .with_cluster_id(None)
        .with_voter_id(1);
    // Without a directory id it names a static voter; the only voter cannot leave (or the add
    // above is still pending): an error either way, never a closed connection.
    let resp: RemoveRaftVoterResponse = c.call(ApiKey::RemoveRaftVoter, 0, 4, &remove);
    assert!(
        [7, 127].contains(&resp.error_code),
        "no directory id: {resp:?}"
    );
    let resp: RemoveRaftVoterResponse = c.call(
        ApiKey::RemoveRaftVoter,
        0,
        5,
        &remove.with_voter_directory_id(dir),
    );
    assert_ne!(resp.error_code, 0, "{resp:?}");

    // Epoch 0 is older than any elected leader's: fenced, and the answer names the leader.
    let update = UpdateRaftVoterRequest::default()
        .with_cluster_id(None)
        .with_current_leader_epoch(0)
        .with_voter_id(1)
        .with_voter_directory_id(dir);
    let resp: UpdateRaftVoterResponse = c.call(ApiKey::UpdateRaftVoter, 0, 6, &update);
    assert_eq!(resp.error_code, 74, "FENCED_LEADER_EPOCH: {resp:?}");
    assert_eq!(resp.current_leader.leader_id, BrokerId(1));
    assert!(resp.current_leader.leader_epoch >= 1, "{resp:?}");

    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, 7, &api_versions_request());
    assert_eq!(resp.error_code, 0, "the connection still serves");
    assert_eq!(node.stop().code(), Some(0));
}

// ---- pipelining ----

#[test]
fn twenty_pipelined_requests_are_answered_in_order() {
    let mut node = start_node();
    let mut c = Conn::open(node.client_port);
    // Distinct, not monotonic, so an answer out of order cannot look right by accident.
    let ids: Vec<i32> = (0..20).map(|i: i32| (i * 7919 + 13) % 1000 - 500).collect();
    let mut all = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        // Mix versions so the response header/body formats differ along the pipe.
        let v = if i % 2 == 0 { 3 } else { 0 };
        all.extend(frame(ApiKey::ApiVersions, v, *id, &api_versions_request()));
    }
    c.send_raw(&all);
    for (i, id) in ids.iter().enumerate() {
        let v = if i % 2 == 0 { 3 } else { 0 };
        let resp: ApiVersionsResponse = c.recv(ApiKey::ApiVersions, v, *id);
        assert_eq!(resp.error_code, 0, "response {i}");
        assert_eq!(
            listed(&resp),
            table(kraftd::api::CLIENT_APIS),
            "response {i}"
        );
    }
    assert_eq!(node.stop().code(), Some(0));
}

// ---- Produce validation ----

const PRODUCE_VERSION: i16 = 9;

fn record(value: &[u8], timestamp: i64) -> NewRecord<'_> {
    NewRecord {
        key: Some(b"key"),
        value: Some(value),
        headers: &[],
        timestamp,
    }
}

fn produce_request(topic: &str, partition: i32, acks: i16, batch: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ])
}

/// (error_code, base_offset) of the single partition in a Produce response.
fn produce(c: &mut Conn, corr: i32, topic: &str, acks: i16, batch: Vec<u8>) -> (i16, i64) {
    let resp: ProduceResponse = c.call(
        ApiKey::Produce,
        PRODUCE_VERSION,
        corr,
        &produce_request(topic, 0, acks, batch),
    );
    assert_eq!(resp.responses.len(), 1, "{resp:?}");
    assert_eq!(resp.responses[0].name.0.as_str(), topic);
    let parts = &resp.responses[0].partition_responses;
    assert_eq!(parts.len(), 1, "{resp:?}");
    assert_eq!(parts[0].index, 0);
    (parts[0].error_code, parts[0].base_offset)
}

fn create_topic(c: &mut Conn, name: &str, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_value(Some(StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                ),
        ]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, 500, &req);
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(
        resp.topics[0].error_code, 0,
        "CreateTopics {name}: {:?}",
        resp.topics[0].error_message
    );
    // Wait (bounded) until the partition has a leader in this broker's metadata.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let md: MetadataResponse = c.call(
            ApiKey::Metadata,
            12,
            501,
            &MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name.to_string())))),
            ])),
        );
        let ready = md.topics.first().is_some_and(|t| {
            t.error_code == 0
                && t.partitions.len() == 1
                && t.partitions[0].error_code == 0
                && t.partitions[0].leader_id == BrokerId(1)
        });
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "{name} has no leader: {md:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn produce_rejects_corrupt_oversize_and_bad_acks_without_writing() {
    let mut node = start_node();
    let mut c = Conn::open(node.client_port);
    let topic = "produce-validation";
    create_topic(&mut c, topic, &[("max.message.bytes", "1024")]);
    let now = 1_700_000_000_000i64;

    // CRC mismatch: flip one byte of the record's value (the CRC covers attributes..end).
    let mut corrupt = encode_batch(&[record(b"hello world", now)], &BatchOptions::default());
    let last = corrupt.len() - 2;
    corrupt[last] ^= 0xFF;
    // The broker opens a partition before the image naming it is visible, so the first produce
    // after CreateTopics reaches the partition.
    assert_eq!(
        produce(&mut c, 1, topic, -1, corrupt),
        (2, -1),
        "CORRUPT_MESSAGE"
    );

    // Larger than the topic's max.message.bytes=1024.
    let big_value = vec![b'x'; 2000];
    let big = encode_batch(&[record(&big_value, now)], &BatchOptions::default());
    assert!(big.len() > 1024);
    assert_eq!(
        produce(&mut c, 2, topic, -1, big),
        (10, -1),
        "MESSAGE_TOO_LARGE"
    );

    // acks must be -1, 0 or 1.
    let good = encode_batch(&[record(b"first", now)], &BatchOptions::default());
    assert_eq!(
        produce(&mut c, 3, topic, 5, good.clone()),
        (21, -1),
        "INVALID_REQUIRED_ACKS"
    );

    // None of the above wrote anything: the first good batch lands at offset 0.
    assert_eq!(produce(&mut c, 4, topic, -1, good), (0, 0));
    let second = encode_batch(
        &[record(b"second", now + 1), record(b"third", now + 2)],
        &BatchOptions::default(),
    );
    assert_eq!(produce(&mut c, 5, topic, 1, second), (0, 1));
    // A batch just under the limit is accepted.
    let fits_value = vec![b'y'; 900];
    let fits = encode_batch(&[record(&fits_value, now)], &BatchOptions::default());
    assert!(fits.len() <= 1024, "{}", fits.len());
    assert_eq!(produce(&mut c, 6, topic, -1, fits), (0, 3));

    assert!(!node.log().contains("panicked"));
    assert_eq!(node.stop().code(), Some(0));
}

mod sessions {
    //! Incremental fetch sessions (KIP-227), checked on the wire: librdkafka does not use them,
    //! the Java client does.

    use super::*;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse};

    const FETCH_VERSION: i16 = 12;

    fn part(p: i32, offset: i64) -> FetchPartition {
        FetchPartition::default()
            .with_partition(p)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20)
            .with_current_leader_epoch(-1)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
    }

    fn topic(name: &str, partitions: Vec<FetchPartition>) -> FetchTopic {
        FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(name.to_string())))
            .with_partitions(partitions)
    }

    fn fetch(
        c: &mut Conn,
        corr: i32,
        session_id: i32,
        epoch: i32,
        topics: Vec<FetchTopic>,
        forgotten: Vec<ForgottenTopic>,
    ) -> FetchResponse {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(50)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_session_id(session_id)
            .with_session_epoch(epoch)
            .with_topics(topics)
            .with_forgotten_topics_data(forgotten);
        c.call(ApiKey::Fetch, FETCH_VERSION, corr, &req)
    }

    /// (topic, partition, records bytes, high watermark) of every partition in a response.
    fn listed(resp: &FetchResponse) -> Vec<(String, i32, usize, i64)> {
        resp.responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    (
                        t.topic.0.to_string(),
                        p.partition_index,
                        p.records.as_ref().map_or(0, |r| r.len()),
                        p.high_watermark,
                    )
                })
            })
            .collect()
    }

    #[test]
    fn full_then_incremental_fetches_carry_only_news() {
        let node = start_node();
        let mut c = Conn::open(node.client_port);
        create_topic(&mut c, "s-a", &[]);
        create_topic(&mut c, "s-b", &[]);
        let batch = encode_batch(&[record(b"one", 1)], &BatchOptions::default());
        let batch_len = batch.len();
        assert_eq!(produce(&mut c, 1, "s-a", -1, batch.clone()), (0, 0));

        // Epoch 0 opens a session: a full response.
        let full = fetch(
            &mut c,
            2,
            0,
            0,
            vec![
                topic("s-a", vec![part(0, 0)]),
                topic("s-b", vec![part(0, 0)]),
            ],
            vec![],
        );
        assert_eq!(full.error_code, 0);
        let id = full.session_id;
        assert_ne!(id, 0, "a session was created");
        assert_eq!(
            listed(&full),
            vec![("s-a".into(), 0, batch_len, 1), ("s-b".into(), 0, 0, 0)]
        );

        // Epoch 1 moves s-a's offset on: only s-a is answered (its offset changed); s-b has
        // no news.
        let inc = fetch(
            &mut c,
            3,
            id,
            1,
            vec![topic("s-a", vec![part(0, 1)])],
            vec![],
        );
        assert_eq!(inc.session_id, id);
        assert_eq!(listed(&inc), vec![("s-a".into(), 0, 0, 1)]);

        // New data on s-b: epoch 2 names nothing, and gets exactly s-b's record.
        assert_eq!(produce(&mut c, 4, "s-b", -1, batch.clone()), (0, 0));
        let inc = fetch(&mut c, 5, id, 2, vec![], vec![]);
        assert_eq!(listed(&inc), vec![("s-b".into(), 0, batch_len, 1)]);

        // A stale epoch and an unknown id are refused as Kafka does.
        let stale = fetch(&mut c, 6, id, 2, vec![], vec![]);
        assert_eq!(stale.error_code, 71, "INVALID_FETCH_SESSION_EPOCH");
        let unknown = fetch(&mut c, 7, id + 1000, 1, vec![], vec![]);
        assert_eq!(unknown.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");

        // Epoch 3 moves s-b on (as a client does after consuming) and forgets s-a: new data on
        // s-a is no longer reported.
        let forget = ForgottenTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("s-a")))
            .with_partitions(vec![0]);
        let inc = fetch(
            &mut c,
            8,
            id,
            3,
            vec![topic("s-b", vec![part(0, 1)])],
            vec![forget],
        );
        assert_eq!(listed(&inc), vec![("s-b".into(), 0, 0, 1)]);
        assert_eq!(produce(&mut c, 9, "s-a", -1, batch), (0, 1));
        let inc = fetch(&mut c, 10, id, 4, vec![], vec![]);
        assert_eq!(listed(&inc), vec![]);

        // The final epoch closes the session and answers in full, sessionless.
        let closed = fetch(
            &mut c,
            11,
            id,
            -1,
            vec![topic("s-a", vec![part(0, 0)])],
            vec![],
        );
        assert_eq!(closed.session_id, 0);
        assert_eq!(listed(&closed)[0].0, "s-a");
        assert_eq!(listed(&closed)[0].3, 2);
        let gone = fetch(&mut c, 12, id, 5, vec![], vec![]);
        assert_eq!(gone.error_code, 70);
    }
}

#[test]
fn idle_connections_are_closed_after_connections_max_idle_ms() {
    let node = Node::start(&[("connections.max.idle.ms", "300")]);
    let mut c = Conn::open(node.client_port);
    let _: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, 1, &api_versions_request());
    std::thread::sleep(Duration::from_millis(800));
    c.expect_closed("an idle connection");
    // New connections are still served.
    let mut fresh = Conn::open(node.client_port);
    let r: ApiVersionsResponse = fresh.call(ApiKey::ApiVersions, 3, 2, &api_versions_request());
    assert_eq!(r.error_code, 0);
}

#[test]
fn incremental_alter_configs_errors_are_kafkas() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    let node = start_node();
    let mut c = Conn::open(node.client_port);
    create_topic(&mut c, "iac", &[]);
    let op = |name: &str, op: i8, value: &str| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name.to_string()))
            .with_config_operation(op)
            .with_value(Some(StrBytes::from_string(value.to_string())))
    };
    let resource = |ty: i8, name: &str, configs| {
        AlterConfigsResource::default()
            .with_resource_type(ty)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(configs)
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        resource(2, "iac", vec![op("retention.ms", 0, "60000")]),
        resource(2, "iac", vec![op("retention.ms", 0, "soon")]),
        resource(2, "iac", vec![op("retention.ms", 2, "1")]),
        resource(2, "missing", vec![op("retention.ms", 0, "1")]),
        resource(4, "1", vec![op("log.retention.ms", 0, "1")]),
    ]);
    let resp: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 1, 1, &req);
    let codes: Vec<i16> = resp.responses.iter().map(|r| r.error_code).collect();
    // OK, INVALID_CONFIG, INVALID_CONFIG (append to a non-list), UNKNOWN_TOPIC_OR_PARTITION,
    // INVALID_REQUEST (broker configs are static in kraftd, and the message says so).
    assert_eq!(codes, vec![0, 40, 40, 3, 42]);
    assert_eq!(resp.responses[0].error_message, None);
    let broker_msg = resp.responses[4]
        .error_message
        .as_ref()
        .unwrap()
        .to_string();
    assert!(broker_msg.contains("server.properties"), "{broker_msg}");
}

/// Every version of every data and admin API the server claims is answered with a response that
/// decodes at that version, on its success and its error paths. (A field set that the version
/// lacks would make the server close the connection instead: the bug kcat 1.7's ListOffsets v2
/// found.)
#[test]
fn every_claimed_version_of_every_api_is_answered() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::*;

    let node = start_node();
    let mut c = Conn::open(node.client_port);
    let claimed = |key: ApiKey| {
        kraftd::api::CLIENT_APIS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, a, b)| *a..=*b)
            .expect("claimed")
    };
    let name = |s: &str| TopicName(StrBytes::from_string(s.to_string()));
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let mut corr = 1000;
    let mut next = || {
        corr += 1;
        corr
    };
    create_topic(&mut c, "vers", &[]);
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        next(),
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("vers"))),
        ])),
    );
    let topic_id = md.topics[0].topic_id;

    for v in claimed(ApiKey::CreateTopics) {
        let req = CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(name(&format!("v-ct-{v}")))
                .with_num_partitions(1)
                .with_replication_factor(1),
            CreatableTopic::default()
                .with_name(name("vers"))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
        let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, v, next(), &req);
        let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
        assert_eq!(codes, vec![0, 36], "CreateTopics v{v}");
    }

    let mut expected_offset = 0;
    for v in claimed(ApiKey::Produce) {
        // Rising timestamps: the last record has the max timestamp.
        let batch = encode_batch(&[record(b"v", 1 + i64::from(v))], &BatchOptions::default());
        let mut topic = TopicProduceData::default().with_partition_data(vec![
            PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch.clone()))),
            PartitionProduceData::default()
                .with_index(99)
                .with_records(Some(Bytes::from(batch))),
        ]);
        topic = if v >= 13 {
            topic.with_topic_id(topic_id)
        } else {
            topic.with_name(name("vers"))
        };
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![topic]);
        let r: ProduceResponse = c.call(ApiKey::Produce, v, next(), &req);
        let parts = &r.responses[0].partition_responses;
        assert_eq!(
            (
                parts[0].error_code,
                parts[0].base_offset,
                parts[1].error_code
            ),
            (0, expected_offset, 3),
            "Produce v{v}"
        );
        expected_offset += 1;
    }

    for v in claimed(ApiKey::Fetch) {
        let part = |p: i32| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)
        };
        let mut topic = FetchTopic::default().with_partitions(vec![part(0), part(99)]);
        topic = if v >= 13 {
            topic.with_topic_id(topic_id)
        } else {
            topic.with_topic(name("vers"))
        };
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![topic]);
        let r: FetchResponse = c.call(ApiKey::Fetch, v, next(), &req);
        let parts = &r.responses[0].partitions;
        assert_eq!(parts[0].error_code, 0, "Fetch v{v}");
        assert_eq!(parts[0].high_watermark, expected_offset, "Fetch v{v}");
        assert!(
            parts[0].records.as_ref().is_some_and(|r| !r.is_empty()),
            "Fetch v{v}"
        );
        assert_eq!(parts[1].error_code, 3, "Fetch v{v}");
    }

    for v in claimed(ApiKey::ListOffsets) {
        let mut parts = vec![
            ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1),
            ListOffsetsPartition::default()
                .with_partition_index(99)
                .with_timestamp(-1),
        ];
        if v >= 7 {
            parts.push(
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-3),
            );
        }
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name("vers"))
                    .with_partitions(parts),
            ]);
        let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, v, next(), &req);
        let p = &r.topics[0].partitions;
        assert_eq!(
            (p[0].error_code, p[0].offset),
            (0, expected_offset),
            "ListOffsets v{v}"
        );
        assert_eq!(p[1].error_code, 3, "ListOffsets v{v}");
        if v >= 7 {
            assert_eq!(
                (p[2].error_code, p[2].offset),
                (0, expected_offset - 1),
                "v{v} max ts"
            );
        }
    }

    for v in claimed(ApiKey::DescribeConfigs) {
        let res = |ty: i8, n: &str| {
            DescribeConfigsResource::default()
                .with_resource_type(ty)
                .with_resource_name(s(n))
        };
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(v >= 1)
            .with_resources(vec![res(2, "vers"), res(4, "1"), res(2, "nope")]);
        let r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, v, next(), &req);
        let codes: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
        assert_eq!(codes, vec![0, 0, 3], "DescribeConfigs v{v}");
        assert!(
            r.results[0]
                .configs
                .iter()
                .any(|e| e.name.as_str() == "retention.ms")
        );
    }

    for v in claimed(ApiKey::AlterConfigs) {
        let req = AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("vers"))
                .with_configs(vec![
                    alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("3600000"))),
                ]),
        ]);
        let r: AlterConfigsResponse = c.call(ApiKey::AlterConfigs, v, next(), &req);
        assert_eq!(r.responses[0].error_code, 0, "AlterConfigs v{v}");
    }

    for v in claimed(ApiKey::IncrementalAlterConfigs) {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("vers"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s("segment.ms"))
                        .with_config_operation(0)
                        .with_value(Some(s("600000"))),
                ]),
        ]);
        let r: IncrementalAlterConfigsResponse =
            c.call(ApiKey::IncrementalAlterConfigs, v, next(), &req);
        assert_eq!(r.responses[0].error_code, 0, "IncrementalAlterConfigs v{v}");
    }

    create_topic(&mut c, "v-cp", &[]);
    for (i, v) in claimed(ApiKey::CreatePartitions).enumerate() {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(name("v-cp"))
                    .with_count(2 + i as i32)
                    .with_assignments(None),
                CreatePartitionsTopic::default()
                    .with_name(name("nope"))
                    .with_count(2)
                    .with_assignments(None),
            ]);
        let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, v, next(), &req);
        let codes: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
        assert_eq!(codes, vec![0, 3], "CreatePartitions v{v}");
    }

    for v in claimed(ApiKey::DeleteTopics) {
        let topic = format!("v-ct-{}", v + 1);
        let req = if v >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(name(&topic))),
                DeleteTopicState::default().with_name(Some(name("nope"))),
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&topic), name("nope")])
        };
        let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, v, next(), &req);
        let codes: Vec<i16> = r.responses.iter().map(|x| x.error_code).collect();
        assert_eq!(codes, vec![0, 3], "DeleteTopics v{v} ({topic})");
    }

    for v in claimed(ApiKey::InitProducerId) {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, v, next(), &req);
        assert_eq!(r.error_code, 0, "InitProducerId v{v}");
        assert!(r.producer_id.0 >= 0, "InitProducerId v{v}");
    }

    for v in claimed(ApiKey::DescribeLogDirs) {
        let r: DescribeLogDirsResponse = c.call(
            ApiKey::DescribeLogDirs,
            v,
            next(),
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        assert_eq!(r.results.len(), 1, "DescribeLogDirs v{v}");
        assert!(
            r.results[0]
                .topics
                .iter()
                .any(|t| t.name.0.as_str() == "vers"),
            "DescribeLogDirs v{v}"
        );
    }

    for v in claimed(ApiKey::DescribeCluster) {
        let r: DescribeClusterResponse = c.call(
            ApiKey::DescribeCluster,
            v,
            next(),
            &DescribeClusterRequest::default(),
        );
        assert_eq!(r.error_code, 0, "DescribeCluster v{v}");
        assert_eq!(r.brokers.len(), 1, "DescribeCluster v{v}");
        assert_eq!(r.controller_id, BrokerId(1));
    }
    assert!(!node.log().contains("panicked"));
}

/// Every claimed version of the group APIs, through one member's whole life per version:
/// FindCoordinator, JoinGroup (with KIP-394's second join from v4), SyncGroup, Heartbeat,
/// OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, LeaveGroup, DeleteGroups.
#[test]
fn every_claimed_version_of_the_group_apis_is_answered() {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::*;

    let node = Node::start(&[
        ("socket.request.max.bytes", "1048576"),
        ("group.initial.rebalance.delay.ms", "0"),
    ]);
    let mut c = Conn::open(node.client_port);
    let range = |key: ApiKey| {
        kraftd::api::CLIENT_APIS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, a, b)| *a..=*b)
            .expect("claimed")
    };
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let gid = |v: &str| GroupId(s(v));
    let mut corr = 5000;
    let mut next = || {
        corr += 1;
        corr
    };
    let max = |key: ApiKey| *range(key).end();

    for v in range(ApiKey::FindCoordinator) {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("fc-a"), s("fc-b")])
        } else {
            FindCoordinatorRequest::default().with_key(s("fc-a"))
        };
        let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, v, next(), &req);
        if v >= 4 {
            assert_eq!(r.coordinators.len(), 2, "FindCoordinator v{v}");
            for co in &r.coordinators {
                assert_eq!(
                    (co.error_code, co.node_id, co.port),
                    (0, BrokerId(1), node.client_port as i32)
                );
            }
        } else {
            assert_eq!(
                (r.error_code, r.node_id, r.port),
                (0, BrokerId(1), node.client_port as i32),
                "v{v}"
            );
        }
    }

    for v in range(ApiKey::JoinGroup) {
        let group = format!("jg-{v}");
        let join = |member: &str| {
            JoinGroupRequest::default()
                .with_group_id(gid(&group))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_member_id(s(member))
                .with_group_instance_id(None)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(s("range"))
                        .with_metadata(Bytes::from_static(b"sub")),
                ])
        };
        let mut r: JoinGroupResponse = c.call(ApiKey::JoinGroup, v, next(), &join(""));
        if v >= 4 {
            assert_eq!(r.error_code, 79, "JoinGroup v{v}: MEMBER_ID_REQUIRED");
            let id = r.member_id.to_string();
            r = c.call(ApiKey::JoinGroup, v, next(), &join(&id));
        }
        assert_eq!((r.error_code, r.generation_id), (0, 1), "JoinGroup v{v}");
        assert_eq!(r.leader, r.member_id);
        assert_eq!(r.members.len(), 1);
        assert_eq!(r.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
        let member = r.member_id.to_string();

        let sv = (v.min(max(ApiKey::SyncGroup))).max(0);
        let mut sync = SyncGroupRequest::default()
            .with_group_id(gid(&group))
            .with_generation_id(1)
            .with_member_id(s(&member))
            .with_group_instance_id(None)
            .with_assignments(vec![
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(Bytes::from_static(b"mine")),
            ]);
        if sv < 5 {
            sync = sync.with_protocol_type(None).with_protocol_name(None);
        } else {
            sync = sync
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")));
        }
        let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, sv, next(), &sync);
        assert_eq!(
            (r.error_code, &r.assignment[..]),
            (0, &b"mine"[..]),
            "SyncGroup v{sv}"
        );

        let hv = v.min(max(ApiKey::Heartbeat));
        let hb = HeartbeatRequest::default()
            .with_group_id(gid(&group))
            .with_generation_id(1)
            .with_member_id(s(&member))
            .with_group_instance_id(None);
        let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, hv, next(), &hb);
        assert_eq!(r.error_code, 0, "Heartbeat v{hv}");
        let r: HeartbeatResponse = c.call(
            ApiKey::Heartbeat,
            hv,
            next(),
            &hb.clone().with_generation_id(7),
        );
        assert_eq!(r.error_code, 22, "Heartbeat v{hv}: ILLEGAL_GENERATION");

        let cv = v.clamp(
            *range(ApiKey::OffsetCommit).start(),
            max(ApiKey::OffsetCommit),
        );
        let commit = OffsetCommitRequest::default()
            .with_group_id(gid(&group))
            .with_generation_id_or_member_epoch(1)
            .with_member_id(s(&member))
            .with_group_instance_id(None)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(42)
                            .with_committed_metadata(Some(s("m"))),
                    ]),
            ]);
        let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, cv, next(), &commit);
        assert_eq!(
            r.topics[0].partitions[0].error_code, 0,
            "OffsetCommit v{cv}"
        );

        let fv = v.clamp(
            *range(ApiKey::OffsetFetch).start(),
            max(ApiKey::OffsetFetch),
        );
        let fetch = if fv >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(gid(&group))
                    .with_member_id(None)
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopics::default()
                            .with_name(TopicName(s("t")))
                            .with_partition_indexes(vec![0, 1]),
                    ])),
            ])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(gid(&group))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![0, 1]),
                ]))
        };
        let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, fv, next(), &fetch);
        let offsets: Vec<i64> = if fv >= 8 {
            r.groups[0].topics[0]
                .partitions
                .iter()
                .map(|p| p.committed_offset)
                .collect()
        } else {
            r.topics[0]
                .partitions
                .iter()
                .map(|p| p.committed_offset)
                .collect()
        };
        assert_eq!(offsets, vec![42, -1], "OffsetFetch v{fv}");

        let dv = v.min(max(ApiKey::DescribeGroups));
        let r: DescribeGroupsResponse = c.call(
            ApiKey::DescribeGroups,
            dv,
            next(),
            &DescribeGroupsRequest::default().with_groups(vec![gid(&group)]),
        );
        assert_eq!(
            r.groups[0].group_state.as_str(),
            "Stable",
            "DescribeGroups v{dv}"
        );
        assert_eq!(r.groups[0].members.len(), 1);
        assert_eq!(&r.groups[0].members[0].member_assignment[..], b"mine");

        let lv = v.min(max(ApiKey::ListGroups));
        let r: ListGroupsResponse = c.call(
            ApiKey::ListGroups,
            lv,
            next(),
            &ListGroupsRequest::default(),
        );
        assert!(
            r.groups.iter().any(|g| g.group_id.as_str() == group),
            "ListGroups v{lv}"
        );

        let leave_v = v.min(max(ApiKey::LeaveGroup));
        let leave = if leave_v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_members(vec![MemberIdentity::default().with_member_id(s(&member))])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_member_id(s(&member))
        };
        let r: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, leave_v, next(), &leave);
        assert_eq!(r.error_code, 0, "LeaveGroup v{leave_v}");

        let del_v = v.min(max(ApiKey::DeleteGroups));
        let r: DeleteGroupsResponse = c.call(
            ApiKey::DeleteGroups,
            del_v,
            next(),
            &DeleteGroupsRequest::default().with_groups_names(vec![gid(&group), gid("never-was")]),
        );
        let codes: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
        assert_eq!(
            codes,
            vec![0, 69],
            "DeleteGroups v{del_v}: ok, GROUP_ID_NOT_FOUND"
        );
    }
    assert!(!node.log().contains("panicked"));
}

/// acks=0: nothing comes back on success (the connection stays usable); a failure closes the
/// connection, which is how Kafka tells such a producer to refresh its metadata.
#[test]
fn acks_zero_produce_answers_nothing_and_closes_on_failure() {
    let node = start_node();
    let mut c = Conn::open(node.client_port);
    create_topic(&mut c, "fire-and-forget", &[]);
    let batch = encode_batch(&[record(b"x", 1)], &BatchOptions::default());
    c.send(
        ApiKey::Produce,
        PRODUCE_VERSION,
        1,
        &produce_request("fire-and-forget", 0, 0, batch.clone()),
    );
    // The next request's answer is the next frame: the acks=0 produce sent none.
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, 2, &api_versions_request());
    assert_eq!(r.error_code, 0);
    assert_eq!(
        produce(&mut c, 3, "fire-and-forget", 1, batch.clone()),
        (0, 1)
    );
    c.send(
        ApiKey::Produce,
        PRODUCE_VERSION,
        4,
        &produce_request("fire-and-forget", 99, 0, batch),
    );
    c.expect_closed("a failed acks=0 produce");
    assert_still_serving(&node, "a failed acks=0 produce");
}

/// KIP-430: asked for, authorized operations are the resource's full set (no authorizer), as a
/// bit field of AclOperation codes; not asked for, Kafka's i32::MIN marker.
#[test]
fn authorized_operations_are_answered_when_asked() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
    let node = start_node();
    let mut c = Conn::open(node.client_port);
    create_topic(&mut c, "acl-ops", &[]);
    let topic = |asked: bool| {
        MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("acl-ops")))),
            ]))
            .with_include_topic_authorized_operations(asked)
    };
    let asked: MetadataResponse = c.call(ApiKey::Metadata, 12, 1, &topic(true));
    // READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
    assert_eq!(asked.topics[0].topic_authorized_operations, 3576);
    let not_asked: MetadataResponse = c.call(ApiKey::Metadata, 12, 2, &topic(false));
    assert_eq!(not_asked.topics[0].topic_authorized_operations, i32::MIN);
    let cluster: DescribeClusterResponse = c.call(
        ApiKey::DescribeCluster,
        1,
        3,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
    );
    // CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
    assert_eq!(cluster.cluster_authorized_operations, 8096);
}

#[test]
fn consumer_fetch_list_offsets_and_offset_for_leader_epoch_check_the_leader_epoch() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{
        FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
        OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
    };
    let mut node = start_node();
    let mut c = Conn::open(node.client_port);
    create_topic(&mut c, "epochs", &[]);
    let batch = encode_batch(&[record(b"v", 1)], &BatchOptions::default());
    assert_eq!(produce(&mut c, 2, "epochs", 1, batch), (0, 0));
    let topic = TopicName(StrBytes::from_static_str("epochs"));
    // A new topic's leader epoch is 0: a client that knows epoch 0 reads, one behind it is
    // fenced, one ahead of it is told the epoch is unknown here (KIP-320).
    for (corr, epoch, expected) in [(10, 0, 0), (11, -1, 0), (12, 3, 75)] {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic.clone())
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(epoch)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let r: FetchResponse = c.call(ApiKey::Fetch, 12, corr, &req);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, expected, "Fetch with epoch {epoch}");
        assert_eq!(
            p.records.as_ref().is_some_and(|r| !r.is_empty()),
            expected == 0,
            "Fetch with epoch {epoch}"
        );
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic.clone())
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_current_leader_epoch(epoch)
                            .with_timestamp(-1),
                    ]),
            ]);
        let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, corr + 100, &req);
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, expected, "ListOffsets with epoch {epoch}");
        assert_eq!(p.offset, if expected == 0 { 1 } else { -1 });
        // Where epoch 0 ends: the log end, as it is the latest epoch.
        for v in 2..=4 {
            let req = OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    OffsetForLeaderTopic::default()
                        .with_topic(topic.clone())
                        .with_partitions(vec![
                            OffsetForLeaderPartition::default()
                                .with_partition(0)
                                .with_current_leader_epoch(epoch)
                                .with_leader_epoch(0),
                            OffsetForLeaderPartition::default()
                                .with_partition(7)
                                .with_current_leader_epoch(-1)
                                .with_leader_epoch(0),
                        ]),
                ]);
            let r: OffsetForLeaderEpochResponse =
                c.call(ApiKey::OffsetForLeaderEpoch, v, corr + 200, &req);
            let p = &r.topics[0].partitions;
            let want = if expected == 0 {
                (0, 0, 1)
            } else {
                (expected, -1, -1)
            };
            assert_eq!(
                (p[0].error_code, p[0].leader_epoch, p[0].end_offset),
                want,
                "OffsetForLeaderEpoch v{v} with epoch {epoch}"
            );
            assert_eq!(p[1].error_code, 3, "unknown partition");
        }
    }
    assert!(node.stop().success());
}
