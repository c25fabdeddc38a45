"""The shared replay helper (tests/openai_replay.py) itself."""

from __future__ import annotations

import httpx
from openai_replay import load_cassette, replay_server, request_kwargs, served_requests


def test_replays_status_headers_and_body():
    name = "test_chat_completion_404"
    with replay_server(name) as url:
        response = httpx.post(f"{url}/chat/completions", json=request_kwargs(name))
        assert served_requests(url)[0][:2] == ("POST", "/v1/chat/completions")
    assert response.status_code == 404
    assert response.headers["openai-organization"] == "test_openai_org_id"
    recorded = {k.lower() for k, _ in load_cassette(name).interactions[0].headers}
    assert "openai-organization" in recorded and not recorded & {"transfer-encoding", "content-length"}
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json()["error"]["code"] == "model_not_found"


def test_matches_by_body_when_several_interactions_share_a_path():
    name = "test_chat_completion_tool_calls_with_content"
    with replay_server(name) as url:
        second = httpx.post(f"{url}/chat/completions", json=request_kwargs(name, 1)).json()
        first = httpx.post(f"{url}/chat/completions", json=request_kwargs(name, 0)).json()
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert second["choices"][0]["finish_reason"] == "stop"


def test_event_streams_and_unknown_paths():
    name = "test_chat_completion_streaming"
    with replay_server(name) as url:
        with httpx.stream("POST", f"{url}/chat/completions", json=request_kwargs(name)) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            body = "".join(response.iter_text())
        missing = httpx.get(f"{url}/models")
    assert body.rstrip().endswith("data: [DONE]")
    assert missing.status_code == 400 and missing.json()["error"]["type"] == "replay_mismatch"
