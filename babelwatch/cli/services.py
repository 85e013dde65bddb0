"""``babelwatch api``, ``notify``, ``up`` and ``demo``: the long-running services and the local stack."""
from __future__ import annotations

from pathlib import Path

from fusion_model.corpora import SAMPLE_EVENTS as SAMPLE


def register(sub) -> None:
    p = sub.add_parser("api", help="serve the HTTP API (trends, alerts, health; OpenAPI at /docs)")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(run=api)

    p = sub.add_parser("notify", help="the notifier (alerts -> subscriptions -> webhooks, Alertmanager, Kafka, "
                                      "SSE) and the HTTP API in one process")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(run=notify)

    p = sub.add_parser("up", help="start broker, Redis, Triton, a worker and the notifier+API locally; Ctrl-C stops all")
    p.add_argument("--no-worker", action="store_true")
    p.add_argument("--api-port", type=int, default=None, help="port of the notifier's HTTP API (default: settings)")
    p.set_defaults(run=up)

    p = sub.add_parser("demo", help="local stack + sample multilingual stream with a burst + live table")
    p.add_argument("--rate", type=float, default=8.0)
    p.add_argument("--window", type=int, default=5, help="window seconds for the demo")
    p.add_argument("--file", default=str(SAMPLE))
    p.set_defaults(run=demo)


def api(args, settings) -> int:
    import uvicorn

    from babelwatch.api.app import create_app

    uvicorn.run(create_app(settings), host=args.host or settings.api_host, port=args.port or settings.api_port,
                log_level="warning", log_config=None)  # None: uvicorn logs through babelwatch.logs (logfmt/JSON)
    return 0


def notify(args, settings) -> int:
    from babelwatch.notify import run as run_notify

    return run_notify(settings, host=args.host, port=args.port)


def up(args, settings) -> int:
    from babelwatch.demo.run import up as run_up

    return run_up(settings, with_worker=not args.no_worker, api_port=args.api_port)


def demo(args, settings) -> int:
    from babelwatch.demo.run import demo as run_demo

    return run_demo(settings, file=Path(args.file), rate=args.rate, window_s=args.window)
