"""Smoke test of the benchmark harness (``benchmarks/``): it runs and produces the tables.

A handful of calls for the baseline and convotel only, in the project's own venv
(the peers live in ``benchmarks/.venv``). No timing is asserted: only that
every scenario gets a table with the expected rows and the raw results are
complete.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("langchain_core")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")


def test_benchmark_harness_produces_tables(tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "results.json", tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--configs", "none,convotel",
         "--reps", "2", "--calls", "3", "--warmup", "1", "--timeout", "60",
         "--json", str(out_json), "--markdown", str(out_md)],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.configs import SUITE_CONFIGS
        from benchmarks.report import END, START
        from benchmarks.scenarios import SUITE_SCENARIOS
    finally:
        sys.path.remove(str(ROOT))

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
