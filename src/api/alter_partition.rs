//! AlterPartition (KIP-497), CONTROLLER listener only: a partition leader asks the active
//! controller to change its ISR. The controller decides; this file only hands the answer back.

use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse};

use super::{Dispatcher, RequestContext};
use crate::controller::{RequestOrigin, alter_partition_response};

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    version: i16,
    req: AlterPartitionRequest,
) -> AlterPartitionResponse {
    alter_partition_response(
        d.controller
            .alter_partition(req, version, RequestOrigin::Network)
            .await,
    )
}
