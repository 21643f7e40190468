//! A Kafka protocol client connection: what one node uses to send Raft and controller requests
//! to another (and what `kraftd quorum` uses to ask a controller). One request at a time per
//! connection; callers that need concurrency open more connections.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Responses larger than this are refused rather than allocated (a Raft fetch answer is bounded
/// by its max bytes, far below).
const MAX_RESPONSE_BYTES: usize = 128 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: no answer within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: malformed answer: {problem}")]
    Protocol { addr: String, problem: String },
}

pub struct KafkaConnection {
    addr: String,
    stream: TcpStream,
    client_id: StrBytes,
    next_correlation_id: i32,
}

impl KafkaConnection {
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<KafkaConnection, ClientError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    source,
                });
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    addr: addr.to_string(),
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(KafkaConnection {
            addr: addr.to_string(),
            stream,
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation_id: 1,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn protocol(&self, problem: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            problem: problem.into(),
        }
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    /// Sends `request` at `version` and waits up to `timeout` for its answer. On any error the
    /// connection must be dropped: a late answer would otherwise be read as the next one's.
    pub async fn send<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        match tokio::time::timeout(timeout, self.send_inner(version, request)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr.clone(),
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// Sends an already-encoded request body (a request forwarded as it came) and returns the
    /// response body, without its header.
    pub async fn send_raw(
        &mut self,
        api_key: i16,
        version: i16,
        body: &[u8],
        timeout: Duration,
    ) -> Result<bytes::Bytes, ClientError> {
        let fut = async {
            let key = kafka_protocol::messages::ApiKey::try_from(api_key)
                .map_err(|_| self.protocol(format!("unknown api key {api_key}")))?;
            let correlation_id = self.next_correlation_id;
            self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
            let header = RequestHeader::default()
                .with_request_api_key(api_key)
                .with_request_api_version(version)
                .with_correlation_id(correlation_id)
                .with_client_id(Some(self.client_id.clone()));
            let mut buf = BytesMut::with_capacity(body.len() + 64);
            buf.extend_from_slice(&[0, 0, 0, 0]);
            header
                .encode(&mut buf, key.request_header_version(version))
                .map_err(|e| self.protocol(format!("cannot encode header: {e}")))?;
            buf.extend_from_slice(body);
            let len = (buf.len() - 4) as u32;
            buf[..4].copy_from_slice(&len.to_be_bytes());
            self.stream.write_all(&buf).await.map_err(|e| self.io(e))?;
            let mut body = self.read_frame().await?;
            let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
                .map_err(|e| self.protocol(format!("bad response header: {e}")))?;
            if header.correlation_id != correlation_id {
                return Err(self.protocol("correlation id does not match"));
            }
            Ok(body)
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr.clone(),
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    async fn read_frame(&mut self) -> Result<bytes::Bytes, ClientError> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .await
            .map_err(|e| self.io(e))?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_RESPONSE_BYTES {
            return Err(self.protocol(format!("answer of {len} bytes is over the limit")));
        }
        let mut body = BytesMut::zeroed(len);
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| self.io(e))?;
        Ok(body.freeze())
    }

    async fn send_inner<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&[0, 0, 0, 0]);
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| self.protocol(format!("cannot encode header: {e}")))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| self.protocol(format!("cannot encode request: {e}")))?;
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf).await.map_err(|e| self.io(e))?;

        let mut body = self.read_frame().await?;
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| self.protocol(format!("bad response header: {e}")))?;
        if header.correlation_id != correlation_id {
            return Err(self.protocol(format!(
                "correlation id {} does not match request {correlation_id}",
                header.correlation_id
            )));
        }
        let response = R::Response::decode(&mut body, version)
            .map_err(|e| self.protocol(format!("bad response body: {e}")))?;
        if body.has_remaining() {
            return Err(self.protocol(format!("{} trailing bytes", body.remaining())));
        }
        Ok(response)
    }
}

/// `host:port`, with an IPv6 host in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
