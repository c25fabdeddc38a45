"""``OTEL_TRACES_EXPORTER=convotel opentelemetry-instrument python app.py``: no code change, messages stored."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from convotel.store import Store

APP = textwrap.dedent('''
    import openai
    import convotel
    from convotel._asgi import serve_in_thread
    from convotel.demo.scripted_openai import app

    with serve_in_thread(app()) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)
        with convotel.conversation("zero-code", user_id="u-zc"):
            reply = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Anything to pack?"}])
        print(reply.choices[0].message.content)
''')


def test_opentelemetry_instrument_with_the_convotel_exporter(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "OTEL_TRACES_EXPORTER": "convotel",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "CONVOTEL_DB": str(tmp_path / "zc.db"),
    }
    env.pop("GREENFLASH_API_KEY", None)
    env.pop("CONVOTEL_SINK", None)
    done = subprocess.run([str(bin_dir / "opentelemetry-instrument"), sys.executable, "app.py"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Pack layers and a light rain jacket."
    assert "conversations go to the local store" in done.stderr
    messages = Store(tmp_path / "zc.db").messages("zero-code")
    assert [(m.message_type, m.content) for m in messages] == [
        ("user_message", "Anything to pack?"), ("assistant_message", "Pack layers and a light rain jacket.")]
    assert messages[1].parent_external_message_id == messages[0].external_message_id
