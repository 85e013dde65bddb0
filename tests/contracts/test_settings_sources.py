"""Settings also come from a ``.env`` file and a secrets directory; the environment wins over both."""
from __future__ import annotations

import pytest

from contracts.settings import load_settings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    import os

    for k in list(os.environ):
        if k.startswith("BABELWATCH_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)  # .env is read from the working directory
    return tmp_path


def test_dotenv_file(clean_env, monkeypatch):
    (clean_env / ".env").write_text("BABELWATCH_WINDOW_S=17\nBABELWATCH_LOG_FORMAT=json\nOTHER=1\n")
    s = load_settings()
    assert s.window_s == 17 and s.log_format == "json"
    monkeypatch.setenv("BABELWATCH_WINDOW_S", "23")
    assert load_settings().window_s == 23  # the environment wins


def test_secrets_directory(clean_env, monkeypatch):
    secrets = clean_env / "secrets"
    secrets.mkdir()
    (secrets / "babelwatch_api_token").write_text("token-from-a-secret-file")
    (secrets / "babelwatch_redis_url").write_text("redis://:pw@10.0.0.9:6379/0")
    (clean_env / ".env").write_text(f"BABELWATCH_SECRETS_DIR={secrets}\n")
    s = load_settings()
    assert s.api_token.get_secret_value() == "token-from-a-secret-file"
    assert s.redis_url == "redis://:pw@10.0.0.9:6379/0"
    assert "token-from-a-secret-file" not in repr(s)
    monkeypatch.setenv("BABELWATCH_API_TOKEN", "from-the-environment")
    assert load_settings().api_token.get_secret_value() == "from-the-environment"


def test_bad_log_format_is_refused(clean_env, monkeypatch):
    monkeypatch.setenv("BABELWATCH_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        load_settings()
