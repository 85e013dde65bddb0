"""``babelwatch worker``."""
from __future__ import annotations


def register(sub) -> None:
    sub.add_parser("worker", help="run the Faust worker (needs broker, Redis, Triton)").set_defaults(run=run)


def run(args, settings) -> int:
    from babelwatch.worker import run_worker

    run_worker()
    return 0
