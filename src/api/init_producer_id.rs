//! InitProducerId for idempotent producers: a new id from the controller-allocated block, or
//! (KIP-360) the same id with a bumped epoch.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use super::{Dispatcher, RequestContext};

pub async fn handle(
    d: &Dispatcher,
    _ctx: &RequestContext<'_>,
    _version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // Transactions need a transaction coordinator, which kraftd does not have yet.
        return resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return resp
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    let epoch = d.broker_epoch();
    match d
        .producer_ids
        .next_id(&d.controller, d.node_id, epoch)
        .await
    {
        Ok(id) => resp.with_producer_id(id.into()).with_producer_epoch(0),
        Err(e) => resp.with_error_code(match e.code() {
            41 => ResponseError::CoordinatorNotAvailable.code(),
            c => c,
        }),
    }
}
