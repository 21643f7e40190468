//! DescribeGroups: state, protocol and members with their metadata and assignment.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Dispatcher, RequestContext};

use super::authorized;

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    version: i16,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    // Clients that ask (kafka-python always does on v3+) decode the field as a bit set; MIN_VALUE
    // would read as operation 31, which does not exist.
    let authorized_operations = authorized::operations(
        version >= 3 && req.include_authorized_operations,
        authorized::GROUP,
    );
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let out = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_error_message(None)
            .with_authorized_operations(authorized_operations);
        groups.push(match d.groups.describe_group(id.as_str()).await {
            Err(e) => out.with_error_code(e.code()),
            Ok(g) => out
                .with_group_state(StrBytes::from_static_str(g.state))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_protocol_data(StrBytes::from_string(g.protocol))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_group_instance_id(if version >= 4 {
                                    m.group_instance_id.map(StrBytes::from_string)
                                } else {
                                    None
                                })
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
