"""The ``babelwatch`` command tree (babelwatch/cli/): every command reaches a function, and
building the parser imports nothing heavy, so ``--help`` stays fast."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from babelwatch.cli import build_parser

# every command, with the arguments it cannot do without
COMMANDS = {
    ("worker",): [], ("produce",): [], ("tail",): ["events"], ("api",): [], ("notify",): [], ("up",): [],
    ("demo",): [], ("status",): [], ("bench", "pipeline"): [], ("bench", "detectors"): [], ("bench", "model"): [],
    ("bench", "soak"): [], ("bench", "stories"): [], ("score",): [], ("model", "build"): [], ("subscriptions", "list"): [],
    ("subscriptions", "get"): ["x"], ("subscriptions", "add"): ["-f", "-"], ("subscriptions", "delete"): ["x"],
    ("silences", "list"): [], ("silences", "add"): ["-m", "a=b"], ("silences", "expire"): ["x"],
    ("config",): [],
}


def _leaves(parser: argparse.ArgumentParser, path=()) -> list[tuple[str, ...]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [path]
    return [leaf for name, p in subs[0].choices.items() for leaf in _leaves(p, (*path, name))]


def test_the_list_above_is_every_command_in_order():
    assert _leaves(build_parser()) == list(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_runs_a_function(command):
    args = build_parser().parse_args([*command, *COMMANDS[command]])
    assert callable(args.run)


def test_building_the_parser_imports_nothing_heavy():
    heavy = ("pydantic", "pydantic_settings", "faust", "kafka", "aiokafka", "numpy", "httpx", "uvicorn",
             "onnxruntime", "torch", "stream", "workers")
    code = ("import sys; from babelwatch.cli import build_parser; build_parser(); "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
