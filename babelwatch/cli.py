"""The ``babelwatch`` command. Subcommands import their modules lazily so ``--help`` stays fast."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fusion_model.corpora import SAMPLE_EVENTS as SAMPLE


def _topic(settings, name: str) -> str:
    aliases = {
        "events": settings.topic_events,
        "scored": settings.topic_scored,
        "alerts": settings.topic_alerts,
        "deadletter": settings.topic_deadletter,
    }
    return aliases.get(name, name)


def main(argv: list[str] | None = None) -> int:
    from babelwatch import logs
    from contracts.settings import get_settings

    ap = argparse.ArgumentParser(prog="babelwatch", description="Real-time multilingual sentiment monitor")
    ap.add_argument("--log-level", default="info")
    sub = ap.add_subparsers(dest="cmd", required=True)

    sub.add_parser("worker", help="run the Faust worker (needs broker, Redis, Triton)")

    p = sub.add_parser("produce", help="replay a JSON-lines file of events into the events topic")
    p.add_argument("file", nargs="?", default=str(SAMPLE))
    p.add_argument("--rate", type=float, default=0.0, help="events/s, 0 = as fast as possible")
    p.add_argument("--topic", default="events")

    p = sub.add_parser("tail", help="print a topic's records: events, scored, alerts, deadletter or a name")
    p.add_argument("topic")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")

    p = sub.add_parser("api", help="serve the HTTP API (trends, alerts, health; OpenAPI at /docs)")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)

    p = sub.add_parser("notify", help="the notifier (alerts -> subscriptions -> webhooks, Alertmanager, Kafka, "
                                      "SSE) and the HTTP API in one process")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)

    p = sub.add_parser("up", help="start broker, Redis, Triton, a worker and the notifier+API locally; Ctrl-C stops all")
    p.add_argument("--no-worker", action="store_true")
    p.add_argument("--api-port", type=int, default=None, help="port of the notifier's HTTP API (default: settings)")

    p = sub.add_parser("demo", help="local stack + sample multilingual stream with a burst + live table")
    p.add_argument("--rate", type=float, default=8.0)
    p.add_argument("--window", type=int, default=5, help="window seconds for the demo")
    p.add_argument("--file", default=str(SAMPLE))

    p = sub.add_parser("bench", help="benchmarks")
    bsub = p.add_subparsers(dest="bench", required=True)
    b = bsub.add_parser("pipeline", help="raw consume->produce vs the pipeline on the same broker")
    b.add_argument("--events", type=int, default=20_000)
    b.add_argument("--real-events", type=int, default=3_000)
    b = bsub.add_parser("detectors", help="detectors on labelled synthetic streams: precision, recall, delay")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--streams", type=int, default=50, help="streams, kinds in turn (spike, shift, drift, ...)")
    b.add_argument("--days", type=int, default=4, help="days per stream (the first is warm-up)")
    b = bsub.add_parser("model", help="the fusion model served by Triton vs the same ONNX in-process: rows/s, "
                                      "p50/p99 at batch 1 and 32, ratio")
    b.add_argument("--batch-sizes", default="1,32")
    b.add_argument("--seconds", type=float, default=10.0, help="measuring time per side and batch size")
    b.add_argument("--concurrency", type=int, default=0, help="also run Triton with N requests in flight")
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

    p = sub.add_parser("score", help="score JSON-lines events from stdin, one JSON line per event on stdout")
    p.add_argument("--triton", default=None, help="score on this Triton gRPC host:port instead of in-process")
    p.add_argument("--batch-size", type=int, default=32)

    p = sub.add_parser("model", help="model artifacts")
    msub = p.add_subparsers(dest="model", required=True)
    m = msub.add_parser("build", help="build the fusion model (convert, embed, train, export; cached) and link it")
    m.add_argument("--force", action="store_true")

    from babelwatch import cli_alerting

    cli_alerting.register(sub)  # subscriptions, silences (HTTP API client)

    args = ap.parse_args(argv)
    logs.setup(args.log_level)
    settings = get_settings()

    code = cli_alerting.dispatch(args, settings)
    if code is not None:
        return code

    if args.cmd == "worker":
        from babelwatch.worker import run_worker

        run_worker()
        return 0
    if args.cmd == "produce":
        from babelwatch.replay import replay

        replay(Path(args.file), settings.bootstrap, _topic(settings, args.topic), rate=args.rate)
        return 0
    if args.cmd == "tail":
        from babelwatch.tail import tail

        try:
            tail(settings.bootstrap, _topic(settings, args.topic), timeout_s=args.timeout)
        except KeyboardInterrupt:
            pass
        return 0
    if args.cmd == "api":
        import uvicorn

        from babelwatch.api.app import create_app

        uvicorn.run(create_app(settings), host=args.host or settings.api_host, port=args.port or settings.api_port,
                    log_level="warning")
        return 0
    if args.cmd == "notify":
        from babelwatch.notify import run as run_notify

        return run_notify(settings, host=args.host, port=args.port)
    if args.cmd == "up":
        from babelwatch.demo.run import up

        return up(settings, with_worker=not args.no_worker, api_port=args.api_port)
    if args.cmd == "demo":
        from babelwatch.demo.run import demo

        return demo(settings, file=Path(args.file), rate=args.rate, window_s=args.window)
    if args.cmd == "bench" and args.bench == "detectors":
        from babelwatch.bench.detectors import run as bench_detectors

        return bench_detectors(seed=args.seed, n_streams=args.streams, days=args.days)
    if args.cmd == "bench" and args.bench == "model":
        from babelwatch.bench.model import run as bench_model

        return bench_model(settings, batch_sizes=[int(x) for x in args.batch_sizes.split(",")],
                           seconds=args.seconds, concurrency=args.concurrency)
    if args.cmd == "bench" and args.bench == "soak":
        from babelwatch.bench.soak import run as bench_soak

        return bench_soak(settings, n_events=args.events, interval_s=args.interval, warmup=args.warmup,
                          backlog=args.backlog, notifier=not args.no_notifier, strict=args.strict,
                          alerts=not args.no_alerts)
    if args.cmd == "bench":
        from babelwatch.bench.pipeline import run as bench_pipeline

        return bench_pipeline(settings, n_events=args.events, n_real=args.real_events)
    if args.cmd == "score":
        from babelwatch.score import score

        return score(settings, triton=args.triton, batch_size=args.batch_size)
    if args.cmd == "model":
        from fusion_model.build import build_and_link as build

        build(force=args.force)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
