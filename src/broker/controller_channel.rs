//! The broker's way to the active controller (Kafka's NodeToControllerChannelManager), for the
//! two lifecycle RPCs and the partition leaders' AlterPartition. It speaks Kafka's request and response structs only, so the broker
//! lifecycle does not care whether the controller is in this process or across the network.
//!
//! The controller of this process is reached through its handle; another node's, through its
//! CONTROLLER listener (the handle's forwarder).

use std::time::Duration;

use kafka_protocol::messages::{
    AlterPartitionRequest, AlterPartitionResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse,
    BrokerRegistrationRequest, BrokerRegistrationResponse,
};

use crate::controller::{
    ControllerHandle, RequestOrigin, alter_partition_response, heartbeat_response,
    registration_response,
};

/// Versions sent to another node's controller (Kafka 4.x's).
const REGISTRATION_VERSION: i16 = 4;
const HEARTBEAT_VERSION: i16 = 1;
const ALTER_PARTITION_VERSION: i16 = 3;
/// Pause between attempts while no controller answers.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

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
            loop {
                if self.local.is_active() {
                    let result = self
                        .local
                        .broker_registration(request.clone(), RequestOrigin::InProcess)
                        .await;
                    return Ok(registration_response(result));
                }
                if let Some(remote) = self.local.remote()
                    && let Ok(response) = remote.send(REGISTRATION_VERSION, &request).await
                {
                    return Ok(response);
                }
                self.wait_for_a_controller().await?;
            }
        })
        .await
    }

    pub async fn broker_heartbeat(
        &self,
        request: BrokerHeartbeatRequest,
    ) -> Result<BrokerHeartbeatResponse, ChannelError> {
        self.bounded(async {
            loop {
                if self.local.is_active() {
                    let result = self
                        .local
                        .broker_heartbeat(request.clone(), RequestOrigin::InProcess)
                        .await;
                    return Ok(heartbeat_response(result));
                }
                if let Some(remote) = self.local.remote()
                    && let Ok(response) = remote.send(HEARTBEAT_VERSION, &request).await
                {
                    return Ok(response);
                }
                self.wait_for_a_controller().await?;
            }
        })
        .await
    }

    pub async fn alter_partition(
        &self,
        request: AlterPartitionRequest,
    ) -> Result<AlterPartitionResponse, ChannelError> {
        self.bounded(async {
            loop {
                if self.local.is_active() {
                    let result = self
                        .local
                        .alter_partition(
                            request.clone(),
                            ALTER_PARTITION_VERSION,
                            RequestOrigin::InProcess,
                        )
                        .await;
                    return Ok(alter_partition_response(result));
                }
                if let Some(remote) = self.local.remote()
                    && let Ok(response) = remote.send(ALTER_PARTITION_VERSION, &request).await
                {
                    return Ok(response);
                }
                self.wait_for_a_controller().await?;
            }
        })
        .await
    }

    /// A pause before asking again: until this node activates, or a moment for another to.
    async fn wait_for_a_controller(&self) -> Result<(), ChannelError> {
        tokio::select! {
            active = self.local.wait_active() => {
                if active { Ok(()) } else { Err(ChannelError::Closed) }
            }
            _ = tokio::time::sleep(RETRY_BACKOFF) => Ok(()),
        }
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
