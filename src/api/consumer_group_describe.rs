//! ConsumerGroupDescribe (KIP-848): epochs, assignor and each member's current and target
//! assignment.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};
use crate::group::consumer;
use crate::metadata::MetadataImage;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn assignment(a: &consumer::Assignment, image: &MetadataImage) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(id, ps)| {
                TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(TopicName(s(image
                        .topic_by_id(id)
                        .map(|t| t.name.as_str())
                        .unwrap_or(""))))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let image = d.metadata.current();
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for id in req.group_ids {
        let out = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_error_message(None)
            .with_authorized_operations(super::authorized::operations(
                req.include_authorized_operations,
                super::authorized::GROUP,
            ));
        let described = d
            .groups
            .describe_consumer_group(id.as_str(), |g| {
                g.map(|g| {
                    out.clone()
                        .with_group_state(s(g.state()))
                        .with_group_epoch(g.group_epoch)
                        .with_assignment_epoch(g.assignment_epoch)
                        .with_assignor_name(s(&g.assignor))
                        .with_members(
                            g.members
                                .values()
                                .map(|m| {
                                    Member::default()
                                        .with_member_id(s(&m.member_id))
                                        .with_instance_id(m.instance_id.as_deref().map(s))
                                        .with_rack_id(m.rack_id.as_deref().map(s))
                                        .with_member_epoch(m.member_epoch)
                                        .with_client_id(s(&m.client_id))
                                        .with_client_host(s(&m.client_host))
                                        .with_subscribed_topic_names(
                                            m.subscribed.iter().map(|t| TopicName(s(t))).collect(),
                                        )
                                        .with_subscribed_topic_regex(None)
                                        .with_assignment(assignment(&m.assigned, &image))
                                        .with_target_assignment(assignment(
                                            &g.target
                                                .get(&m.member_id)
                                                .cloned()
                                                .unwrap_or_default(),
                                            &image,
                                        ))
                                })
                                .collect(),
                        )
                })
            })
            .await;
        groups.push(match described {
            Ok(Some(g)) => g,
            Ok(None) => out
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(s(&format!("Group {} not found.", id.as_str())))),
            Err(e) => out.with_error_code(e.code()),
        });
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
