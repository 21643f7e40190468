//! AllocateProducerIds (KIP-730): a broker asks the active controller for a block of producer
//! ids. Served on the CONTROLLER listener.

use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, ProducerId,
};

use super::{Dispatcher, RequestContext};

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: AllocateProducerIdsRequest,
) -> AllocateProducerIdsResponse {
    match d
        .controller
        .allocate_producer_ids(req.broker_id.0, req.broker_epoch)
        .await
    {
        Ok((start, len)) => AllocateProducerIdsResponse::default()
            .with_producer_id_start(ProducerId(start))
            .with_producer_id_len(len.clamp(0, i32::MAX as i64) as i32),
        Err(e) => AllocateProducerIdsResponse::default()
            .with_error_code(e.code())
            .with_producer_id_start(ProducerId(-1)),
    }
}
