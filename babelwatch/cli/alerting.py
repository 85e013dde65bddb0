"""``babelwatch subscriptions ...`` and ``babelwatch silences ...``: a client of the HTTP API.

The commands talk to ``/v1/subscriptions`` and ``/v1/silences`` (``--api URL``, default
``http://{api_host}:{api_port}`` from the settings). Every request, reads included, sends
``Authorization: Bearer`` with ``BABELWATCH_API_TOKEN`` (the settings' ``api_token``: any token the
API knows; writes need one with scope ``write``); the token is never taken from argv.

Output is a table (or, for one object, ``field: value`` lines) unless ``--json``. Every failure is
one line on stderr, ``babelwatch: error: ...``, and a non-zero exit code: 2 for bad input found
here (matcher syntax, times, the subscription file), 1 for what the API or the network said.

Heavy imports (httpx, the alerting models) happen inside the functions so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable

EXIT_API = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure to report as one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_API) -> None:
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------------------------- parsing input


def parse_matcher(text: str) -> dict[str, str]:
    """amtool syntax ``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex`` (value may be
    double-quoted) -> ``{"name", "op", "value"}`` as the API takes it. Bad syntax, a bad label name
    or a regex that does not compile raise :class:`CliError` (usage)."""
    from pydantic import ValidationError

    from workers.alerting.model import Matcher

    try:
        return Matcher.parse(text).model_dump()
    except ValidationError as e:
        msg = e.errors()[0]["msg"].removeprefix("Value error, ")
        raise CliError(f"bad matcher {text!r}: {msg}", EXIT_USAGE) from None


def matcher_text(m: dict[str, Any]) -> str:
    return f"{m['name']}{m['op']}{json.dumps(m['value'], ensure_ascii=False)}"


def _parse_time(text: str, what: str) -> float:
    from workers.alerting.model import parse_time

    try:
        return float(parse_time(text))
    except ValueError:
        raise CliError(f"bad {what} {text!r}: epoch seconds or ISO-8601 (e.g. 2026-01-01T09:30:00Z)",
                       EXIT_USAGE) from None


def _parse_duration(text: str) -> float:
    from workers.alerting.model import parse_duration

    try:
        seconds = float(parse_duration(text))
    except ValueError as e:
        raise CliError(f"bad --duration: {e}", EXIT_USAGE) from None
    if seconds <= 0:
        raise CliError("--duration must be > 0", EXIT_USAGE)
    return seconds


def _read_json_object(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror or e}", EXIT_USAGE) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        where = "stdin" if path == "-" else path
        raise CliError(f"{where} is not JSON: {e.msg} (line {e.lineno}, column {e.colno})", EXIT_USAGE) from None
    if not isinstance(data, dict):
        raise CliError("the subscription must be one JSON object", EXIT_USAGE)
    return data


# ------------------------------------------------------------------------------------------- the API


def default_api_url(settings) -> str:
    host = settings.api_host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


def _detail(resp) -> str:
    """The API's error as one line: FastAPI's ``detail`` string, or pydantic's error list."""
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):
        parts = []
        for err in detail:
            if not isinstance(err, dict):
                parts.append(str(err))
                continue
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}" if loc else msg)
        return "; ".join(parts)
    if detail is not None:
        return str(detail)
    return (resp.text or resp.reason_phrase).strip().replace("\n", " ")[:300]


class ApiClient:
    def __init__(self, base_url: str, token: str | None, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, *, write: bool = False, **kw) -> Any:
        import httpx

        if not self.token:  # the API answers nothing but /health without one
            raise CliError(f"{'writes' if write else 'reads'} need the bearer token: set BABELWATCH_API_TOKEN")
        headers = {"Authorization": f"Bearer {self.token}"}
        url = self.base_url + path
        try:
            resp = httpx.request(method, url, headers=headers, timeout=self.timeout_s, **kw)
        except httpx.ConnectError:
            raise CliError(f"cannot reach the API at {self.base_url} (connection refused or host unknown; "
                           "is `babelwatch api` or `babelwatch notify` running? see --api)") from None
        except httpx.TimeoutException:
            raise CliError(f"the API at {self.base_url} did not answer within {self.timeout_s:g}s") from None
        except httpx.HTTPError as e:
            raise CliError(f"request to {url} failed: {e}") from None
        if resp.status_code == 401:
            raise CliError(f"unauthorized ({_detail(resp)}): check BABELWATCH_API_TOKEN")
        if resp.status_code == 403:
            raise CliError(f"forbidden ({_detail(resp)}): BABELWATCH_API_TOKEN may not do this")
        if resp.status_code >= 400:
            raise CliError(f"{method} {path}: {resp.status_code} {_detail(resp)}")
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise CliError(f"{method} {path}: the answer is not JSON (is {self.base_url} the babelwatch API?)") from None


# -------------------------------------------------------------------------------------------- output


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _fmt_duration(s: float) -> str:
    s = float(s)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{s:g}s"


def _receiver_text(r: dict[str, Any]) -> str:
    where = r.get("url") or r.get("topic") or r.get("channel") or r.get("name", "")
    return f"{r.get('type')}:{where}"


def print_table(headers: list[str], rows: list[list[str]], out=None) -> None:
    out = out or sys.stdout
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip(), file=out)


def _emit(args, data: Any, human: Callable[[Any], None]) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2 if isinstance(data, dict) else None))
    else:
        human(data)


def _subscription_rows(routes: list[dict]) -> None:
    print_table(
        ["ID", "MATCHERS", "GROUP_BY", "RECEIVERS", "DESCRIPTION"],
        [[r["id"], ",".join(matcher_text(m) for m in r["matchers"]) or "(all alerts)",
          ",".join(r["group_by"]) or "-", ",".join(_receiver_text(x) for x in r["receivers"]),
          r.get("description", "")] for r in routes],
    )


def _subscription_detail(r: dict) -> None:
    lines = [
        ("id", r["id"]),
        ("description", r.get("description") or "-"),
        ("matchers", ", ".join(matcher_text(m) for m in r["matchers"]) or "(all alerts)"),
        ("group_by", ", ".join(r["group_by"]) or "-"),
        ("group_wait", _fmt_duration(r["group_wait"])),
        ("group_interval", _fmt_duration(r["group_interval"])),
        ("repeat_interval", _fmt_duration(r["repeat_interval"])),
        ("send_resolved", str(r["send_resolved"]).lower()),
    ] + [(f"receiver {x.get('name', '')}", _receiver_text(x)) for x in r["receivers"]]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k.ljust(width)}  {v}")


def _silence_rows(silences: list[dict], now: float) -> None:
    def state(s: dict) -> str:
        return "pending" if now < s["starts_at"] else "active" if now < s["ends_at"] else "expired"

    print_table(
        ["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "CREATED_BY", "COMMENT"],
        [[s["id"], state(s), ",".join(matcher_text(m) for m in s["matchers"]), _fmt_time(s["starts_at"]),
          _fmt_time(s["ends_at"]), s["created_by"], s.get("comment", "")] for s in silences],
    )


# ------------------------------------------------------------------------------------------ commands


def _subscriptions(args, api: ApiClient) -> int:
    if args.action == "list":
        _emit(args, api.request("GET", "/v1/subscriptions"), _subscription_rows)
    elif args.action == "get":
        _emit(args, api.request("GET", f"/v1/subscriptions/{_path_id(args.id)}"), _subscription_detail)
    elif args.action == "add":
        body = _read_json_object(args.file)
        if args.replace:
            if not body.get("id"):
                raise CliError("--replace needs an \"id\" in the subscription", EXIT_USAGE)
            route = api.request("PUT", f"/v1/subscriptions/{_path_id(str(body['id']))}", json=body, write=True)
        else:
            route = api.request("POST", "/v1/subscriptions", json=body, write=True)
        _emit(args, route, lambda r: print(r["id"]))
    elif args.action == "delete":
        api.request("DELETE", f"/v1/subscriptions/{_path_id(args.id)}", write=True)
        _emit(args, {"id": args.id, "deleted": True}, lambda d: print(f"deleted subscription {d['id']}"))
    return 0


def _silences(args, api: ApiClient) -> int:
    if args.action == "list":
        params = {} if args.state == "all" else {"state": args.state}
        now = time.time()
        _emit(args, api.request("GET", "/v1/silences", params=params), lambda s: _silence_rows(s, now))
    elif args.action == "add":
        matchers = [parse_matcher(m) for m in args.matcher]
        starts = _parse_time(args.starts_at, "--starts-at") if args.starts_at else time.time()
        ends = _parse_time(args.ends_at, "--ends-at") if args.ends_at else starts + _parse_duration(args.duration)
        if ends <= starts:
            raise CliError("the silence must end after it starts (--ends-at / --duration)", EXIT_USAGE)
        body = {"matchers": matchers, "starts_at": starts, "ends_at": ends,
                "created_by": args.created_by or _whoami(), "comment": args.comment}
        if args.id:
            body["id"] = args.id
        _emit(args, api.request("POST", "/v1/silences", json=body, write=True), lambda s: print(s["id"]))
    elif args.action == "expire":
        expired = []
        for sid in args.ids:
            expired.append(api.request("DELETE", f"/v1/silences/{_path_id(sid)}", write=True))
            if not args.json:
                print(f"expired silence {sid}")
        if args.json:
            print(json.dumps(expired, ensure_ascii=False))
    return 0


def _path_id(ident: str) -> str:
    from urllib.parse import quote

    return quote(ident, safe="")


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "babelwatch-cli"


# ------------------------------------------------------------------------------------------- wiring


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``subscriptions`` and ``silences`` to the ``babelwatch`` subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", metavar="URL", default=None,
                        help="the HTTP API (default http://{api_host}:{api_port} from BABELWATCH_API_HOST/PORT)")
    common.add_argument("--json", action="store_true", help="machine-readable JSON instead of a table")
    auth = " (needs a BABELWATCH_API_TOKEN with scope write)"
    read_auth = " (needs BABELWATCH_API_TOKEN)"

    p = sub.add_parser("subscriptions", help="list, show, add and delete alert subscriptions (routes) via the API")
    p.set_defaults(run=run)
    s = p.add_subparsers(dest="action", required=True, metavar="{list,get,add,delete}")
    s.add_parser("list", parents=[common], help="all subscriptions (receiver URLs redacted)" + read_auth)
    a = s.add_parser("get", parents=[common], help="one subscription (receiver URLs redacted)" + read_auth)
    a.add_argument("id")
    a = s.add_parser("add", parents=[common], help="create a subscription from a JSON object" + auth,
                     description="Body: the Route of POST /v1/subscriptions, e.g. {\"id\": \"desk\", \"matchers\": "
                                 "[\"topic=TSLA\"], \"group_by\": [\"topic\"], \"receivers\": [{\"type\": \"webhook\", "
                                 "\"url\": \"https://hooks.example.com/bw\"}]}. Prints the id.")
    a.add_argument("-f", "--file", required=True, metavar="FILE", help="JSON file, or - for stdin")
    a.add_argument("--replace", action="store_true", help="create or replace the subscription with the file's id")
    a = s.add_parser("delete", parents=[common], help="delete a subscription" + auth)
    a.add_argument("id")

    p = sub.add_parser("silences", help="list, add and expire silences via the API")
    p.set_defaults(run=run)
    s = p.add_subparsers(dest="action", required=True, metavar="{list,add,expire}")
    a = s.add_parser("list", parents=[common], help="silences with their state" + read_auth)
    a.add_argument("--state", choices=["all", "pending", "active", "expired"], default="all")
    a = s.add_parser("add", parents=[common], help="mute matching alerts for a time" + auth,
                     description="Prints the new silence's id.")
    a.add_argument("-m", "--matcher", action="append", required=True, metavar="MATCHER",
                   help="name=value, name!=value, name=~regex or name!~regex (repeat: all must hold)")
    a.add_argument("--starts-at", metavar="TIME", help="epoch seconds or ISO-8601 (default: now)")
    end = a.add_mutually_exclusive_group()
    end.add_argument("--ends-at", metavar="TIME", help="epoch seconds or ISO-8601")
    end.add_argument("-d", "--duration", default="1h", help="from the start, e.g. 30m, 2h, 1d (default 1h)")
    a.add_argument("-c", "--comment", default="")
    a.add_argument("--created-by", default=None, help="default: the current user")
    a.add_argument("--id", default=None, help="the silence id (default: generated)")
    a = s.add_parser("expire", parents=[common], help="end silences now" + auth)
    a.add_argument("ids", nargs="+", metavar="ID")


def run(args: argparse.Namespace, settings) -> int:
    """Run ``subscriptions`` or ``silences``; a failure is one line on stderr and its exit code."""
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    api = ApiClient(args.api or default_api_url(settings), token)
    try:
        return (_subscriptions if args.cmd == "subscriptions" else _silences)(args, api)
    except CliError as e:
        print(f"babelwatch: error: {e}", file=sys.stderr)
        return e.code
