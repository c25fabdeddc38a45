"""One configuration in its own process, driven by the orchestrator over a pipe.

``python -m benchmarks.worker --suite S --config C`` sets the configuration up,
then answers one JSON command per stdin line with one JSON line (on the
original stdout; anything libraries print goes to stderr):

- ``{"cmd": "prepare", "scenario": N, "warmup": W}``: build the workload, check one result, warm up;
- ``{"cmd": "rep", "scenario": N, "calls": K}``: one repetition of ``K`` calls, returning
  *app-thread time* (``perf_counter_ns`` around each call in the calling thread; mean and median)
  and the calling thread's own CPU time (``time.thread_time()``), and *process CPU*
  (``time.process_time()`` over the repetition **including a flush of the telemetry pipeline at
  its end**, so the export work of those calls is counted in whatever thread it ran, divided by
  ``K``), plus what reached the backend during it and the number of live Python objects after it
  (after ``gc.collect()``, outside the timed windows), whose trend over the repetitions exposes leaks;
- ``{"cmd": "exit"}``.

The orchestrator keeps every configuration's process alive and interleaves their repetitions
(only one runs at a time), so load that comes and goes on the machine hits every configuration
alike, and no configuration pays another's start-up.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from benchmarks.configs import ENV_WORKER_CPUS, SUITE_CONFIGS, SUITE_SETUP, Setup, version
from benchmarks.scenarios import SUITE_SCENARIOS

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def thread_cpu_ns() -> dict[str, int]:
    """CPU time of every live Python thread, by thread name (Linux/Unix per-thread clocks)."""
    out: dict[str, int] = {}
    for thread in threading.enumerate():
        try:
            clock = time.pthread_getcpuclockid(thread.ident)  # type: ignore[arg-type]
            out[thread.name] = out.get(thread.name, 0) + time.clock_gettime_ns(clock)
        except (AttributeError, OSError, TypeError, OverflowError):
            continue
    return out


def error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0].replace(_ROOT, "")
    return text if len(text) <= 200 else text[:199] + "…"


class Worker:
    def __init__(self, suite: str, config: str) -> None:
        self.suite = suite
        spec = next(c for c in SUITE_CONFIGS[suite] if c.name == config)
        self.info: dict[str, Any] = {"status": "ok", "versions": {p: version(p) for p in spec.packages},
                                     "notes": [], "unit": ""}
        self.setup: Setup | None = None
        self.calls: dict[str, Callable[[], Any]] = {}
        try:
            self.setup = SUITE_SETUP[suite](config)
            self.info.update(unit=self.setup.unit, notes=self.setup.notes)
        except Exception as exc:
            self.info.update(status="error", error=error_text(exc), traceback=traceback.format_exc())

    def prepare(self, scenario: str, warmup: int) -> dict[str, Any]:
        assert self.setup is not None
        spec = next(s for s in SUITE_SCENARIOS[self.suite] if s.name == scenario)
        call = spec.build(self.setup)
        if not spec.check(call()):
            raise AssertionError("the app got an unexpected result with this configuration")
        for _ in range(warmup):
            call()
        self.setup.flush()
        self.calls[scenario] = call
        return {"status": "ok"}

    def rep(self, scenario: str, calls: int) -> dict[str, Any]:
        setup, call = self.setup, self.calls[scenario]
        assert setup is not None
        gc.collect()
        delivered0 = setup.delivered()
        samples = [0] * calls
        perf = time.perf_counter_ns
        threads0 = thread_cpu_ns()
        cpu0 = time.process_time()
        thread0 = time.thread_time()
        for i in range(calls):
            t0 = perf()
            call()
            samples[i] = perf() - t0
        thread1 = time.thread_time()
        f0 = perf()
        setup.flush()
        f1 = perf()
        cpu1 = time.process_time()
        threads1 = thread_cpu_ns()
        threads_us = {name: (ns - threads0.get(name, 0)) / calls / 1000 for name, ns in threads1.items()
                      if ns - threads0.get(name, 0) > 0}
        delivered = setup.delivered() - delivered0
        gc.collect()
        objects = len(gc.get_objects())
        return {"status": "ok", "app_us": sum(samples) / calls / 1000, "app_p50_us": statistics.median(samples) / 1000,
                "cpu_us": (cpu1 - cpu0) / calls * 1e6, "thread_cpu_us": (thread1 - thread0) / calls * 1e6,
                "flush_ms": (f1 - f0) / 1e6, "calls": calls, "delivered": delivered, "threads_us": threads_us,
                "objects": objects}

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        cmd = command["cmd"]
        try:
            if cmd == "prepare":
                return self.prepare(command["scenario"], command.get("warmup", 0))
            if cmd == "rep":
                return self.rep(command["scenario"], command["calls"])
        except Exception as exc:
            return {"status": "error", "error": error_text(exc), "traceback": traceback.format_exc()}
        return {"status": "error", "error": f"unknown command {cmd!r}"}

    def close(self) -> None:
        if self.setup is not None:
            try:
                self.setup.flush()
            except Exception:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", required=True, choices=sorted(SUITE_CONFIGS))
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    if cpus := os.environ.get(ENV_WORKER_CPUS):
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})  # before any thread: they inherit it
    # The protocol owns the original stdout; whatever else is printed goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    worker = Worker(args.suite, args.config)
    protocol.write(json.dumps(worker.info) + "\n")
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "exit":
            break
        protocol.write(json.dumps(worker.handle(command)) + "\n")
    worker.close()
    protocol.write(json.dumps({"status": "ok", "closed": True}) + "\n")
    protocol.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
