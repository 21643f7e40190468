//! The broker's way to the active controller (Kafka's NodeToControllerChannelManager), for the
//! two lifecycle RPCs. It speaks Kafka's request and response structs only, so the broker
//! lifecycle does not care whether the controller is in this process or across the network.
//!
//! Today it reaches the controller of this process through its handle. A remote controller
//! (another node's CONTROLLER listener) belongs inside this struct too; nothing else changes.

use std::time::Duration;

use kafka_protocol::messages::{
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerRegistrationRequest,
    BrokerRegistrationResponse,
};

use crate::controller::{
    ControllerHandle, RequestOrigin, heartbeat_response, registration_response,
};

/// Why a request got no response at all. A response carrying an error code is not a
/// ChannelError: the caller reads the code, as it would from the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("no answer from the active controller within {0:?}")]
    Timeout(Duration),
    #[error("the controller has stopped")]
    Closed,
}

pub struct ControllerChannel {
    local: ControllerHandle,
    request_timeout: Duration,
}

impl ControllerChannel {
    /// A channel to the controller of this process. A request waits (at most `request_timeout`)
    /// for it to become active, as Kafka's channel waits to learn the active controller.
    pub fn in_process(controller: ControllerHandle, request_timeout: Duration) -> Self {
        ControllerChannel {
            local: controller,
            request_timeout,
        }
    }

    pub async fn broker_registration(
        &self,
        request: BrokerRegistrationRequest,
    ) -> Result<BrokerRegistrationResponse, ChannelError> {
        self.bounded(async {
            if !self.local.wait_active().await {
                return Err(ChannelError::Closed);
            }
            let result = self
                .local
                .broker_registration(request, RequestOrigin::InProcess)
                .await;
            Ok(registration_response(result))
        })
        .await
    }

    pub async fn broker_heartbeat(
        &self,
        request: BrokerHeartbeatRequest,
    ) -> Result<BrokerHeartbeatResponse, ChannelError> {
        self.bounded(async {
            if !self.local.wait_active().await {
                return Err(ChannelError::Closed);
            }
            let result = self
                .local
                .broker_heartbeat(request, RequestOrigin::InProcess)
                .await;
            Ok(heartbeat_response(result))
        })
        .await
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, ChannelError>>,
    ) -> Result<T, ChannelError> {
        tokio::time::timeout(self.request_timeout, call)
            .await
            .map_err(|_| ChannelError::Timeout(self.request_timeout))?
    }
}
