"""The ``babelwatch`` command. Each command (or group) is a module here that adds its parser and
names the function that runs it; the work behind it is imported only when it runs, so ``--help``
stays fast."""
from __future__ import annotations

import argparse

from babelwatch import logs
from babelwatch.cli import alerting, bench, model, score, services, topics, worker

# in the order ``babelwatch --help`` lists them
COMMANDS = (worker, topics, services, bench, score, model, alerting)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="babelwatch", description="Real-time multilingual sentiment monitor")
    ap.add_argument("--log-level", default="info")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for command in COMMANDS:
        command.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # after parsing: the settings (pydantic, ~0.1 s) are not needed to print help
    from contracts.settings import get_settings

    logs.setup(args.log_level)
    return args.run(args, get_settings())
