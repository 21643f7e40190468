//! Metadata: brokers (each live broker's endpoint for the listener the client came in on),
//! cluster id, controller id and topics, auto-creating requested topics when allowed.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::controller::{NewTopic, validate_topic_name};
use crate::metadata::image::is_internal_topic;
use crate::metadata::{MetadataImage, TopicImage};

use super::authorized;

pub async fn handle(
    d: &Dispatcher,
    ctx: &RequestContext<'_>,
    version: i16,
    req: MetadataRequest,
) -> MetadataResponse {
    let mut image = d.metadata.current();
    let topic_ops = authorized::operations(
        version >= 8 && req.include_topic_authorized_operations,
        authorized::TOPIC,
    );
    // v0 with an empty list and v1+ with null both mean every topic.
    let all_topics =
        req.topics.is_none() || (version == 0 && req.topics.as_ref().is_some_and(|t| t.is_empty()));
    let mut topics_out = Vec::new();
    if all_topics {
        for t in image.topics() {
            topics_out.push(topic_response(t, topic_ops));
        }
    } else {
        let requested = req.topics.unwrap_or_default();
        // Auto-create the unknown ones first (Kafka creates them and the client retries; we wait
        // for the creation so the client has its answer now).
        let auto_create =
            d.config.auto_create_topics_enable && (version < 4 || req.allow_auto_topic_creation);
        if auto_create {
            let missing: Vec<NewTopic> = requested
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
                .filter(|n| image.topic(n).is_none() && validate_topic_name(n).is_ok())
                .map(|name| NewTopic {
                    name,
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: BTreeMap::new(),
                    configs: BTreeMap::new(),
                })
                .collect();
            if !missing.is_empty() {
                let _ = d.controller.create_topics(missing, false).await;
                image = d.metadata.current();
            }
        }
        for t in requested {
            let found = match &t.name {
                Some(name) => image.topic(name.as_str()),
                None => image.topic_by_id(&t.topic_id),
            };
            match found {
                Some(topic) => topics_out.push(topic_response(topic, topic_ops)),
                None => {
                    let (code, name) = match &t.name {
                        Some(name) if validate_topic_name(name).is_err() => (
                            ResponseError::InvalidTopicException.code(),
                            Some(name.clone()),
                        ),
                        Some(name) => (
                            ResponseError::UnknownTopicOrPartition.code(),
                            Some(name.clone()),
                        ),
                        None => (ResponseError::UnknownTopicId.code(), None),
                    };
                    topics_out.push(
                        MetadataResponseTopic::default()
                            .with_error_code(code)
                            .with_name(name)
                            .with_topic_id(t.topic_id)
                            .with_topic_authorized_operations(authorized::OMITTED),
                    );
                }
            }
        }
    }
    let mut brokers_out = brokers(&image, ctx.listener_name);
    if !brokers_out.iter().any(|b| b.node_id.0 == d.node_id)
        && let Some(me) = this_broker(d, ctx.listener_name)
    {
        // Not registered (or fenced) yet, e.g. while the quorum elects a leader: clients still
        // learn this node, so they send their requests here and get retriable errors back
        // instead of waiting for a broker list that is empty.
        brokers_out.push(me);
    }
    MetadataResponse::default()
        .with_brokers(brokers_out)
        .with_cluster_id(Some(StrBytes::from_string(d.cluster_id.clone())))
        .with_controller_id(controller_id(&image, d).into())
        .with_topics(topics_out)
        // Only v8-10 carry the cluster's operations.
        .with_cluster_authorized_operations(authorized::operations(
            (8..=10).contains(&version) && req.include_cluster_authorized_operations,
            authorized::CLUSTER,
        ))
}

/// As Kafka's KRaft brokers do, clients are given a live broker as "controller": they cannot
/// reach the quorum. This node if it is one, else the lowest live id.
pub fn controller_id(image: &MetadataImage, d: &Dispatcher) -> i32 {
    let _ = image;
    // This node takes any admin request (forwarding it to the active controller), registered
    // or not, so it names itself, as Kafka's KRaft brokers name a live broker.
    d.node_id
}

/// This node's own entry, from its advertised listener of `listener`.
fn this_broker(d: &Dispatcher, listener: &str) -> Option<MetadataResponseBroker> {
    let l = d
        .config
        .advertised_listeners
        .iter()
        .find(|l| l.name == listener)?;
    let host = l
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    Some(
        MetadataResponseBroker::default()
            .with_node_id(d.node_id.into())
            .with_host(StrBytes::from_string(host))
            .with_port(l.port as i32)
            .with_rack(d.config.broker_rack.clone().map(StrBytes::from_string)),
    )
}

pub fn brokers(image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .live_brokers()
        .filter_map(|b| {
            let ep = b.endpoints.iter().find(|e| e.name == listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(b.id.into())
                    .with_host(StrBytes::from_string(ep.host.clone()))
                    .with_port(ep.port as i32)
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect()
}

fn topic_response(t: &TopicImage, topic_ops: i32) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|(&index, p)| {
            MetadataResponsePartition::default()
                .with_error_code(if p.leader < 0 {
                    ResponseError::LeaderNotAvailable.code()
                } else {
                    0
                })
                .with_partition_index(index)
                .with_leader_id(p.leader.into())
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|&r| r.into()).collect())
                .with_isr_nodes(p.isr.iter().map(|&r| r.into()).collect())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(is_internal_topic(&t.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(topic_ops)
}
