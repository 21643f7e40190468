#!/usr/bin/env python3
"""Reads every record of a topic with kafka-python, without a consumer group.

    python3 read_topic.py BOOTSTRAP TOPIC

prints one JSON object per record, partition by partition in offset order:
    {"partition": 0, "offset": 0, "key": B64|null, "value": B64|null,
     "headers": [[name, B64|null], ...], "timestamp": ms}

It assigns all partitions (assign + seek_to_beginning, group_id=None: the server has no group
coordinator yet) and stops once each partition's position reaches its end offset.
check_kafka_python.py imports `read_topic` from here.
"""
import base64
import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition

from clientcheck import CheckFailed, Received


def read_topic(bootstrap, topic, timeout_s=90):
    """Returns every record below each partition's end offset, as `Received`, partition by partition.

    Fails if a record's timestamp type is not CreateTime (the topic default)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="kraftd-read-topic",
        fetch_max_bytes=8 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if time.monotonic() > deadline:
                raise CheckFailed(f"no metadata for topic {topic!r} within {timeout_s}s")
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out = {tp.partition: [] for tp in tps}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                progress = {tp.partition: (consumer.position(tp), ends[tp]) for tp in tps}
                raise CheckFailed(
                    f"reading {topic!r} timed out after {timeout_s}s; (position, end) per partition: {progress}"
                )
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                out[tp.partition].extend(r for r in records if r.offset < ends[tp])
        received = []
        for partition in sorted(out):
            for r in out[partition]:
                if r.timestamp_type != 0:
                    raise CheckFailed(f"{topic}/{partition} offset {r.offset}: timestamp type {r.timestamp_type}, not CreateTime (0)")
                received.append(Received(partition, r.offset, r.key, r.value, list(r.headers), r.timestamp))
        return received
    finally:
        consumer.close()


def b64(data):
    return None if data is None else base64.b64encode(data).decode("ascii")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: read_topic.py BOOTSTRAP TOPIC")
    try:
        received = read_topic(sys.argv[1], sys.argv[2])
    except CheckFailed as e:
        sys.exit(f"read_topic: {e}")
    out = sys.stdout
    for r in received:
        line = {
            "partition": r.partition,
            "offset": r.offset,
            "key": b64(r.key),
            "value": b64(r.value),
            "headers": [[name, b64(value)] for name, value in r.headers],
            "timestamp": r.timestamp,
        }
        out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
