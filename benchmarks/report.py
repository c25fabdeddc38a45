"""From worker results to numbers, verdicts and the README's Markdown tables."""

from __future__ import annotations

import random
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.configs import SUITE_CONFIGS, Config
from benchmarks.scenarios import SUITE_SCENARIOS

START, END = "<!-- bench:start -->", "<!-- bench:end -->"

#: convotel's overhead must be at most this fraction of the best peer's.
TARGETS = {"openai": 0.5, "langchain": 1 / 3}
TARGET_TEXT = {"openai": "at most ½ of the lowest peer's", "langchain": "at most ⅓ of the better peer's"}
#: the convotel row the target is judged on (the others are shown for comparison).
PRIMARY = {"openai": "convotel", "langchain": "convotel"}
#: a trend of more retained objects than this per call (after gc.collect()) is reported as a leak,
#: judged only over at least LEAK_MIN_CALLS calls: a quick run is too short to tell. In-flight export
#: state (queues, batches) makes the count swing by a few thousand objects, hence a robust slope.
LEAK_PER_CALL = 2.0
LEAK_MIN_CALLS = 500
#: Bootstrap resamples of the repetition rounds for a ratio's 95% interval (seeded: the same
#: results always give the same table).
BOOTSTRAP = 2000
SUITE_TITLES = {"openai": "OpenAI SDK (`convotel-openai` vs peers)",
                "langchain": "LangChain (`convotel-langchain` vs peers)"}


@dataclass
class Row:
    config: Config
    status: str  # ok | error | uninstrumented
    error: str = ""
    app: float = 0.0
    cpu: float = 0.0
    app_over: float | None = None
    cpu_over: float | None = None
    thread_over: float | None = None
    app_over_spread: float = 0.0
    cpu_over_spread: float = 0.0
    app_diffs: tuple[float, ...] = ()  # per-round differences to the baseline
    cpu_diffs: tuple[float, ...] = ()
    per_call: float | None = None
    unit: str = ""
    retained_per_call: float | None = None
    leak_calls: int = 0

    @property
    def measured(self) -> bool:
        return self.status in ("ok", "uninstrumented")


def _spread(values: list[float]) -> float:
    """Half the interquartile range: a robust ± for a median."""
    if len(values) < 4:
        return (max(values) - min(values)) / 2 if values else 0.0
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / 2


def _slope(objects: list[int], calls_per_rep: int) -> float | None:
    """Live objects gained per call: the Theil–Sen slope of the per-repetition counts."""
    if len(objects) < 3 or calls_per_rep <= 0:
        return None
    slopes = [(objects[j] - objects[i]) / ((j - i) * calls_per_rep)
              for i in range(len(objects)) for j in range(i + 1, len(objects))]
    return statistics.median(slopes)


def paired(values: list[float], baseline: list[float]) -> list[float]:
    """Differences repetition by repetition: repetition r of every configuration ran in the same
    interleaved round, so load that comes and goes on the machine cancels out."""
    return [v - b for v, b in zip(values, baseline, strict=False)]  # a failed configuration stops early


def rows_for(suite: str, scenario: str, results: dict[str, dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    raw: dict[str, dict[str, Any]] = {}
    for spec in SUITE_CONFIGS[suite]:
        res = results.get(spec.name)
        if res is None:
            continue
        if res["status"] != "ok":
            rows.append(Row(spec, "error", res.get("error", "failed")))
            continue
        sc = res["scenarios"].get(scenario)
        if sc is None:
            continue
        if sc["status"] != "ok" or not sc.get("cpu_us"):
            rows.append(Row(spec, "error", sc.get("error", "failed")))
            continue
        raw[spec.name] = sc
        per_call = sc["delivered"] / sc["calls"] if sc["calls"] else 0.0
        row = Row(spec, "ok", app=statistics.median(sc["app_us"]), cpu=statistics.median(sc["cpu_us"]),
                  per_call=per_call if spec.kind != "baseline" else None, unit=res.get("unit", ""),
                  retained_per_call=_slope(sc.get("objects") or [], sc.get("calls_per_rep") or 0),
                  leak_calls=max(0, len(sc.get("objects") or []) - 1) * (sc.get("calls_per_rep") or 0))
        if spec.kind != "baseline" and res.get("unit") != "none" and sc["delivered"] == 0:
            row.status = "uninstrumented"
            row.error = f"nothing reached the backend (0 {row.unit or 'span'}s): this API is not instrumented"
        rows.append(row)
    base_row = baseline(rows)
    if base_row is not None:
        base = raw[base_row.config.name]
        for r in rows:
            if not r.measured or r is base_row:
                continue
            sc = raw[r.config.name]
            app_d = paired(sc["app_us"], base["app_us"])
            cpu_d = paired(sc["cpu_us"], base["cpu_us"])
            r.app_diffs, r.cpu_diffs = tuple(app_d), tuple(cpu_d)
            r.app_over, r.cpu_over = statistics.median(app_d), statistics.median(cpu_d)
            r.app_over_spread, r.cpu_over_spread = _spread(app_d), _spread(cpu_d)
            if sc.get("thread_cpu_us") and base.get("thread_cpu_us"):
                r.thread_over = statistics.median(paired(sc["thread_cpu_us"], base["thread_cpu_us"]))
    return rows


def baseline(rows: list[Row]) -> Row | None:
    """The measured uninstrumented row the overheads are taken against."""
    return next((r for r in rows if r.config.kind == "baseline" and r.status == "ok"), None)


def best_peer(rows: list[Row]) -> tuple[Row | None, Row | None]:
    """The peer with the lowest app-thread overhead, and the one with the lowest CPU overhead."""
    peers = [r for r in rows if r.config.kind == "peer" and r.status == "ok" and r.app_over is not None]
    if not peers:
        return None, None
    return min(peers, key=lambda r: r.app_over), min(peers, key=lambda r: r.cpu_over)  # type: ignore[arg-type, return-value]


def ratio(value: float | None, best: float | None) -> float | None:
    if value is None or best is None:
        return None
    if best <= 0:
        return None if value > 0 else 0.0
    return max(value, 0.0) / best


def ratio_interval(ours: tuple[float, ...], best: tuple[float, ...]) -> tuple[float, float] | None:
    """95% bootstrap interval of median(ours) / median(best). Rounds are resampled whole, so the
    pairing of both configurations within a round (the same load on the machine) is kept."""
    n = min(len(ours), len(best))
    if n < 8:
        return None
    rng = random.Random(0)
    samples = []
    for _ in range(BOOTSTRAP):
        picks = [rng.randrange(n) for _ in range(n)]
        value = ratio(statistics.median(ours[i] for i in picks), statistics.median(best[i] for i in picks))
        samples.append(float("inf") if value is None else value)
    samples.sort()
    return samples[int(0.025 * BOOTSTRAP)], samples[int(0.975 * BOOTSTRAP) - 1]


@dataclass
class Verdict:
    scenario: str
    app_ratio: float | None
    cpu_ratio: float | None
    status: str  # met | missed | unsettled | n/a
    why: str = ""
    app_interval: tuple[float, float] | None = None
    cpu_interval: tuple[float, float] | None = None


def verdict(suite: str, scenario: str, rows: list[Row]) -> Verdict:
    target = TARGETS[suite]
    primary = next((r for r in rows if r.config.name == PRIMARY[suite]), None)
    best_app, best_cpu = best_peer(rows)
    if primary is None or primary.status != "ok":
        why = primary.error if primary is not None else "not measured"
        return Verdict(scenario, None, None, "n/a", f"convotel: {why}")
    if best_app is None or best_cpu is None:
        return Verdict(scenario, None, None, "n/a", "no peer instruments this API")
    app_r = ratio(primary.app_over, best_app.app_over)
    cpu_r = ratio(primary.cpu_over, best_cpu.cpu_over)
    if app_r is None or cpu_r is None:
        return Verdict(scenario, app_r, cpu_r, "n/a", "the best peer's overhead is within noise of zero")
    app_i = ratio_interval(primary.app_diffs, best_app.app_diffs)
    cpu_i = ratio_interval(primary.cpu_diffs, best_cpu.cpu_diffs)
    status = "met" if app_r <= target and cpu_r <= target else "missed"
    if app_i is not None and cpu_i is not None:
        # Settled only when the whole interval is on one side of the target, for both measures.
        if app_i[1] <= target and cpu_i[1] <= target:
            status = "met"
        elif app_i[0] > target or cpu_i[0] > target:
            status = "missed"
        else:
            status = "unsettled"
    return Verdict(scenario, app_r, cpu_r, status, app_interval=app_i, cpu_interval=cpu_i)


# -- formatting --------------------------------------------------------------------------------


def _us(value: float | None, spread: float | None = None) -> str:
    if value is None:
        return "—"
    text = f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    return text


def _over(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:+,.1f}" if abs(value) < 100 else f"{value:+,.0f}"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _ratio(value: float | None, interval: tuple[float, float] | None = None) -> str:
    if value is None:
        return "—"
    if interval is None:
        return f"{value:.2f}×"
    low, high = interval
    return f"{value:.2f}× ({low:.2f}–{'∞' if high == float('inf') else f'{high:.2f}'})"


def _label(config: Config, versions: dict[str, str]) -> str:
    label = config.label
    shown = [f"{versions[p]}" for p in config.packages if p in versions and config.kind == "peer"]
    if shown:
        label += f" {shown[0]}"
    if config.kind == "convotel":
        return f"**{label}**"
    return f"*{label}*" if config.kind == "diagnostic" else label


def scenario_table(suite: str, scenario: str, results: dict[str, dict[str, Any]]) -> tuple[str, Verdict]:
    rows = rows_for(suite, scenario, results)
    best_app, best_cpu = best_peer(rows)
    lines = [
        "| configuration | app thread µs/call | overhead µs | vs best peer | of which app-thread CPU µs "
        "| process CPU µs/call | overhead µs | vs best peer | exported per call | retained objects per 1k calls |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        versions = results.get(r.config.name, {}).get("versions", {})
        label = _label(r.config, versions)
        if r.status == "error":
            lines.append(f"| {label} | could not run: `{_cell(r.error)}` ||||||||| ")
            continue
        baseline = r.config.kind == "baseline"
        app_vs = _ratio(ratio(r.app_over, best_app.app_over)) if best_app and not baseline else ""
        cpu_vs = _ratio(ratio(r.cpu_over, best_cpu.cpu_over)) if best_cpu and not baseline else ""
        if r.status == "uninstrumented":
            app_vs = cpu_vs = "not instrumented"
        exported = ("—" if r.per_call is None else "nothing (no sink)" if r.unit == "none"
                    else f"{r.per_call:.2f} {r.unit or 'span'}")
        retained = "—" if r.retained_per_call is None else f"{r.retained_per_call * 1000:,.0f}"
        if r.retained_per_call is not None and r.retained_per_call > LEAK_PER_CALL and r.leak_calls >= LEAK_MIN_CALLS:
            retained += " ⚠"
        app_over = "—" if baseline else f"{_over(r.app_over)} ±{_us(r.app_over_spread)}"
        cpu_over = "—" if baseline else f"{_over(r.cpu_over)} ±{_us(r.cpu_over_spread)}"
        thread_over = "—" if baseline else _over(r.thread_over)
        lines.append(f"| {label} | {_us(r.app)} | {app_over} | {app_vs} | {thread_over} | {_us(r.cpu)} | {cpu_over} "
                     f"| {cpu_vs} | {exported} | {retained} |")
    return "\n".join(lines), verdict(suite, scenario, rows)


def _thread_name(name: str) -> str:
    return re.sub(r"^(Thread)-\d+", r"\1", name)


def thread_breakdown(suite: str, results: dict[str, dict[str, Any]]) -> str:
    """Per configuration and scenario: where the process CPU overhead is spent, by thread."""
    lines = ["| configuration | scenario | app thread, during the calls | app thread, in the end-of-repetition "
             "flush | background threads |", "|---|---|--:|--:|---|"]
    titles = {s.name: s.title for s in SUITE_SCENARIOS[suite]}
    rows = {s.name: rows_for(suite, s.name, results) for s in SUITE_SCENARIOS[suite]}
    for spec in SUITE_CONFIGS[suite]:
        res = results.get(spec.name)
        if spec.kind == "baseline" or res is None or res.get("status") != "ok":
            continue
        for name, sc in res["scenarios"].items():
            row = next((r for r in rows.get(name, []) if r.config.name == spec.name), None)
            base_row = baseline(rows.get(name, []))
            if row is None or row.thread_over is None or base_row is None:
                continue
            b = results[base_row.config.name]["scenarios"][name]
            reps, base_reps = sc.get("threads_us"), b.get("threads_us")
            if not reps or not base_reps:
                continue
            flush = paired([r.get("MainThread", 0.0) - t for r, t in zip(reps, sc["thread_cpu_us"], strict=True)],
                           [r.get("MainThread", 0.0) - t for r, t in zip(base_reps, b["thread_cpu_us"], strict=True)])
            per_thread: dict[str, float] = {}
            for rep in reps:
                for thread, us in rep.items():
                    if thread != "MainThread":
                        per_thread[_thread_name(thread)] = per_thread.get(_thread_name(thread), 0.0) + us / len(reps)
            shown = ", ".join(f"`{t}` {_us(us)}" for t, us in sorted(per_thread.items(), key=lambda i: -i[1])
                              if us >= 0.5) or "—"
            lines.append(f"| {_label(spec, res.get('versions', {}))} | {_cell(titles.get(name, name))} "
                         f"| {_over(row.thread_over)} | {_over(statistics.median(flush))} | {shown} |")
    if len(lines) == 2:
        return ""
    return ("<details><summary>Where the process CPU goes, by thread (µs per call over the baseline; per-thread "
            "CPU clocks). The SDK's <code>BatchSpanProcessor</code> exports in the flushing thread, so the peers' "
            "export shows in the flush column.</summary>\n\n" + "\n".join(lines) + "\n\n</details>\n")


def suite_markdown(suite: str, results: dict[str, dict[str, Any]]) -> str:
    target = TARGETS[suite]
    parts: list[str] = []
    tables: list[str] = []
    verdicts: list[Verdict] = []
    for scenario in SUITE_SCENARIOS[suite]:
        if not any(scenario.name in (res.get("scenarios") or {}) for res in results.values()):
            continue
        table, v = scenario_table(suite, scenario.name, results)
        verdicts.append(v)
        tables.append(f"#### {_cell(scenario.title)}\n\n{table}")
    primary = next(c for c in SUITE_CONFIGS[suite] if c.name == PRIMARY[suite])
    parts.append(f"### {SUITE_TITLES[suite]}\n")
    parts.append(f"Target: the overhead of *{primary.label.replace('**', '')}* is {TARGET_TEXT[suite]} "
                 f"(≤ {target:.2f}×), on app-thread time and on process CPU. In brackets: the ratio's 95% "
                 "interval (bootstrap over the repetition rounds); a target is met or missed only when the "
                 "whole interval says so, else the run is within noise of it.\n")
    parts.append("| scenario | target | app thread: convotel / best peer | process CPU: convotel / best peer |")
    parts.append("|---|---|--:|--:|")
    titles = {s.name: s.title for s in SUITE_SCENARIOS[suite]}
    for v in verdicts:
        status = {"met": "✅ met", "missed": "❌ missed", "unsettled": "≈ within noise", "n/a": "n/a"}[v.status]
        if v.why:
            status += f" ({v.why})"
        parts.append(f"| {_cell(titles[v.scenario])} | {_cell(status)} | {_ratio(v.app_ratio, v.app_interval)} "
                     f"| {_ratio(v.cpu_ratio, v.cpu_interval)} |")
    parts.append("")
    parts.extend(t + "\n" for t in tables)
    breakdown = thread_breakdown(suite, results)
    if breakdown:
        parts.append(breakdown)
    notes = sorted({n for res in results.values() for n in res.get("notes", [])})
    if notes:
        parts.append("Notes: " + "; ".join(notes) + ".\n")
    return "\n".join(parts)


def verdicts(suite: str, results: dict[str, dict[str, Any]]) -> list[Verdict]:
    out = []
    for scenario in SUITE_SCENARIOS[suite]:
        if any(scenario.name in (res.get("scenarios") or {}) for res in results.values()):
            out.append(scenario_table(suite, scenario.name, results)[1])
    return out


def update_readme(path: Path, section: str, start: str = START, end: str = END) -> None:
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no {start} … {end} section to update")
    path.write_text(pattern.sub(lambda _: f"{start}\n{section.strip()}\n{end}", text, count=1))
