//! Reaching the active controller from any node (KIP-590's forwarding, without the envelope:
//! kraftd has no principals to carry). A node that does not lead the metadata quorum sends
//! requests that change metadata to the leader's CONTROLLER listener — either as they came
//! from a client (raw) or built here for the node's own needs (creating `__consumer_offsets`,
//! allocating producer ids) — and hands back the answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::protocol::Request;

use super::ControllerError;
use crate::network::client::KafkaConnection;
use crate::raft::RaftHandle;

/// Idle connections kept to the active controller.
const MAX_IDLE_CONNECTIONS: usize = 8;

pub struct ControllerForwarder {
    node_id: i32,
    raft: RaftHandle,
    idle: Mutex<HashMap<i32, Vec<KafkaConnection>>>,
    timeout: Duration,
}

impl ControllerForwarder {
    pub fn new(node_id: i32, raft: RaftHandle, timeout: Duration) -> ControllerForwarder {
        ControllerForwarder {
            node_id,
            raft,
            idle: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    /// Whether this node leads the quorum (and so runs the active controller).
    pub fn is_local_leader(&self) -> bool {
        self.raft.leader().borrow().leader_id == Some(self.node_id)
    }

    /// The leader, waiting up to the request timeout for one to be elected.
    async fn remote_leader(&self) -> Result<(i32, String), ControllerError> {
        let mut leader = self.raft.leader();
        let found = tokio::time::timeout(self.timeout, leader.wait_for(|l| l.leader_id.is_some()))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|l| l.leader_id));
        let Some(id) = found else {
            return Err(ControllerError::NotController);
        };
        if id == self.node_id {
            return Err(ControllerError::NotController);
        }
        // The voter set, and so the leader's address, follows the metadata log (KIP-853).
        let addr = self
            .raft
            .voter_addresses()
            .into_iter()
            .find(|v| v.id == id)
            .map(|v| v.addr())
            .ok_or(ControllerError::NotController)?;
        Ok((id, addr))
    }

    async fn connection(&self, id: i32, addr: &str) -> Result<KafkaConnection, ControllerError> {
        let pooled = self
            .idle
            .lock()
            .ok()
            .and_then(|mut m| m.get_mut(&id).and_then(|v| v.pop()));
        match pooled {
            Some(c) => Ok(c),
            None => KafkaConnection::connect(
                addr,
                &format!("kraftd-forwarder-{}", self.node_id),
                self.timeout,
            )
            .await
            .map_err(|_| ControllerError::NotController),
        }
    }

    fn give_back(&self, id: i32, conn: KafkaConnection) {
        if let Ok(mut m) = self.idle.lock() {
            let v = m.entry(id).or_default();
            if v.len() < MAX_IDLE_CONNECTIONS {
                v.push(conn);
            }
        }
    }

    /// Forwards a client's request body as it came; returns the controller's response body.
    /// Any failure is NOT_CONTROLLER: the client retries, as with Kafka.
    pub async fn forward_raw(
        &self,
        api_key: i16,
        version: i16,
        body: &[u8],
    ) -> Result<Bytes, ControllerError> {
        let (id, addr) = self.remote_leader().await?;
        let mut conn = self.connection(id, &addr).await?;
        let response = conn
            .send_raw(api_key, version, body, self.timeout)
            .await
            .map_err(|_| ControllerError::NotController)?;
        self.give_back(id, conn);
        Ok(response)
    }

    /// Sends a request built by this node to the active controller.
    pub async fn send<R: Request>(
        &self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ControllerError> {
        let (id, addr) = self.remote_leader().await?;
        let mut conn = self.connection(id, &addr).await?;
        let response = conn
            .send(version, request, self.timeout)
            .await
            .map_err(|_| ControllerError::NotController)?;
        self.give_back(id, conn);
        Ok(response)
    }
}

/// CreateTopics for this node's own needs (auto-created topics, `__consumer_offsets`).
pub(super) async fn create_topics(
    forwarder: &ControllerForwarder,
    topics: Vec<super::NewTopic>,
    validate_only: bool,
) -> Result<Vec<Result<super::CreatedTopic, ControllerError>>, ControllerError> {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
    };
    use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(forwarder.timeout.as_millis() as i32)
        .with_validate_only(validate_only)
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                        .with_num_partitions(t.num_partitions)
                        .with_replication_factor(t.replication_factor)
                        .with_assignments(
                            t.assignments
                                .iter()
                                .map(|(&p, replicas)| {
                                    CreatableReplicaAssignment::default()
                                        .with_partition_index(p)
                                        .with_broker_ids(
                                            replicas.iter().map(|&b| BrokerId(b)).collect(),
                                        )
                                })
                                .collect(),
                        )
                        .with_configs(
                            t.configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(StrBytes::from_string(k.clone()))
                                        .with_value(v.clone().map(StrBytes::from_string))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let response = forwarder.send(7, &request).await?;
    Ok(topics
        .iter()
        .map(|t| {
            let Some(r) = response.topics.iter().find(|r| r.name.0.as_str() == t.name) else {
                return Err(ControllerError::Unknown(format!(
                    "the controller did not answer for topic {}",
                    t.name
                )));
            };
            if r.error_code == 0 {
                Ok(super::CreatedTopic {
                    topic_id: r.topic_id,
                    num_partitions: r.num_partitions,
                    replication_factor: r.replication_factor,
                })
            } else {
                Err(ControllerError::from_code(
                    r.error_code,
                    r.error_message.as_deref().unwrap_or_default(),
                ))
            }
        })
        .collect())
}

pub(super) async fn allocate_producer_ids(
    forwarder: &ControllerForwarder,
    broker_id: i32,
    broker_epoch: i64,
) -> Result<(i64, i64), ControllerError> {
    use kafka_protocol::messages::{AllocateProducerIdsRequest, BrokerId};
    let request = AllocateProducerIdsRequest::default()
        .with_broker_id(BrokerId(broker_id))
        .with_broker_epoch(broker_epoch);
    let response = forwarder.send(0, &request).await?;
    if response.error_code != 0 {
        return Err(ControllerError::from_code(response.error_code, ""));
    }
    Ok((
        response.producer_id_start.0,
        i64::from(response.producer_id_len),
    ))
}
