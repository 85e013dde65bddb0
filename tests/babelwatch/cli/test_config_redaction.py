"""``babelwatch config`` never prints a password, whatever the URL holds (babelwatch.cli.config)."""
from __future__ import annotations

import pytest
from pydantic import SecretStr

from babelwatch.cli.config import REDACTED, redact_value


@pytest.mark.parametrize("url, secret", [
    ("redis://:pw@host:6379/0", "pw"),
    ("redis://user:pw@host:6379", "pw"),
    ("redis://u:p@ss@host:6379/0", "p@ss"),        # an "@" inside the password
    ("rediss://u:a@b@c@host", "a@b@c"),
    ("kafka://u:s3cr3t@broker:9092", "s3cr3t"),
    ("http://u:pw@h/path?x=1", "pw"),
])
def test_url_passwords_are_hidden(url, secret):
    shown = redact_value(url)
    assert secret not in shown.replace("***", "")
    assert "***" in shown and shown.endswith(url.rsplit("@", 1)[1])  # the host stays readable


def test_values_without_a_password_are_unchanged_and_secrets_are_masked():
    assert redact_value("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_value("a@b.example") == "a@b.example"
    assert redact_value(SecretStr("x")) == REDACTED
    assert redact_value(3) == 3
