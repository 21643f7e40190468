//! BrokerRegistration (KIP-631), CONTROLLER listener only: a broker joins the cluster and gets
//! its broker epoch. The controller decides; this file only maps its answer to Kafka's codes.

use kafka_protocol::messages::{BrokerRegistrationRequest, BrokerRegistrationResponse};

use super::{Dispatcher, RequestContext};
use crate::controller::{RequestOrigin, registration_response};

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: BrokerRegistrationRequest,
) -> BrokerRegistrationResponse {
    // NOT_CONTROLLER when this node is not the active controller: the broker tries another.
    registration_response(
        d.controller
            .broker_registration(req, RequestOrigin::Network)
            .await,
    )
}
