"""Structured logs: one logfmt line per record (``ts= level= logger= msg= key=value ...``).

Fields passed with ``extra={...}`` are appended as key=value pairs, so logs stay greppable and
machine-parsable without a JSON viewer.
"""
from __future__ import annotations

import logging
import time

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def _fmt(v: object) -> str:
    s = str(v)
    return f'"{s}"' if (" " in s or "=" in s or not s) else s


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(record.created))}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_fmt(record.getMessage())}",
        ]
        parts += [f"{k}={_fmt(v)}" for k, v in vars(record).items() if k not in _STD]
        if record.exc_info:
            parts.append(f"exc={_fmt(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("babelwatch").setLevel(level.upper())
