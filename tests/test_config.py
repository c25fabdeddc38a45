"""Settings resolution: arguments over environment, sink fallbacks that say why."""

from __future__ import annotations

from pathlib import Path

import pytest

from convotel._config import ConfigError, resolve
from convotel.instrumentation import capture_content, set_capture_content


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GREENFLASH_API_KEY", "GREENFLASH_PRODUCT_ID", "GREENFLASH_BASE_URL", "CONVOTEL_SINK", "CONVOTEL_DB",
                 "CONVOTEL_CAPTURE_CONTENT", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
                 "CONVOTEL_INSTRUMENTORS", "CONVOTEL_USER_ID"):
        monkeypatch.delenv(name, raising=False)


def test_no_key_means_local_store_under_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = resolve()
    assert settings.sinks == ("local",)
    assert settings.db_path == tmp_path / ".convotel" / "convotel.db"
    assert settings.notices == ()


def test_key_with_product_goes_to_greenflash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENFLASH_API_KEY", "gf-secret-key")
    monkeypatch.setenv("GREENFLASH_PRODUCT_ID", "prod-1")
    monkeypatch.setenv("GREENFLASH_BASE_URL", "http://127.0.0.1:9/api/v1/")
    settings = resolve()
    assert settings.sinks == ("greenflash",)
    assert settings.base_url == "http://127.0.0.1:9/api/v1"
    assert "gf-secret-key" not in repr(settings)


def test_key_without_product_falls_back_to_local_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENFLASH_API_KEY", "gf-secret-key")
    settings = resolve(sink="greenflash,console")
    assert settings.sinks == ("local", "console")
    assert settings.notices == ("the Greenflash sink needs GREENFLASH_PRODUCT_ID; writing to the local store instead",)


def test_sink_list_none_and_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVOTEL_SINK", "none")
    assert resolve().sinks == ()
    with pytest.raises(ConfigError, match="unknown sink kafka"):
        resolve(sink="local,kafka")


def test_capture_content_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert capture_content() is True
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    assert capture_content() is False
    monkeypatch.setenv("CONVOTEL_CAPTURE_CONTENT", "true")
    assert capture_content() is True
    set_capture_content(False)
    try:
        assert capture_content() is False
    finally:
        set_capture_content(None)
