#!/usr/bin/env node
// kafkajs consumer groups against a kraftd node: a two-member group (consumer.run) reads
// everything and commits, a second run of the group reads only what is new, and the admin client
// describes, fetches offsets of and deletes the group.
//
//     node group_kafkajs.js BOOTSTRAP
//
// It creates a 4-partition topic and checks that:
//   - two consumers of one group settle (GROUP_JOIN events) on 2 partitions each, disjoint,
//     covering all 4; describeGroups shows the group Stable, protocol RoundRobinAssigner, with both
//     members and exactly those assignments; listGroups lists it;
//   - 25 records per partition are each consumed once by eachMessage of the partition's owner,
//     with the values sent; the auto-commits bring the group's offsets (fetchOffsets) to 25;
//   - after both disconnect the group is Empty; a second run (fromBeginning: true, so a lost commit
//     would re-read everything) reads exactly the 10 records per partition produced since, offsets
//     25..34; deleteGroups is refused with NON_EMPTY_GROUP while it runs;
//   - after it disconnects, deleteGroups succeeds, the offsets are gone (-1) and the group
//     describes as Dead.
// Exits 1 with the first mismatch.
'use strict'

const { Kafka, AssignerProtocol, logLevel } = require('kafkajs')

const PARTITIONS = 4
const FIRST = 25
const SECOND = 10
const TIMEOUT_MS = 30000

class CheckFailed extends Error {}

function fail(msg) {
  throw new CheckFailed(msg)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function waitFor(what, condition, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(50)
  }
}

// Sends `count` records to every partition; returns Map "p/offset" -> value from the acks.
async function produce(kafka, topic, tag, firstOffset, count) {
  const producer = kafka.producer()
  await producer.connect()
  const sent = new Map()
  try {
    for (let p = 0; p < PARTITIONS; p++) {
      const values = [...Array(count).keys()].map(i => `${tag}-p${p}-${i}`)
      const [ack] = await producer.send({ topic, acks: -1, messages: values.map(value => ({ value, partition: p })) })
      if (ack.errorCode !== 0 || ack.partition !== p || Number(ack.baseOffset) !== firstOffset) {
        fail(`produce to ${topic}/${p}: ${JSON.stringify(ack)}, expected base offset ${firstOffset}`)
      }
      values.forEach((v, i) => sent.set(`${p}/${firstOffset + i}`, v))
    }
  } finally {
    await producer.disconnect()
  }
  return sent
}

// A group member: runs eachMessage into `records` and remembers its latest assignment.
async function startMember(kafka, groupId, topic, name, records) {
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
    // kafkajs heartbeats, rejoins and disconnects between fetches: short polls keep those quick.
    maxWaitTimeInMs: 200,
  })
  const member = { name, assignment: null, consumer }
  member.consumer.on(member.consumer.events.GROUP_JOIN, e => {
    member.assignment = new Set(e.payload.memberAssignment[topic] || [])
  })
  await member.consumer.connect()
  await member.consumer.subscribe({ topics: [topic], fromBeginning: true })
  await member.consumer.run({
    eachMessage: async ({ partition, message }) => {
      records.push({ member: name, partition, offset: Number(message.offset), value: message.value.toString() })
    },
  })
  return member
}

function checkExactly(what, sent, records) {
  const seen = new Set()
  for (const r of records) {
    const key = `${r.partition}/${r.offset}`
    if (seen.has(key)) fail(`${what}: ${key} consumed twice`)
    seen.add(key)
    if (!sent.has(key)) fail(`${what}: consumed ${key} (${r.value}), which it should not have`)
    if (sent.get(key) !== r.value) fail(`${what}: ${key} has value ${r.value}, sent ${sent.get(key)}`)
  }
  const missing = [...sent.keys()].filter(k => !seen.has(k))
  if (missing.length) fail(`${what}: ${missing.length} records never consumed, first ${missing.slice(0, 5)}`)
}

async function groupOffsets(admin, groupId, topic) {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
  if (t.topic !== topic) fail(`fetchOffsets answered for ${t.topic}`)
  return t.partitions
    .sort((a, b) => a.partition - b.partition)
    .map(p => Number(p.offset))
    .join(',')
}

async function describe(admin, groupId) {
  const { groups } = await admin.describeGroups([groupId])
  if (groups.length !== 1 || groups[0].groupId !== groupId || groups[0].errorCode !== 0) {
    fail(`describeGroups: ${JSON.stringify(groups)}`)
  }
  return groups[0]
}

async function main() {
  if (process.argv.length !== 3) {
    console.error('usage: node group_kafkajs.js BOOTSTRAP')
    process.exit(2)
  }
  const started = Date.now()
  const kafka = new Kafka({ clientId: 'group-kafkajs', brokers: [process.argv[2]], logLevel: logLevel.NOTHING })
  const suffix = Date.now()
  const topic = `group-kjs-${suffix}`
  const groupId = `kjs-group-${suffix}`
  const admin = kafka.admin()
  await admin.connect()
  const members = []
  try {
    if ((await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: PARTITIONS }] })) !== true) {
      fail(`createTopics ${topic} did not create it`)
    }

    // First run: two members split the topic and consume everything.
    const records = []
    members.push(await startMember(kafka, groupId, topic, 'a', records))
    members.push(await startMember(kafka, groupId, topic, 'b', records))
    const [a, b] = members
    await waitFor('two members with 2 partitions each', () => {
      if (!a.assignment || !b.assignment || a.assignment.size !== 2 || b.assignment.size !== 2) return false
      return new Set([...a.assignment, ...b.assignment]).size === PARTITIONS
    })
    let d = await describe(admin, groupId)
    if (d.state !== 'Stable' || d.protocolType !== 'consumer' || d.protocol !== 'RoundRobinAssigner') {
      fail(`describeGroups: state ${d.state}, protocol ${d.protocolType}/${d.protocol}`)
    }
    if (d.members.length !== 2) fail(`describeGroups: ${d.members.length} members, expected 2`)
    const described = d.members
      .map(m => (AssignerProtocol.MemberAssignment.decode(m.memberAssignment).assignment[topic] || []).sort().join(','))
      .sort()
    const assigned = [a, b].map(m => [...m.assignment].sort().join(',')).sort()
    if (JSON.stringify(described) !== JSON.stringify(assigned)) {
      fail(`describeGroups assignments ${JSON.stringify(described)}, the members hold ${JSON.stringify(assigned)}`)
    }
    const { groups: listed } = await admin.listGroups()
    if (!listed.some(g => g.groupId === groupId && g.protocolType === 'consumer')) {
      fail(`listGroups: ${groupId} missing from ${JSON.stringify(listed)}`)
    }

    const first = await produce(kafka, topic, 'first', 0, FIRST)
    await waitFor('the first records', () => records.length >= first.size)
    const full = Array(PARTITIONS).fill(FIRST).join(',')
    const deadline = Date.now() + TIMEOUT_MS
    while ((await groupOffsets(admin, groupId, topic)) !== full) {
      if (Date.now() > deadline) fail(`fetchOffsets: ${await groupOffsets(admin, groupId, topic)}, expected ${full}`)
      await sleep(100)
    }
    checkExactly('first run', first, records)
    for (const r of records) {
      const owner = a.assignment.has(r.partition) ? 'a' : 'b'
      if (r.member !== owner) fail(`${r.partition}/${r.offset} consumed by ${r.member}, the partition is ${owner}'s`)
    }
    for (const m of members.splice(0)) await m.consumer.disconnect()
    d = await describe(admin, groupId)
    if (d.state !== 'Empty' || d.members.length !== 0) {
      fail(`describeGroups after both left: ${d.state}, ${d.members.length} members`)
    }

    // Second run: only what was produced since.
    const second = await produce(kafka, topic, 'second', FIRST, SECOND)
    const again = []
    members.push(await startMember(kafka, groupId, topic, 'c', again))
    await waitFor('the second run', () => again.length >= second.size)
    await sleep(500) // a re-read of old records would show up here
    checkExactly('second run', second, again)
    try {
      await admin.deleteGroups([groupId])
      fail('deleteGroups of a group with a member succeeded')
    } catch (e) {
      if (e instanceof CheckFailed) throw e
      const errorCode = e.groups && e.groups[0] && e.groups[0].errorCode
      if (errorCode !== 68) {
        fail(`deleteGroups of a group with a member: ${e.message} (error ${errorCode}, expected 68 NON_EMPTY_GROUP)`)
      }
    }
    for (const m of members.splice(0)) await m.consumer.disconnect()
    const end = Array(PARTITIONS).fill(FIRST + SECOND).join(',')
    const afterSecond = await groupOffsets(admin, groupId, topic)
    if (afterSecond !== end) fail(`fetchOffsets after the second run: ${afterSecond}, expected ${end}`)

    const deleted = await admin.deleteGroups([groupId])
    if (deleted.length !== 1 || deleted[0].groupId !== groupId || deleted[0].errorCode !== 0) {
      fail(`deleteGroups: ${JSON.stringify(deleted)}`)
    }
    const none = Array(PARTITIONS).fill(-1).join(',')
    const afterDelete = await groupOffsets(admin, groupId, topic)
    if (afterDelete !== none) fail(`fetchOffsets after deleteGroups: ${afterDelete}, expected ${none}`)
    d = await describe(admin, groupId)
    if (d.state !== 'Dead' || d.members.length !== 0) {
      fail(`describeGroups after deleteGroups: ${d.state}, ${d.members.length} members`)
    }
  } finally {
    for (const m of members) await m.consumer.disconnect()
    await admin.disconnect()
  }
  console.log(
    `kafkajs groups OK in ${((Date.now() - started) / 1000).toFixed(1)}s: 2 members split ${PARTITIONS} ` +
      `partitions and read ${FIRST * PARTITIONS}, a second run read only the ${SECOND * PARTITIONS} new, ` +
      'describe/fetchOffsets/deleteGroups'
  )
}

main().catch(e => {
  console.error(`group_kafkajs: FAILED: ${e instanceof CheckFailed ? e.message : e.stack || e}`)
  process.exit(1)
})
