//! The broker: the partitions this node hosts (`ReplicaManager`, `Partition`), the produce and
//! fetch paths, idempotent-producer state, and the lifecycle that registers the node with the
//! controller. It reads the metadata image and calls into `log`; it never writes metadata itself.

mod errors;
pub mod fetch_session;
mod lifecycle;
mod partition;
mod producer_state;
mod replica_manager;

pub use errors::BrokerError;
pub use lifecycle::register_and_unfence;
pub use partition::{AppendResult, FetchedData, Partition};
pub use replica_manager::{ProducerIdManager, ReplicaManager};
