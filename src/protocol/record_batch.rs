//! Kafka v2 RecordBatch (magic 2) on the hot path: a zero-copy header view, validation of a
//! produce request's records field, in-place rewriters for the fields the broker assigns
//! (baseOffset, partitionLeaderEpoch, LogAppendTime), iterators over batches and over the records
//! of an uncompressed batch, and a small encoder for uncompressed batches.
//!
//! It owns the byte layout only. It must never decompress or re-encode records that it only
//! copies: compressed batches are checked by header and CRC alone.
//!
//! Layout (all big endian), from https://kafka.apache.org/documentation/#recordbatch:
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 | producerId i64 |
//! producerEpoch i16 | baseSequence i32 | recordsCount i32 | records...
//! The CRC is CRC-32C over attributes..end of batch.

use std::ops::Range;

use thiserror::Error;

/// Size of the fixed v2 batch header, up to and including recordsCount.
pub const BATCH_HEADER_LEN: usize = 61;
/// baseOffset + batchLength: the bytes not counted by batchLength.
pub const LOG_OVERHEAD: usize = 12;
pub const MAGIC_V2: i8 = 2;
pub const NO_TIMESTAMP: i64 = -1;
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Why a records field was refused; each variant is exactly one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    /// Framing, magic byte out of range, or CRC mismatch (Kafka's CorruptRecordException).
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    /// Well framed but not acceptable (Kafka's InvalidRecordException), including magic 0/1:
    /// Kafka 4.x refuses produce v3+ batches whose magic is not 2 with INVALID_RECORD.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A batch larger than the topic's max.message.bytes (RecordTooLargeException).
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    /// Compression codec id 5..7 (no such codec).
    #[error("unsupported compression codec id {0}")]
    UnsupportedCompressionType(u8),
}

impl BatchError {
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            BatchError::CorruptMessage(_) => 2,
            BatchError::MessageTooLarge { .. } => 10,
            BatchError::UnsupportedCompressionType(_) => 76,
            BatchError::InvalidRecord(_) => 87,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    pub fn from_id(id: u8) -> Result<Compression, BatchError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(BatchError::UnsupportedCompressionType(other)),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// A zero-copy view of the 61-byte header. Construction guarantees the length, so the
/// accessors cannot go out of bounds.
#[derive(Clone, Copy, Debug)]
pub struct BatchHeader<'a> {
    bytes: &'a [u8; BATCH_HEADER_LEN],
}

impl<'a> BatchHeader<'a> {
    /// Views the first 61 bytes of `buf` and checks magic == 2 and that batchLength covers at
    /// least the header. It does not check the CRC or that the whole batch is present.
    pub fn parse(buf: &'a [u8]) -> Result<BatchHeader<'a>, BatchError> {
        let bytes: &[u8; BATCH_HEADER_LEN] = buf.first_chunk().ok_or_else(|| {
            BatchError::CorruptMessage(format!(
                "{} bytes cannot hold a {BATCH_HEADER_LEN}-byte batch header",
                buf.len()
            ))
        })?;
        let header = BatchHeader { bytes };
        header.check_magic()?;
        if header.batch_length() < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::CorruptMessage(format!(
                "batch length {} is smaller than the minimum {}",
                header.batch_length(),
                BATCH_HEADER_LEN - LOG_OVERHEAD
            )));
        }
        Ok(header)
    }

    fn check_magic(&self) -> Result<(), BatchError> {
        match self.magic() {
            MAGIC_V2 => Ok(()),
            0 | 1 => Err(BatchError::InvalidRecord(format!(
                "record batches with magic {} are not supported; only magic version 2 is",
                self.magic()
            ))),
            other => Err(BatchError::CorruptMessage(format!(
                "invalid magic found in record: {other}"
            ))),
        }
    }

    pub fn as_bytes(&self) -> &'a [u8; BATCH_HEADER_LEN] {
        self.bytes
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, BASE_OFFSET)
    }
    pub fn batch_length(&self) -> i32 {
        be_i32(self.bytes, BATCH_LENGTH)
    }
    /// Whole batch size in bytes including the 12 bytes of log overhead.
    pub fn size(&self) -> usize {
        self.batch_length().max(0) as usize + LOG_OVERHEAD
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, PARTITION_LEADER_EPOCH)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC] as i8
    }
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, CRC) as u32
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, ATTRIBUTES)
    }
    pub fn compression_id(&self) -> u8 {
        (self.attributes() & COMPRESSION_MASK) as u8
    }
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id(self.compression_id())
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes() & DELETE_HORIZON_BIT != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, LAST_OFFSET_DELTA)
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, BASE_SEQUENCE)
    }
    pub fn records_count(&self) -> i32 {
        be_i32(self.bytes, RECORDS_COUNT)
    }
}

/// CRC-32C of a whole batch as stored in its crc field (attributes..end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    batch.get(ATTRIBUTES..).map_or(0, crc32c::crc32c)
}

/// One complete batch inside a larger buffer.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub header: BatchHeader<'a>,
    pub bytes: &'a [u8],
    /// Position of the batch in the buffer it was iterated from.
    pub position: usize,
}

impl<'a> Batch<'a> {
    pub fn is_crc_valid(&self) -> bool {
        compute_crc(self.bytes) == self.header.crc()
    }

    /// Records of an uncompressed batch; `None` for a compressed one.
    pub fn records(&self) -> Option<RecordIter<'a>> {
        if self.header.compression_id() != 0 {
            return None;
        }
        Some(RecordIter {
            buf: self.bytes.get(BATCH_HEADER_LEN..).unwrap_or(&[]),
            remaining: self.header.records_count().max(0) as usize,
            base_offset: self.header.base_offset(),
            base_timestamp: self.header.base_timestamp(),
            log_append_time: match self.header.timestamp_type() {
                TimestampType::LogAppendTime => Some(self.header.max_timestamp()),
                TimestampType::CreateTime => None,
            },
        })
    }
}

/// Walks complete batches in a buffer (a produce records field or what the log returns). A
/// trailing partial batch or bad header yields one error and ends the iteration. It checks
/// framing and magic only; CRC is the caller's choice (`Batch::is_crc_valid`).
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            buf,
            pos: 0,
            failed: false,
        }
    }

    /// Byte position of the next batch.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<Batch<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let result = BatchHeader::parse(rest).and_then(|header| {
            let size = header.size();
            match rest.get(..size) {
                Some(bytes) => Ok(Batch {
                    header,
                    bytes,
                    position: self.pos,
                }),
                None => Err(BatchError::CorruptMessage(format!(
                    "batch at position {} claims {} bytes but only {} remain",
                    self.pos,
                    size,
                    rest.len()
                ))),
            }
        });
        match &result {
            Ok(batch) => self.pos += batch.bytes.len(),
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}

/// What the broker needs to know about one validated batch of a produce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    /// Byte range of the batch in the validated buffer.
    pub range: Range<usize>,
    pub record_count: i32,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    /// For uncompressed batches the maximum record timestamp computed from the records (Kafka
    /// recomputes it and rewrites the header when it differs: see `header_max_timestamp` and
    /// `set_max_timestamp`); for compressed batches the header's value.
    pub max_timestamp: i64,
    pub header_max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub compression: Compression,
    pub timestamp_type: TimestampType,
    pub is_transactional: bool,
    pub is_control: bool,
}

/// Validates a produce request's records field: one or more complete v2 batches, with the
/// checks Kafka applies to client appends (`UnifiedLog.analyzeAndValidateRecords` and
/// `LogValidator.validateBatch`): baseOffset 0, CRC, count > 0, lastOffsetDelta == count - 1,
/// no control batches, a sequence for idempotent batches. Uncompressed batches also have their
/// records walked (no allocation): sizes must add up and offset deltas must be 0..n-1, which is
/// stricter than Kafka (which reassigns offsets) but no real client writes anything else.
/// Trailing bytes that do not form a whole batch are refused (Kafka silently drops them).
pub fn validate_batches(buf: &[u8]) -> Result<Vec<BatchInfo>, BatchError> {
    let mut infos = Vec::new();
    for batch in BatchIter::new(buf) {
        infos.push(validate_one(&batch?)?);
    }
    if infos.is_empty() {
        return Err(BatchError::InvalidRecord(
            "produce requests must have at least one record batch per partition".into(),
        ));
    }
    Ok(infos)
}

/// `validate_batches` plus the produce v3+ rules: exactly one batch per partition
/// (`ProduceRequest.validateRecords`) and the topic's max.message.bytes.
pub fn validate_produce_records(
    buf: &[u8],
    max_message_bytes: usize,
) -> Result<BatchInfo, BatchError> {
    let mut infos = validate_batches(buf)?;
    if infos.len() != 1 {
        return Err(BatchError::InvalidRecord(
            "produce requests are only allowed to contain exactly one record batch per partition"
                .into(),
        ));
    }
    let info = infos.remove(0);
    if info.range.len() > max_message_bytes {
        return Err(BatchError::MessageTooLarge {
            size: info.range.len(),
            max: max_message_bytes,
        });
    }
    Ok(info)
}

fn validate_one(batch: &Batch<'_>) -> Result<BatchInfo, BatchError> {
    let h = &batch.header;
    let stored = h.crc();
    let computed = compute_crc(batch.bytes);
    if stored != computed {
        return Err(BatchError::CorruptMessage(format!(
            "record is corrupt (stored crc = {stored}, computed crc = {computed})"
        )));
    }
    let compression = h.compression()?;
    if h.base_offset() != 0 {
        return Err(BatchError::InvalidRecord(format!(
            "the baseOffset of the record batch should be 0, but it is {}",
            h.base_offset()
        )));
    }
    let count = h.records_count();
    if count <= 0 {
        return Err(BatchError::InvalidRecord(format!(
            "invalid reported count for record batch: {count}"
        )));
    }
    if i64::from(h.last_offset_delta()) + 1 != i64::from(count) {
        return Err(BatchError::InvalidRecord(format!(
            "inconsistent batch offset range [0, {}] and count of records {count}",
            h.last_offset_delta()
        )));
    }
    if h.is_control() {
        return Err(BatchError::InvalidRecord(
            "clients are not allowed to write control records".into(),
        ));
    }
    if h.producer_id() >= 0 && h.base_sequence() < 0 {
        return Err(BatchError::InvalidRecord(format!(
            "invalid sequence number {} in record batch with producerId {}",
            h.base_sequence(),
            h.producer_id()
        )));
    }
    let mut max_timestamp = h.max_timestamp();
    if let Some(records) = batch.records() {
        max_timestamp = NO_TIMESTAMP;
        let mut iter = records;
        for (expected_delta, record) in iter.by_ref().enumerate() {
            let record = record?;
            if i64::from(record.offset_delta) != expected_delta as i64 {
                return Err(BatchError::InvalidRecord(format!(
                    "record {expected_delta} has offset delta {}",
                    record.offset_delta
                )));
            }
            max_timestamp = max_timestamp.max(record.timestamp);
        }
        if !iter.buf.is_empty() {
            return Err(BatchError::InvalidRecord(format!(
                "incorrect declared batch size, {} bytes remain after {count} records",
                iter.buf.len()
            )));
        }
        if h.timestamp_type() == TimestampType::LogAppendTime {
            max_timestamp = h.max_timestamp();
        }
    }
    Ok(BatchInfo {
        range: batch.position..batch.position + batch.bytes.len(),
        record_count: count,
        last_offset_delta: h.last_offset_delta(),
        base_timestamp: h.base_timestamp(),
        max_timestamp,
        header_max_timestamp: h.max_timestamp(),
        producer_id: h.producer_id(),
        producer_epoch: h.producer_epoch(),
        base_sequence: h.base_sequence(),
        compression,
        timestamp_type: h.timestamp_type(),
        is_transactional: h.is_transactional(),
        is_control: h.is_control(),
    })
}

fn header_mut(batch: &mut [u8]) -> Result<&mut [u8; BATCH_HEADER_LEN], BatchError> {
    let len = batch.len();
    batch.first_chunk_mut().ok_or_else(|| {
        BatchError::CorruptMessage(format!("{len} bytes cannot hold a batch header"))
    })
}

/// Sets baseOffset. Not covered by the CRC, so nothing else changes.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    header_mut(batch)?[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Sets partitionLeaderEpoch. Not covered by the CRC.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    header_mut(batch)?[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Sets the timestampType bit and maxTimestamp, recomputing the CRC only when something
/// changed (as Kafka's `DefaultRecordBatch.setMaxTimestamp` does). `batch` must be exactly one
/// whole batch.
pub fn set_max_timestamp(
    batch: &mut [u8],
    timestamp_type: TimestampType,
    max_timestamp: i64,
) -> Result<(), BatchError> {
    let header = header_mut(batch)?;
    let attributes = be_i16(header, ATTRIBUTES);
    let new_attributes = match timestamp_type {
        TimestampType::LogAppendTime => attributes | TIMESTAMP_TYPE_BIT,
        TimestampType::CreateTime => attributes & !TIMESTAMP_TYPE_BIT,
    };
    if new_attributes == attributes && be_i64(header, MAX_TIMESTAMP) == max_timestamp {
        return Ok(());
    }
    header[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&new_attributes.to_be_bytes());
    header[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// For topics with message.timestamp.type=LogAppendTime: every record's timestamp becomes the
/// batch's maxTimestamp.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) -> Result<(), BatchError> {
    set_max_timestamp(batch, TimestampType::LogAppendTime, timestamp)
}

// ---- records of an uncompressed batch ----

fn read_varint(buf: &mut &[u8]) -> Result<i32, BatchError> {
    let v = read_varlong(buf)?;
    i32::try_from(v).map_err(|_| BatchError::InvalidRecord("varint out of range".into()))
}

fn read_varlong(buf: &mut &[u8]) -> Result<i64, BatchError> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = buf
            .split_first()
            .ok_or_else(|| BatchError::InvalidRecord("truncated varint in record".into()))?;
        *buf = rest;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(BatchError::InvalidRecord(
        "varint longer than 10 bytes".into(),
    ))
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], BatchError> {
    if buf.len() < len {
        return Err(BatchError::InvalidRecord(format!(
            "record field of {len} bytes overruns the record"
        )));
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

fn read_nullable<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, BatchError> {
    let len = read_varint(buf)?;
    if len < 0 {
        return Ok(None);
    }
    take(buf, len as usize).map(Some)
}

/// One record of an uncompressed batch, borrowed from the batch bytes.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// Absolute offset and timestamp (LogAppendTime batches: the batch maxTimestamp).
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    headers_count: i32,
    headers: &'a [u8],
}

impl<'a> RecordView<'a> {
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            buf: self.headers,
            remaining: self.headers_count.max(0) as usize,
        }
    }
}

pub struct HeaderIter<'a> {
    buf: &'a [u8],
    remaining: usize,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Result<(&'a [u8], Option<&'a [u8]>), BatchError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut buf = self.buf;
        let item = (|| {
            let key_len = read_varint(&mut buf)?;
            if key_len < 0 {
                return Err(BatchError::InvalidRecord("null header key".into()));
            }
            let key = take(&mut buf, key_len as usize)?;
            let value = read_nullable(&mut buf)?;
            Ok((key, value))
        })();
        self.buf = buf;
        if item.is_err() {
            self.remaining = 0;
        }
        Some(item)
    }
}

/// Walks the records of an uncompressed batch; yields an error once on malformed data.
pub struct RecordIter<'a> {
    buf: &'a [u8],
    remaining: usize,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
}

impl<'a> RecordIter<'a> {
    fn parse_one(&mut self) -> Result<RecordView<'a>, BatchError> {
        let mut buf = self.buf;
        let len = read_varint(&mut buf)?;
        if len < 0 {
            return Err(BatchError::InvalidRecord(format!(
                "invalid record size {len}"
            )));
        }
        let mut body = take(&mut buf, len as usize)?;
        self.buf = buf;
        let (&attributes, rest) = body
            .split_first()
            .ok_or_else(|| BatchError::InvalidRecord("empty record".into()))?;
        body = rest;
        let timestamp_delta = read_varlong(&mut body)?;
        let offset_delta = read_varint(&mut body)?;
        let key = read_nullable(&mut body)?;
        let value = read_nullable(&mut body)?;
        let headers_count = read_varint(&mut body)?;
        if headers_count < 0 {
            return Err(BatchError::InvalidRecord(format!(
                "found invalid number of record headers {headers_count}"
            )));
        }
        let headers = body;
        // Headers must consume exactly the rest of the record.
        let mut check = HeaderIter {
            buf: headers,
            remaining: headers_count as usize,
        };
        for h in check.by_ref() {
            h?;
        }
        if !check.buf.is_empty() {
            return Err(BatchError::InvalidRecord(format!(
                "invalid record size: {} bytes left over in record payload",
                check.buf.len()
            )));
        }
        Ok(RecordView {
            attributes: attributes as i8,
            timestamp_delta,
            offset_delta,
            offset: self.base_offset.saturating_add(i64::from(offset_delta)),
            timestamp: self
                .log_append_time
                .unwrap_or_else(|| self.base_timestamp.saturating_add(timestamp_delta)),
            key,
            value,
            headers_count,
            headers,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, BatchError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let item = self.parse_one();
        if item.is_err() {
            self.remaining = 0;
        }
        Some(item)
    }
}

// ---- encoder ----

/// A record header as (key, value); a null value is `None`.
pub type RecordHeader<'a> = (&'a [u8], Option<&'a [u8]>);

/// One record to encode.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [RecordHeader<'a>],
    pub timestamp: i64,
}

/// Batch-level fields for the encoder; `Default` is a plain non-idempotent client batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub is_transactional: bool,
    pub is_control: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: -1,
            is_transactional: false,
            is_control: false,
        }
    }
}

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varlong(out, -1),
        Some(b) => {
            write_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Encodes an uncompressed CreateTime v2 batch. baseTimestamp is the first record's timestamp
/// (as the Java producer does). An empty `records` gives a batch with count 0.
pub fn encode_batch(records: &[NewRecord<'_>], options: &BatchOptions) -> Vec<u8> {
    let base_timestamp = records.first().map_or(NO_TIMESTAMP, |r| r.timestamp);
    let max_timestamp = records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(NO_TIMESTAMP);
    let mut out = vec![0u8; BATCH_HEADER_LEN];
    let mut body = Vec::new();
    for (i, r) in records.iter().enumerate() {
        body.clear();
        body.push(0); // record attributes: unused
        write_varlong(&mut body, r.timestamp.wrapping_sub(base_timestamp));
        write_varlong(&mut body, i as i64);
        write_nullable(&mut body, r.key);
        write_nullable(&mut body, r.value);
        write_varlong(&mut body, r.headers.len() as i64);
        for (k, v) in r.headers {
            write_nullable(&mut body, Some(k));
            write_nullable(&mut body, *v);
        }
        write_varlong(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    let mut attributes: i16 = 0;
    if options.is_transactional {
        attributes |= TRANSACTIONAL_BIT;
    }
    if options.is_control {
        attributes |= CONTROL_BIT;
    }
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    let last_offset_delta = records.len().saturating_sub(1) as i32;
    let h = &mut out[..BATCH_HEADER_LEN];
    h[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&options.base_offset.to_be_bytes());
    h[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
    h[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&options.partition_leader_epoch.to_be_bytes());
    h[MAGIC] = MAGIC_V2 as u8;
    h[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    h[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&last_offset_delta.to_be_bytes());
    h[BASE_TIMESTAMP..BASE_TIMESTAMP + 8].copy_from_slice(&base_timestamp.to_be_bytes());
    h[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    h[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&options.producer_id.to_be_bytes());
    h[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&options.producer_epoch.to_be_bytes());
    h[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&options.base_sequence.to_be_bytes());
    h[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&(records.len() as i32).to_be_bytes());
    let crc = compute_crc(&out);
    out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One record (key "k", value "v", timestamp 1000) laid out by hand from the spec.
    fn hand_built_batch() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&[0; 8]); // baseOffset 0
        b.extend_from_slice(&[0, 0, 0, 0x3a]); // batchLength 58 = 70 - 12
        b.extend_from_slice(&[0xff; 4]); // partitionLeaderEpoch -1
        b.push(2); // magic
        b.extend_from_slice(&[0x71, 0x6a, 0x61, 0x89]); // crc, computed independently
        b.extend_from_slice(&[0, 0]); // attributes
        b.extend_from_slice(&[0, 0, 0, 0]); // lastOffsetDelta
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x03, 0xe8]); // baseTimestamp 1000
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x03, 0xe8]); // maxTimestamp 1000
        b.extend_from_slice(&[0xff; 8]); // producerId -1
        b.extend_from_slice(&[0xff; 2]); // producerEpoch -1
        b.extend_from_slice(&[0xff; 4]); // baseSequence -1
        b.extend_from_slice(&[0, 0, 0, 1]); // recordsCount 1
        // length 8 (zigzag 16), attributes, tsDelta 0, offsetDelta 0, key "k", value "v", 0 headers
        b.extend_from_slice(&[0x10, 0x00, 0x00, 0x00, 0x02, b'k', 0x02, b'v', 0x00]);
        b
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn hand_built_batch_matches_spec_and_encoder() {
        let bytes = hand_built_batch();
        assert_eq!(bytes.len(), 70);
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(h.crc(), 0x716a_6189);
        assert_eq!(compute_crc(&bytes), 0x716a_6189);
        assert_eq!(h.size(), 70);
        assert_eq!(h.records_count(), 1);
        assert_eq!(h.max_timestamp(), 1000);
        let encoded = encode_batch(
            &[NewRecord {
                key: Some(b"k"),
                value: Some(b"v"),
                headers: &[],
                timestamp: 1000,
            }],
            &BatchOptions::default(),
        );
        assert_eq!(encoded, bytes);
        let infos = validate_batches(&bytes).unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].range, 0..70);
        assert_eq!(infos[0].max_timestamp, 1000);
        assert_eq!(infos[0].compression, Compression::None);
    }

    fn three_records() -> Vec<u8> {
        let headers: &[(&[u8], Option<&[u8]>)] = &[(b"h1", Some(b"x")), (b"h2", None)];
        encode_batch(
            &[
                NewRecord {
                    key: None,
                    value: Some(b"a"),
                    headers: &[],
                    timestamp: 10,
                },
                NewRecord {
                    key: Some(b"k"),
                    value: None,
                    headers,
                    timestamp: 30,
                },
                NewRecord {
                    key: None,
                    value: Some(b"ccc"),
                    headers: &[],
                    timestamp: 20,
                },
            ],
            &BatchOptions::default(),
        )
    }

    #[test]
    fn validate_errors_map_to_kafka_codes() {
        let good = three_records();
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        let e = validate_batches(&bad_crc).unwrap_err();
        assert_eq!(e.kafka_error_code(), 2, "{e}");

        let mut magic1 = good.clone();
        magic1[16] = 1;
        assert_eq!(
            validate_batches(&magic1).unwrap_err().kafka_error_code(),
            87
        );
        let mut magic9 = good.clone();
        magic9[16] = 9;
        assert_eq!(validate_batches(&magic9).unwrap_err().kafka_error_code(), 2);

        assert_eq!(
            validate_batches(&good[..good.len() - 1])
                .unwrap_err()
                .kafka_error_code(),
            2
        );
        assert_eq!(validate_batches(&[]).unwrap_err().kafka_error_code(), 87);

        let mut nonzero_base = good.clone();
        set_base_offset(&mut nonzero_base, 5).unwrap();
        assert_eq!(
            validate_batches(&nonzero_base)
                .unwrap_err()
                .kafka_error_code(),
            87
        );

        // lastOffsetDelta inconsistent with the count (CRC fixed up so only that is wrong).
        let mut bad_delta = good.clone();
        bad_delta[23..27].copy_from_slice(&5i32.to_be_bytes());
        let crc = compute_crc(&bad_delta);
        bad_delta[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            validate_batches(&bad_delta).unwrap_err().kafka_error_code(),
            87
        );

        let mut codec7 = good.clone();
        codec7[22] |= 7;
        let crc = compute_crc(&codec7);
        codec7[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            validate_batches(&codec7).unwrap_err().kafka_error_code(),
            76
        );

        let control = encode_batch(
            &[NewRecord {
                key: None,
                value: None,
                headers: &[],
                timestamp: 1,
            }],
            &BatchOptions {
                is_control: true,
                ..BatchOptions::default()
            },
        );
        assert_eq!(
            validate_batches(&control).unwrap_err().kafka_error_code(),
            87
        );

        let mut two = good.clone();
        two.extend_from_slice(&good);
        assert_eq!(validate_batches(&two).unwrap().len(), 2);
        assert_eq!(
            validate_produce_records(&two, 1 << 20)
                .unwrap_err()
                .kafka_error_code(),
            87
        );
        assert_eq!(
            validate_produce_records(&good, 10)
                .unwrap_err()
                .kafka_error_code(),
            10
        );
        assert_eq!(
            validate_produce_records(&good, 1 << 20)
                .unwrap()
                .record_count,
            3
        );
    }

    #[test]
    fn records_walk_and_max_timestamp() {
        let bytes = three_records();
        let info = &validate_batches(&bytes).unwrap()[0];
        assert_eq!(info.max_timestamp, 30);
        assert_eq!(info.base_timestamp, 10);
        let batch = BatchIter::new(&bytes).next().unwrap().unwrap();
        let recs: Vec<_> = batch.records().unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1].key, Some(&b"k"[..]));
        assert_eq!(recs[1].value, None);
        assert_eq!(recs[1].timestamp, 30);
        assert_eq!(recs[2].offset, 2);
        let hs: Vec<_> = recs[1].headers().map(|h| h.unwrap()).collect();
        assert_eq!(hs, vec![(&b"h1"[..], Some(&b"x"[..])), (&b"h2"[..], None)]);
    }

    #[test]
    fn rewriters_keep_crc_valid() {
        let mut bytes = three_records();
        set_base_offset(&mut bytes, 1234).unwrap();
        set_partition_leader_epoch(&mut bytes, 7).unwrap();
        let b = BatchIter::new(&bytes).next().unwrap().unwrap();
        assert!(b.is_crc_valid());
        assert_eq!(b.header.base_offset(), 1234);
        assert_eq!(b.header.last_offset(), 1236);
        assert_eq!(b.header.partition_leader_epoch(), 7);

        set_log_append_time(&mut bytes, 99_999).unwrap();
        let b = BatchIter::new(&bytes).next().unwrap().unwrap();
        assert!(b.is_crc_valid());
        assert_eq!(b.header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(b.header.max_timestamp(), 99_999);
        assert!(b.records().unwrap().all(|r| r.unwrap().timestamp == 99_999));
        assert!(set_base_offset(&mut [0u8; 10], 1).is_err());
    }

    type Rec = (
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(Vec<u8>, Option<Vec<u8>>)>,
        i64,
    );

    fn arb_record() -> impl Strategy<Value = Rec> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 0..8),
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
                ),
                0..3,
            ),
            -1i64..i64::MAX / 4,
        )
    }

    proptest! {
        #[test]
        fn encode_validate_decode_round_trip(
            recs in proptest::collection::vec(arb_record(), 1..20),
            epoch in any::<i32>(),
            base in 0i64..i64::MAX / 2,
        ) {
            let header_refs: Vec<Vec<RecordHeader<'_>>> = recs
                .iter()
                .map(|r| r.2.iter().map(|(k, v)| (k.as_slice(), v.as_deref())).collect())
                .collect();
            let new: Vec<NewRecord<'_>> = recs
                .iter()
                .zip(&header_refs)
                .map(|(r, h)| NewRecord {
                    key: r.0.as_deref(),
                    value: r.1.as_deref(),
                    headers: h,
                    timestamp: r.3,
                })
                .collect();
            let mut bytes = encode_batch(&new, &BatchOptions::default());
            let info = validate_batches(&bytes).unwrap();
            prop_assert_eq!(info[0].record_count as usize, recs.len());
            prop_assert_eq!(info[0].max_timestamp, recs.iter().map(|r| r.3).max().unwrap());
            set_base_offset(&mut bytes, base).unwrap();
            set_partition_leader_epoch(&mut bytes, epoch).unwrap();
            let batch = BatchIter::new(&bytes).next().unwrap().unwrap();
            prop_assert!(batch.is_crc_valid());
            prop_assert_eq!(batch.header.partition_leader_epoch(), epoch);
            for (i, (view, rec)) in batch.records().unwrap().zip(&recs).enumerate() {
                let view = view.unwrap();
                prop_assert_eq!(view.offset, base + i as i64);
                prop_assert_eq!(view.key, rec.0.as_deref());
                prop_assert_eq!(view.value, rec.1.as_deref());
                prop_assert_eq!(view.timestamp, rec.3);
                let hs: Vec<(Vec<u8>, Option<Vec<u8>>)> = view
                    .headers()
                    .map(|h| h.map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))))
                    .collect::<Result<_, _>>()
                    .unwrap();
                prop_assert_eq!(&hs, &rec.2);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate_batches(&bytes);
            for b in BatchIter::new(&bytes).flatten() {
                if let Some(recs) = b.records() {
                    for _ in recs {}
                }
            }
        }

        #[test]
        fn flipped_byte_is_detected(idx in 0usize..200, bit in 0u8..8) {
            let mut bytes = three_records();
            let idx = idx % bytes.len();
            bytes[idx] ^= 1 << bit;
            // baseOffset and partitionLeaderEpoch are outside the CRC; everything else is not.
            if idx >= 17 {
                prop_assert!(validate_batches(&bytes).is_err());
            }
        }
    }
}
