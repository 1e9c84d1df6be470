#!/usr/bin/env python3
"""The speed suite in one run: every benchmark's figures, then every ratio in one table.

Runs, one after the other (never two at once), bench/psd_vs_scipy.py (the kernel against scipy
and MNE, one core) and bench/peers.py (the psd job against the notebook, multiprocessing.Pool(2)
and Dask LocalCluster(2); DoGet of a dataset and of a job result against pyarrow's Flight server
from files and from memory), and with --also the other benchmarks (workers, client, executors).
Streams their output, then prints the machine's load average at start and end and every `RATIO`
line they printed. Exits non-zero if any benchmark failed, an output check included.

Every benchmark checks its outputs in every run and runs its sides interleaved after warm-ups;
figures are medians, with minimums beside them. Run it on a quiet machine:

    .venv/bin/pip install -r bench/requirements.txt      # Dask, once
    go build -o bin/flightbatch ./cmd/flightbatch
    .venv/bin/python bench/run_all.py --bin bin/flightbatch [--also workers client executors]

--quick runs every benchmark at a tiny size (a smoke test of the benchmarks, not a measurement).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

from benchlib import REPO, loadavg

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.environ.get("FLIGHTBATCH_BIN"), help="flightbatch binary (default: go build)")
    ap.add_argument("--mb", type=int, help="peers.py --mb (default its own, ~500 MB)")
    ap.add_argument("--also", nargs="*", default=[], choices=["workers", "client", "executors"],
                    help="further benchmarks to run after the speed suite")
    ap.add_argument("--peers", nargs="+", help="peers.py --peers (default all it has)")
    ap.add_argument("--quick", action="store_true", help="every benchmark at a tiny size (a smoke run)")
    args = ap.parse_args()

    start_load, t0 = loadavg(), time.perf_counter()
    print(f"command: {shlex.join([pathlib.Path(sys.executable).name, *sys.argv])}")
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
    print(f"commit: {rev.stdout.strip() or 'unknown (not a git checkout)'}")
    print(f"load average {start_load} (1, 5, 15 min) at start, {os.cpu_count()} CPUs; "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="flightbatch-bench-") as tmp:
        binary = args.bin
        if not binary:
            binary = str(pathlib.Path(tmp) / "flightbatch")
            subprocess.run(["go", "build", "-o", binary, "./cmd/flightbatch"], cwd=REPO, check=True)
        quick = ["--quick"] if args.quick else []
        plan = [["psd_vs_scipy.py", *quick],
                ["peers.py", "--bin", binary, *quick, *(["--mb", str(args.mb)] if args.mb else []),
                 *(["--peers", *args.peers] if args.peers else [])]]
        plan += [[f"{name}.py", "--bin", binary, *quick] for name in args.also]
        ratios: list[str] = []
        failed: list[str] = []
        for argv in plan:
            print(f"\n######## {shlex.join(['bench/' + argv[0], *argv[1:]])}", flush=True)
            proc = subprocess.Popen([sys.executable, str(HERE / argv[0]), *argv[1:]], stdout=subprocess.PIPE,
                                    text=True, cwd=REPO)
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                if line.startswith("RATIO "):
                    ratios.append(f"{argv[0]:<16} {line.removeprefix('RATIO ').rstrip()}")
            if proc.wait() != 0:
                failed.append(f"{argv[0]} (exit status {proc.returncode})")
    print(f"\n######## summary ({time.perf_counter() - t0:.0f} s)")
    print(f"load average {start_load} at start, {loadavg()} at end (1, 5, 15 min)")
    for r in ratios:
        print(r)
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
