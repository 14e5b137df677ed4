"""The seed's consumer, the Python design Fleetpulse replaces, as its demos wrote it: a
confluent-kafka consumer with auto-commit off that reads a window of messages, inserts them
into PostgreSQL with one psycopg2 `execute_values` per window, commits the transaction, then
commits the Kafka offsets (at least once: a crash between the two stores a window twice).

    python seed_consumer.py BOOTSTRAP TOPIC GROUP DATABASE_URL TABLE

Runs until stopped (SIGTERM), as the demos did; scripts/bench-aggregator.py times it until
TABLE holds every call.
"""

import json
import signal
import sys

import psycopg2
import psycopg2.extras
from confluent_kafka import Consumer

# The demos' window: up to this many messages, or what arrived within a second.
WINDOW = 1000


def main() -> None:
    bootstrap, topic, group, database_url, table = sys.argv[1:6]
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    db = psycopg2.connect(database_url)
    insert = f"INSERT INTO {table} (call_id, caller, callee, start_time, duration_ms) VALUES %s"
    while running:
        messages = consumer.consume(num_messages=WINDOW, timeout=1.0)
        rows = []
        for message in messages:
            if message.error():
                continue
            call = json.loads(message.value())
            rows.append(
                (
                    call["call_id"],
                    call["caller"],
                    call["callee"],
                    call["start_time"],
                    round(call["duration_secs"] * 1000),
                )
            )
        if not rows:
            continue
        with db.cursor() as cursor:
            psycopg2.extras.execute_values(cursor, insert, rows, page_size=WINDOW)
        db.commit()
        consumer.commit(asynchronous=False)
    consumer.close()
    db.close()


if __name__ == "__main__":
    main()
