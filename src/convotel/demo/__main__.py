"""``python -m convotel.demo``: a bundled agent, a scripted model server, captured conversations.

No API key and no network: the model is a scripted OpenAI-compatible server on
127.0.0.1, the data goes to the local store, and the conversation is printed as
a threaded tree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

QUESTIONS = (
    "What's the weather like in Paris and Tokyo right now?",
    "Thanks! Anything I should pack?",
    "And how about Oslo?",
)
CONVERSATION_ID = "demo-trip-planning"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="convotel demo", description=__doc__)
    parser.add_argument("--db", default=".convotel/demo.db", help="local store to write (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        import openai
    except ImportError:
        print("convotel demo needs the openai package: pip install convotel-openai openai", file=sys.stderr)
        return 2

    import convotel
    from convotel._asgi import serve_in_thread
    from convotel.demo.agent import run_turn
    from convotel.demo.scripted_openai import app
    from convotel.store import Store
    from convotel.store.render import render_tree

    db = Path(args.db)
    with serve_in_thread(app(), name="convotel-demo-model") as model_server:
        convotel.init(sink="local", db_path=db, service_name="convotel-demo")
        client = openai.OpenAI(base_url=f"{model_server.url}/v1", api_key="demo-key", max_retries=0)
        history: list[dict[str, object]] = []
        with convotel.conversation(CONVERSATION_ID, user_id="demo-user", organization_id="demo-org"):
            for question in QUESTIONS:
                answer = run_turn(client, history, question)
                print(f"user  > {question}\nagent > {answer}\n")
        convotel.shutdown()
    print(render_tree(Store(db), CONVERSATION_ID))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
