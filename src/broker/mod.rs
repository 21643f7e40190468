//! The broker: the partitions this node hosts (`ReplicaManager`, `Partition`), the produce and
//! fetch paths, idempotent-producer state, and the lifecycle that registers the node with the
//! controller. It reads the metadata image and calls into `log`; it never writes metadata itself.

mod alter_partition_manager;
pub mod controller_channel;
mod errors;
pub mod fetch_session;
mod lifecycle;
mod partition;
mod producer_state;
mod replica_fetcher;
mod replica_manager;
pub mod replication;

pub use alter_partition_manager::run_alter_partition_manager;
pub use controller_channel::{ChannelError, ControllerChannel};
pub use errors::BrokerError;
pub use lifecycle::{
    BrokerLifecycleManager, BrokerState, LifecycleConfig, LifecycleError, register_and_unfence,
};
pub use partition::{
    AppendResult, FetchedData, FollowerFetch, FollowerPosition, FollowerRead, LeaderContext,
    Partition, monotonic_ms,
};
pub use replica_fetcher::run_replica_fetchers;
pub use replica_manager::{AlterIsrQueue, ProducerIdManager, ReplicaManager};
