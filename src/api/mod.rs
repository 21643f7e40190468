//! The Kafka APIs: one file per API key. Each decodes its request, calls a service (broker,
//! controller, metadata) and encodes the response. This file owns the table of supported
//! (key, min, max) that ApiVersions is derived from, and the dispatch by listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tracing::debug;

use crate::broker::{ProducerIdManager, ReplicaManager};
use crate::config::ServerConfig;
use crate::controller::{ControllerForwarder, ControllerHandle};
use crate::group::GroupCoordinator;
use crate::metadata::MetadataReader;
use crate::network::ListenerKind;
use crate::raft::RaftHandle;

mod add_raft_voter;
mod allocate_producer_ids;
mod alter_configs;
mod alter_partition;
mod api_versions;
mod authorized;
mod begin_quorum_epoch;
mod broker_heartbeat;
mod broker_registration;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_quorum;
mod elect_leaders;
mod end_quorum_epoch;
mod fetch;
mod fetch_snapshot;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod raft_fetch;
mod remove_raft_voter;
mod sync_group;
mod update_raft_voter;
mod vote;

/// The connection a request came in on.
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub listener_kind: ListenerKind,
    pub listener_name: Arc<str>,
}

/// Where a request came from.
pub struct RequestContext<'a> {
    pub peer: SocketAddr,
    pub listener_kind: ListenerKind,
    pub listener_name: &'a str,
    pub client_id: String,
}

pub enum Outcome {
    Respond(BytesMut),
    /// Produce with acks=0: Kafka sends nothing back.
    NoResponse,
    /// Kafka closes the connection on an unknown key, a version it does not serve, an API the
    /// listener does not expose, or a request it cannot parse.
    Close(String),
}

/// (api key, min version, max version) served on client listeners.
pub const CLIENT_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// Requests that change metadata: a node that does not run the active controller forwards them
/// to the one that does (KIP-590), which serves them on its CONTROLLER listener.
const FORWARDED_APIS: &[ApiKey] = &[
    ApiKey::CreateTopics,
    ApiKey::ElectLeaders,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
];

/// How long a forwarded CreateTopics/CreatePartitions waits for this node's image to include
/// the change, so that the client's next Metadata here sees it.
const FORWARD_CATCH_UP: std::time::Duration = std::time::Duration::from_millis(500);

/// Served on the CONTROLLER listener.
pub const CONTROLLER_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Fetch, 13, 17),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AllocateProducerIds, 0, 0),
    (ApiKey::Vote, 0, 2),
    (ApiKey::BeginQuorumEpoch, 0, 1),
    (ApiKey::EndQuorumEpoch, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::FetchSnapshot, 0, 1),
    (ApiKey::DescribeCluster, 1, 2),
    (ApiKey::BrokerRegistration, 0, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
    // v2+ names topics by id; v3 carries the ISR members' broker epochs (KIP-903).
    (ApiKey::AlterPartition, 2, 3),
    // KIP-853 voter changes, asked of the quorum leader.
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
    (ApiKey::UpdateRaftVoter, 0, 0),
];

pub fn apis_for(kind: ListenerKind) -> &'static [(ApiKey, i16, i16)] {
    match kind {
        ListenerKind::Client => CLIENT_APIS,
        ListenerKind::Controller => CONTROLLER_APIS,
    }
}

/// The services a request may call into, shared by every connection.
pub struct Dispatcher {
    pub config: Arc<ServerConfig>,
    pub cluster_id: String,
    pub node_id: i32,
    pub metadata: MetadataReader,
    pub broker: Arc<ReplicaManager>,
    pub controller: ControllerHandle,
    pub raft: RaftHandle,
    pub forwarder: Arc<ControllerForwarder>,
    pub producer_ids: ProducerIdManager,
    pub groups: Arc<GroupCoordinator>,
    /// Set once the broker is registered; used when asking for producer ids.
    pub broker_epoch: AtomicI64,
}

/// A request that could not be served: the reason is logged and the connection closed.
struct Refuse(String);

impl Dispatcher {
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    pub async fn dispatch(&self, conn: &ConnectionInfo, mut frame: Bytes) -> Outcome {
        let ctx = &RequestContext {
            peer: conn.peer,
            listener_kind: conn.listener_kind,
            listener_name: &conn.listener_name,
            client_id: String::new(),
        };
        if frame.len() < 8 {
            return Outcome::Close("request shorter than a header".into());
        }
        let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let Ok(key) = ApiKey::try_from(raw_key) else {
            return Outcome::Close(format!("unknown api key {raw_key}"));
        };
        let served = apis_for(ctx.listener_kind)
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, min, max)| (*min, *max));
        let Some((min, max)) = served else {
            debug!(peer = %ctx.peer, listener = %ctx.listener_name, ?key,
                "api not enabled on this listener");
            return Outcome::Close(format!(
                "api {key:?} is not served on listener {}",
                ctx.listener_name
            ));
        };
        if version < min || version > max {
            if key == ApiKey::ApiVersions {
                // KIP-511: answer with v0 so any client can read which versions we serve.
                return api_versions::unsupported_version(correlation_id, ctx.listener_kind);
            }
            return Outcome::Close(format!(
                "{key:?} v{version} is not supported (supported {min}..={max})"
            ));
        }
        let header = match RequestHeader::decode(&mut frame, key.request_header_version(version)) {
            Ok(h) => h,
            Err(e) => return Outcome::Close(format!("malformed {key:?} request header: {e}")),
        };
        let ctx = &RequestContext {
            client_id: header
                .client_id
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            ..*ctx
        };
        if ctx.listener_kind == ListenerKind::Client
            && FORWARDED_APIS.contains(&key)
            && !self.forwarder.is_local_leader()
        {
            let hw_before = *self.raft.high_watermark().borrow();
            // Unreachable controller: fall through; the local controller answers NOT_CONTROLLER.
            if let Ok(body) = self.forwarder.forward_raw(raw_key, version, &frame).await {
                if matches!(key, ApiKey::CreateTopics | ApiKey::CreatePartitions) {
                    self.catch_up_after(hw_before).await;
                }
                return respond(correlation_id, key, version, &body);
            }
        }
        match self.route(ctx, key, version, &mut frame).await {
            Ok(Some(body)) => respond(correlation_id, key, version, &body),
            Ok(None) => Outcome::NoResponse,
            Err(Refuse(reason)) => {
                debug!(peer = %ctx.peer, ?key, version, reason, "refusing request");
                Outcome::Close(reason)
            }
        }
    }

    /// Waits (bounded) until this node's image includes what the leader committed after
    /// `hw_before`.
    async fn catch_up_after(&self, hw_before: i64) {
        let mut hw = self.raft.high_watermark();
        let _ = tokio::time::timeout(FORWARD_CATCH_UP, async {
            let target = match hw.wait_for(|&h| h > hw_before).await {
                Ok(h) => *h,
                Err(_) => return,
            };
            let _ = self.metadata.wait_for_offset(target).await;
        })
        .await;
    }

    async fn route(
        &self,
        ctx: &RequestContext<'_>,
        key: ApiKey,
        version: i16,
        body: &mut Bytes,
    ) -> Result<Option<BytesMut>, Refuse> {
        macro_rules! call {
            ($module:ident) => {{
                let req = decode(body, version, key)?;
                let resp = $module::handle(self, ctx, version, req).await;
                encode(&resp, version).map(Some)
            }};
        }
        match key {
            ApiKey::ApiVersions => call!(api_versions),
            ApiKey::Metadata => call!(metadata),
            ApiKey::Produce => {
                let req = decode(body, version, key)?;
                match produce::handle(self, ctx, version, req).await {
                    produce::Produced::Respond(resp) => encode(&resp, version).map(Some),
                    produce::Produced::NoResponse => Ok(None),
                    produce::Produced::FailedWithoutResponse => Err(Refuse(
                        "acks=0 produce failed; closing the connection as Kafka does".into(),
                    )),
                }
            }
            ApiKey::Fetch if ctx.listener_kind == ListenerKind::Controller => call!(raft_fetch),
            ApiKey::Fetch => call!(fetch),
            ApiKey::Vote => call!(vote),
            ApiKey::AllocateProducerIds => call!(allocate_producer_ids),
            ApiKey::BeginQuorumEpoch => call!(begin_quorum_epoch),
            ApiKey::EndQuorumEpoch => call!(end_quorum_epoch),
            ApiKey::DescribeQuorum => call!(describe_quorum),
            ApiKey::FetchSnapshot => call!(fetch_snapshot),
            ApiKey::AddRaftVoter => call!(add_raft_voter),
            ApiKey::RemoveRaftVoter => call!(remove_raft_voter),
            ApiKey::UpdateRaftVoter => call!(update_raft_voter),
            ApiKey::ListOffsets => call!(list_offsets),
            ApiKey::CreateTopics => call!(create_topics),
            ApiKey::DeleteTopics => call!(delete_topics),
            ApiKey::DeleteRecords => call!(delete_records),
            ApiKey::OffsetForLeaderEpoch => call!(offset_for_leader_epoch),
            ApiKey::ElectLeaders => call!(elect_leaders),
            ApiKey::CreatePartitions => call!(create_partitions),
            ApiKey::InitProducerId => call!(init_producer_id),
            ApiKey::DescribeCluster => call!(describe_cluster),
            ApiKey::DescribeConfigs => call!(describe_configs),
            ApiKey::AlterConfigs => call!(alter_configs),
            ApiKey::IncrementalAlterConfigs => call!(incremental_alter_configs),
            ApiKey::DescribeLogDirs => call!(describe_log_dirs),
            ApiKey::FindCoordinator => call!(find_coordinator),
            ApiKey::JoinGroup => call!(join_group),
            ApiKey::SyncGroup => call!(sync_group),
            ApiKey::Heartbeat => call!(heartbeat),
            ApiKey::LeaveGroup => call!(leave_group),
            ApiKey::OffsetCommit => call!(offset_commit),
            ApiKey::OffsetFetch => call!(offset_fetch),
            ApiKey::ListGroups => call!(list_groups),
            ApiKey::DescribeGroups => call!(describe_groups),
            ApiKey::DeleteGroups => call!(delete_groups),
            ApiKey::OffsetDelete => call!(offset_delete),
            ApiKey::ConsumerGroupHeartbeat => call!(consumer_group_heartbeat),
            ApiKey::ConsumerGroupDescribe => call!(consumer_group_describe),
            ApiKey::BrokerRegistration => call!(broker_registration),
            ApiKey::BrokerHeartbeat => call!(broker_heartbeat),
            ApiKey::AlterPartition => call!(alter_partition),
            other => Err(Refuse(format!("{other:?} has no handler"))),
        }
    }
}

fn respond(correlation_id: i32, key: ApiKey, version: i16, body: &[u8]) -> Outcome {
    let mut out = BytesMut::with_capacity(body.len() + 8);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    if header
        .encode(&mut out, key.response_header_version(version))
        .is_err()
    {
        return Outcome::Close("cannot encode response header".into());
    }
    out.extend_from_slice(body);
    Outcome::Respond(out)
}

fn decode<T: Decodable>(body: &mut Bytes, version: i16, key: ApiKey) -> Result<T, Refuse> {
    let req = T::decode(body, version)
        .map_err(|e| Refuse(format!("malformed {key:?} v{version}: {e}")))?;
    if body.has_remaining() {
        debug!(
            ?key,
            version,
            trailing = body.remaining(),
            "ignoring trailing bytes in request"
        );
    }
    Ok(req)
}

fn encode<T: Encodable>(resp: &T, version: i16) -> Result<BytesMut, Refuse> {
    let mut out = BytesMut::new();
    resp.encode(&mut out, version)
        .map_err(|e| Refuse(format!("cannot encode response v{version}: {e}")))?;
    Ok(out)
}
