"""Run the Faust worker (``babelwatch worker``): topics are created first, with explicit partitions."""
from __future__ import annotations


def run_worker(loglevel: str = "info") -> None:
    import faust

    from stream import agents  # noqa: F401  (registers the agent and service)
    from stream.admin import ensure_topics
    from stream.app import app, settings
    from stream.topics import topic_partitions

    settings.run_dir.mkdir(parents=True, exist_ok=True)  # Faust keeps its data directory there
    ensure_topics(settings, topic_partitions())
    faust.Worker(app, loglevel=loglevel).execute_from_commandline()
