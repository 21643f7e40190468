#!/usr/bin/env python3
"""Asks for a leader election with confluent-kafka's AdminClient.elect_leaders (ElectLeaders).

    python3 elect_leaders.py BOOTSTRAP preferred|unclean TOPIC PARTITION

prints one JSON object: {"error": null} when the election was made, else {"error": "<Kafka
error name>"} (e.g. ELECTION_NOT_NEEDED), and exits 0 either way; 1 if the request failed.
"""
import json
import sys

from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import AdminClient


def main():
    bootstrap, kind, topic, partition = sys.argv[1:5]
    election = {"preferred": ElectionType.PREFERRED, "unclean": ElectionType.UNCLEAN}[kind]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    tp = TopicPartition(topic, int(partition))
    try:
        results = admin.elect_leaders(election, [tp]).result(timeout=60)
    except Exception as e:  # the whole request failed
        print(json.dumps({"request_error": str(e)}))
        return 1
    [(got, error)] = list(results.items())
    assert (got.topic, got.partition) == (topic, int(partition)), got
    name = None
    if error is not None:
        # A KafkaError, or a KafkaException wrapping one.
        err = error if hasattr(error, "name") else error.args[0]
        name = err.name()
        print(err.str(), file=sys.stderr)
    print(json.dumps({"error": name}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
