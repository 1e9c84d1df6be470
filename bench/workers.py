#!/usr/bin/env python3
"""Wall and CPU time of a psd job over the demo dataset with the local executor at --workers 1 and 2.

Builds bin/flightbatch into a temp dir (or takes --bin / $FLIGHTBATCH_BIN), writes a demo dataset
(`flightbatch gen`, default ~120 MB in 8 shards) into a temp file store, then, after an untimed
warm-up run of each worker count and interleaving them run by run, starts
`flightbatch serve --workers N` on that store, submits one psd job (fs from the fs column, nperseg
500, beta and alpha bands), polls job-status until it SUCCEEDED, reads the result and stops the
server. Prints every run's wall seconds (submit to SUCCEEDED, as a notebook waits) and the CPU
seconds of the server with its worker children, the medians and minimums per worker count and the
speed-up; every run's result is checked equal to the first run's.

Usage: python bench/workers.py [--mb 120] [--shards 8] [--reps 5] [--workers 1 2] [--quick] [--bin PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

from benchlib import (cpus, flightbatch_binary, gen_demo, interleave, job_side, main_guard, med, postamble,
                      preamble, ratio, summary_line, walls)

PSD = {"dataset": "demo", "column": "samples", "fs_column": "fs", "nperseg": 500,
       "bands": {"beta": [13, 30], "alpha": [8, 12]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=120, help="approximate size of the demo dataset")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5, help="timed runs per worker count")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true", help="a smoke run: --mb 4 --shards 2 --reps 1")
    ap.add_argument("--bin", default=os.environ.get("FLIGHTBATCH_BIN"), help="flightbatch binary (default: go build)")
    args = ap.parse_args()
    if args.quick:
        args.mb, args.shards, args.reps = 4, 2, 1

    preamble("psd job: --workers 1 against --workers 2")
    with tempfile.TemporaryDirectory(prefix="flightbatch-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        binary = flightbatch_binary(tmp, args.bin)
        store = tmp / "store"
        t0 = time.perf_counter()
        files = gen_demo(binary, store, args.mb, args.shards)
        size = sum(p.stat().st_size for p in files)
        print(f"demo dataset: {size / 1e6:.0f} MB in {args.shards} shards (generated in "
              f"{time.perf_counter() - t0:.1f} s); psd {json.dumps(PSD)}", flush=True)
        ref: dict = {}
        sides = {f"--workers {w}": job_side(f"--workers {w}", binary, store, tmp / "server.log",
                                            ["--workers", str(w)], PSD, ref) for w in args.workers}
        runs = interleave(sides, args.reps, show=lambda n, r: "(server + children)")

    print()
    for name, rs in runs.items():
        print(summary_line(name, rs, "CPU: server + worker children"))
    print(f"every run's result ({ref['table'].num_rows} rows) equal to the first run's")
    base = f"--workers {args.workers[0]}"
    for w in args.workers[1:]:
        name = f"--workers {w}"
        ratio(f"psd job speed-up {name} over {base} (wall)", med(walls(runs[base])) / med(walls(runs[name])),
              f"{med(walls(runs[base])):.3f} s / {med(walls(runs[name])):.3f} s, medians; CPU "
              f"{med(cpus(runs[base])):.3f} / {med(cpus(runs[name])):.3f} s")
    postamble()
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
