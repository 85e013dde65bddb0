"""``babelwatch produce`` and ``babelwatch tail``: write a file to a topic, print a topic."""
from __future__ import annotations

from pathlib import Path

from fusion_model.corpora import SAMPLE_EVENTS as SAMPLE


def register(sub) -> None:
    p = sub.add_parser("produce", help="replay a JSON-lines file of events into the events topic")
    p.add_argument("file", nargs="?", default=str(SAMPLE))
    p.add_argument("--rate", type=float, default=0.0, help="events/s, 0 = as fast as possible")
    p.add_argument("--topic", default="events")
    p.set_defaults(run=produce)

    p = sub.add_parser("tail", help="print a topic's records: events, scored, alerts, deadletter or a name")
    p.add_argument("topic")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(run=tail)


def topic_name(settings, name: str) -> str:
    """A topic alias (events, scored, alerts, deadletter) -> the configured name; others unchanged."""
    aliases = {
        "events": settings.topic_events,
        "scored": settings.topic_scored,
        "alerts": settings.topic_alerts,
        "deadletter": settings.topic_deadletter,
    }
    return aliases.get(name, name)


def produce(args, settings) -> int:
    from babelwatch.replay import replay

    replay(Path(args.file), settings, topic_name(settings, args.topic), rate=args.rate)
    return 0


def tail(args, settings) -> int:
    from babelwatch.tail import tail as tail_topic

    try:
        tail_topic(settings, topic_name(settings, args.topic), timeout_s=args.timeout)
    except KeyboardInterrupt:
        pass
    return 0
