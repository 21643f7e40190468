//! Joining the cluster: register this broker with the active controller (its advertised
//! listeners and rack), then ask to be unfenced once its metadata has caught up.

use std::time::Duration;

use tracing::{info, warn};
use uuid::Uuid;

use crate::config::ServerConfig;
use crate::controller::{BrokerToRegister, ControllerHandle};
use crate::metadata::records::BrokerEndpoint;

/// PLAINTEXT's id in Kafka's SecurityProtocol.
const SECURITY_PROTOCOL_PLAINTEXT: i16 = 0;

/// Returns the broker epoch once the broker is registered and unfenced.
pub async fn register_and_unfence(config: &ServerConfig, controller: &ControllerHandle) -> i64 {
    let controller_names = &config.controller_listener_names;
    let endpoints: Vec<BrokerEndpoint> = config
        .advertised_listeners
        .iter()
        .filter(|l| !controller_names.contains(&l.name))
        .map(|l| BrokerEndpoint {
            name: l.name.clone(),
            host: l
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_string()),
            port: l.port,
            security_protocol: SECURITY_PROTOCOL_PLAINTEXT,
        })
        .collect();
    let incarnation_id = Uuid::new_v4();
    let mut backoff = Duration::from_millis(50);
    loop {
        let attempt = async {
            let epoch = controller
                .register_broker(BrokerToRegister {
                    broker_id: config.node_id,
                    incarnation_id,
                    endpoints: endpoints.clone(),
                    rack: config.broker_rack.clone(),
                })
                .await?;
            controller.unfence_broker(config.node_id, epoch).await?;
            Ok::<i64, crate::controller::ControllerError>(epoch)
        };
        match attempt.await {
            Ok(epoch) => {
                info!(
                    broker_id = config.node_id,
                    broker_epoch = epoch,
                    "broker registered and unfenced"
                );
                return epoch;
            }
            Err(e) => {
                warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "broker registration failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}
