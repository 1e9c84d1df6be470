#!/usr/bin/env python3
"""Wall time of a psd job over the demo dataset with the local executor at --workers 1 and 2.

Builds bin/flightbatch into a temp dir (or takes --bin / $FLIGHTBATCH_BIN), writes a demo dataset
(`flightbatch gen`, default ~120 MB in 8 shards) into a temp file store, then, alternating the worker
count run by run to even out drift on the machine, starts `flightbatch serve --workers N` on that
store, submits one psd job (fs from the fs column, nperseg 500, beta and alpha bands), polls
job-status until it SUCCEEDED and stops the server. Prints the wall seconds of every run (submit to
SUCCEEDED, as a notebook sees it), the median per worker count and the speed-up of 2 workers over 1.

Usage: python bench/workers.py [--mb 120] [--shards 8] [--reps 5] [--workers 1 2] [--bin PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pyarrow.flight as flight

from benchlib import flightbatch_binary, gen_demo

LISTEN_RE = re.compile(r"^flightbatch listening on grpc://(127\.0\.0\.1:\d+)$")
PSD = {"dataset": "demo", "column": "samples", "fs_column": "fs", "nperseg": 500,
       "bands": {"beta": [13, 30], "alpha": [8, 12]}}


def action(client, kind, body):
    res = next(iter(client.do_action(flight.Action(kind, json.dumps(body).encode()))))
    return json.loads(res.body.to_pybytes())


def run_once(binary: pathlib.Path, store: pathlib.Path, workers: int, log: pathlib.Path) -> float:
    with open(log, "ab") as errf:
        proc = subprocess.Popen(
            [str(binary), "serve", "--addr", "127.0.0.1:0", "--store", f"file://{store}",
             "--workers", str(workers), "--log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf)
    try:
        line = proc.stdout.readline().decode().strip()
        m = LISTEN_RE.match(line)
        if not m:
            raise RuntimeError(f"server did not start: {line!r}; see {log}")
        client = flight.connect(f"grpc://{m.group(1)}")
        t0 = time.perf_counter()
        job_id = action(client, "psd", PSD)["job_id"]
        while True:
            st = action(client, "job-status", {"job_id": job_id})
            if st["state"] not in ("SUBMITTED", "RUNNING"):
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        if st["state"] != "SUCCEEDED":
            raise RuntimeError(f"job {job_id} ended {st['state']}: {st['error']}")
        client.close()
        return wall
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=120, help="approximate size of the demo dataset")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5, help="runs per worker count")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--bin", default=os.environ.get("FLIGHTBATCH_BIN"), help="flightbatch binary (default: go build)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="flightbatch-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        binary = flightbatch_binary(tmp, args.bin)
        store = tmp / "store"
        t0 = time.perf_counter()
        files = gen_demo(binary, store, args.mb, args.shards)
        size = sum(p.stat().st_size for p in files)
        print(f"demo dataset: {size / 1e6:.0f} MB in {args.shards} shards (generated in "
              f"{time.perf_counter() - t0:.1f} s); {os.cpu_count()} CPUs; psd {json.dumps(PSD)}")

        times: dict[int, list[float]] = {w: [] for w in args.workers}
        for rep in range(args.reps):
            order = args.workers if rep % 2 == 0 else list(reversed(args.workers))
            for w in order:
                wall = run_once(binary, store, w, tmp / "server.log")
                times[w].append(wall)
                print(f"run {rep + 1}: --workers {w}: {wall:6.2f} s", flush=True)
                # Keep the store from growing with results between runs.
                shutil.rmtree(store / "jobs", ignore_errors=True)

        print()
        med = {w: statistics.median(ts) for w, ts in times.items()}
        for w, ts in times.items():
            print(f"--workers {w}: median {med[w]:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ts)})")
        base = args.workers[0]
        for w in args.workers[1:]:
            print(f"speed-up of --workers {w} over --workers {base}: {med[base] / med[w]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
