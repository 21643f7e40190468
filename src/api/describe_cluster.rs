//! DescribeCluster: the live brokers as the admin client sees them.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::controller_id;
use super::{Dispatcher, RequestContext};

pub async fn handle(
    d: &Dispatcher,
    ctx: &RequestContext<'_>,
    version: i16,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if version >= 1 && req.endpoint_type == ENDPOINT_TYPE_CONTROLLER {
        return controllers(d, &req);
    }
    let image = d.metadata.current();
    let brokers = image
        .brokers
        .values()
        // Fenced brokers are listed only to v2+ clients that ask for them (KIP-1073).
        .filter(|b| !b.fenced || (version >= 2 && req.include_fenced_brokers))
        .filter_map(|b| {
            let ep = b.endpoints.iter().find(|e| e.name == ctx.listener_name)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(b.id.into())
                    .with_host(StrBytes::from_string(ep.host.clone()))
                    .with_port(ep.port as i32)
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
                    .with_is_fenced(b.fenced),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(StrBytes::from_string(d.cluster_id.clone()))
        .with_controller_id(controller_id(&image, d).into())
        .with_brokers(brokers)
        .with_cluster_authorized_operations(super::authorized::operations(
            req.include_cluster_authorized_operations,
            super::authorized::CLUSTER,
        ))
}

/// KIP-919: `endpointType=2` asks for the controllers (the quorum's voters), as admin tools
/// do with `--bootstrap-controller`.
const ENDPOINT_TYPE_CONTROLLER: i8 = 2;

fn controllers(d: &Dispatcher, req: &DescribeClusterRequest) -> DescribeClusterResponse {
    let leader = d.raft.leader().borrow().leader_id.unwrap_or(-1);
    let voters = d
        .raft
        .voter_addresses()
        .into_iter()
        .map(|v| {
            DescribeClusterBroker::default()
                .with_broker_id(v.id.into())
                .with_host(StrBytes::from_string(v.host.clone()))
                .with_port(v.port as i32)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_TYPE_CONTROLLER)
        .with_cluster_id(StrBytes::from_string(d.cluster_id.clone()))
        .with_controller_id(leader.into())
        .with_brokers(voters)
        .with_cluster_authorized_operations(super::authorized::operations(
            req.include_cluster_authorized_operations,
            super::authorized::CLUSTER,
        ))
}
