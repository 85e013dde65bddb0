"""``babelwatch config``: the effective settings (environment, ``.env``, secrets directory,
defaults), secrets redacted: secret fields print as ``**********`` when set, passwords inside URLs
(``redis://:pw@host``) as ``***``."""
from __future__ import annotations

import json
import re
from pathlib import Path

REDACTED = "**********"
# the password runs to the LAST "@" before the host: "redis://u:p@ss@host" hides "p@ss", not "p"
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^/\s]+)(?=@[^@/\s]*(?:[/?#\s]|$))",
                           re.IGNORECASE)


def register(sub) -> None:
    p = sub.add_parser("config", help="print the effective settings (secrets redacted)",
                       description="Every BABELWATCH_* setting as this process sees it: from the environment, "
                                   "a .env file in the working directory, the secrets directory "
                                   "(BABELWATCH_SECRETS_DIR) and the defaults. Secrets are never printed.")
    p.add_argument("--json", action="store_true", help="one JSON object instead of NAME=value lines")
    p.set_defaults(run=run)


def redact_value(value: object) -> object:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: m.group("head") + "***", value)
    return value


def effective(settings) -> dict[str, object]:
    return {name: redact_value(getattr(settings, name)) for name in type(settings).model_fields}


def run(args, settings) -> int:
    values = effective(settings)
    if args.json:
        print(json.dumps(values, ensure_ascii=False, indent=2))
        return 0
    for name, value in values.items():
        shown = "" if value is None else str(value).lower() if isinstance(value, bool) else value
        print(f"BABELWATCH_{name.upper()}={shown}")
    return 0
