#!/usr/bin/env python3
"""kafka-python consumer groups against a kraftd node: two members split and commit, a third
resumes exactly at the commit, and KafkaAdminClient shows and deletes the group.

    python3 group_kafka_python.py BOOTSTRAP

It creates a 4-partition topic and checks that:
  - two KafkaConsumers of one group (each on its own thread) hold 2 partitions each, disjoint,
    covering all 4, and DescribeGroups shows the group Stable with both members, their client ids
    and exactly those assignments, and READ/DELETE/DESCRIBE as authorized operations (kafka-python
    asks for them); ListGroups lists it as a "consumer" group;
  - 50 records per partition are each consumed once, by the partition's owner, with the values
    sent; after both commit, the group's committed offsets are 50 everywhere; after both close
    (LeaveGroup) the group is Empty with no members;
  - after 25 more records per partition, a new member of the group first sees committed offset 50,
    then reads exactly offsets 50..74 of every partition (no duplicates, nothing missing);
  - DeleteGroups refuses the group while that member is in it (NON_EMPTY_GROUP), deletes it once
    the member has left, after which it is not listed, has no offsets and describes as Dead.
Exits 1 with the first mismatch.
"""
import sys
import threading
import time

import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from clientcheck import CheckFailed, fail_and_exit

PARTITIONS = 4
FIRST = 50  # records per partition before the commit
SECOND = 25  # records per partition after it
TIMEOUT_S = 30


def wait_for(what, condition, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def new_consumer(bootstrap, group, client_id):
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )


class MemberThread:
    """A KafkaConsumer that lives on one thread: polls until told to commit, then to close."""

    def __init__(self, bootstrap, group, topic, client_id):
        self.client_id = client_id
        self.lock = threading.Lock()
        self.records = []  # (partition, offset, value)
        self.assignment = set()
        self.committed = None
        self.error = None
        self.commit_now = threading.Event()
        self.stop = threading.Event()
        self.consumer = new_consumer(bootstrap, group, client_id)
        self.consumer.subscribe([topic])
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stop.is_set():
                polled = self.consumer.poll(timeout_ms=100)
                with self.lock:
                    self.assignment = {tp.partition for tp in self.consumer.assignment()}
                    for tp, msgs in polled.items():
                        self.records.extend((tp.partition, m.offset, m.value.decode()) for m in msgs)
                if self.commit_now.is_set() and self.committed is None:
                    self.consumer.commit()
                    self.committed = {
                        tp.partition: self.consumer.committed(tp) for tp in self.consumer.assignment()
                    }
            self.consumer.close()
        except Exception as e:  # reported by the main thread
            self.error = e

    def check(self):
        if self.error is not None:
            raise CheckFailed(f"consumer {self.client_id}: {self.error!r}")


def produce(bootstrap, topic, tag, first_offset, count):
    """`count` records to every partition; returns {(partition, offset): value}, checked against
    the offsets the broker acknowledged."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = []
        for i in range(count):
            for p in range(PARTITIONS):
                value = f"{tag}-p{p}-{i}"
                futures.append((p, first_offset + i, value, producer.send(topic, value=value.encode(), partition=p)))
        producer.flush(timeout=TIMEOUT_S)
        sent = {}
        for p, offset, value, f in futures:
            meta = f.get(timeout=TIMEOUT_S)
            if (meta.partition, meta.offset) != (p, offset):
                raise CheckFailed(f"{value} acked at {meta.partition}/{meta.offset}, expected {p}/{offset}")
            sent[(p, offset)] = value
        return sent
    finally:
        producer.close(timeout=10)


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


def describe(admin, group):
    [d] = admin.describe_consumer_groups([group])
    return d


def member_partitions(member, topic):
    return {p for t, parts in member.member_assignment.assignment for p in parts if t == topic}


def committed_offsets(admin, group, topic):
    offsets = admin.list_consumer_group_offsets(group)
    return {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: group_kafka_python.py BOOTSTRAP")
    bootstrap = sys.argv[1]
    started = time.monotonic()
    suffix = int(time.time() * 1000)
    topic, group = f"group-kp-{suffix}", f"kp-group-{suffix}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="group-kp-admin")
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=30_000)

    # Two members split the topic.
    a = MemberThread(bootstrap, group, topic, "kp-member-a")
    b = MemberThread(bootstrap, group, topic, "kp-member-b")
    members = [a, b]

    def split():
        for m in members:
            m.check()
        with a.lock, b.lock:
            return len(a.assignment) == 2 and len(b.assignment) == 2 and a.assignment | b.assignment == set(range(4))

    wait_for("two members with 2 partitions each", split)
    owners = {p: m for m in members for p in m.assignment}

    d = describe(admin, group)
    if (d.state, d.protocol_type, d.protocol) != ("Stable", "consumer", "range"):
        raise CheckFailed(f"describe {group}: {d.state}/{d.protocol_type}/{d.protocol}, expected Stable/consumer/range")
    # kafka-python asks for authorized operations; with no authorizer that is all a group has.
    if sorted(d.authorized_operations) != ["DELETE", "DESCRIBE", "READ"]:
        raise CheckFailed(f"describe {group}: authorized operations {d.authorized_operations}")
    by_client = {mem.client_id: mem for mem in d.members}
    if set(by_client) != {"kp-member-a", "kp-member-b"}:
        raise CheckFailed(f"describe {group}: members {sorted(by_client)}")
    for m in members:
        if member_partitions(by_client[m.client_id], topic) != m.assignment:
            raise CheckFailed(f"describe {group}: {m.client_id} assigned {by_client[m.client_id].member_assignment}")
    listed = admin.list_consumer_groups()
    if (group, "consumer") not in listed:
        raise CheckFailed(f"list_consumer_groups: {group} missing from {listed}")

    first = produce(bootstrap, topic, "first", 0, FIRST)

    def all_first():
        for m in members:
            m.check()
        return sum(len(m.records) for m in members) >= len(first)

    wait_for("the first records", all_first)
    time.sleep(0.5)  # a duplicate delivery would show up here
    check_exactly("first records", first, [r for m in members for r in m.records])
    for m in members:
        strays = [r for r in m.records if owners[r[0]] is not m]
        if strays:
            raise CheckFailed(f"{m.client_id} consumed {strays[:3]} from partitions it was not assigned")
    for m in members:
        m.commit_now.set()
    wait_for("both members to commit", lambda: all(m.committed is not None or m.error for m in members))
    for m in members:
        m.check()
        if m.committed != {p: FIRST for p in m.assignment}:
            raise CheckFailed(f"{m.client_id} committed {m.committed}, expected {FIRST} on {sorted(m.assignment)}")
    if committed_offsets(admin, group, topic) != {p: FIRST for p in range(PARTITIONS)}:
        raise CheckFailed(f"list_consumer_group_offsets: {committed_offsets(admin, group, topic)}")
    for m in members:
        m.stop.set()
    for m in members:
        m.thread.join(TIMEOUT_S)
        m.check()
    d = describe(admin, group)
    if d.state != "Empty" or d.members:
        raise CheckFailed(f"describe {group} after both left: state {d.state}, members {d.members}")

    # A new member resumes exactly at the commit.
    second = produce(bootstrap, topic, "second", FIRST, SECOND)
    c = new_consumer(bootstrap, group, "kp-member-c")
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    c.subscribe([topic])
    records = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(records) < len(second):
        if time.monotonic() > deadline:
            raise CheckFailed(f"the new member read {len(records)} of {len(second)} records")
        for tp, msgs in c.poll(timeout_ms=200).items():
            records.extend((tp.partition, m.offset, m.value.decode()) for m in msgs)
    for tp, msgs in c.poll(timeout_ms=500).items():
        records.extend((tp.partition, m.offset, m.value.decode()) for m in msgs)
    check_exactly("resumed after the commit", second, records)
    if {tp.partition for tp in c.assignment()} != set(range(PARTITIONS)):
        raise CheckFailed(f"the only member holds {c.assignment()}")
    c.commit()
    want = {p: FIRST + SECOND for p in range(PARTITIONS)}
    if {tp.partition: c.committed(tp) for tp in tps} != want:
        raise CheckFailed(f"after the new member's commit: {[c.committed(tp) for tp in tps]}")
    if committed_offsets(admin, group, topic) != want:
        raise CheckFailed(f"list_consumer_group_offsets: {committed_offsets(admin, group, topic)}, expected {want}")
    d = describe(admin, group)
    if d.state != "Stable" or [m.client_id for m in d.members] != ["kp-member-c"]:
        raise CheckFailed(f"describe {group} with one member: {d.state}, {d.members}")
    if member_partitions(d.members[0], topic) != set(range(PARTITIONS)):
        raise CheckFailed(f"describe {group}: the only member is assigned {d.members[0].member_assignment}")

    # DeleteGroups: refused while a member is in the group, then done.
    [(gid, err)] = admin.delete_consumer_groups([group])
    if (gid, err) != (group, Errors.NonEmptyGroupError):
        raise CheckFailed(f"delete_consumer_groups of a group with a member: {gid} {err}")
    c.close()
    [(gid, err)] = admin.delete_consumer_groups([group])
    if (gid, err) != (group, Errors.NoError):
        raise CheckFailed(f"delete_consumer_groups after the member left: {gid} {err}")
    if any(g == group for g, _ in admin.list_consumer_groups()):
        raise CheckFailed(f"{group} still listed after delete")
    if committed_offsets(admin, group, topic):
        raise CheckFailed(f"{group} still has offsets after delete: {committed_offsets(admin, group, topic)}")
    d = describe(admin, group)
    if d.state != "Dead" or d.members:
        raise CheckFailed(f"describe a deleted group: state {d.state}, members {d.members}")
    admin.close()
    print(
        f"kafka-python groups OK in {time.monotonic() - started:.1f}s: 2 members split {PARTITIONS} partitions, "
        f"{len(first)} records once, a new member resumed at {FIRST} and read {len(second)}, admin list/describe/"
        "offsets/delete"
    )


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        fail_and_exit("group_kafka_python", e)
