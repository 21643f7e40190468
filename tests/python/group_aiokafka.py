#!/usr/bin/env python3
"""aiokafka consumer groups against a kraftd node: a two-member AIOKafkaConsumer group consumes
and commits, and a restarted consumer resumes exactly at the commit.

    python3 group_aiokafka.py BOOTSTRAP

It creates a 4-partition topic and checks that:
  - two AIOKafkaConsumers of one group hold 2 partitions each, disjoint, covering all 4;
  - 20 records per partition (AIOKafkaProducer, offsets from the acks) are each consumed once by
    the partition's owner, with the values sent;
  - each member commits offset 12 with metadata on its partitions (not the end: the restart must
    resume at the commit, not at the log end); committed() and the admin client's
    list_consumer_group_offsets both answer 12 and the metadata;
  - after both stop and 5 more records per partition, a restarted consumer of the group reads
    exactly offsets 12..24 of every partition, in order, with the values sent; it commits its
    position and the group's offsets become 25.
Exits 1 with the first mismatch.
"""
import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from clientcheck import CheckFailed, fail_and_exit

PARTITIONS = 4
FIRST = 20
COMMIT_AT = 12
SECOND = 5
TIMEOUT_S = 30


def consumer(bootstrap, group, client_id):
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )


async def wait_for(what, condition, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def produce(bootstrap, topic, tag, first_offset, count):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = {}
        for i in range(count):
            for p in range(PARTITIONS):
                value = f"{tag}-p{p}-{i}"
                meta = await producer.send_and_wait(topic, value=value.encode(), partition=p)
                if (meta.partition, meta.offset) != (p, first_offset + i):
                    raise CheckFailed(f"{value} acked at {meta.partition}/{meta.offset}, not {p}/{first_offset + i}")
                sent[(p, meta.offset)] = value
        return sent
    finally:
        await producer.stop()


async def consume(consumers, want, records):
    """Polls all `consumers` until `want` records arrived in total (then briefly more, so that a
    duplicate would show); `records[i]` collects consumer i's (partition, offset, value)."""
    deadline = time.monotonic() + TIMEOUT_S
    settle_until = None
    while settle_until is None or time.monotonic() < settle_until:
        if time.monotonic() > deadline:
            raise CheckFailed(f"read {sum(map(len, records))} of {want} records")
        batches = await asyncio.gather(*(c.getmany(timeout_ms=100) for c in consumers))
        for i, batch in enumerate(batches):
            for tp, msgs in batch.items():
                records[i].extend((tp.partition, m.offset, m.value.decode()) for m in msgs)
        if settle_until is None and sum(map(len, records)) >= want:
            settle_until = time.monotonic() + 0.5


def check_exactly(what, sent, records):
    got = {}
    for p, o, v in records:
        if (p, o) in got:
            raise CheckFailed(f"{what}: {p}/{o} consumed twice")
        got[(p, o)] = v
    if got != sent:
        extra = sorted(set(got) - set(sent))[:5]
        missing = sorted(set(sent) - set(got))[:5]
        wrong = [(k, got[k], sent[k]) for k in sent if k in got and got[k] != sent[k]][:5]
        raise CheckFailed(f"{what}: unexpected {extra}, missing {missing}, wrong values {wrong}")


async def group_offsets(admin, group, topic):
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp.partition: (om.offset, om.metadata) for tp, om in offsets.items() if tp.topic == topic}


async def run(bootstrap):
    started = time.monotonic()
    suffix = int(time.time() * 1000)
    topic, group = f"group-aio-{suffix}", f"aio-group-{suffix}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

        members = [consumer(bootstrap, group, f"aio-member-{n}") for n in ("a", "b")]
        for m in members:
            await m.start()
            m.subscribe([topic])
        try:

            def split():
                sets = [{tp.partition for tp in m.assignment()} for m in members]
                return all(len(s) == 2 for s in sets) and set().union(*sets) == set(range(PARTITIONS))

            # aiokafka joins in the background; getmany() keeps the members' fetchers running.
            deadline = time.monotonic() + TIMEOUT_S
            while not split():
                if time.monotonic() > deadline:
                    raise CheckFailed(f"no 2+2 split: {[sorted(m.assignment()) for m in members]}")
                extra = await asyncio.gather(*(m.getmany(timeout_ms=100) for m in members))
                if any(extra):
                    raise CheckFailed(f"records before any were produced: {extra}")
            owned = [{tp.partition for tp in m.assignment()} for m in members]

            first = await produce(bootstrap, topic, "first", 0, FIRST)
            records = [[], []]
            await consume(members, len(first), records)
            check_exactly("first records", first, records[0] + records[1])
            for i, m in enumerate(members):
                strays = [r for r in records[i] if r[0] not in owned[i]]
                if strays:
                    raise CheckFailed(f"member {i} consumed {strays[:3]} outside its partitions {owned[i]}")

            for i, m in enumerate(members):
                await m.commit(
                    {TopicPartition(topic, p): OffsetAndMetadata(COMMIT_AT, f"member-{i}") for p in owned[i]}
                )
                for p in owned[i]:
                    got = await m.committed(TopicPartition(topic, p))
                    if got != COMMIT_AT:
                        raise CheckFailed(f"committed({p}) = {got} after committing {COMMIT_AT}")
            want = {p: (COMMIT_AT, f"member-{i}") for i in range(2) for p in owned[i]}
            got = await group_offsets(admin, group, topic)
            if got != want:
                raise CheckFailed(f"list_consumer_group_offsets: {got}, expected {want}")
        finally:
            for m in members:
                await m.stop()

        # A restart resumes at the commit.
        second = await produce(bootstrap, topic, "second", FIRST, SECOND)
        restarted = consumer(bootstrap, group, "aio-member-restarted")
        await restarted.start()
        try:
            restarted.subscribe([topic])
            records = [[]]
            resumed = {k: v for k, v in first.items() if k[1] >= COMMIT_AT} | second
            await consume([restarted], len(resumed), records)
            check_exactly("after the restart", resumed, records[0])
            for p in range(PARTITIONS):
                offsets = [o for q, o, _ in records[0] if q == p]
                if offsets != list(range(COMMIT_AT, FIRST + SECOND)):
                    raise CheckFailed(f"partition {p}: read offsets {offsets} after resuming at {COMMIT_AT}")
            await restarted.commit()
            for tp in tps:
                if await restarted.committed(tp) != FIRST + SECOND:
                    raise CheckFailed(f"{tp}: committed {await restarted.committed(tp)} after the final commit")
        finally:
            await restarted.stop()
        got = {p: o for p, (o, _) in (await group_offsets(admin, group, topic)).items()}
        if got != {p: FIRST + SECOND for p in range(PARTITIONS)}:
            raise CheckFailed(f"list_consumer_group_offsets after the restart: {got}")
    finally:
        await admin.close()
    return (
        f"aiokafka groups OK in {time.monotonic() - started:.1f}s: 2 members split {PARTITIONS} partitions, "
        f"committed {COMMIT_AT}, the restart read offsets {COMMIT_AT}..{FIRST + SECOND - 1} of each"
    )


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: group_aiokafka.py BOOTSTRAP")
    print(asyncio.run(run(sys.argv[1])))


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        fail_and_exit("group_aiokafka", e)
