//! OffsetFetch: one group (v1-7) or several (v8+); unknown partitions answer offset -1.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::group::FetchedOffset;

const FIRST_MULTI_GROUP_VERSION: i16 = 8;

fn by_topic(offsets: Vec<FetchedOffset>) -> BTreeMap<String, Vec<FetchedOffset>> {
    let mut map: BTreeMap<String, Vec<FetchedOffset>> = BTreeMap::new();
    for o in offsets {
        map.entry(o.topic.clone()).or_default().push(o);
    }
    map
}

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version >= FIRST_MULTI_GROUP_VERSION {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            let out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            groups.push(
                match d.groups.fetch_offsets(g.group_id.as_str(), topics).await {
                    Err(e) => out.with_error_code(e.code()),
                    Ok(offsets) => out.with_topics(
                        by_topic(offsets)
                            .into_iter()
                            .map(|(t, ps)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(StrBytes::from_string(t)))
                                    .with_partitions(
                                        ps.into_iter()
                                            .map(|p| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p.partition)
                                                    .with_committed_offset(p.offset)
                                                    .with_committed_leader_epoch(p.leader_epoch)
                                                    .with_metadata(Some(StrBytes::from_string(
                                                        p.metadata,
                                                    )))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                },
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    match d.groups.fetch_offsets(req.group_id.as_str(), topics).await {
        Err(e) => {
            OffsetFetchResponse::default().with_error_code(if version >= 2 { e.code() } else { 0 })
        }
        Ok(offsets) => OffsetFetchResponse::default().with_topics(
            by_topic(offsets)
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p.partition)
                                        .with_committed_offset(p.offset)
                                        .with_committed_leader_epoch(if version >= 5 {
                                            p.leader_epoch
                                        } else {
                                            -1
                                        })
                                        .with_metadata(Some(StrBytes::from_string(p.metadata)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}
