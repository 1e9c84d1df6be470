"""The benchmarks in bench/ run, print every ratio they promise, and fail when outputs differ.

A smoke run of bench/run_all.py at tiny sizes (--quick: figures of no meaning), then the same run
with the benchmarks' test hook $FLIGHTBATCH_BENCH_SKEW, which scales the flightbatch side's output
by 1 + 1e-6 before each output check: every benchmark must then fail its check (exit status 3).
The Dask peer is left out (it is a benchmark-only dependency, bench/requirements.txt); the Slurm
executor's benchmark runs only with the Slurm test cluster (scripts/test.sh starts one).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

KERNEL = ["welch nperseg 256 kernel flightbatch/scipy (one core, CPU)",
          "multitaper kernel flightbatch/MNE (one core, CPU)"]
PEERS = [f"psd {p}/flightbatch job ({m})" for p in ("notebook", "pool") for m in ("wall", "CPU")] + [
    f"DoGet {what} {k} flightbatch/{peer}"
    for what in ("dataset", "job result")
    for peer in ("pyarrow-files", "pyarrow-memory")
    for k in ("throughput", "server CPU per GB")]
OTHERS = {"workers": ["psd job speed-up --workers 2 over --workers 1 (wall)"],
          "client": ["client/raw (wall)", "client/raw-fast (wall)"],
          "executors": ["psd job slurm/local executor (wall)"]}


def run_all(flightbatch_bin, extra_env=None):
    slurm = bool(os.environ.get("FLIGHTBATCH_TEST_SLURM"))
    if not slurm and os.environ.get("FLIGHTBATCH_REQUIRE_SLURM") == "1":
        pytest.fail("FLIGHTBATCH_REQUIRE_SLURM=1 but no Slurm test cluster for bench/executors.py")
    also = ["workers", "client"] + (["executors"] if slurm else [])
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run_all.py"), "--quick", "--bin", str(flightbatch_bin),
                           "--peers", "notebook", "pool", "--also", *also],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    return proc, also


def test_every_benchmark_prints_its_ratios(flightbatch_bin):
    proc, also = run_all(flightbatch_bin)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = proc.stdout.split("######## summary", 1)[1]
    assert re.search(r"load average [\d.]+ [\d.]+ [\d.]+ at start, [\d.]+ [\d.]+ [\d.]+ at end", summary), summary
    printed = dict(re.findall(r"^\S+\s+(.+?): ([\d.]+|nan)x", summary, re.M))
    want = KERNEL + PEERS + [r for name in also for r in OTHERS[name]]
    missing = [r for r in want if r not in printed]
    assert not missing, f"ratios missing from the summary: {missing}\n{summary}"
    for name in ["welch nperseg 256 kernel flightbatch/scipy (one core, CPU)", "psd notebook/flightbatch job (wall)",
                 "DoGet dataset throughput flightbatch/pyarrow-files"]:
        assert float(printed[name]) > 0, name
    assert "equal" in proc.stdout and "OUTPUT CHECK FAILED" not in proc.stderr


def test_every_benchmark_fails_when_outputs_differ(flightbatch_bin):
    proc, also = run_all(flightbatch_bin, {"FLIGHTBATCH_BENCH_SKEW": "1e-6"})
    assert proc.returncode != 0
    failed = proc.stdout.split("######## summary", 1)[1]
    for script in ["psd_vs_scipy.py", "peers.py", *(f"{name}.py" for name in also)]:
        assert f"{script} (exit status 3)" in failed, f"{script} did not fail its output check:\n{failed}"
    assert proc.stderr.count("OUTPUT CHECK FAILED") == 2 + len(also), proc.stderr[-3000:]


def test_peers_doget_ab_of_two_builds(flightbatch_bin):
    """--vs-bin serves a second build beside the first: both are checked and the A/B printed."""
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "peers.py"), "--quick", "--suite", "doget",
                           "--bin", str(flightbatch_bin), "--vs-bin", str(flightbatch_bin)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for what in ("dataset", "job result"):
        m = re.search(rf"^A/B DoGet {what}: flightbatch/flightbatch-vs throughput ([\d.]+)x", proc.stdout, re.M)
        assert m and float(m.group(1)) > 0, proc.stdout[-3000:]
        m = re.search(rf"^paired by round, DoGet {what} flightbatch/pyarrow-files: throughput ([\d.]+)x.*"
                      rf"server CPU (n/a|[\d.]+x).*>= 0.9x throughput in (\d+) of (\d+) rounds", proc.stdout, re.M)
        # (a quick run's server CPU may be below the clock's tick: n/a)
        assert m and float(m.group(1)) > 0 and int(m.group(3)) <= int(m.group(4)), \
            proc.stdout[-3000:]
        m = re.search(rf"^paired A/B by round, DoGet {what} flightbatch/flightbatch-vs: throughput ([\d.]+)x.*"
                      rf"server CPU (n/a|[\d.]+x).*client CPU (n/a|[\d.]+x); faster in (\d+) of (\d+) rounds",
                      proc.stdout, re.M)
        assert m and float(m.group(1)) > 0 and int(m.group(4)) <= int(m.group(5)), proc.stdout[-3000:]
    assert re.search(r"^the pyarrow client's own CPU per GB: [\d.]+ from flightbatch", proc.stdout, re.M), proc.stdout[-3000:]
    assert re.search(r"^run 1: flightbatch-vs ", proc.stdout, re.M), proc.stdout[-3000:]
