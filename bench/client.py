#!/usr/bin/env python3
"""The Python client against the raw pyarrow.flight snippet of the README, on one server.

Writes the demo dataset once with `flightbatch gen` (default ~500 MB in 8 shards) into a temporary
file store, starts one `flightbatch serve` on it, and times, alternating run by run:

- client: `flightbatch.connect(addr).psd("demo", nperseg=..., bands=...).to_pandas()` (submit,
  wait with job-status polls, merged result into pandas; no progress bar);
- raw:    the README's "pyarrow.flight alone" snippet: a psd action, a job-status polling loop
  (sleeping 1 s as the README does, or --raw-sleep), then `do_get(jobs/<id>).read_all().to_pandas()`.

Each run submits a new job of the same parameters (no reuse). Prints the runs, the median wall
seconds of each and the ratio client/raw, and checks that both DataFrames are equal.

The README's loop sleeps 1 s between polls, which penalises the raw path on a short job; the
second comparison (`raw-fast`, with the client's own backoff from 50 ms to 0.5 s) isolates what the
client itself adds. Run on a quiet machine:

    .venv/bin/python bench/client.py [--mb 500] [--shards 8] [--reps 5] [--bin PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.flight as flight

from benchlib import REPO, flightbatch_binary, gen_demo

sys.path.insert(0, str(REPO / "python"))  # the package from this checkout if it is not installed
import flightbatch  # noqa: E402

LISTEN_RE = re.compile(r"^flightbatch listening on grpc://(127\.0\.0\.1:\d+)$")
NPERSEG = 500
BANDS = {"beta": [13, 30], "alpha": [8, 12]}


def client_run(addr: str) -> pd.DataFrame:
    fb = flightbatch.connect(f"grpc://{addr}")
    try:
        return fb.psd("demo", nperseg=NPERSEG, bands=BANDS).wait(progress=False).to_pandas()
    finally:
        fb.close()


def raw_run(addr: str, sleep: float | None) -> pd.DataFrame:
    """The README's snippet; sleep None polls with the client's backoff instead of a fixed sleep."""
    client = flight.connect(f"grpc://{addr}")

    def action(kind, body):
        result = next(iter(client.do_action(flight.Action(kind, json.dumps(body).encode()))))
        return json.loads(result.body.to_pybytes())

    job = action("psd", {"dataset": "demo", "fs_column": "fs", "nperseg": NPERSEG, "bands": BANDS})
    delay = 0.05
    while (status := action("job-status", {"job_id": job["job_id"]}))["state"] in ("SUBMITTED", "RUNNING"):
        time.sleep(sleep if sleep is not None else delay)
        delay = min(delay * 1.5, 0.5)
    assert status["state"] == "SUCCEEDED", status["error"]
    table = client.do_get(flight.Ticket(f"jobs/{job['job_id']}".encode())).read_all()
    client.close()
    return table.to_pandas()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=500, help="approximate size of the demo dataset")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5, help="runs of each way")
    ap.add_argument("--raw-sleep", type=float, default=1.0, help="the README loop's sleep between polls")
    ap.add_argument("--bin", default=os.environ.get("FLIGHTBATCH_BIN"), help="flightbatch binary (default: go build)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fb-bench-client-") as tmp:
        tmp = Path(tmp)
        binary = flightbatch_binary(tmp, args.bin)
        gen_demo(binary, tmp / "store", args.mb, args.shards)
        log = open(tmp / "server.log", "wb")
        proc = subprocess.Popen(
            [str(binary), "serve", "--addr", "127.0.0.1:0", "--store", f"file://{tmp / 'store'}", "--log-level", "warn"],
            stdout=subprocess.PIPE, stderr=log,
        )
        try:
            m = LISTEN_RE.match(proc.stdout.readline().decode().strip())
            if not m:
                print(f"the server did not start; see its log:\n{(tmp / 'server.log').read_text()}", file=sys.stderr)
                return 1
            addr = m.group(1)
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            ways = {
                "client": lambda: client_run(addr),
                "raw": lambda: raw_run(addr, args.raw_sleep),
                "raw-fast": lambda: raw_run(addr, None),
            }
            secs: dict[str, list[float]] = {k: [] for k in ways}
            frames: dict[str, pd.DataFrame] = {}
            ways["client"]()  # warm the page cache and the server once
            for rep in range(args.reps):
                order = list(ways) if rep % 2 == 0 else list(reversed(ways))
                for k in order:
                    t0 = time.perf_counter()
                    frames[k] = ways[k]()
                    secs[k].append(time.perf_counter() - t0)
            for k in ("raw", "raw-fast"):
                pd.testing.assert_frame_equal(frames["client"], frames[k])
            rows = len(frames["client"])
            print(f"demo: ~{args.mb} MB in {args.shards} shards; psd nperseg {NPERSEG}, bands {list(BANDS)}; "
                  f"{rows} result rows; {args.reps} alternated runs each")
            for k, xs in secs.items():
                print(f"{k:9} median {statistics.median(xs):6.3f} s   runs " + " ".join(f"{x:.3f}" for x in xs))
            for k in ("raw", "raw-fast"):
                ratio = statistics.median(secs["client"]) / statistics.median(secs[k])
                print(f"ratio client/{k}: {ratio:.3f}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
