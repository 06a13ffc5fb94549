"""Where the test suite's time goes: the run's wall time and CPU, and per test file the time
its tests took, the CPU the test process spent on them and what was left (waiting: on a
subprocess, a server in another process — PostgreSQL, Chromium, `pytake demo` —, a sleep or
a poll, or for a core on a busy machine).

    .venv/bin/python bench/suite.py                      # the suite as `dev.py test` runs it
    PYTAKE_TEST_DATABASE_URL=… PYTAKE_TEST_REDIS_URL=… .venv/bin/python bench/suite.py
    .venv/bin/python bench/suite.py --top 40 -- tests/message   # pytest arguments after --

CPU of the whole run is the pytest processes' and their children's (os.wait4); PostgreSQL's
and Redis's server processes are not in it. Per test, CPU is `time.process_time()` of the
worker that ran it (its threads included, its subprocesses not: they are counted when they
exit, under "children"). The 1-minute load average is printed at the start and the end: on
a shared machine, wall time means little without it.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "test-artifacts" / "suite.log"  # pytest's whole output (test-artifacts/ is ignored)

# Loaded into pytest (and each xdist worker) with -p: one line per test, to a file per process.
PLUGIN = """
import os, time
import pytest

_OUT = os.environ["PYTAKE_SUITE_BENCH_DIR"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    wall, cpu, before = time.monotonic(), time.process_time(), os.times()
    yield
    after = os.times()
    children = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    with open(os.path.join(_OUT, f"{os.getpid()}.tsv"), "a") as out:
        out.write(
            f"{item.nodeid}\\t{time.monotonic() - wall:.3f}\\t"
            f"{time.process_time() - cpu:.3f}\\t{children:.3f}\\n"
        )
"""


def _summary(line: str) -> bool:
    return line.startswith(("FAILED", "ERROR")) or " passed" in line or " failed" in line


def _load() -> float:
    return os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=25, help="files to list (by time)")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to `dev.py test`")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pytake-suite-") as tmp:
        plugin_dir = Path(tmp) / "plugin"
        plugin_dir.mkdir()
        (plugin_dir / "pytake_suite_bench.py").write_text(PLUGIN)
        records = Path(tmp) / "records"
        records.mkdir()
        env = {
            **os.environ,
            "PYTAKE_SUITE_BENCH_DIR": str(records),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(plugin_dir), os.environ.get("PYTHONPATH")) if p
            ),
        }
        command = [sys.executable, "dev.py", "test", "-p", "pytake_suite_bench", *args.pytest_args]
        load_start = _load()
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        LOG.parent.mkdir(parents=True, exist_ok=True)
        with LOG.open("w") as log:
            for line in proc.stdout:
                log.write(line)
        said = [line for line in LOG.read_text().splitlines(True) if _summary(line)]
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        load_end = _load()
        rows = []
        files = list(records.glob("*.tsv"))
        for path in files:
            for line in path.read_text().splitlines():
                nodeid, t, c, k = line.split("\t")
                rows.append((nodeid, float(t), float(c), float(k)))

    code = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    print("".join(said).rstrip()[-3000:])
    print(f"(pytest's whole output: {LOG.relative_to(ROOT)})")
    print(f"\nexit {code}; load {load_start:.1f} -> {load_end:.1f}")
    print(
        f"wall {wall:.0f} s; CPU {cpu:.0f} s (user {usage.ru_utime:.0f}, system {usage.ru_stime:.0f})"
    )
    if not rows:
        return code
    total = [sum(r[i] for r in rows) for i in (1, 2, 3)]
    print(
        f"{len(rows)} tests: {total[0]:.0f} s in tests, {total[1]:.0f} s of the workers' CPU, "
        f"{total[2]:.0f} s of their subprocesses'; outside tests (start-up, collection, "
        f"session fixtures) ~{max(wall * len(files) - total[0], 0):.0f} s of {len(files)} processes' time"
    )
    by_file: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for nodeid, t, c, k in rows:
        entry = by_file[nodeid.split("::")[0]]
        entry[0] += t
        entry[1] += c
        entry[2] += k
        entry[3] += 1
    print(f"\n{'time s':>8} {'CPU s':>7} {'subproc':>8} {'waiting':>8} {'tests':>6}  file")
    ranked = sorted(by_file.items(), key=lambda kv: -kv[1][0])
    for name, (t, c, k, n) in ranked[: args.top]:
        print(f"{t:8.1f} {c:7.1f} {k:8.1f} {max(t - c - k, 0):8.1f} {int(n):6d}  {name}")
    return code


if __name__ == "__main__":
    sys.exit(main())
