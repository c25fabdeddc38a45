"""Smoke test of the benchmark harness (``benchmarks/``): it runs and produces the tables.

A handful of calls for the baseline and convotel only, in the project's own venv
(the peers live in ``benchmarks/.venv``). No timing is asserted: only that
every scenario gets a table with the expected rows and the raw results are
complete.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("langchain_core")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")


def bench(module: str) -> Any:
    """``benchmarks.<module>``, imported from the repository root (not an installed package)."""
    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module(f"benchmarks.{module}")
    finally:
        sys.path.remove(str(ROOT))


def test_benchmark_harness_produces_tables(tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "results.json", tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--configs", "none,convotel",
         "--reps", "2", "--calls", "3", "--warmup", "1", "--timeout", "60",
         "--json", str(out_json), "--markdown", str(out_md)],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    SUITE_CONFIGS = bench("configs").SUITE_CONFIGS
    START, END = bench("report").START, bench("report").END
    SUITE_SCENARIOS = bench("scenarios").SUITE_SCENARIOS

    markdown = out_md.read_text()
    tables = re.sub(r"<details>.*?</details>", "", markdown, flags=re.S)  # the per-thread breakdowns aside
    results = json.loads(out_json.read_text())["results"]
    assert START not in markdown and END not in markdown
    for suite, configs in SUITE_CONFIGS.items():
        labels = {c.name: c.label for c in configs}
        assert set(results[suite]) == {"none", "convotel"}
        baseline = results[suite]["none"]
        assert baseline["status"] == "ok"
        for scenario in SUITE_SCENARIOS[suite]:
            assert scenario.title.replace("|", "\\|") in markdown
            assert baseline["scenarios"][scenario.name]["status"] == "ok", baseline["scenarios"][scenario.name]
            assert len(baseline["scenarios"][scenario.name]["cpu_us"]) == 2
        # a row per configuration in every scenario table of the suite (measured or "could not run")
        assert tables.count(f"| **{labels['convotel']}** |") == len(SUITE_SCENARIOS[suite])
    scenario_tables = sum(len(s) for s in SUITE_SCENARIOS.values())
    assert tables.count(f"| {SUITE_CONFIGS['openai'][0].label} |") == scenario_tables


def _rows(ours: list[float], peer: list[float]) -> list[Any]:
    configs = {c.name: c for c in bench("configs").SUITE_CONFIGS["openai"]}
    made = []
    for name, diffs in (("convotel", ours), ("otel-v2", peer)):
        row = bench("report").Row(configs[name], "ok", app_diffs=tuple(diffs), cpu_diffs=tuple(diffs))
        row.app_over = row.cpu_over = statistics.median(diffs)
        made.append(row)
    return made


@pytest.mark.parametrize(("ours", "status"), [
    ([40.0 + (i % 5) for i in range(40)], "met"),  # 0.40× with a tight spread
    ([70.0 + (i % 5) for i in range(40)], "missed"),  # 0.70×
    ([(i % 10) * 12.0 for i in range(40)], "unsettled"),  # a median of 0.5× with a spread that straddles it
])
def test_a_target_is_judged_on_the_ratio_interval(ours: list[float], status: str) -> None:
    peer = [100.0 + (i % 7) for i in range(40)]
    result = bench("report").verdict("openai", "chat", _rows(ours, peer))
    assert result.status == status
    assert result.app_interval is not None and result.app_interval[0] <= result.app_ratio <= result.app_interval[1]


def test_instruction_table_judges_the_primary_row_against_the_better_peer() -> None:
    instructions = bench("instructions")
    configs = list(bench("configs").SUITE_CONFIGS["langchain"])
    counts = {("none", "agent"): 25_900_000.0, ("convotel", "agent"): 28_000_000.0,
              ("convotel-nosink", "agent"): 27_600_000.0, ("openllmetry", "agent"): 32_300_000.0,
              ("openinference", "agent"): 40_000_000.0, ("none", "fake-chain"): 3_000_000.0,
              ("convotel", "fake-chain"): 3_900_000.0, ("openllmetry", "fake-chain"): "could not run: boom",
              ("openinference", "fake-chain"): 6_000_000.0}
    table = instructions.suite_table("langchain", counts, configs)
    rows = {line.split(" | ")[0].strip("| *"): line for line in table.splitlines() if line.startswith("| ")}
    assert "25,900k per call" in rows["none (baseline)"] and "3,000k per call" in rows["none (baseline)"]
    # agent: the better peer is OpenLLMetry (+6,400k): 2,100k is 0.33x, met; fake chain: OpenInference alone
    assert "+2,100k (0.33× ✅)" in rows["convotel: `CallbackHandler` + `init()` pipeline"]
    assert "+900k (0.30× ✅)" in rows["convotel: `CallbackHandler` + `init()` pipeline"]
    assert "+1,700k (0.27×)" in rows["convotel: handler, sink `none` (diagnostic: no delivery)"]  # shown, not judged
    assert "could not run: boom" in rows["OpenLLMetry"]
    assert not any("init()` (auto" in name for name in rows)  # configurations without counts are left out
    counts[("convotel", "agent")] = 28_200_000.0
    assert "+2,300k (0.36× ❌)" in instructions.suite_table("langchain", counts, configs)


@pytest.mark.skipif(shutil.which("valgrind") is None,
                    reason="valgrind is not installed (make bench-instructions needs it)")
def test_instruction_counts_run_under_valgrind(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- instructions:start -->\nold\n<!-- instructions:end -->\nafter\n")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.instructions", "--suite", "langchain", "--configs", "none,convotel",
         "--scenarios", "fake-chain",
         "--calls", "2", "--warmup", "1", "--update-readme", str(readme)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = readme.read_text()
    assert text.startswith("before\n<!-- instructions:start -->\n")
    assert text.endswith("<!-- instructions:end -->\nafter\n")
    baseline = re.search(r"\| none \(baseline\) \| ([\d,]+)k per call \|", text)
    ours = re.search(r"\| \*\*convotel: `CallbackHandler` \+ `init\(\)` pipeline\*\* \| \+([\d,]+)k \|", text)
    assert baseline and ours, text
    # the prompt | fake model | parser chain runs millions of instructions; tracing it adds some, not millions
    assert 1_000 < int(baseline.group(1).replace(",", "")) and 0 < int(ours.group(1).replace(",", "")) < 5_000


def test_instruction_counts_need_valgrind_and_say_so(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.instructions"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PATH": str(tmp_path)}, timeout=60)
    assert proc.returncode == 2
    assert "valgrind is not installed" in proc.stderr
