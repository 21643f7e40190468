//! One TCP listener per `listeners` entry; a wildcard host binds every interface, as Kafka does.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::connection::{self, ConnectionLimits};
use crate::api::Dispatcher;

/// What a listener serves: client APIs, or only the controller and Raft APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Client,
    Controller,
}

pub struct BoundListener {
    pub name: String,
    pub kind: ListenerKind,
    pub local_addr: SocketAddr,
    listener: TcpListener,
}

/// Binds every listener before any is served, so that a port clash fails the start as a whole.
pub async fn bind_listeners(
    specs: &[(String, String, u16, ListenerKind)],
) -> Result<Vec<BoundListener>, String> {
    let mut bound = Vec::with_capacity(specs.len());
    for (name, host, port, kind) in specs {
        let bind_host = if host.is_empty() || host == "0.0.0.0" {
            "0.0.0.0".to_string()
        } else {
            host.clone()
        };
        let addr = if bind_host.contains(':') && !bind_host.starts_with('[') {
            format!("[{bind_host}]:{port}")
        } else {
            format!("{bind_host}:{port}")
        };
        let listener = TcpListener::bind(&addr).await.map_err(|e| {
            format!(
                "listeners: cannot bind listener {name} to {addr}: {e}. Fix: free the port or change '{name}://{host}:{port}' in listeners"
            )
        })?;
        let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
        bound.push(BoundListener {
            name: name.clone(),
            kind: *kind,
            local_addr,
            listener,
        });
    }
    Ok(bound)
}

impl BoundListener {
    /// Accepts until `shutdown` turns true, then waits for every connection to finish the request
    /// it is working on.
    pub async fn serve(
        self,
        dispatcher: Arc<Dispatcher>,
        limits: ConnectionLimits,
        mut shutdown: watch::Receiver<bool>,
    ) {
        info!(listener = %self.name, addr = %self.local_addr, "listening");
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if connections.len() >= limits.max_connections {
                            warn!(listener = %self.name, %peer, limit = limits.max_connections,
                                "refusing connection: max.connections reached");
                            continue;
                        }
                        let _ = stream.set_nodelay(true);
                        debug!(listener = %self.name, %peer, "accepted connection");
                        connections.spawn(connection::run(
                            stream,
                            peer,
                            self.kind,
                            self.name.clone(),
                            dispatcher.clone(),
                            limits.clone(),
                            shutdown.clone(),
                        ));
                    }
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        warn!(listener = %self.name, error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = shutdown.changed() => break,
            }
        }
        drop(self.listener);
        while connections.join_next().await.is_some() {}
        debug!(listener = %self.name, "listener closed");
    }
}
