"""The ``babelwatch`` command. Each command (or group) is a module here that adds its parser and
names the function that runs it; the work behind it is imported only when it runs, so ``--help``
stays fast.

Exit codes (babelwatch.cli.errors): 0 success, 1 failure, 2 usage, 3 broker unreachable, 4 Redis
unreachable, 5 Triton unreachable, 130 interrupted. Failures are one line on stderr
(``babelwatch: error: ...``); the traceback only with ``--log-level debug``.
"""
from __future__ import annotations

import argparse
import sys

from babelwatch import logs
from babelwatch.cli import alerting, bench, config, errors, model, score, services, status, topics, worker

# in the order ``babelwatch --help`` lists them
COMMANDS = (worker, topics, services, status, bench, score, model, alerting, config)

# what a command cannot start without: checked first, so a server that is down is one line and an
# exit code (babelwatch.cli.errors), not a traceback or a client retrying forever
NEEDS = {
    "worker": ("broker", "redis", "triton"),
    "notify": ("broker", "redis"),
    "produce": ("broker",),
    "tail": ("broker",),
}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("babelwatch")
    except PackageNotFoundError:
        return "unknown"


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked (keeps ``--help`` fast)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kw) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"babelwatch {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="babelwatch", description="Real-time multilingual sentiment monitor",
        epilog="exit codes: " + "; ".join(f"{k} {v}" for k, v in errors.EXIT_CODES.items()),
    )
    ap.add_argument("--version", action=_Version)
    ap.add_argument("--log-level", default="info", type=str.lower, choices=logs.LEVELS)
    ap.add_argument("--log-format", default=None, choices=logs.FORMATS,
                    help="logfmt or json (default: BABELWATCH_LOG_FORMAT, logfmt)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for command in COMMANDS:
        command.register(sub)
    return ap


def _fail(message: str, code: int) -> int:
    print(f"babelwatch: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # after parsing: the settings (pydantic, ~0.1 s) are not needed to print help
    from pydantic import ValidationError

    from contracts.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError as e:
        first = e.errors()[0]
        where = "BABELWATCH_" + str(first["loc"][0]).upper() if first.get("loc") else "settings"
        return _fail(f"bad setting {where}: {first['msg']}", errors.USAGE)
    logs.setup(args.log_level, args.log_format or settings.log_format)
    try:
        needs = NEEDS.get(args.cmd, ())
        errors.preflight(settings, needs)
        if args.cmd == "score" and getattr(args, "triton", None):
            errors.check_triton(settings, args.triton)
        return args.run(args, settings)
    except errors.Unreachable as e:
        return _fail(str(e), e.code)
    except KeyboardInterrupt:
        return errors.INTERRUPTED
    except SystemExit as e:
        # a library's own exit (uvicorn exits 3 when it cannot bind): keep to the codes documented here
        if e.code in (None, 0):
            return errors.OK
        return _fail(f"{args.cmd} stopped with status {e.code} (see the log above)", errors.FAILED)
    except Exception as e:  # noqa: BLE001 - one line, not a traceback (unless debugging)
        if args.log_level == "debug":
            raise
        found = errors.classify(e, settings)
        if found is not None:
            return _fail(str(found), found.code)
        text = str(e).splitlines()[0] if str(e) else ""
        return _fail(f"{type(e).__name__}: {text}"[:300] + " (--log-level debug shows the traceback)", errors.FAILED)
