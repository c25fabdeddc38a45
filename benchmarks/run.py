"""Side-by-side overhead benchmarks: ``python -m benchmarks.run [--quick] [--update-readme README.md]``.

Starts the loopback servers (fake OpenAI, OTLP receiver, Greenflash-compatible
ingest), then runs every configuration in its own subprocess
(``benchmarks.worker``), in ``--rounds`` rounds with the order reversed on
every other round, and prints (and optionally writes into the README) one
table per scenario. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import report, servers
from benchmarks.configs import (ENV_INGEST, ENV_INGEST_DB, ENV_INGEST_TOKEN, ENV_OPENAI, ENV_OTLP,
                                SUITE_CONFIGS, version)
from benchmarks.scenarios import SUITE_SCENARIOS

ROOT = Path(__file__).resolve().parent
FULL = {"rounds": 2, "reps": 5, "calls": 300, "warmup": 150}
QUICK = {"rounds": 1, "reps": 2, "calls": 40, "warmup": 10}
#: Variables that would change what a configuration does; workers start without them.
_SCRUB_PREFIXES = ("OTEL_", "GREENFLASH_", "CONVOTEL_", "TRACELOOP_", "OPENINFERENCE_", "OPENAI_", "LANGCHAIN_",
                   "LANGSMITH_")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _start_servers(log_dir: Path, ingest: str) -> tuple[list[servers.Server], dict[str, str]]:
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


def _run_worker(suite: str, config: str, scenarios: list[str], params: dict[str, int], env: dict[str, str],
                log_dir: Path, round_no: int, timeout_s: float) -> dict[str, Any]:
    out = log_dir / f"{suite}-{config}-r{round_no}.json"
    log = log_dir / f"{suite}-{config}-r{round_no}.log"
    out.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "benchmarks.worker", "--suite", suite, "--config", config,
            "--scenarios", ",".join(scenarios), "--warmup", str(params["warmup"]), "--reps", str(params["reps"]),
            "--calls", str(params["calls"]), "--out", str(out)]
    with log.open("w") as handle:
        try:
            proc = subprocess.run(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout_s,
                                  cwd=str(ROOT.parent))
            code: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            code = f"timed out after {timeout_s:.0f} s"
    if out.exists():
        result = json.loads(out.read_text())
        if code != 0:
            result.setdefault("notes", []).append(f"the worker exited with {code} after writing its results")
        return result
    tail = log.read_text()[-600:].strip().splitlines()
    return {"suite": suite, "config": config, "status": "error",
            "error": f"worker exited with {code}: {tail[-1] if tail else 'no output'}", "scenarios": {}}


def _merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the repetitions of every round of one configuration."""
    merged = dict(rounds[0])
    failed = next((r for r in rounds if r["status"] != "ok"), None)
    if failed is not None:
        return {**merged, "status": "error", "error": failed.get("error", "failed")}
    scenarios: dict[str, Any] = {}
    for name in rounds[0]["scenarios"]:
        parts = [r["scenarios"].get(name, {"status": "error", "error": "missing"}) for r in rounds]
        bad = next((p for p in parts if p["status"] != "ok"), None)
        if bad is not None:
            scenarios[name] = bad
            continue
        scenarios[name] = {
            "status": "ok",
            **{k: [v for p in parts for v in p[k]] for k in ("app_us", "app_p50_us", "cpu_us", "flush_ms")},
            **{k: sum(p[k] for p in parts) for k in ("calls", "delivered", "objects_retained", "leak_calls")},
        }
    merged["scenarios"] = scenarios
    merged["notes"] = sorted({n for r in rounds for n in r.get("notes", [])})
    return merged


def run_suite(suite: str, configs: list[str], params: dict[str, int], env: dict[str, str], log_dir: Path,
              timeout_s: float, scenarios: list[str] | None = None) -> dict[str, Any]:
    names = [s.name for s in SUITE_SCENARIOS[suite] if scenarios is None or s.name in scenarios]
    per_config: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    for round_no in range(params["rounds"]):
        order = configs if round_no % 2 == 0 else list(reversed(configs))
        for config in order:
            t0 = time.monotonic()
            result = _run_worker(suite, config, names, params, env, log_dir, round_no, timeout_s)
            per_config[config].append(result)
            status = result["status"] if result["status"] != "ok" else ", ".join(
                f"{n}: {s['status']}" for n, s in result["scenarios"].items())
            print(f"  [{suite} round {round_no + 1}/{params['rounds']}] {config}: {status} "
                  f"({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)
    return {c: _merge(rs) for c, rs in per_config.items()}


def _environment_line(params: dict[str, int], elapsed_s: float, quick: bool, ingest: str) -> str:
    versions = ", ".join(f"{p} {version(p)}" for p in (
        "openai", "langchain-core", "langchain-openai", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"))
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    kind = "**quick smoke run: indicative only**, " if quick else ""
    backend = "`convotel serve` (SQLite)" if ingest == "serve" else "a minimal Greenflash-compatible receiver"
    return (
        f"Measured by `make bench` on {when} ({kind}{elapsed_s / 60:.1f} min): Python {platform.python_version()}, "
        f"{os.cpu_count()} cores ({_cpu_model()}), {versions}. "
        f"{params['rounds']} round(s) × {params['reps']} repetitions × {params['calls']} calls per configuration "
        f"and scenario, after {params['warmup']} warm-up calls; one subprocess per configuration and round.\n\n"
        "How to read it: *app thread* is the wall time of the SDK call in the calling thread; *process CPU* is "
        "`time.process_time()` over a repetition, including the flush of the telemetry pipeline at its end (so "
        "background export threads are counted), divided by the calls. Values are medians over repetitions "
        "(± half the interquartile range); *overhead* is the difference to the uninstrumented baseline, and "
        "*vs best peer* divides it by the lowest overhead among the peers that instrument that API. "
        "Peers export through `BatchSpanProcessor` + OTLP/HTTP to a loopback OTLP receiver; convotel delivers "
        f"messages to {backend} on loopback; the fake OpenAI server and the backends run in their own processes. "
        "*Exported per call* counts what reached the backend (a configuration that exports nothing for an API "
        "is marked not instrumented); *retained objects* is the growth of `gc.get_objects()` after "
        "`gc.collect()` over the measured calls (⚠ = more than one object per two calls: a leak)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", choices=["all", *SUITE_CONFIGS], default="all")
    parser.add_argument("--configs", help="comma-separated configuration names (default: all)")
    parser.add_argument("--scenarios", help="comma-separated scenario names (default: all)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few calls, one round")
    for key in FULL:
        parser.add_argument(f"--{key}", type=int, help=f"default {FULL[key]} (quick: {QUICK[key]})")
    parser.add_argument("--ingest", choices=["serve", "fast"], default="serve",
                        help="convotel's backend: `convotel serve` (default) or a minimal receiver")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per worker process")
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
    log_dir = Path(tempfile.mkdtemp(prefix="convotel-bench-"))
    print(f"benchmarks: logs in {log_dir}", file=sys.stderr, flush=True)
    running, env = _start_servers(log_dir, args.ingest)
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

    sections = [_environment_line(params, elapsed, args.quick, args.ingest)]
    sections += [report.suite_markdown(suite, results[suite]) for suite in suites]
    markdown = "\n\n".join(sections)
    print(markdown)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"params": params, "elapsed_s": elapsed, "server_cpu_s": server_cpu,
                                     "log_dir": str(log_dir), "results": results}, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown + "\n")
    if args.update_readme:
        report.update_readme(args.update_readme, markdown)
        print(f"benchmarks: updated {args.update_readme}", file=sys.stderr)
    print(f"benchmarks: done in {elapsed:.0f} s; raw results in {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
