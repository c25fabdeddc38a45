"""The ``convotel`` command.

Adding a subcommand: in your own module define ``register(subcommands)``, which
calls ``subcommands.add_parser(name, help=...)``, adds its arguments and sets
``run`` with ``parser.set_defaults(run=fn)`` where ``fn(args) -> int`` is the
exit status. Then list the module in :data:`SUBCOMMAND_MODULES`. Keep the
module's import light (import heavy dependencies inside ``fn``): every
``convotel`` invocation imports it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from convotel.store import NotFoundError, Store, default_db_path
from convotel.store.render import render_tree
from convotel.store.validation import DEFAULT_MAX_BODY_BYTES

if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

#: Modules contributing subcommands besides ``show`` and ``serve``. One that is not
#: installed (yet) is skipped; an import error inside it is not.
SUBCOMMAND_MODULES: Final = ("convotel.bridge.cli", "convotel.demo.cli")
DEFAULT_LISTEN: Final = "127.0.0.1:8787"


def _db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=None,
                        help="store file (default: $CONVOTEL_DB, else ./.convotel/convotel.db)")


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as {DEFAULT_LISTEN}; got {text!r}")
    return host.strip("[]"), int(port)


# -- show -------------------------------------------------------------------------------------


def _run_show(args: argparse.Namespace) -> int:
    path: Path = args.db or default_db_path()
    if not path.exists():
        print(f"convotel: no store at {path}; run your app without a Greenflash key (local sink) "
              "or `convotel serve`, or pass --db", file=sys.stderr)
        return 1
    with Store(path) as store:
        if args.conversation is not None:
            try:
                print(render_tree(store, args.conversation))
            except NotFoundError as exc:
                print(f"convotel: {exc.message}", file=sys.stderr)
                return 1
            return 0
        conversations = store.conversations()
        if not conversations:
            print(f"no conversations in {path}")
            return 0
        print("\n\n".join(render_tree(store, c.id) for c in conversations))
    return 0


def _register_show(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser("show", help="print stored conversations as threaded trees")
    parser.add_argument("conversation", nargs="?", default=None,
                        help="conversation id or external id (default: all, oldest first)")
    _db_argument(parser)
    parser.set_defaults(run=_run_show)


# -- serve ------------------------------------------------------------------------------------


def _run_serve(args: argparse.Namespace) -> int:
    from convotel.server import serve  # starlette and uvicorn load only for this command

    host, port = args.listen
    token = args.token or os.environ.get("CONVOTEL_SERVE_TOKEN")
    generated = not token
    token = token or secrets.token_urlsafe(24)
    with Store(args.db) as store:

        def announce(url: str) -> None:
            print(f"convotel serve: listening on {url} (store {store.path}, strict {'on' if args.strict else 'off'}); "
                  f"point Greenflash clients at it with GREENFLASH_BASE_URL={url}", flush=True)
            if generated:
                print(f"convotel serve: bearer token {token} (generated for this run; "
                      "set CONVOTEL_SERVE_TOKEN or pass --token to choose one)", flush=True)

        try:
            serve(store, token=token, strict=args.strict, host=host, port=port,
                  max_body_bytes=args.max_body_bytes, on_listening=announce)
        except OSError as exc:
            print(f"convotel: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
            return 1
    return 0


def _register_serve(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser("serve", help="run a Greenflash-compatible ingest API over the local store")
    _db_argument(parser)
    parser.add_argument("--listen", type=_listen_address, default=_listen_address(DEFAULT_LISTEN),
                        metavar="HOST:PORT", help=f"address to bind (default {DEFAULT_LISTEN}; port 0 picks one)")
    parser.add_argument("--token", default=None,
                        help="bearer token clients must send (default: $CONVOTEL_SERVE_TOKEN, else generated)")
    parser.add_argument("--strict", action="store_true",
                        help="also reject parentExternalMessageId values not delivered before the child")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                        help=f"larger request bodies get 413 (default {DEFAULT_MAX_BODY_BYTES})")
    parser.set_defaults(run=_run_serve)


# -- entry point ------------------------------------------------------------------------------


def _register_plugins(subcommands: Subcommands) -> None:
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
                continue  # that subcommand is not part of this installation
            raise
        module.register(subcommands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convotel", description="LLM and agent conversations from OpenTelemetry")
    subcommands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _register_show(subcommands)
    _register_serve(subcommands)
    _register_plugins(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
