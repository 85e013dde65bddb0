"""JSON Schema of Alertmanager's ``POST /api/v2/alerts`` body (``postableAlerts``).

Transcribed from the Alertmanager OpenAPI v2 spec, ``api/v2/openapi.yaml`` in
github.com/prometheus/alertmanager (Apache-2.0), definitions ``postableAlerts``, ``postableAlert``,
``alert`` and ``labelSet``, unchanged except that the Swagger ``definitions`` are addressed as
JSON-Schema ``$ref``s. Swagger 2.0 schemas are JSON Schema draft 4.

``format`` checks: jsonschema only enforces ``date-time``/``uri`` when optional packages are
installed, so :data:`FORMAT_CHECKER` brings its own (RFC 3339 date-time, URI with a scheme).
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft4Validator, FormatChecker

POSTABLE_ALERTS_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "definitions": {
        "postableAlerts": {"type": "array", "items": {"$ref": "#/definitions/postableAlert"}},
        "postableAlert": {
            "allOf": [
                {
                    "type": "object",
                    "properties": {
                        "startsAt": {"type": "string", "format": "date-time"},
                        "endsAt": {"type": "string", "format": "date-time"},
                        "annotations": {"$ref": "#/definitions/labelSet"},
                    },
                },
                {"$ref": "#/definitions/alert"},
            ]
        },
        "alert": {
            "type": "object",
            "properties": {
                "labels": {"$ref": "#/definitions/labelSet"},
                "generatorURL": {"type": "string", "format": "uri"},
            },
            "required": ["labels"],
        },
        "labelSet": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "$ref": "#/definitions/postableAlerts",
}

_RFC3339 = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$",
    re.I,
)

FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("date-time")
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(_RFC3339.match(value))


@FORMAT_CHECKER.checks("uri")
def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme) and " " not in value


VALIDATOR = Draft4Validator(POSTABLE_ALERTS_SCHEMA, format_checker=FORMAT_CHECKER)


def validate_postable_alerts(payload: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``payload`` is a valid ``postableAlerts`` body."""
    VALIDATOR.validate(payload)
