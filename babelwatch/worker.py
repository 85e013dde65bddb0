"""Run the Faust worker (``babelwatch worker``): topics are created first, with explicit partitions."""
from __future__ import annotations

import logging

log = logging.getLogger("babelwatch.worker")


def ensure_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="babelwatch-setup")
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(t, n, 1) for t, n in partitions.items() if t not in existing]
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # a second worker won the race
            log.info("created topics %s", [t.name for t in wanted])
    finally:
        admin.close()


def run_worker(loglevel: str = "info") -> None:
    import faust

    from stream import agents  # noqa: F401  (registers the agent and service)
    from stream.app import app, settings
    from stream.topics import topic_partitions

    ensure_topics(settings.bootstrap, topic_partitions())
    faust.Worker(app, loglevel=loglevel).execute_from_commandline()
