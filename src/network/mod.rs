//! Listeners and connections: owns sockets, Kafka framing and the per-connection request loop.
//! It knows nothing of what a request means; `api::dispatch` does. It must never allocate a frame
//! larger than `socket.request.max.bytes`, and never panic on bytes from a peer.

pub mod client;
mod connection;
mod listener;

pub use connection::ConnectionLimits;
pub use listener::{BoundListener, ListenerKind, bind_listeners};
