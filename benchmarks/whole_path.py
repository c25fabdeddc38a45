"""A model call's whole telemetry path, without the SDK's HTTP: instrumentor, span processor,
mapping and delivery to a loopback backend (convotel), or the official OTel instrumentation with
``BatchSpanProcessor`` + the OTLP/HTTP exporter (``otel-v2``)::

    benchmarks/.venv/bin/python -m benchmarks.whole_path convotel chat 3000     # CPU µs per call, by thread

The wrapped SDK method is the stand-in of ``instrumentors/openai/bench/hotpath.py`` (a prebuilt
answer), so only the telemetry costs anything. Under valgrind the instruction count is the same
from run to run, whatever else the machine does; the difference of two call counts cancels the
start-up::

    PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        benchmarks/.venv/bin/python -m benchmarks.whole_path convotel chat 1000 --once

(minus the same with 0 calls, divided by 1000: instructions per call; the backend runs in its own
process and is not counted).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import servers
from benchmarks.configs import ENV_INGEST, ENV_INGEST_TOKEN, ENV_OTLP, setup_openai
from benchmarks.worker import thread_cpu_ns

_HOTPATH = Path(__file__).resolve().parents[1] / "instrumentors" / "openai" / "bench"


def _instrument(config: str, backend_url: str) -> Callable[[], None]:
    """Instruments the process as ``benchmarks.run``'s worker does for ``config``, with the backend at
    ``backend_url``; returns its flush."""
    if config == "convotel":
        os.environ[ENV_INGEST] = backend_url
        os.environ[ENV_INGEST_TOKEN] = "bench"  # the ingest receiver only asks for a bearer token
    else:
        os.environ[ENV_OTLP] = backend_url
    return setup_openai(config).flush


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", choices=["convotel", "otel-v2"])
    parser.add_argument("scenario", choices=["chat", "stream", "responses"])
    parser.add_argument("calls", type=int)
    parser.add_argument("--once", action="store_true", help="run the calls once and exit (for valgrind)")
    args = parser.parse_args(argv)
    module = "benchmarks.ingest_receiver" if args.config == "convotel" else "benchmarks.otlp_receiver"
    backend = servers.start("backend", servers.python_module(module), log_dir=Path(tempfile.mkdtemp()),
                            env=dict(os.environ))
    try:
        flush = _instrument(args.config, backend.url)
        sys.path.insert(0, str(_HOTPATH))
        import hotpath  # the instrumentor stand-ins (needs the path above)

        call = hotpath.scenarios()[args.scenario]
        for _ in range(20):
            call()
        flush()
        if args.once:
            for _ in range(args.calls):
                call()
            flush()
            return 0
        best: dict[str, float] = {}
        for _ in range(5):
            threads0, cpu0 = thread_cpu_ns(), time.process_time()
            for _ in range(args.calls):
                call()
            flush()
            threads1, cpu1 = thread_cpu_ns(), time.process_time()
            for name, ns in threads1.items():
                best[name] = min(best.get(name, float("inf")), (ns - threads0.get(name, 0)) / args.calls / 1000)
            best["process"] = min(best.get("process", float("inf")), (cpu1 - cpu0) / args.calls * 1e6)
        print(f"{args.config} {args.scenario}: CPU µs per call (best of 5): "
              + ", ".join(f"{name} {us:.1f}" for name, us in sorted(best.items()) if us >= 0.05))
    finally:
        backend.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
