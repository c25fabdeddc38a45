"""One configuration, measured in its own process: ``python -m benchmarks.worker --suite S --config C ...``.

For each scenario: build the workload, check one result, warm up, then
``--reps`` repetitions of ``--calls`` calls. Per repetition it records

- app-thread time: ``perf_counter_ns`` around each call in the calling thread (mean and median per call);
- process CPU: ``time.process_time()`` over the repetition *including a flush of the telemetry
  pipeline at its end* (so the export work of those calls is counted, in whatever thread it ran),
  divided by the number of calls.

After the repetitions it reads how many spans / messages reached the backend and how many Python
objects the process retained per call (after ``gc.collect()``), which exposes leaks.
The result is one JSON document written to ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import traceback
from typing import Any

from benchmarks.configs import SUITE_CONFIGS, SUITE_SETUP, version
from benchmarks.scenarios import SUITE_SCENARIOS


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0].replace(_ROOT, "")
    return text if len(text) <= 200 else text[:199] + "…"


def measure(call: Any, setup: Any, *, warmup: int, reps: int, calls: int) -> dict[str, Any]:
    for _ in range(warmup):
        call()
    setup.flush()
    gc.collect()
    delivered_before = setup.delivered()
    objects_before = 0
    app_mean, app_median, cpu, flush_ms = [], [], [], []
    perf = time.perf_counter_ns
    for _ in range(reps):
        gc.collect()
        samples = [0] * calls
        cpu0 = time.process_time()
        for i in range(calls):
            t0 = perf()
            call()
            samples[i] = perf() - t0
        f0 = perf()
        setup.flush()
        f1 = perf()
        cpu1 = time.process_time()
        app_mean.append(sum(samples) / calls / 1000)
        app_median.append(statistics.median(samples) / 1000)
        cpu.append((cpu1 - cpu0) / calls * 1e6)
        flush_ms.append((f1 - f0) / 1e6)
        if len(cpu) == 1:  # leak check: growth from the end of the first repetition to the end of the last
            gc.collect()
            objects_before = len(gc.get_objects())
    gc.collect()
    objects_after = len(gc.get_objects())
    leak_calls = (reps - 1) * calls
    measured = reps * calls
    delivered = setup.delivered() - delivered_before
    return {
        "status": "ok",
        "app_us": app_mean,
        "app_p50_us": app_median,
        "cpu_us": cpu,
        "flush_ms": flush_ms,
        "calls": measured,
        "delivered": delivered,
        "objects_retained": objects_after - objects_before if reps > 1 else 0,
        "leak_calls": leak_calls,
    }


def run(suite: str, config: str, scenarios: list[str], *, warmup: int, reps: int, calls: int) -> dict[str, Any]:
    spec = next(c for c in SUITE_CONFIGS[suite] if c.name == config)
    result: dict[str, Any] = {
        "suite": suite, "config": config, "status": "ok", "scenarios": {},
        "versions": {p: version(p) for p in spec.packages}, "notes": [],
    }
    try:
        setup = SUITE_SETUP[suite](config)
    except Exception as exc:
        result.update(status="error", error=_error_text(exc), traceback=traceback.format_exc())
        return result
    result["unit"] = setup.unit
    result["notes"] = setup.notes
    by_name = {s.name: s for s in SUITE_SCENARIOS[suite]}
    for name in scenarios:
        scenario = by_name[name]
        try:
            call = scenario.build(setup)
            if not scenario.check(call()):
                raise AssertionError("the app got an unexpected result with this configuration")
        except Exception as exc:
            result["scenarios"][name] = {"status": "error", "error": _error_text(exc),
                                         "traceback": traceback.format_exc()}
            continue
        try:
            result["scenarios"][name] = measure(call, setup, warmup=warmup, reps=reps, calls=calls)
        except Exception as exc:
            result["scenarios"][name] = {"status": "error", "error": _error_text(exc),
                                         "traceback": traceback.format_exc()}
    try:
        setup.flush()
    except Exception:
        pass
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", required=True, choices=sorted(SUITE_CONFIGS))
    parser.add_argument("--config", required=True)
    parser.add_argument("--scenarios", required=True, help="comma-separated scenario names")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = run(args.suite, args.config, args.scenarios.split(","),
                 warmup=args.warmup, reps=args.reps, calls=args.calls)
    with open(args.out, "w") as handle:
        json.dump(result, handle)
    sys.stdout.flush()
    sys.stderr.flush()
    return 0


if __name__ == "__main__":
    code = main()
    # Skip atexit hooks' network waits being counted nowhere: the result is written; exit promptly
    # but let instrumentors' shutdown run (a hang here is caught by the orchestrator's timeout).
    sys.exit(code)
