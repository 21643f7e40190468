#!/usr/bin/env python3
"""confluent-kafka (librdkafka) consumer groups against a kraftd node: three member processes
split a topic, one is SIGKILLed, the two survivors take over its partitions.

    python3 group_confluent_kafka.py BOOTSTRAP [STRATEGY ...]

For each partition.assignment.strategy (default: range, then cooperative-sticky; `consumer`
selects KIP-848's group.protocol=consumer, whose node must set group.consumer.session.timeout.ms
to 6000) it creates a
6-partition topic and starts three member processes (this script with `member ...`) in one group.
It checks that:
  - the members settle on 2 partitions each, disjoint, covering all 6;
  - 10 records per partition produced then are each consumed once, by the partition's owner,
    and the members commit offset 10 everywhere;
  - after one member's process is SIGKILLed (it sends no LeaveGroup), the two survivors hold 3
    partitions each, covering all 6, within session.timeout.ms plus a margin; with
    cooperative-sticky each survivor keeps its old partitions and none is ever revoked;
  - 10 more records per partition produced right after the kill are each consumed exactly once
    by the survivors, at offsets 10..19, with the values sent;
  - the AdminClient then describes the group as Stable with the 2 survivors and lists committed
    offset 20 for every partition.
Members print JSON lines (assignments, records, commits) that this script reads. Exits 1 with the
first mismatch.
"""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from clientcheck import CheckFailed, fail_and_exit

PARTITIONS = 6
PER_PARTITION = 10
SESSION_TIMEOUT_MS = 6000
# Detecting the dead member takes session.timeout.ms; the rebalance after it (survivors see
# REBALANCE_IN_PROGRESS on a heartbeat, rejoin and sync) gets this much more.
TAKEOVER_MARGIN_S = 6
TIMEOUT_S = 30
STRATEGIES = ["range", "cooperative-sticky"]


# ---- member process -------------------------------------------------------------------------

def member(bootstrap, topic, group, strategy, name):
    def emit(event, **fields):
        print(json.dumps({"event": event, **fields}), flush=True)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if strategy == "consumer":
        # KIP-848: the coordinator assigns; session timeout and heartbeat interval are the
        # broker's group.consumer.* settings.
        config["group.protocol"] = "consumer"
    else:
        config["partition.assignment.strategy"] = strategy
        config["session.timeout.ms"] = SESSION_TIMEOUT_MS
        config["heartbeat.interval.ms"] = 500
    consumer = Consumer(config)

    positions = {}  # partition -> the offset after the last record consumed from it

    def commit(why, partitions):
        offsets = [TopicPartition(topic, p, positions[p]) for p in sorted(partitions) if p in positions]
        if not offsets:
            return
        try:
            done = consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            emit("commit_failed", why=why, error=str(e))
            return
        failed = [str(tp) for tp in done if tp.error is not None]
        if failed:
            emit("commit_failed", why=why, error=failed)
        emit("committed", why=why, offsets={tp.partition: tp.offset for tp in done if tp.error is None})

    def on_assign(c, partitions):
        emit("assigned", partitions=sorted(tp.partition for tp in partitions))

    def on_revoke(c, partitions):
        # Commit what was consumed before the partitions move to another member.
        revoked = sorted(tp.partition for tp in partitions)
        commit("revoke", revoked)
        for p in revoked:
            positions.pop(p, None)
        emit("revoked", partitions=revoked)

    def on_lost(c, partitions):
        emit("lost", partitions=sorted(tp.partition for tp in partitions))

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    last = None
    while not stop:
        msgs = consumer.consume(num_messages=100, timeout=0.2)
        now = sorted(tp.partition for tp in consumer.assignment())
        if now != last:
            emit("assignment", partitions=now)
            last = now
        records = []
        for m in msgs:
            if m.error() is not None:
                emit("error", error=str(m.error()))
                continue
            records.append([m.partition(), m.offset(), m.value().decode()])
            positions[m.partition()] = m.offset() + 1
        if records:
            emit("records", records=records)
            commit("consumed", {p for p, _, _ in records})
    consumer.close()
    emit("closed")


# ---- orchestrator ---------------------------------------------------------------------------

class Member:
    """One member process and everything it printed so far."""

    def __init__(self, bootstrap, topic, group, strategy, name):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "member", bootstrap, topic, group, strategy, name],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events = queue.Queue()
        self.assignment = None
        self.history = []  # (time, event dict)
        self.records = []  # (partition, offset, value, time)
        self.committed = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def drain(self):
        while True:
            try:
                e = self.events.get_nowait()
            except queue.Empty:
                return
            now = time.monotonic()
            self.history.append((now, e))
            if e["event"] == "assignment":
                self.assignment = set(e["partitions"])
            elif e["event"] == "records":
                self.records.extend((p, o, v, now) for p, o, v in e["records"])
            elif e["event"] == "committed":
                self.committed.update({int(p): o for p, o in e["offsets"].items()})
            elif e["event"] in ("error", "commit_failed"):
                raise CheckFailed(f"member {self.name}: {e}")

    def events_since(self, t, kind):
        return [e for at, e in self.history if at >= t and e["event"] == kind]


def wait_for(what, members, condition, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while True:
        for m in members:
            m.drain()
            if m.proc.poll() is not None and m.proc.returncode != -signal.SIGKILL:
                raise CheckFailed(f"member {m.name} exited with {m.proc.returncode} while waiting for {what}")
        if condition():
            return
        if time.monotonic() > deadline:
            state = {m.name: (sorted(m.assignment or []), len(m.records), m.committed) for m in members}
            raise CheckFailed(f"timed out after {timeout}s waiting for {what}; members: {state}")
        time.sleep(0.05)


def split_evenly(members, each):
    sets = [m.assignment for m in members]
    if any(s is None or len(s) != each for s in sets):
        return False
    union = set().union(*sets)
    return len(union) == PARTITIONS and union == set(range(PARTITIONS))


def produce(bootstrap, topic, tag):
    """PER_PARTITION records to every partition; returns {(partition, offset): value}."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    acked, errors = {}, []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[(msg.partition(), msg.offset())] = msg.value().decode()

    for i in range(PER_PARTITION):
        for p in range(PARTITIONS):
            producer.produce(topic, value=f"{tag}-p{p}-{i}".encode(), partition=p, on_delivery=on_delivery)
    if producer.flush(TIMEOUT_S) or errors:
        raise CheckFailed(f"produce {tag}: errors {errors[:3]}")
    return acked


def check_consumed_once(what, acked, members, owners=None):
    """Every acked record was consumed by exactly one of `members` (by its partition's owner in
    `owners` if given), at the acked offset with the sent value."""
    seen = {}
    for m in members:
        for p, o, v, _ in m.records:
            if (p, o) not in acked:
                continue
            if (p, o) in seen:
                raise CheckFailed(f"{what}: {p}/{o} consumed twice (by {seen[(p, o)]} and {m.name})")
            seen[(p, o)] = m.name
            if v != acked[(p, o)]:
                raise CheckFailed(f"{what}: {p}/{o} has value {v!r}, sent {acked[(p, o)]!r}")
            if owners is not None and owners[p] != m.name:
                raise CheckFailed(f"{what}: {p}/{o} consumed by {m.name}, partition {p} is {owners[p]}'s")
    missing = sorted(set(acked) - set(seen))
    if missing:
        raise CheckFailed(f"{what}: {len(missing)} records never consumed, first {missing[:5]}")


def scenario(bootstrap, strategy):
    started = time.monotonic()
    suffix = f"{strategy}-{int(time.time() * 1000)}"
    topic, group = f"group-ck-{suffix}", f"ck-group-{suffix}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name, f in admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]).items():
        f.result(timeout=TIMEOUT_S)

    members = [Member(bootstrap, topic, group, strategy, f"{strategy}-m{i}") for i in range(3)]
    try:
        wait_for("3 members with 2 partitions each", members, lambda: split_evenly(members, 2))
        joined_s = time.monotonic() - started
        before = {m.name: set(m.assignment) for m in members}
        owners = {p: m.name for m in members for p in m.assignment}

        first = produce(bootstrap, topic, "before")
        wait_for(
            "the first records consumed and committed",
            members,
            lambda: all(m.committed.get(p) == PER_PARTITION for m in members for p in before[m.name]),
        )
        check_consumed_once(f"{strategy} before the kill", first, members, owners)
        if any(m.assignment != before[m.name] for m in members):
            raise CheckFailed(f"{strategy}: assignment changed without a membership change: {before}")

        victim, survivors = members[2], members[:2]
        killed_at = time.monotonic()
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        second = produce(bootstrap, topic, "after")

        wait_for(
            "the survivors to take over the dead member's partitions",
            survivors,
            lambda: split_evenly(survivors, 3),
            timeout=SESSION_TIMEOUT_MS / 1000 + TAKEOVER_MARGIN_S - (time.monotonic() - killed_at),
        )
        takeover_s = time.monotonic() - killed_at
        wait_for(
            "every record produced after the kill",
            survivors,
            lambda: all(max(m.committed.get(p, -1) for m in survivors) == 2 * PER_PARTITION for p in range(PARTITIONS)),
        )
        time.sleep(1)  # a duplicate delivery would show up here
        for m in survivors:
            m.drain()
        check_consumed_once(f"{strategy} after the kill", second, survivors)

        # KIP-848's assignment is incremental too: survivors keep theirs and gain the rest.
        if strategy in ("cooperative-sticky", "consumer"):
            for m in survivors:
                if not before[m.name] <= m.assignment:
                    raise CheckFailed(f"{m.name} lost partitions: {sorted(before[m.name])} -> {sorted(m.assignment)}")
                revoked = [e for e in m.events_since(killed_at, "revoked") if e["partitions"]]
                revoked += [e for e in m.events_since(killed_at, "lost") if e["partitions"]]
                if revoked:
                    raise CheckFailed(f"{m.name}: cooperative rebalance revoked partitions: {revoked}")
                gained = set().union(*(set(e["partitions"]) for e in m.events_since(killed_at, "assigned")))
                if gained != m.assignment - before[m.name] or not gained <= before[victim.name]:
                    raise CheckFailed(
                        f"{m.name}: incremental assign {sorted(gained)} is not the dead member's "
                        f"{sorted(before[victim.name])} minus what the other survivor got"
                    )

        check_group_admin(admin, group, topic, survivors)
        return f"{strategy}: joined in {joined_s:.1f}s, takeover {takeover_s:.1f}s after SIGKILL"
    finally:
        for m in members:
            if m.proc.poll() is None:
                m.proc.send_signal(signal.SIGTERM)
        for m in members:
            try:
                m.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                m.proc.kill()


def check_group_admin(admin, group, topic, survivors):
    [described] = admin.describe_consumer_groups([group]).values()
    d = described.result(timeout=TIMEOUT_S)
    if d.state != ConsumerGroupState.STABLE:
        raise CheckFailed(f"describe {group}: state {d.state}, expected STABLE")
    by_client = {mem.client_id: mem for mem in d.members}
    if set(by_client) != {m.name for m in survivors}:
        raise CheckFailed(f"describe {group}: members {sorted(by_client)}, expected {[m.name for m in survivors]}")
    for m in survivors:
        got = {tp.partition for tp in by_client[m.name].assignment.topic_partitions if tp.topic == topic}
        if got != m.assignment:
            raise CheckFailed(f"describe {group}: {m.name} assigned {sorted(got)}, it consumes {sorted(m.assignment)}")
    [offsets] = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
    got = {tp.partition: tp.offset for tp in offsets.result(timeout=TIMEOUT_S).topic_partitions if tp.topic == topic}
    want = {p: 2 * PER_PARTITION for p in range(PARTITIONS)}
    if got != want:
        raise CheckFailed(f"list offsets {group}: {got}, expected {want}")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "member":
        member(*sys.argv[2:])
        return
    if len(sys.argv) < 2:
        sys.exit("usage: group_confluent_kafka.py BOOTSTRAP [STRATEGY ...]")
    bootstrap = sys.argv[1]
    strategies = sys.argv[2:] or STRATEGIES
    summary = [scenario(bootstrap, s) for s in strategies]
    print("confluent-kafka groups OK: " + "; ".join(summary))


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        fail_and_exit("group_confluent_kafka", e)
