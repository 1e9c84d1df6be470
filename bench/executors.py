#!/usr/bin/env python3
"""Wall and CPU time of the same psd job under the local executor and the slurm executor; the overhead.

Builds bin/flightbatch into a temp dir (or takes --bin / $FLIGHTBATCH_BIN), writes a demo dataset
(`flightbatch gen`, default ~120 MB in 8 shards) into a temp file store, and uses the Slurm cluster
of $SLURM_CONF, or starts a single-node one on this machine with scripts/slurm.sh (stopped at the
end). Then, after an untimed warm-up run of each and interleaving them run by run, it starts
`flightbatch serve --executor local --workers W` or `--executor slurm` on that store (W = the CPUs
the cluster's node offers, so both run as many children at once), submits one psd job (fs from the
fs column, nperseg 500, beta and alpha bands), polls job-status until it SUCCEEDED, reads the result
and stops the server. Prints every run's wall seconds (submit to SUCCEEDED, as a notebook waits),
the CPU seconds of the server with its children (Slurm's children are not the server's: for it
this is the server alone) and the CPU seconds the whole machine spent during the job (slurmctld,
slurmd and the children included; meaningful on an otherwise quiet machine); the medians and
minimums per executor, and Slurm's overhead: the difference of the medians per job and per child,
and the ratio. Every run's result is checked equal to the first run's.

Usage: python bench/executors.py [--mb 120] [--shards 8] [--reps 5] [--poll 200ms] [--quick] [--bin PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from benchlib import (REPO, extras, flightbatch_binary, gen_demo, interleave, job_side, main_guard, med, postamble,
                      preamble, ratio, summary_line, walls)

PSD = {"dataset": "demo", "column": "samples", "fs_column": "fs", "nperseg": 500,
       "bands": {"beta": [13, 30], "alpha": [8, 12]}}


def node_cpus() -> int:
    out = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, check=True).stdout
    return max(int(x.rstrip("+")) for x in out.split())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=120, help="approximate size of the demo dataset")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5, help="runs per executor")
    ap.add_argument("--poll", default="200ms", help="--slurm-poll-interval")
    ap.add_argument("--quick", action="store_true", help="a smoke run: --mb 4 --shards 2 --reps 1")
    ap.add_argument("--bin", default=os.environ.get("FLIGHTBATCH_BIN"), help="flightbatch binary (default: go build)")
    args = ap.parse_args()
    if args.quick:
        args.mb, args.shards, args.reps = 4, 2, 1

    preamble("psd job: the local executor against the slurm executor")
    with tempfile.TemporaryDirectory(prefix="flightbatch-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        os.chmod(tmp, 0o755)  # the cluster's user reads the store
        cluster = None
        if not os.environ.get("SLURM_CONF"):
            cluster = tmp / "slurm"
            env_file = subprocess.run(["bash", str(REPO / "scripts" / "slurm.sh"), "start", str(cluster)],
                                      capture_output=True, text=True, check=True).stdout.strip()
            for line in pathlib.Path(env_file).read_text().splitlines():
                name, _, value = line.removeprefix("export ").partition("=")
                os.environ[name] = value
        try:
            binary = flightbatch_binary(tmp, args.bin)
            store = tmp / "store"
            t0 = time.perf_counter()
            files = gen_demo(binary, store, args.mb, args.shards)
            size = sum(p.stat().st_size for p in files)
            cpus = node_cpus()
            print(f"demo dataset: {size / 1e6:.0f} MB in {args.shards} shards (generated in "
                  f"{time.perf_counter() - t0:.1f} s); {os.cpu_count()} CPUs here, {cpus} on the Slurm node"
                  f"{' (started for this run)' if cluster else ''}; psd {json.dumps(PSD)}")

            ref: dict = {}
            flags = {"local": ["--executor", "local", "--workers", str(cpus)],
                     "slurm": ["--executor", "slurm", "--slurm-poll-interval", args.poll]}
            sides = {k: job_side(k, binary, store, tmp / "server.log", v, PSD, ref) for k, v in flags.items()}
            runs = interleave(sides, args.reps, show=lambda n, r: f"(server); machine {r.extra['machine_cpu']:.3f} CPU-s")
        finally:
            if cluster:
                subprocess.run(["bash", str(REPO / "scripts" / "slurm.sh"), "stop", str(cluster)],
                               capture_output=True, check=False)

    print()
    for k, rs in runs.items():
        print(summary_line(k, rs, f"machine CPU median {med(extras(rs, 'machine_cpu')):.3f} s "
                                  f"(min {min(extras(rs, 'machine_cpu')):.3f})"))
    print(f"every run's result ({ref['table'].num_rows} rows) equal to the first run's")
    loc, slu = med(walls(runs["local"])), med(walls(runs["slurm"]))
    over = slu - loc
    mloc, mslu = med(extras(runs["local"], "machine_cpu")), med(extras(runs["slurm"], "machine_cpu"))
    print(f"Slurm's overhead: {over:+.3f} s per job, {over / args.shards:+.3f} s per child (wall, medians); "
          f"machine CPU {mslu - mloc:+.3f} s per job")
    ratio("psd job slurm/local executor (wall)", slu / loc, f"{slu:.3f} s / {loc:.3f} s, medians; "
          f"min {min(walls(runs['slurm'])):.3f} / {min(walls(runs['local'])):.3f}; {args.shards} children")
    postamble()
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
