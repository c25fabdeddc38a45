"""Where a configuration's time goes: ``python -m benchmarks.profile --suite openai --config convotel --scenario chat``.

Starts the same loopback servers as ``benchmarks.run``, runs the configuration
in a child process under ``py-spy record`` (sampling, on-CPU stacks, all
threads, non-blocking), and prints microseconds per call:

- per thread (the app thread vs convotel's pipeline / delivery threads / the SDK's workers),
  counting only samples that hold the GIL (``--gil``: a proxy for Python CPU time);
- inclusive time of the convotel functions (``convotel``, ``convotel_openai``,
  ``convotel_langchain``), outermost frame per stack first;
- "self" time by the deepest convotel frame on each stack (what it and the
  libraries it called cost, minus the wrapped SDK call itself), which is where
  to optimise.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import run as bench_run

OURS = re.compile(r"[(/](convotel|convotel_openai|convotel_langchain)/")
#: a convotel frame whose callee is one of these is the wrapped SDK / framework call, not overhead
WRAPPED = re.compile(r"\((openai|langchain_core|langchain_openai|langgraph)/")
FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def child(suite: str, config: str, scenario: str, calls: int, warmup: int) -> int:
    from benchmarks.worker import Worker

    worker = Worker(suite, config)
    if worker.info["status"] != "ok":
        print(worker.info.get("error"), file=sys.stderr)
        return 1
    worker.prepare(scenario, warmup)
    time.sleep(0.5)
    print("PROFILE-START", flush=True)
    answer = worker.rep(scenario, calls)
    print("PROFILE-END", answer, flush=True)
    worker.close()
    return 0


def _short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("/site-packages/", "/src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarize(raw: Path, calls: int, rate: int, top: int) -> str:
    per_sample_us = 1e6 / rate / calls
    threads: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    deepest: collections.Counter[str] = collections.Counter()
    leaf_libs: collections.Counter[str] = collections.Counter()
    total = ours_total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames and frames[0].startswith("thread") else "?"
        frames = [f for f in frames if not f.startswith(("thread", "process"))]
        if any(f.startswith(("_find_and_load ", "_call_with_frames_removed ")) for f in frames):
            continue  # imports (start-up), not per-call work
        threads[re.sub(r"[-_]?\d+$", "", thread)] += count
        total += count
        ours = [f for f in frames if OURS.search(f)]
        if not ours:
            continue
        ours_total += count
        seen: set[str] = set()
        for frame in ours:
            name = _short(frame)
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
        index = max(i for i, f in enumerate(frames) if OURS.search(f))
        below = frames[index + 1] if index + 1 < len(frames) else ""
        if WRAPPED.search(below):
            continue  # the instrumented SDK call itself (the app's own work), not convotel's
        deepest[_short(ours[-1])] += count
        if below:
            leaf_libs[f"{_short(ours[-1])} → {_short(below)}"] += count

    def table(counter: collections.Counter[str], title: str) -> list[str]:
        lines = [f"\n{title}", f"{'µs/call':>9}  function"]
        lines += [f"{n * per_sample_us:9.1f}  {name}" for name, n in counter.most_common(top)]
        return lines

    out = [f"samples: {total} holding the GIL at {rate} Hz over {calls} calls = {total * per_sample_us:.0f} µs/call; "
           f"in convotel code (inclusive): {ours_total * per_sample_us:.1f} µs/call"]
    out += table(threads, "by thread (outermost frame)")
    out += table(inclusive, "convotel functions, inclusive")
    out += table(deepest, "deepest convotel frame (its own time + the libraries it called; the wrapped SDK call "
                          "itself excluded)")
    out += table(leaf_libs, "deepest convotel frame → the call it spends in")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", default="openai")
    parser.add_argument("--config", default="convotel")
    parser.add_argument("--scenario", default="chat")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--ingest", choices=["serve", "fast"], default="fast")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw output here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.suite, args.config, args.scenario, args.calls, args.warmup)

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    log_dir = Path(tempfile.mkdtemp(prefix="convotel-profile-"))
    raw = args.raw or log_dir / "profile.txt"
    running, env = bench_run.start_servers(log_dir, args.ingest)
    try:
        argv_child = [sys.executable, "-m", "benchmarks.profile", "--child", "--suite", args.suite,
                      "--config", args.config, "--scenario", args.scenario, "--calls", str(args.calls),
                      "--warmup", str(args.warmup)]
        # Sample the whole child; warm-up samples are few next to the measured calls and are
        # dominated by imports, which sit outside convotel's frames.
        cmd = [py_spy, "record", "--format", "raw", "--threads", "--gil", "--nonblocking", "--rate", str(args.rate),
               "-o", str(raw), "--", *argv_child]
        proc = subprocess.run(cmd, env=env, cwd=str(bench_run.ROOT.parent), capture_output=True, text=True)
        if proc.returncode != 0 or not raw.exists():
            print(proc.stdout[-2000:], proc.stderr[-3000:], file=sys.stderr)
            return 1
        print(next((line for line in proc.stdout.splitlines() if line.startswith("PROFILE-END")), ""))
    finally:
        for server in running:
            server.stop()
    print(summarize(raw, args.calls + args.warmup, args.rate, args.top))
    print(f"\nraw stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
