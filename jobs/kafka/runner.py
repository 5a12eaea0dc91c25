"""What ``manage.py runkafka`` does, start to end: check the settings, reach Kafka, run the ingress, close.

Each way it cannot start is one line and a named exit status: a setting or the schema to fix is ``CONFIG``,
Kafka out of reach at start is ``UNAVAILABLE`` (an orchestrator's restart may mend it), said within
:data:`jobs.kafka.connect.BOOTSTRAP_TIMEOUT_MS` and without kafka-python's own lines about each failed
connection (the one line carries its error).
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from kafka.errors import KafkaError

from jobs.db_checks import migrations_problem
from jobs.kafka import connect
from jobs.kafka.ingress import Ingress
from zipline_site.exit_codes import ExitCode
from zipline_site.logs import quieted
from zipline_site.sections import KafkaConfig

logger = logging.getLogger("zipline.kafka")


class CannotStart(Exception):
    """runkafka cannot start; ``code`` is its exit status, the message its one line."""

    def __init__(self, message: str, code: ExitCode) -> None:
        self.code = code
        super().__init__(message)


def check(config: KafkaConfig) -> None:
    """Raise :class:`CannotStart` for a setting runkafka cannot run without, or a database not migrated."""
    if not config.bootstrap_servers:
        raise CannotStart(
            "JQS_KAFKA_BOOTSTRAP_SERVERS is not set (host:port,host:port of the Kafka brokers)", ExitCode.CONFIG
        )
    if not config.group.strip():
        raise CannotStart("JQS_KAFKA_GROUP is empty (the consumer group's name)", ExitCode.CONFIG)
    problem = migrations_problem()
    if problem:
        raise CannotStart(problem, ExitCode.CONFIG)


def run(config: KafkaConfig, stop: threading.Event) -> None:
    """Consume ``config.topic`` until ``stop`` is set."""
    check(config)
    servers = ",".join(config.bootstrap_servers)
    try:
        with quieted("kafka", logging.CRITICAL):  # a broker out of reach is ours to say
            consumer = connect.consumer(config)
    except KafkaError as exc:
        raise CannotStart(f"Kafka at {servers} does not answer: {exc}", ExitCode.UNAVAILABLE) from None
    try:
        with quieted("kafka", logging.CRITICAL):  # a broker out of reach is ours to say
            producer = connect.producer(config)
    except KafkaError as exc:
        consumer.close(autocommit=False)
        raise CannotStart(f"Kafka at {servers} does not answer: {exc}", ExitCode.UNAVAILABLE) from None
    logger.info("consuming", extra={"topic": config.topic, "group": config.group, "servers": servers})
    try:
        Ingress(config, consumer, producer, stop, settings.DATA_UPLOAD_MAX_MEMORY_SIZE).run()
    finally:
        producer.close(timeout=5)
        consumer.close(autocommit=False)  # leaves the group: its partitions go to the others at once
