"""Side-by-side overhead benchmarks: ``python -m benchmarks.run [--quick] [--update-readme README.md]``.

Starts the loopback servers (fake OpenAI, OTLP receiver, Greenflash-compatible
ingest), then runs every configuration in its own long-lived subprocess
(``benchmarks.worker``), interleaving their repetitions, and prints (and
optionally writes into the README) one table per scenario. See
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import report, servers
from benchmarks.configs import (
    ENV_INGEST,
    ENV_INGEST_DB,
    ENV_INGEST_TOKEN,
    ENV_OPENAI,
    ENV_OTLP,
    ENV_WORKER_CPUS,
    SUITE_CONFIGS,
    version,
)
from benchmarks.scenarios import SUITE_SCENARIOS, Scenario

ROOT = Path(__file__).resolve().parent
FULL = {"reps": 40, "calls": 40, "warmup": 60}
QUICK = {"reps": 3, "calls": 20, "warmup": 5}
#: Variables that would change what a configuration does; workers start without them.
_SCRUB_PREFIXES = ("OTEL_", "GREENFLASH_", "CONVOTEL_", "TRACELOOP_", "OPENINFERENCE_", "OPENAI_", "LANGCHAIN_",
                   "LANGSMITH_")
#: What a worker's ``rep`` answer gives per repetition; a scenario's entry keeps one list of each.
_REP_KEYS = ("app_us", "app_p50_us", "cpu_us", "thread_cpu_us", "flush_ms", "threads_us", "objects")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _place_on_cpus() -> tuple[str, dict[str, str]]:
    """Loopback servers (and this orchestrator) on the first CPU, the measured worker on the others.

    A worker that shares its CPU with the servers it calls, or migrates between CPUs, is slowed by
    them at random; with these placements the rep-to-rep spread of one configuration against
    itself was about halved here (2 cores). Every configuration gets the same placement; a
    worker's own background threads share its CPU (as they share its GIL anyway). Returns a
    description and the environment for the workers."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return "not pinned (no CPU affinity here)", {}
    if len(cpus) < 2:
        return "not pinned (one CPU)", {}
    os.sched_setaffinity(0, cpus[:1])  # the servers started next inherit it
    workers = ",".join(map(str, cpus[1:]))
    return f"servers on CPU {cpus[0]}, each worker on CPU {workers}", {ENV_WORKER_CPUS: workers}


def start_servers(log_dir: Path, ingest: str) -> tuple[list[servers.Server], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    started: list[servers.Server] = []
    try:
        fake = servers.start("fake-openai", servers.python_module("benchmarks.fake_openai"), log_dir=log_dir, env=env)
        started.append(fake)
        otlp = servers.start("otlp-receiver", servers.python_module("benchmarks.otlp_receiver"), log_dir=log_dir,
                             env=env)
        started.append(otlp)
        token = secrets.token_urlsafe(16)
        bench_env = {ENV_OPENAI: fake.url, ENV_OTLP: otlp.url, ENV_INGEST_TOKEN: token}
        if ingest == "serve":
            db = log_dir / "ingest.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            serve = servers.start("convotel-serve", servers.python_module(
                "convotel.cli", "serve", "--db", str(db), "--listen", "127.0.0.1:0", "--token", token),
                log_dir=log_dir, env=env, pattern=r"listening on (\S+)")
            bench_env[ENV_INGEST_DB] = str(db)
            started.append(serve)
            bench_env[ENV_INGEST] = serve.url
        else:
            fast = servers.start("ingest-receiver", servers.python_module("benchmarks.ingest_receiver"),
                                 log_dir=log_dir, env=env)
            started.append(fast)
            bench_env[ENV_INGEST] = fast.url
    except Exception:
        for server in started:
            server.stop()
        raise
    return started, {**env, **bench_env}


class WorkerProcess:
    """A configuration's long-lived worker (``benchmarks.worker``), one JSON line per command."""

    def __init__(self, suite: str, config: str, env: dict[str, str], log_dir: Path, timeout_s: float) -> None:
        self.config = config
        self.timeout_s = timeout_s
        self.log_path = log_dir / f"{suite}-{config}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", "--suite", suite, "--config", config],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1, env=env,
            cwd=str(ROOT.parent), start_new_session=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, name=f"bench-{config}", daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _tail(self) -> str:
        self._log.flush()
        lines = [x for x in self.log_path.read_text().strip().splitlines() if x.strip()]
        return lines[-1][:200] if lines else "no output"

    def read(self) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=self.timeout_s)
        except queue.Empty:
            self.kill()
            raise RuntimeError(f"no answer within {self.timeout_s:.0f} s") from None
        if line is None:
            code = self.process.wait(10)
            raise RuntimeError(f"worker exited with {code}: {self._tail()}")
        return json.loads(line)

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # read() reports why the worker is gone
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask({"cmd": "exit"})
                self.process.wait(30)
            except Exception:
                self.kill()
        self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _failed(error: str) -> dict[str, Any]:
    return {"status": "error", "error": error}


def selected_scenarios(suite: str, scenarios: list[str] | None) -> list[Scenario]:
    """The suite's scenarios that run (``--scenarios``, default all)."""
    return [s for s in SUITE_SCENARIOS[suite] if scenarios is None or s.name in scenarios]


def _weights_text(weights: list[float]) -> str:
    """How the calls per repetition scale by scenario (``Scenario.weight``), for the environment line."""
    if not weights or min(weights) == max(weights) == 1:
        return ""
    if min(weights) == max(weights):
        return f" (×{weights[0]:g} by scenario cost)"
    return f" (×{min(weights):g} to ×{max(weights):g} by scenario cost)"


def run_suite(suite: str, configs: list[str], params: dict[str, int], env: dict[str, str], log_dir: Path,
              timeout_s: float, scenarios: list[str] | None = None) -> dict[str, Any]:
    """Every configuration in its own process; repetitions interleaved across configurations."""
    selected = selected_scenarios(suite, scenarios)
    names = [s.name for s in selected]
    weights = {s.name: s.weight for s in selected}
    workers = {c: WorkerProcess(suite, c, env, log_dir, timeout_s) for c in configs}
    results: dict[str, dict[str, Any]] = {}
    try:
        for config, worker in workers.items():
            try:
                results[config] = {**worker.read(), "scenarios": {}}
            except RuntimeError as exc:
                results[config] = {**_failed(str(exc)), "scenarios": {}}
            if results[config]["status"] != "ok":
                print(f"  [{suite}] {config}: could not run: {results[config]['error']}", file=sys.stderr, flush=True)
                worker.kill()
        alive = [c for c in configs if results[c]["status"] == "ok"]
        for name in names:
            t0 = time.monotonic()
            calls = max(1, round(params["calls"] * weights[name]))
            warmup = max(1, round(params["warmup"] * weights[name]))
            active: list[str] = []
            for config in alive:
                try:
                    answer = workers[config].ask({"cmd": "prepare", "scenario": name, "warmup": warmup})
                except RuntimeError as exc:
                    answer = _failed(str(exc))
                if answer["status"] == "ok":
                    active.append(config)
                    results[config]["scenarios"][name] = {
                        "status": "ok", **{key: [] for key in _REP_KEYS}, "calls": 0, "calls_per_rep": calls,
                        "delivered": 0}
                else:
                    results[config]["scenarios"][name] = answer
            for rep in range(params["reps"]):
                k = rep % len(active) if active else 0
                order = active[k:] + active[:k]
                for config in (reversed(order) if rep % 2 else order):
                    entry = results[config]["scenarios"][name]
                    if entry["status"] != "ok":
                        continue
                    try:
                        answer = workers[config].ask({"cmd": "rep", "scenario": name, "calls": calls})
                    except RuntimeError as exc:
                        answer = _failed(str(exc))
                    if answer["status"] != "ok":
                        results[config]["scenarios"][name] = answer
                        continue
                    for key in _REP_KEYS:
                        entry[key].append(answer[key])
                    entry["calls"] += answer["calls"]
                    entry["delivered"] += answer["delivered"]
            summary = ", ".join(f"{c}: {results[c]['scenarios'][name]['status']}" for c in alive)
            print(f"  [{suite}] {name}: {summary} ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
    finally:
        for worker in workers.values():
            worker.close()
    return results


def _environment_line(params: dict[str, int], elapsed_s: float, quick: bool, ingest: str, load: str,
                      placement: str, weights: list[float]) -> str:
    versions = ", ".join(f"{p} {version(p)}" for p in (
        "openai", "langchain-core", "langchain-openai", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"))
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    kind = "**quick smoke run: indicative only**, " if quick else ""
    backend = "`convotel serve` (SQLite)" if ingest == "serve" else "a minimal Greenflash-compatible receiver"
    return (
        f"Measured by `make bench` on {when} ({kind}{elapsed_s / 60:.1f} min): Python {platform.python_version()}, "
        f"{os.cpu_count()} cores ({_cpu_model()}; load average {load} at the start), {versions}. "
        f"{params['reps']} repetitions of {params['calls']} calls{_weights_text(weights)} per configuration "
        f"and scenario after a warm-up; one subprocess per configuration, repetitions interleaved across "
        f"configurations; {placement}.\n\n"
        "How to read it: *app thread* is the wall time of the SDK call in the calling thread (*of which app-thread "
        "CPU*: that thread's own CPU time, `time.thread_time()`); *process CPU* is `time.process_time()` over a "
        "repetition, including the flush of the telemetry pipeline at its end (so background export threads are "
        "counted), divided by the calls. Absolute values are medians over repetitions; *overhead* is the median "
        "of the repetition-by-repetition differences to the uninstrumented baseline (± half their interquartile "
        "range), and *vs best peer* divides it by the lowest overhead among the peers that instrument that API. "
        "Peers export through `BatchSpanProcessor` + OTLP/HTTP to a loopback OTLP receiver; convotel delivers "
        f"messages to {backend} on loopback; the fake OpenAI server and the backends run in their own processes. "
        "*Exported per call* counts what reached the backend (a configuration that exports nothing for an API "
        "is marked not instrumented); *retained objects* is the trend of live objects (`gc.get_objects()` after "
        "`gc.collect()`, Theil–Sen slope over the repetitions) per 1,000 calls (⚠ = more than 2 per call: a leak). "
        "Rows in italics are diagnostics, never judged against the targets."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", choices=["all", *SUITE_CONFIGS], default="all")
    parser.add_argument("--configs", help="comma-separated configuration names (default: all)")
    parser.add_argument("--scenarios", help="comma-separated scenario names (default: all)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few calls, one round")
    for key in FULL:
        parser.add_argument(f"--{key}", type=int, help=f"default {FULL[key]} (quick: {QUICK[key]})")
    parser.add_argument("--ingest", choices=["serve", "fast"], default="fast",
                        help="convotel's backend: a minimal Greenflash-compatible receiver (default, as light as the "
                             "peers' OTLP receiver) or the real `convotel serve` (validating, SQLite)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a worker may take to answer")
    parser.add_argument("--update-readme", type=Path, metavar="README", help="rewrite its bench section")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "latest.json", help="raw results")
    parser.add_argument("--markdown", type=Path, help="also write the Markdown section here")
    args = parser.parse_args(argv)

    params = dict(QUICK if args.quick else FULL)
    for key in FULL:
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    suites = list(SUITE_CONFIGS) if args.suite == "all" else [args.suite]
    wanted = set(args.configs.split(",")) if args.configs else None
    scenarios = args.scenarios.split(",") if args.scenarios else None

    started = time.monotonic()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    log_dir = Path(tempfile.mkdtemp(prefix="convotel-bench-"))
    print(f"benchmarks: logs in {log_dir}", file=sys.stderr, flush=True)
    placement, worker_env = _place_on_cpus()
    running, env = start_servers(log_dir, args.ingest)
    env.update(worker_env)
    results: dict[str, dict[str, Any]] = {}
    server_cpu: dict[str, float | None] = {}
    try:
        for suite in suites:
            configs = [c.name for c in SUITE_CONFIGS[suite] if wanted is None or c.name in wanted]
            results[suite] = run_suite(suite, configs, params, env, log_dir, args.timeout, scenarios)
    finally:
        for server in running:
            server_cpu[server.name] = server.cpu_seconds()
            server.stop()
    elapsed = time.monotonic() - started

    weights = [s.weight for suite in suites for s in selected_scenarios(suite, scenarios)]
    sections = [_environment_line(params, elapsed, args.quick, args.ingest, load, placement, weights)]
    sections += [report.suite_markdown(suite, results[suite]) for suite in suites]
    markdown = "\n\n".join(sections)
    print(markdown)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"params": params, "elapsed_s": elapsed, "server_cpu_s": server_cpu,
                                     "log_dir": str(log_dir), "results": results}, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown + "\n")
    if args.update_readme and args.quick:
        print(f"benchmarks: a quick run does not update {args.update_readme}", file=sys.stderr)
    elif args.update_readme:
        report.update_readme(args.update_readme, markdown)
        print(f"benchmarks: updated {args.update_readme}", file=sys.stderr)
    print(f"benchmarks: done in {elapsed:.0f} s; raw results in {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
