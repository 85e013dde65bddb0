"""Receiver URLs as the API shows them: the secret parts replaced by ``<secret>``.

Webhook URLs are often credentials themselves: Slack (``hooks.slack.com/services/T/B/XXXX``), Discord
(``/api/webhooks/ID/TOKEN``), Mattermost, Teams and Google Chat (``?key=...&token=...``) put the
secret in the path or the query. There is no reliable way to tell a secret path from a plain one, so
the rule is the same for every URL: **scheme, host and port are shown; everything after them (path,
query, fragment, and any userinfo) becomes ``/<secret>``** -- the marker Alertmanager prints for its
own secrets. A URL with nothing after the host (``https://am.example.com`` or ``.../``) is shown as is.

Stored routes keep the real URL (delivery needs it); only answers are redacted. So that a client can
read a route, change something and PUT it back, a PUT whose receiver URL is exactly the redacted
form of the stored receiver of the same name keeps the stored URL; any other URL holding
``<secret>`` is refused (422): it would deliver to a literal ``<secret>``.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from workers.alerting.model import Route

SECRET = "<secret>"
_HTTP_TYPES = ("webhook", "alertmanager")


def redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return SECRET
    netloc = parts.netloc.rpartition("@")[2]  # userinfo dropped
    if parts.path in ("", "/") and not parts.query and not parts.fragment and "@" not in parts.netloc:
        return url
    return f"{parts.scheme}://{netloc}/{SECRET}"


def redact_route(route: Route) -> Route:
    """A copy of the route for an answer; the route itself is not changed."""
    if not any(r.type in _HTTP_TYPES for r in route.receivers):
        return route
    receivers = [r.model_copy(update={"url": redact_url(r.url)}) if r.type in _HTTP_TYPES else r
                 for r in route.receivers]
    return route.model_copy(update={"receivers": receivers})


def restore_secrets(route: Route, stored: Route | None) -> list[tuple[int, str]]:
    """Put the stored URL back where ``route`` (a PUT body) carries its redacted form (module doc).
    Returns ``(receiver index, message)`` for URLs holding ``<secret>`` that cannot be restored."""
    problems = []
    by_name = {r.name: r for r in stored.receivers} if stored is not None else {}
    for i, r in enumerate(route.receivers):
        if r.type not in _HTTP_TYPES or SECRET not in r.url:
            continue
        old = by_name.get(r.name)
        if old is not None and old.type == r.type and redact_url(old.url) == r.url:
            r.url = old.url
        else:
            problems.append((i, f"the url holds the redaction marker {SECRET}: send the real URL (a redacted "
                                "URL is kept only when it is unchanged from the stored receiver of that name)"))
    return problems
