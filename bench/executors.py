#!/usr/bin/env python3
"""Wall time of the same psd job under the local executor and the slurm executor, and the overhead.

Builds bin/flightbatch into a temp dir (or takes --bin / $FLIGHTBATCH_BIN), writes a demo dataset
(`flightbatch gen`, default ~120 MB in 8 shards) into a temp file store, and uses the Slurm cluster
of $SLURM_CONF, or starts a single-node one on this machine with scripts/slurm.sh (stopped at the
end). Then, alternating the executors run by run to even out drift on the machine, it starts
`flightbatch serve --executor local --workers W` or `--executor slurm` on that store (W = the CPUs
the cluster's node offers, so both run as many children at once), submits one psd job (fs from the
fs column, nperseg 500, beta and alpha bands), polls job-status until it SUCCEEDED and stops the
server. Prints the wall seconds of every run (submit to SUCCEEDED, as a notebook sees it), the
median per executor, and Slurm's overhead: the difference of the medians, per job and per child,
and the ratio.

Usage: python bench/executors.py [--mb 120] [--shards 8] [--reps 5] [--poll 200ms] [--bin PATH]
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

from benchlib import REPO, flightbatch_binary, gen_demo

LISTEN_RE = re.compile(r"^flightbatch listening on grpc://(127\.0\.0\.1:\d+)$")
PSD = {"dataset": "demo", "column": "samples", "fs_column": "fs", "nperseg": 500,
       "bands": {"beta": [13, 30], "alpha": [8, 12]}}


def action(client, kind, body):
    res = next(iter(client.do_action(flight.Action(kind, json.dumps(body).encode()))))
    return json.loads(res.body.to_pybytes())


def run_once(binary: pathlib.Path, store: pathlib.Path, flags: list[str], log: pathlib.Path) -> float:
    with open(log, "ab") as errf:
        proc = subprocess.Popen(
            [str(binary), "serve", "--addr", "127.0.0.1:0", "--store", f"file://{store}",
             "--log-level", "warn", *flags],
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


def node_cpus() -> int:
    out = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, check=True).stdout
    return max(int(x.rstrip("+")) for x in out.split())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=120, help="approximate size of the demo dataset")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5, help="runs per executor")
    ap.add_argument("--poll", default="200ms", help="--slurm-poll-interval")
    ap.add_argument("--bin", default=os.environ.get("FLIGHTBATCH_BIN"), help="flightbatch binary (default: go build)")
    args = ap.parse_args()

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

            runs = {"local": ["--executor", "local", "--workers", str(cpus)],
                    "slurm": ["--executor", "slurm", "--slurm-poll-interval", args.poll]}
            times: dict[str, list[float]] = {k: [] for k in runs}
            for rep in range(args.reps):
                order = list(runs) if rep % 2 == 0 else list(reversed(runs))
                for name in order:
                    wall = run_once(binary, store, runs[name], tmp / "server.log")
                    times[name].append(wall)
                    print(f"run {rep + 1}: {name:5}: {wall:6.2f} s", flush=True)
                    # Keep the store from growing with results between runs.
                    shutil.rmtree(store / "jobs", ignore_errors=True)
        finally:
            if cluster:
                subprocess.run(["bash", str(REPO / "scripts" / "slurm.sh"), "stop", str(cluster)],
                               capture_output=True, check=False)

    print()
    med = {k: statistics.median(ts) for k, ts in times.items()}
    for k, ts in times.items():
        print(f"{k:5}: median {med[k]:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ts)})")
    over = med["slurm"] - med["local"]
    print(f"Slurm's overhead: {over:+.2f} s per job, {over / args.shards:+.3f} s per child; "
          f"slurm/local {med['slurm'] / med['local']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
