#!/usr/bin/env python3
"""The Python client against the raw pyarrow.flight snippet of the README, on one server.

Writes the demo dataset once with `flightbatch gen` (default ~500 MB in 8 shards) into a temporary
file store, starts one `flightbatch serve` on it, and times, alternating run by run:

- client: `flightbatch.connect(addr).psd("demo", nperseg=..., bands=...).to_pandas()` (submit,
  wait with job-wait calls that the server answers when the job ends, merged result into pandas;
  no progress bar);
- raw:    the README's "pyarrow.flight alone" snippet: a psd action, a job-status polling loop
  (sleeping 1 s as the README does, or --raw-sleep), then `do_get(jobs/<id>).read_all().to_pandas()`.

Each run submits a new job of the same parameters (no reuse). After an untimed warm-up run of each
way, the ways are interleaved (their order reversed every other round). Prints every run's wall
seconds and CPU seconds (this client process, and the server with its worker children), the
median and minimum of each way and the ratios client/raw and client/raw-fast, and checks in
every run that the DataFrame equals the first run's.

The README's loop sleeps 1 s between polls, which penalises the raw path on a short job; the
second comparison (`raw-fast`, polling with the backoff the client used before it waited with
job-wait, from 50 ms to 0.2 s) shows what the client adds or saves against the best polling loop. Run on a quiet machine:

    .venv/bin/python bench/client.py [--mb 500] [--shards 8] [--reps 5] [--quick] [--bin PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.flight as flight

from benchlib import (REPO, CheckFailed, Run, SKEW, flightbatch_binary, gen_demo, interleave, main_guard, med,
                      postamble, preamble, ratio, serve_flightbatch, summary_line, walls)

sys.path.insert(0, str(REPO / "python"))  # the package from this checkout if it is not installed
import flightbatch  # noqa: E402

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
        delay = min(delay * 1.5, 0.2)  # the client's _POLL_MAX_S
    assert status["state"] == "SUCCEEDED", status["error"]
    table = client.do_get(flight.Ticket(f"jobs/{job['job_id']}".encode())).read_all()
    client.close()
    return table.to_pandas()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=500, help="approximate size of the demo dataset")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5, help="timed runs of each way")
    ap.add_argument("--raw-sleep", type=float, default=1.0, help="the README loop's sleep between polls")
    ap.add_argument("--quick", action="store_true", help="a smoke run: --mb 4 --shards 2 --reps 1 --raw-sleep 0.1")
    ap.add_argument("--bin", default=os.environ.get("FLIGHTBATCH_BIN"), help="flightbatch binary (default: go build)")
    args = ap.parse_args()
    if args.quick:
        args.mb, args.shards, args.reps, args.raw_sleep = 4, 2, 1, 0.1

    preamble("the Python client against raw pyarrow.flight")
    with tempfile.TemporaryDirectory(prefix="fb-bench-client-") as tmp:
        tmp = Path(tmp)
        binary = flightbatch_binary(tmp, args.bin)
        gen_demo(binary, tmp / "store", args.mb, args.shards)
        srv = serve_flightbatch(binary, tmp / "store", tmp / "server.log")
        try:
            ref: dict = {}

            def way(name: str, fn):
                def run() -> Run:
                    c0, p0, t0 = srv.cpu(), time.process_time(), time.perf_counter()
                    df = fn(srv.addr)
                    wall = time.perf_counter() - t0
                    server, client_cpu = srv.cpu() - c0, time.process_time() - p0
                    if "df" not in ref:
                        ref["df"] = df
                    else:
                        if SKEW:  # the benchmarks' test hook: a DataFrame that differs
                            df = df.assign(beta_power=df["beta_power"] * (1 + SKEW))
                        try:
                            pd.testing.assert_frame_equal(df, ref["df"], check_exact=True)
                        except AssertionError as e:
                            raise CheckFailed(f"{name}: the DataFrame differs from the first run's: {e}") from None
                    return Run(wall, server + client_cpu, {"server_cpu": server, "rows": len(df)})
                return run

            ways = {
                "client": way("client", client_run),
                "raw": way("raw", lambda addr: raw_run(addr, args.raw_sleep)),
                "raw-fast": way("raw-fast", lambda addr: raw_run(addr, None)),
            }
            print(f"demo: ~{args.mb} MB in {args.shards} shards; psd nperseg {NPERSEG}, bands {list(BANDS)}; "
                  f"raw polls every {args.raw_sleep:g} s, raw-fast and the client from 50 ms to 0.2 s", flush=True)
            runs = interleave(ways, args.reps, show=lambda n, r: f"(server {r.extra['server_cpu']:.3f})")
        finally:
            srv.stop()
    print()
    for k, rs in runs.items():
        print(summary_line(k, rs, "CPU: this client + the server with its children"))
    print(f"every run's DataFrame ({len(ref['df'])} rows) equal to the first run's")
    for k in ("raw", "raw-fast"):
        c, r = med(walls(runs["client"])), med(walls(runs[k]))
        ratio(f"client/{k} (wall)", c / r, f"{c:.3f} s / {r:.3f} s, medians; "
              f"min {min(walls(runs['client'])):.3f} / {min(walls(runs[k])):.3f}")
    postamble()
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
