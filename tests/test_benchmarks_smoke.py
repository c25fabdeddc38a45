"""Smoke test of the benchmark harness (``benchmarks/``): it runs and produces the tables.

A handful of calls for the baseline and convotel only, in the project's own venv
(the peers live in ``benchmarks/.venv``). No timing is asserted: only that
every scenario gets a table with the expected rows and the raw results are
complete.
"""

from __future__ import annotations

import importlib
import json
import re
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
