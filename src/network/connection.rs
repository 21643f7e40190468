//! One task pair per connection: a reader that frames requests (bounded queue ahead of the
//! handler) and a handler that answers them strictly in order, as Kafka's muted channels do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use super::ListenerKind;
use crate::api::{ConnectionInfo, Dispatcher, Outcome};

#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// `socket.request.max.bytes`: a frame larger than this closes the connection before any
    /// allocation.
    pub max_request_bytes: usize,
    /// Requests read ahead of the one being answered.
    pub max_in_flight: usize,
    /// `connections.max.idle.ms`.
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// The smallest legal frame: api key, api version and correlation id.
const MIN_FRAME: usize = 8;

pub(super) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    listener: String,
    dispatcher: Arc<Dispatcher>,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let (read_half, write_half) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<BytesMut>(limits.max_in_flight.max(1));
    let reader = tokio::spawn(read_frames(read_half, peer, limits.clone(), tx));
    let mut writer = BufWriter::with_capacity(64 * 1024, write_half);
    let ctx = ConnectionInfo {
        peer,
        listener_kind: kind,
        listener_name: listener.into(),
    };
    loop {
        let frame = tokio::select! {
            frame = rx.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
            _ = shutdown.changed() => break,
        };
        match dispatcher.dispatch(&ctx, frame.freeze()).await {
            Outcome::Respond(bytes) => {
                let len = bytes.len() as u32;
                if writer.write_all(&len.to_be_bytes()).await.is_err()
                    || writer.write_all(&bytes).await.is_err()
                {
                    break;
                }
                // Flush only when nothing else is queued, so pipelined responses share a write.
                if rx.is_empty() && writer.flush().await.is_err() {
                    break;
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                debug!(%peer, reason, "closing connection");
                break;
            }
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
    reader.abort();
}

async fn read_frames(
    mut read: OwnedReadHalf,
    peer: SocketAddr,
    limits: ConnectionLimits,
    tx: mpsc::Sender<BytesMut>,
) {
    loop {
        let mut size = [0u8; 4];
        match tokio::time::timeout(limits.idle_timeout, read.read_exact(&mut size)).await {
            Err(_) => {
                debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                return;
            }
            Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        let size = i32::from_be_bytes(size);
        if size < MIN_FRAME as i32 || size as usize > limits.max_request_bytes {
            debug!(%peer, size, max = limits.max_request_bytes,
                "closing connection: invalid request size (socket.request.max.bytes)");
            return;
        }
        let mut frame = BytesMut::zeroed(size as usize);
        if read.read_exact(&mut frame).await.is_err() {
            return;
        }
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}
