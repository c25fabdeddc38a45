"""`convotel show` (threaded trees), `convotel serve` as a real process, and the subcommand registry."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import httpx
import pytest

from convotel import cli
from convotel.store import Store, StoredMessage
from convotel.store.render import render_messages, render_tree


def msg(mid: str, mtype: str, at: int, **fields: Any) -> dict[str, Any]:
    return {"externalMessageId": mid, "messageType": mtype, "createdAt": f"2025-01-01T10:00:{at:02d}Z", **fields}


@pytest.fixture
def weather_db(tmp_path: Path) -> Path:
    path = tmp_path / "show.db"
    with Store(path) as store:
        store.ingest({"externalUserId": "alice", "externalConversationId": "weather", "model": "gpt-4o", "messages": [
            msg("u1", "user_message", 0, content="What's the weather\n in Paris?"),
            msg("th1", "thought", 1, content="I'll check the weather", parentExternalMessageId="u1",
                properties={"usage": {"inputTokens": 12, "outputTokens": 30, "totalTokens": 42}, "latencyMs": 830.4}),
            msg("t1", "tool_call", 2, toolName="get_weather", input={"city": "Paris"}, parentExternalMessageId="th1"),
            msg("o1", "observation", 3, toolName="get_weather", output={"temp": 18}, parentExternalMessageId="t1"),
            msg("f1", "final_response", 4, content="It is 18 °C in Paris. " * 10, parentExternalMessageId="u1"),
            msg("x1", "observation", 5, output={"late": True}, parentExternalMessageId="lost"),
            msg("e1", "llm", 6, properties={"error": {"type": "RateLimitError", "status": 429}}),
        ]})
        store.ingest({"externalUserId": "bob", "externalConversationId": "second",
                      "messages": [{"role": "user", "content": "hello"}]})
    return path


def test_show_prints_one_conversation_as_a_threaded_tree(weather_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", "weather", "--db", str(weather_db)]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"conversation weather  \(id=[0-9a-f-]{36}, user=alice, model=gpt-4o, messages=7\)", header)
    assert lines == [
        'user_message  "What\'s the weather in Paris?"',
        '├─ thought  "I\'ll check the weather"  [tokens in=12 out=30 total=42]  [830 ms]',
        '│  └─ tool_call  get_weather  input={"city":"Paris"}',
        '│     └─ observation  get_weather  output={"temp":18}',
        '└─ final_response  "It is 18 °C in Paris. It is 18 °C in Paris. It is 18 °C in …"',  # 60 chars
        'observation  output={"late":true}  (parent lost not found)',
        "llm  [error RateLimitError 429]",
    ]


def test_show_without_a_conversation_prints_them_all(weather_db: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVOTEL_DB", str(weather_db))
    assert cli.main(["show"]) == 0
    out = capsys.readouterr().out
    assert out.index("conversation weather") < out.index("conversation second")
    assert 'user_message  "hello"' in out


def test_show_explains_what_is_missing(tmp_path: Path, weather_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", "--db", str(tmp_path / "absent.db")]) == 1
    assert "no store at" in capsys.readouterr().err
    assert cli.main(["show", "nope", "--db", str(weather_db)]) == 1
    assert "no conversation 'nope'" in capsys.readouterr().err


def test_render_tree_accepts_the_internal_id(weather_db: Path) -> None:
    with Store(weather_db) as store:
        conversation = store.conversation("weather")
        assert conversation is not None
        assert render_tree(store, conversation.id) == render_tree(store, "weather")


def _stored(mid: str, parent: str | None, seq: int) -> StoredMessage:
    return StoredMessage(id=f"id-{mid}", conversation_id="c", seq=seq, external_message_id=mid,
                         message_type="thought", role=None, content=mid, context=None,
                         parent_external_message_id=parent, parent_message_id=None, tool_name=None, input=None,
                         output=None, properties=None, voice=None, model=None, created_at="2025-01-01T00:00:00Z")


def test_parent_cycles_and_self_parents_are_never_lost() -> None:
    lines = render_messages([_stored("a", "b", 1), _stored("b", "a", 2), _stored("self", "self", 3),
                             _stored("root", None, 4)])
    assert len(lines) == 4
    assert {line.split('"')[1] for line in lines} == {"a", "b", "self", "root"}


# -- serve as a real process --------------------------------------------------------------------


def _start_serve(db: Path, *extra: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "convotel.cli", "serve", "--db", str(db), "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


def test_serve_answers_posts_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CONVOTEL_SERVE_TOKEN"}
    process = _start_serve(tmp_path / "served.db", "--strict", env=env)
    try:
        assert process.stdout is not None
        listening, token_line = process.stdout.readline(), process.stdout.readline()
        url = re.search(r"listening on (\S+)", listening).group(1)  # type: ignore[union-attr]
        token = re.search(r"bearer token (\S+)", token_line).group(1)  # type: ignore[union-attr]
        payload = {"externalUserId": "u", "externalConversationId": "c", "messages": [
            {"externalMessageId": "m1", "role": "user", "content": "hi"},
            {"externalMessageId": "m2", "messageType": "thought", "parentExternalMessageId": "nope"}]}
        assert httpx.post(f"{url}/messages", json=payload).status_code == 401
        strict = httpx.post(f"{url}/messages", json=payload, headers={"Authorization": f"Bearer {token}"})
        assert strict.status_code == 400 and strict.json()["field"] == "messages[1].parentExternalMessageId"
        payload["messages"].pop()
        created = httpx.post(f"{url}/messages", json=payload, headers={"Authorization": f"Bearer {token}"})
        assert created.json()["messages"][0]["status"] == "created"
    finally:
        status = _stop(process)
    assert status == 0
    with Store(tmp_path / "served.db") as store:
        assert [m.content for m in store.messages("c")] == ["hi"]


def test_serve_takes_the_token_from_the_environment_and_keeps_it_quiet(tmp_path: Path) -> None:
    process = _start_serve(tmp_path / "served.db", env={**os.environ, "CONVOTEL_SERVE_TOKEN": "env-token-42"})
    try:
        assert process.stdout is not None
        url = re.search(r"listening on (\S+)", process.stdout.readline()).group(1)  # type: ignore[union-attr]
        response = httpx.get(f"{url}/interactions", headers={"Authorization": "Bearer env-token-42"})
        assert response.status_code == 200 and response.json() == []
    finally:
        assert _stop(process) == 0
    assert process.stdout is not None
    assert "env-token-42" not in process.stdout.read()


def test_serve_rejects_a_malformed_listen_address(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--listen", "localhost"])
    assert "expected HOST:PORT" in capsys.readouterr().err


# -- subcommand registry ------------------------------------------------------------------------


def test_other_modules_add_subcommands(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = types.ModuleType("convotel_test_plugin")

    def register(subcommands: Any) -> None:
        parser = subcommands.add_parser("hello", help="say hello")
        parser.add_argument("--name", default="world")
        parser.set_defaults(run=lambda args: print(f"hello {args.name}") or 3)

    plugin.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "convotel_test_plugin", plugin)
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("convotel_test_plugin", "convotel_not_installed.cli"))
    assert cli.main(["hello", "--name", "ada"]) == 3
    assert capsys.readouterr().out == "hello ada\n"
    assert cli.main([]) == 2  # no subcommand: help


def test_a_broken_subcommand_module_is_not_silently_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "convotel_broken_plugin.py").write_text("import convotel_dependency_that_is_missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("convotel_broken_plugin",))
    with pytest.raises(ModuleNotFoundError, match="convotel_dependency_that_is_missing"):
        cli.main(["show"])
