"""``babelwatch produce`` and ``babelwatch tail``: write a file to a topic, print a topic."""
from __future__ import annotations

from pathlib import Path

from fusion_model.corpora import SAMPLE_EVENTS as SAMPLE


def register(sub) -> None:
    p = sub.add_parser("produce", help="replay a JSON-lines file of events into the events topic")
    p.add_argument("file", nargs="?", default=str(SAMPLE))
    p.add_argument("--rate", type=float, default=0.0, help="events/s, 0 = as fast as possible")
    p.add_argument("--topic", default="events")
    p.add_argument("--json", action="store_true", help="print {\"topic\", \"sent\", \"seconds\"} when done")
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
    import json
    import time

    from babelwatch.cli.errors import USAGE
    from babelwatch.cli.progress import counter
    from babelwatch.replay import replay

    path = Path(args.file)
    try:
        total = sum(1 for line in path.read_bytes().splitlines() if line.strip())
    except OSError as e:
        print(f"babelwatch: error: cannot read {path}: {e.strerror or e}", file=__import__("sys").stderr)
        return USAGE
    topic = topic_name(settings, args.topic)
    t0 = time.monotonic()
    with counter(f"produce -> {topic}", total) as advance_to:
        sent = replay(path, settings, topic, rate=args.rate, progress_every=0, on_sent=advance_to)
    if args.json:
        print(json.dumps({"topic": topic, "sent": sent, "seconds": round(time.monotonic() - t0, 3)}))
    return 0


def tail(args, settings) -> int:
    from babelwatch.tail import tail as tail_topic

    try:
        tail_topic(settings, topic_name(settings, args.topic), timeout_s=args.timeout)
    except KeyboardInterrupt:
        pass
    return 0
