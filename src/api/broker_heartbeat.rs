//! BrokerHeartbeat (KIP-631), CONTROLLER listener only: keeps a broker's session alive, reports
//! its metadata offset, and carries its wish to be fenced or to shut down. The controller
//! decides; this file only maps its answer to Kafka's codes.

use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerHeartbeatResponse};

use super::{Dispatcher, RequestContext};
use crate::controller::{RequestOrigin, heartbeat_response};

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: BrokerHeartbeatRequest,
) -> BrokerHeartbeatResponse {
    heartbeat_response(
        d.controller
            .broker_heartbeat(req, RequestOrigin::Network)
            .await,
    )
}
