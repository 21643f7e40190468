#!/usr/bin/env node
// kafkajs against a kraftd node: admin create, idempotent produce with each codec kafkajs can use
// here, then read back exactly.
//
//     node check_kafkajs.js BOOTSTRAP
//
// Codecs: none, gzip (built in), snappy (kafkajs-snappy) and lz4 (kafkajs-lz4). zstd is left out:
// its only kafkajs codec package (@kafkajs/zstd) fails to compile on Node 20.
//
// kafkajs consumers need consumer groups, which kraftd does not serve yet, so the records are read
// back by ../python/read_topic.py (kafka-python, assign() without a group) as JSON lines and compared
// here: keys, values, headers, timestamps, dense offsets per partition, send order per partition,
// the offsets the produce responses acknowledged, and the partition of each key under kafkajs's
// default (Java-compatible murmur2) partitioner. Exits 1 with the first mismatch.
'use strict'

const { execFileSync } = require('child_process')
const path = require('path')
const {
  Kafka,
  CompressionTypes,
  CompressionCodecs,
  Partitioners,
  logLevel,
} = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec

const CODECS = [
  ['none', CompressionTypes.None],
  ['gzip', CompressionTypes.GZIP],
  ['snappy', CompressionTypes.Snappy],
  ['lz4', CompressionTypes.LZ4],
]
const PARTITIONS = 3
const RECORDS = 10000
const SEND_CHUNK = 500
const BASE_TIMESTAMP_MS = 1700000000000
const READ_TOPIC = path.join(__dirname, '..', 'python', 'read_topic.py')

class CheckFailed extends Error {}

function fail(msg) {
  throw new CheckFailed(msg)
}

// Kafka's Java Utils.murmur2 (signed 32-bit), written here to check kafkajs's partitioner against.
function murmur2(buf) {
  const m = 0x5bd1e995
  const length = buf.length
  let h = (0x9747b28c ^ length) | 0
  const whole = length - (length % 4)
  for (let i = 0; i < whole; i += 4) {
    let k = buf.readInt32LE(i)
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m) ^ k
  }
  switch (length % 4) {
    case 3:
      h ^= buf[whole + 2] << 16
    // falls through
    case 2:
      h ^= buf[whole + 1] << 8
    // falls through
    case 1:
      h ^= buf[whole]
      h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

// From Kafka's UtilsTest.testMurmur2: the Java client's values.
const MURMUR2_JAVA_VECTORS = [
  ['21', -973932308],
  ['foobar', -790332482],
  ['a-little-bit-long-string', -985981536],
  ['a-little-bit-longer-string', -1486304829],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
  ['abc', 479470107],
]

const javaPartition = (key, n) => (murmur2(Buffer.from(key)) & 0x7fffffff) % n

function checkPartitioner(records) {
  for (const [data, want] of MURMUR2_JAVA_VECTORS) {
    const got = murmur2(Buffer.from(data))
    if (got !== want) fail(`murmur2(${data}) = ${got}, the Java client gives ${want}`)
  }
  // kafkajs's own default partitioner must agree with the Java one for every key we send.
  const partitioner = Partitioners.DefaultPartitioner()
  const partitionMetadata = [...Array(PARTITIONS).keys()].map(p => ({ partitionId: p, leader: 1 }))
  for (const r of records) {
    const got = partitioner({ topic: 't', partitionMetadata, message: { key: r.key } })
    const want = javaPartition(r.key, PARTITIONS)
    if (got !== want) fail(`kafkajs's DefaultPartitioner puts ${r.key} in ${got}, the Java client in ${want}`)
  }
}

// Unique keys, one header each, timestamps out of order; some null, some empty, most binary values.
function makeRecords(tag) {
  const records = []
  for (let i = 0; i < RECORDS; i++) {
    let value
    if (i % 997 === 500) value = null
    else if (i % 1009 === 7) value = Buffer.alloc(0)
    else {
      const tail = Buffer.alloc(i % 300)
      for (let j = 0; j < tail.length; j++) tail[j] = (i * 31 + j * 17) % 256
      value = Buffer.concat([Buffer.from(`${tag}-value-${i}:`), tail])
    }
    records.push({
      index: i,
      key: `${tag}-key-${String(i).padStart(5, '0')}`,
      value,
      header: [`h${i % 3}`, `header-${tag}-${i}`],
      timestamp: BASE_TIMESTAMP_MS + ((i * 7919) % 100000),
    })
  }
  return records
}

// Sends in chunks; returns Map key -> [partition, offset] derived from the produce responses'
// base offsets (records of one chunk land in each partition in send order).
async function produce(producer, topic, compression, records) {
  const acked = new Map()
  for (let start = 0; start < records.length; start += SEND_CHUNK) {
    const chunk = records.slice(start, start + SEND_CHUNK)
    const result = await producer.send({
      topic,
      acks: -1,
      compression,
      messages: chunk.map(r => ({
        key: r.key,
        value: r.value,
        headers: { [r.header[0]]: r.header[1] },
        timestamp: String(r.timestamp),
      })),
    })
    const base = new Map()
    for (const m of result) {
      if (m.topicName !== topic || m.errorCode !== 0) fail(`produce to ${topic}: response ${JSON.stringify(m)}`)
      base.set(m.partition, Number(m.baseOffset))
    }
    const next = new Map()
    for (const r of chunk) {
      const p = javaPartition(r.key, PARTITIONS)
      if (!base.has(p)) fail(`produce to ${topic}: no response for partition ${p}: ${JSON.stringify(result)}`)
      const offset = next.has(p) ? next.get(p) : base.get(p)
      acked.set(r.key, [p, offset])
      next.set(p, offset + 1)
    }
  }
  return acked
}

function readBack(bootstrap, topic) {
  let out
  try {
    out = execFileSync('python3', [READ_TOPIC, bootstrap, topic], {
      encoding: 'utf8',
      maxBuffer: 512 * 1024 * 1024,
      timeout: 120000,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
  } catch (e) {
    fail(`python3 read_topic.py ${topic} failed (${e.status ?? e.signal}):\n${e.stderr || e.message}`)
  }
  return out
    .split('\n')
    .filter(line => line.length > 0)
    .map(line => JSON.parse(line))
}

const b64 = v => (v === null ? null : Buffer.from(v).toString('base64'))

function verify(what, records, acked, lines) {
  if (lines.length !== records.length) fail(`${what}: sent ${records.length} records, read back ${lines.length}`)
  const byKey = new Map(records.map(r => [b64(r.key), r]))
  const seen = new Set()
  const perPartition = new Map()
  for (const l of lines) {
    const r = byKey.get(l.key)
    const where = `${what}: partition ${l.partition} offset ${l.offset}`
    if (r === undefined) fail(`${where}: key ${l.key} (base64) was never sent`)
    if (seen.has(l.key)) fail(`${where}: key ${r.key} read twice`)
    seen.add(l.key)
    if (l.value !== b64(r.value)) fail(`${where} (${r.key}): value ${l.value} != sent ${b64(r.value)} (base64)`)
    const wantHeaders = JSON.stringify([[r.header[0], b64(r.header[1])]])
    if (JSON.stringify(l.headers) !== wantHeaders) fail(`${where} (${r.key}): headers ${JSON.stringify(l.headers)} != sent ${wantHeaders}`)
    if (l.timestamp !== r.timestamp) fail(`${where} (${r.key}): timestamp ${l.timestamp} != sent ${r.timestamp}`)
    const want = javaPartition(r.key, PARTITIONS)
    if (l.partition !== want) fail(`${where} (${r.key}): the default partitioner gives partition ${want}`)
    const [ackP, ackO] = acked.get(r.key)
    if (ackP !== l.partition || ackO !== l.offset) fail(`${where} (${r.key}): the produce response put it at ${ackP}/${ackO}`)
    if (!perPartition.has(l.partition)) perPartition.set(l.partition, [])
    perPartition.get(l.partition).push([l.offset, r.index])
  }
  const counts = []
  for (let p = 0; p < PARTITIONS; p++) {
    const got = (perPartition.get(p) || []).sort((a, b) => a[0] - b[0])
    got.forEach(([offset, index], k) => {
      if (offset !== k) fail(`${what}: partition ${p} offsets not dense from 0: expected ${k}, found ${offset}`)
      if (k > 0 && index < got[k - 1][1]) fail(`${what}: partition ${p} lost send order at offset ${offset}`)
    })
    counts.push(got.length)
  }
  return counts
}

async function main() {
  if (process.argv.length !== 3) {
    console.error('usage: node check_kafkajs.js BOOTSTRAP')
    process.exit(2)
  }
  const bootstrap = process.argv[2]
  const started = Date.now()
  const kafka = new Kafka({
    clientId: 'check-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
  })
  const suffix = Date.now()
  const topics = new Map(CODECS.map(([name]) => [name, `kafkajs-${name}-${suffix}`]))

  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({
    waitForLeaders: true,
    timeout: 30000,
    topics: [...topics.values()].map(topic => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })),
  })
  if (created !== true) fail(`createTopics returned ${created}, expected true (all created)`)
  const meta = await admin.fetchTopicMetadata({ topics: [...topics.values()] })
  for (const t of meta.topics) {
    if (t.partitions.length !== PARTITIONS) fail(`${t.name}: ${t.partitions.length} partitions after create, expected ${PARTITIONS}`)
  }
  await admin.disconnect()

  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await producer.connect()
  const summary = []
  try {
    for (const [name, compression] of CODECS) {
      const t0 = Date.now()
      const topic = topics.get(name)
      const records = makeRecords(`kjs-${name}`)
      checkPartitioner(records)
      const acked = await produce(producer, topic, compression, records)
      const counts = verify(`kafkajs ${name}`, records, acked, readBack(bootstrap, topic))
      summary.push(`${name}=${counts.join('/')} (${((Date.now() - t0) / 1000).toFixed(1)}s)`)
    }
  } finally {
    await producer.disconnect()
  }
  console.log(
    `kafkajs OK: ${CODECS.length} codecs x ${RECORDS} records verified in ${((Date.now() - started) / 1000).toFixed(1)}s: ${summary.join(', ')}`
  )
}

main().catch(e => {
  console.error(`check_kafkajs: FAILED: ${e instanceof CheckFailed ? e.message : e.stack || e}`)
  process.exit(1)
})
