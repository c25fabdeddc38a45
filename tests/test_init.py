"""convotel.init(): one line, harmless twice, says where the data goes, flush/shutdown deliver."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider

import convotel
from convotel._asgi import serve_in_thread
from convotel.demo.scripted_openai import app as scripted_app
from convotel.store import Store


@pytest.fixture(autouse=True)
def no_greenflash_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GREENFLASH_API_KEY", "GREENFLASH_PRODUCT_ID", "CONVOTEL_SINK", "CONVOTEL_DB"):
        monkeypatch.delenv(name, raising=False)


def test_without_key_local_store_and_one_notice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "local.db"
    original_create = openai.resources.chat.completions.Completions.create
    provider = TracerProvider()
    first = convotel.init(db_path=db, tracer_provider=provider, instrumentors=["openai"])
    second = convotel.init(db_path=tmp_path / "other.db")
    try:
        assert second is first
        assert first.settings.sinks == ("local",)
        err = capsys.readouterr().err
        assert err.count("convotel: conversations go to the local store") == 1
        assert str(db) in err
        with serve_in_thread(scripted_app()) as model:
            client = openai.OpenAI(base_url=f"{model.url}/v1", api_key="sk-test", max_retries=0)
            with convotel.conversation("init-1"):
                for question in ("hello", "what to pack?"):
                    client.chat.completions.create(model="m", messages=[{"role": "user", "content": question}])
    finally:
        assert convotel.shutdown(10)
    # shutdown delivered everything before returning; instrumentation is gone
    types = [m.message_type for m in Store(db).messages("init-1")]
    assert types == ["user_message", "assistant_message", "user_message", "assistant_message"]
    assert openai.resources.chat.completions.Completions.create is original_create


def test_key_without_product_id_says_so_and_keeps_data(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENFLASH_API_KEY", "gf-secret-value")
    runtime = convotel.init(db_path=tmp_path / "fallback.db", tracer_provider=TracerProvider(), instrumentors=[])
    try:
        err = capsys.readouterr().err
        assert "the Greenflash sink needs GREENFLASH_PRODUCT_ID; writing to the local store instead" in err
        assert runtime.settings.sinks == ("local",)
        assert "gf-secret-value" not in err
    finally:
        convotel.shutdown()


def test_unknown_sink_is_a_clear_error() -> None:
    with pytest.raises(convotel.ConfigError, match="unknown sink"):
        convotel.init(sink="kafka", tracer_provider=TracerProvider())
