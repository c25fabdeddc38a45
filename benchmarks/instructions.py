"""Instructions per call under valgrind: a deterministic cross-check of the wall-clock tables.

    make bench-instructions                     # both suites, rewrites README.md's section
    benchmarks/.venv/bin/python -m benchmarks.instructions --suite langchain --scenarios agent --calls 50

On a shared 2-core machine the wall-clock overheads of ``benchmarks.run`` move by a factor of two
between runs, and the same configuration in two processes of one run differs by more than the gap
a target asks for. An instruction count moves far less: every (configuration, scenario) runs in its own
process under ``valgrind --tool=cachegrind`` with the same setup, scenario code and loopback
servers as ``benchmarks.run``, once with 0 calls and once with N calls after the warm-up (each
ending with a flush of the telemetry pipeline), and the difference divided by N is the process's
instructions per call: every thread (convotel's pipeline and delivery, a ``BatchSpanProcessor``'s
export), not the servers, which are other processes. ``PYTHONHASHSEED=0``; what is left is timing (how
many calls a background thread takes per wake-up): about 1% of a process's count, up to about 4%
of convotel's overhead on the agent.

Valgrind slows Python about 50x, so convotel's pipeline (which maps the spans of 50 ms together)
takes a call or so per batch rather than the ~10 of a real run: its per-batch work is counted more
often than it happens outside valgrind (for the agent, about 3% of its overhead).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.configs import SUITE_CONFIGS, Config
from benchmarks.report import PRIMARY, SUITE_TITLES, TARGETS, update_readme
from benchmarks.run import selected_scenarios, start_servers
from benchmarks.scenarios import SUITE_SCENARIOS, Scenario

START, END = "<!-- instructions:start -->", "<!-- instructions:end -->"
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")
_EXPORTED = re.compile(r"^exported (\d+)$", re.M)


def _child(suite: str, config: str, scenario: str, calls: int, warmup: int) -> None:
    """Runs inside valgrind: set up ``config``, warm ``scenario`` up, then ``calls`` calls and a flush."""
    from benchmarks.worker import Worker

    worker = Worker(suite, config)
    if worker.info["status"] != "ok":
        raise SystemExit(f"{config} could not run: {worker.info.get('error')}")
    worker.prepare(scenario, warmup)
    call, setup = worker.calls[scenario], worker.setup
    assert setup is not None
    before = setup.delivered()
    for _ in range(calls):
        call()
    setup.flush()
    print(f"exported {setup.delivered() - before}")  # a peer that exports nothing does not instrument this API


def _count(suite: str, config: str, scenario: str, calls: int, warmup: int,
           env: dict[str, str]) -> tuple[int, int]:
    """Instructions of one child process under cachegrind, and what reached the backend in its calls."""
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
               sys.executable, "-m", "benchmarks.instructions", "--child", "--suite", suite, "--configs", config,
               "--scenarios", scenario, "--calls", str(calls), "--warmup", str(warmup)]
    proc = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], env={**env, "PYTHONHASHSEED": "0"},
                          capture_output=True, text=True)
    found, exported = _REFS.search(proc.stderr), _EXPORTED.search(proc.stdout)
    if proc.returncode != 0 or found is None or exported is None:
        lines = [line for line in proc.stderr.splitlines() if not line.startswith("==")]
        raise RuntimeError(f"{config} / {scenario} failed: {' '.join(lines[-3:])[:300]}")
    return int(found.group(1).replace(",", "")), int(exported.group(1))


def per_call(suite: str, config: Config, scenario: str, calls: int, warmup: int,
             env: dict[str, str]) -> float | str:
    """Instructions per call (N calls minus 0 calls, so start-up and warm-up cancel), or why there is none."""
    with_calls, exported = _count(suite, config.name, scenario, calls, warmup, env)
    if config.kind == "peer" and exported == 0:
        return "not instrumented"
    return (with_calls - _count(suite, config.name, scenario, 0, warmup, env)[0]) / calls


def _k(instructions: float) -> str:
    return f"{instructions / 1000:,.0f}k"


def suite_table(suite: str, counts: dict[tuple[str, str], float | str], configs: list[Config]) -> str:
    """Markdown: a row per configuration, a column per scenario; the baseline's instructions per call,
    the others' overhead over it and its ratio to the best peer's (✅/❌: the target, on the row it
    is judged on)."""
    scenarios = [s for s in SUITE_SCENARIOS[suite] if any((c.name, s.name) in counts for c in configs)]
    best: dict[str, float] = {}
    for scenario in scenarios:
        base = counts.get(("none", scenario.name))
        overheads = [value - base for c in configs if c.kind == "peer"
                     if isinstance(value := counts.get((c.name, scenario.name)), float) and isinstance(base, float)]
        if overheads and min(overheads) > 0:
            best[scenario.name] = min(overheads)
    lines = [f"#### {SUITE_TITLES[suite]}", "",
             "| configuration | " + " | ".join(s.title.replace("|", "\\|") for s in scenarios) + " |",
             "|---|" + "--:|" * len(scenarios)]
    for config in [c for c in configs if any((c.name, s.name) in counts for s in scenarios)]:
        cells = []
        for scenario in scenarios:
            value, base = counts.get((config.name, scenario.name)), counts.get(("none", scenario.name))
            if not isinstance(value, float) or not isinstance(base, float):
                cells.append(str(value or ""))
            elif config.name == "none":
                cells.append(f"{_k(value)} per call")
            else:
                cell = f"+{_k(value - base)}"
                if scenario.name in best:
                    ratio = (value - base) / best[scenario.name]
                    mark = (" ✅" if ratio <= TARGETS[suite] else " ❌") if config.name == PRIMARY[suite] else ""
                    cell += f" ({ratio:.2f}×{mark})"
                cells.append(cell)
        label = {"convotel": f"**{config.label}**", "diagnostic": f"*{config.label}*"}.get(config.kind, config.label)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=["all", *SUITE_CONFIGS], default="all")
    parser.add_argument("--configs", help="comma-separated configuration names (default: all of the suite)")
    parser.add_argument("--scenarios", help="comma-separated scenario names (default: all of the suite)")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="valgrind processes at once")
    parser.add_argument("--update-readme", type=Path, metavar="README", help="rewrite its instructions section")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    suites = list(SUITE_CONFIGS) if args.suite == "all" else [args.suite]
    wanted = args.scenarios.split(",") if args.scenarios else None

    def selected(suite: str) -> tuple[list[Config], list[Scenario]]:
        configs = [c for c in SUITE_CONFIGS[suite] if not args.configs or c.name in args.configs.split(",")]
        return configs, selected_scenarios(suite, wanted)

    if args.child:
        configs, scenarios = selected(suites[0])
        _child(suites[0], configs[0].name, scenarios[0].name, args.calls, args.warmup)
        return 0
    if shutil.which("valgrind") is None:
        print("benchmarks.instructions: valgrind is not installed (e.g. `apt install valgrind`); "
              "the wall-clock benchmark (make bench) does not need it", file=sys.stderr)
        return 2
    started = time.monotonic()
    servers, env = start_servers(Path(tempfile.mkdtemp(prefix="convotel-instr-")), "fast")
    tables = []
    try:
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for suite in suites:
                configs, scenarios = selected(suite)
                jobs = [(c, s.name) for s in scenarios for c in configs]
                if not jobs:
                    continue
                futures = {(c.name, name): pool.submit(per_call, suite, c, name, args.calls, args.warmup, env)
                           for c, name in jobs}
                counts: dict[tuple[str, str], float | str] = {}
                for job, future in futures.items():
                    try:
                        counts[job] = future.result()
                    except RuntimeError as exc:
                        counts[job] = f"could not run: {exc}"
                    print(f"{suite:>9} {job[0]:>18} {job[1]:<14} {counts[job]}", file=sys.stderr)
                tables.append(suite_table(suite, counts, configs))
    finally:
        for server in servers:
            server.stop()
    section = "\n\n".join(tables) + (
        f"\n\nValgrind cachegrind, {args.calls} calls after {args.warmup} of warm-up, `PYTHONHASHSEED=0`, "
        f"{time.monotonic() - started:.0f} s; `make bench-instructions` regenerates it.")
    print(section)
    if args.update_readme:
        update_readme(args.update_readme, section, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
