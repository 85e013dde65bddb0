"""``babelwatch bench pipeline|detectors|model|soak|stories``."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks")
    bsub = p.add_subparsers(dest="bench", required=True)
    b = bsub.add_parser("pipeline", help="raw consume->produce vs the pipeline on the same broker")
    b.add_argument("--events", type=int, default=20_000)
    b.add_argument("--real-events", type=int, default=3_000)
    b.add_argument("--json", action="store_true", help="the figures as one JSON object")
    b.set_defaults(run=pipeline)
    b = bsub.add_parser("detectors", help="detectors on labelled synthetic streams: precision, recall, delay")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--streams", type=int, default=50, help="streams, kinds in turn (spike, shift, drift, ...)")
    b.add_argument("--days", type=int, default=4, help="days per stream (the first is warm-up)")
    b.add_argument("--json", action="store_true", help="the table as one JSON object")
    b.set_defaults(run=detectors)
    b = bsub.add_parser("model", help="the fusion model served by Triton vs the same ONNX in-process: rows/s, "
                                      "p50/p99 at batch 1 and 32, ratio")
    b.add_argument("--batch-sizes", default="1,32")
    b.add_argument("--seconds", type=float, default=10.0, help="measuring time per side and batch size")
    b.add_argument("--concurrency", type=int, default=0, help="also run Triton with N requests in flight")
    b.add_argument("--json", action="store_true", help="the figures as one JSON object")
    b.set_defaults(run=model)
    b = bsub.add_parser("soak", help="a long run through the worker (cheap model): RSS of worker, notifier and "
                                     "Triton at intervals, slope and growth after warm-up")
    b.add_argument("--events", type=int, default=1_000_000)
    b.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    b.add_argument("--warmup", type=float, default=0.2, help="fraction of the events left out of the trend")
    b.add_argument("--backlog", type=int, default=20_000, help="most events produced but not yet scored")
    b.add_argument("--no-notifier", action="store_true", help="do not run `babelwatch notify` alongside")
    b.add_argument("--strict", action="store_true", help="exit 1 when a component grows by 5 %% or more")
    b.add_argument("--no-alerts", action="store_true", help="no periodic burst (by default one topic bursts every "
                                                            "minute on 5-s windows, so alerts fire and resolve)")
    b.add_argument("--json", action="store_true", help="the figures as one JSON object (samples go to stderr)")
    b.set_defaults(run=soak)
    b = bsub.add_parser("stories", help="story grouping on the labelled multilingual set: B-cubed P/R/F1, "
                                        "cross-lingual merge, held-out halves; --cost: worker CPU per event")
    b.add_argument("--cost", action="store_true", help="also measure RedisStories against BABELWATCH_REDIS_URL "
                                                        "and the embedding output's cost on the batch call")
    b.add_argument("--triton", default=None, help="with --cost: also measure the embedding output through this "
                                                  "Triton gRPC host:port")
    b.add_argument("--threshold", type=float, default=None, help="instead of BABELWATCH_STORY_THRESHOLD")
    b.add_argument("--set", default=None, help="another labelled JSONL set of the same form")
    b.add_argument("--json", action="store_true")
    b.set_defaults(run=stories)


def pipeline(args, settings) -> int:
    from babelwatch.bench.pipeline import run

    return run(settings, n_events=args.events, n_real=args.real_events, as_json=args.json)


def detectors(args, settings) -> int:
    from babelwatch.bench.detectors import run

    return run(seed=args.seed, n_streams=args.streams, days=args.days, as_json=args.json)


def model(args, settings) -> int:
    from babelwatch.bench.model import run

    return run(settings, batch_sizes=[int(x) for x in args.batch_sizes.split(",")],
               seconds=args.seconds, concurrency=args.concurrency, as_json=args.json)


def soak(args, settings) -> int:
    from babelwatch.bench.soak import run

    return run(settings, n_events=args.events, interval_s=args.interval, warmup=args.warmup,
               backlog=args.backlog, notifier=not args.no_notifier, strict=args.strict,
               alerts=not args.no_alerts, as_json=args.json)


def stories(args, settings) -> int:
    from pathlib import Path

    from babelwatch.bench.stories import run

    return run(cost=args.cost, redis_url=settings.redis_url, threshold=args.threshold, as_json=args.json,
               triton=args.triton, path=Path(args.set) if args.set else None)
