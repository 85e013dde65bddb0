"""``babelwatch worker [--processes N]``."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("worker", help="run the worker (needs broker, Redis, Triton)")
    p.add_argument("--processes", type=int, default=None, metavar="N",
                   help="worker processes, one consumer-group member each (default BABELWATCH_WORKER_PROCESSES, 1)")
    p.set_defaults(run=run)


def run(args, settings) -> int:
    from babelwatch.worker import run_worker

    processes = args.processes if args.processes is not None else settings.worker_processes
    if processes < 1:
        raise SystemExit("babelwatch worker: --processes must be at least 1")
    return run_worker(processes=processes)
