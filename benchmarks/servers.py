"""Loopback servers for the benchmarks, each in its own process so their CPU is not counted.

A server module calls :func:`serve_forever`, which binds 127.0.0.1 on a free
port, prints ``LISTENING <url>`` and serves until terminated. The orchestrator
starts it with :func:`start` and reads that line.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def serve_forever(app: Any, *, path: str = "") -> None:
    """Serve ``app`` on 127.0.0.1 (free port) with the fastest uvicorn stack installed."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(512)
    port = sock.getsockname()[1]
    fast = importlib.util.find_spec("httptools") is not None
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    config = uvicorn.Config(app, lifespan="off", access_log=False, log_level="warning", log_config=None,
                            http="httptools" if fast else "h11", loop=loop, timeout_keep_alive=600)
    server = uvicorn.Server(config)
    print(f"LISTENING http://{HOST}:{port}{path}", flush=True)
    server.run(sockets=[sock])


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[str]
    log_path: Path
    _reader: threading.Thread | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def cpu_seconds(self) -> float | None:
        """User+system CPU the server process has used so far (Linux /proc), for the report."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None


def start(name: str, argv: Sequence[str], *, log_dir: Path, pattern: str = r"(https?://\S+)",
          env: dict[str, str] | None = None, timeout_s: float = 60.0) -> Server:
    """Start ``argv`` and wait for the first stdout line matching ``pattern`` (group 1: the URL)."""
    log_path = log_dir / f"{name}.log"
    log = log_path.open("w")
    process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
                               env=env, start_new_session=True)
    assert process.stdout is not None
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            log.flush()
            if not found:
                match = re.search(pattern, line)
                if match:
                    found.append(match.group(1))
                    ready.set()
        ready.set()

    reader = threading.Thread(target=pump, name=f"bench-{name}-stdout", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    while not ready.wait(0.05):
        if time.monotonic() > deadline:
            break
    if not found:
        process.kill()
        process.wait(5)
        log.close()
        raise RuntimeError(f"{name} did not start ({' '.join(argv)}); see {log_path}:\n{log_path.read_text()[-2000:]}")
    return Server(name, found[0], process, log_path, reader)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
