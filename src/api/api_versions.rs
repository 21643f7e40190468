//! ApiVersions: the (key, min, max) table this listener serves, and the finalized features.

use bytes::BytesMut;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::{Dispatcher, Outcome, RequestContext, apis_for};
use crate::controller::BOOTSTRAP_METADATA_VERSION;
use crate::network::ListenerKind;

fn api_list(kind: ListenerKind) -> Vec<ApiVersion> {
    apis_for(kind)
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

pub async fn handle(
    d: &Dispatcher,
    ctx: &RequestContext<'_>,
    _version: i16,
    _req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let image = d.metadata.current();
    let finalized: Vec<FinalizedFeatureKey> = image
        .features
        .iter()
        .map(|(name, level)| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_min_version_level(*level)
                .with_max_version_level(*level)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_api_keys(api_list(ctx.listener_kind))
        .with_supported_features(vec![
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str("metadata.version"))
                .with_min_version(1)
                .with_max_version(BOOTSTRAP_METADATA_VERSION),
        ])
        .with_finalized_features_epoch(if finalized.is_empty() {
            -1
        } else {
            image.offset
        })
        .with_finalized_features(finalized)
}

/// KIP-511: a version we do not serve is answered at v0 with UNSUPPORTED_VERSION and our
/// ApiVersions range, so the client can retry with one we do.
pub fn unsupported_version(correlation_id: i32, kind: ListenerKind) -> Outcome {
    let api_versions = api_list(kind)
        .into_iter()
        .filter(|a| a.api_key == ApiKey::ApiVersions as i16)
        .collect();
    let resp = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_versions);
    let mut out = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    if header.encode(&mut out, 0).is_err() || resp.encode(&mut out, 0).is_err() {
        return Outcome::Close("cannot encode ApiVersions error".into());
    }
    Outcome::Respond(out)
}
