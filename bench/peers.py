#!/usr/bin/env python3
"""flightbatch against the peers a researcher would otherwise use, on the same machine and files.

Writes the demo dataset once with `flightbatch gen` (default ~500 MB in 8 shards of Arrow IPC
files) into a temporary file store, and runs two suites, each as interleaved A/B runs after one
untimed warm-up run of every side, with every run's output checked:

psd: a psd job (fs from the `fs` column, nperseg 512, beta and alpha bands) submitted to
  `flightbatch serve` (default --workers: the CPUs), polled to SUCCEEDED and read with DoGet into
  pandas, against a notebook that reads the same part-*.arrow files itself with pyarrow and runs
  `scipy.signal.welch` on 128-record chunks into a pandas DataFrame:
    notebook  in one process;
    pool      over a `multiprocessing.Pool(2)` (one task per shard file), made once;
    dask      over a Dask `LocalCluster(n_workers=2, threads_per_worker=1)`, started once
              (needs `pip install -r bench/requirements.txt`; left out with a note when missing).
  Each run records wall seconds and CPU seconds: for flightbatch, the server with its worker
  children plus this (client) process; for a peer, this process plus its pool or cluster processes.
  Every run's psd and band powers are checked equal to the notebook's (rtol 1e-9), and the
  flightbatch result's metadata columns equal to the dataset's.

doget: DoGet `do_get(...).read_all()` from a pyarrow client of (1) the raw dataset and (2) a psd
  job's merged result, served by flightbatch, by pyarrow's own Flight server streaming the same
  Arrow IPC files (memory-mapped, `flight.GeneratorStream`) and by the same pyarrow server serving
  tables it loaded into memory at start (`flight.RecordBatchStream`). Each run records throughput
  and the server's CPU seconds (per GB); every table received is checked equal to the files'.
  With --vs-bin OLD, a second flightbatch server (binary OLD, same store) joins the interleaved
  runs as `flightbatch-vs`, for an A/B of two builds beside the peers.

Prints every run, medians and minimums, and the ratios on `RATIO` lines (see bench/run_all.py).

Usage: python bench/peers.py [--suite psd doget] [--mb 500] [--shards 8] [--reps 5]
                             [--doget-reps 5] [--peers notebook pool dask] [--quick] [--bin PATH]
                             [--vs-bin PATH]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np
import psutil
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.signal import welch

from benchlib import (CheckFailed, ProcTree, action, Run, Server, check_close, check_tables, div, do_get, flightbatch_binary,
                      gen_demo, interleave, main_guard, med, postamble, preamble, ratio, run_job, serve_flightbatch,
                      summary_line, walls)

NPERSEG = 512
BANDS = {"beta": [13, 30], "alpha": [8, 12]}
PSD = {"dataset": "demo", "column": "samples", "fs_column": "fs", "nperseg": NPERSEG, "bands": BANDS}
CHUNK_ROWS = 128
META = ["patient_id", "session_id", "channel", "start_time", "fs"]


# ---------------------------------------------------------------------------------------------
# The notebook's way: pyarrow reads the shard files, scipy computes.


def psd_file(path: str) -> dict:
    """scipy.signal.welch and band powers of every record of one Arrow IPC shard file, read in
    chunks of CHUNK_ROWS records (one 2-D welch call per chunk when its records share length and
    fs, as in the demo; one call per record otherwise)."""
    with pa.memory_map(path) as src:
        table = pa.ipc.open_file(src).read_all()
    psds: list[np.ndarray] = []
    powers: dict[str, list[np.ndarray]] = {b: [] for b in BANDS}
    for off in range(0, table.num_rows, CHUNK_ROWS):
        chunk = table.slice(off, CHUNK_ROWS)
        samples = chunk.column("samples").combine_chunks()
        fs = chunk.column("fs").to_numpy()
        lengths = pc.list_value_length(samples).to_numpy(zero_copy_only=False)
        if samples.null_count or chunk.column("fs").null_count or not (lengths > 0).all():
            raise ValueError(f"{path}: a record without samples or fs (the demo has none)")
        if (lengths == lengths[0]).all() and (fs == fs[0]).all():
            x = pc.list_flatten(samples).to_numpy().astype(np.float64).reshape(len(chunk), lengths[0])
            f, p = welch(x, fs=fs[0], nperseg=NPERSEG, axis=-1)
            for b, (lo, hi) in BANDS.items():
                m = (f >= lo) & (f <= hi)
                powers[b].append(np.trapezoid(p[:, m], f[m], axis=-1))
            psds.extend(p)
            continue
        for i in range(len(chunk)):
            f, p = welch(samples[i].values.to_numpy().astype(np.float64), fs=fs[i], nperseg=NPERSEG)
            for b, (lo, hi) in BANDS.items():
                m = (f >= lo) & (f <= hi)
                powers[b].append(np.atleast_1d(np.trapezoid(p[m], f[m])))
            psds.append(p)
    return {"meta": table.select(META), "psd": psds,
            "bands": {b: np.concatenate(v) if v else np.zeros(0) for b, v in powers.items()}}


def to_frame(parts: list[dict]) -> pd.DataFrame:
    """The parts of psd_file, in file order, as one DataFrame: metadata, psd, <band>_power."""
    df = pa.concat_tables([p["meta"] for p in parts]).to_pandas()
    df["psd"] = [row for p in parts for row in p["psd"]]
    for b in BANDS:
        df[f"{b}_power"] = np.concatenate([p["bands"][b] for p in parts])
    return df


# ---------------------------------------------------------------------------------------------
# The psd suite


def result_arrays(table: pa.Table) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    psd = pc.list_flatten(table.column("psd")).to_numpy()
    return psd, {b: table.column(f"{b}_power").to_numpy() for b in BANDS}


def frame_arrays(df: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return np.concatenate(df["psd"].to_list()), {b: df[f"{b}_power"].to_numpy() for b in BANDS}


def psd_suite(args, binary: pathlib.Path, store: pathlib.Path, files: list[pathlib.Path], tmp: pathlib.Path) -> None:
    peers = list(args.peers)
    if "dask" in peers:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            if args.peers_given:
                raise SystemExit("dask is not installed: .venv/bin/pip install -r bench/requirements.txt")
            print("dask is not installed (.venv/bin/pip install -r bench/requirements.txt): its side is left out")
            peers.remove("dask")
    print(f"\n== psd {PSD}: flightbatch job into pandas against pyarrow + scipy in the notebook; "
          f"{args.reps} interleaved runs each after a warm-up ==")
    paths = [str(p) for p in files]
    srv = serve_flightbatch(binary, store, tmp / "server.log", *(["--workers", str(args.workers)] if args.workers else []))
    pool = multiprocessing.Pool(2) if "pool" in peers else None
    cluster = client = None
    if "dask" in peers:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    # Each side's CPU is this process's (time.process_time) plus that of its own helper processes
    # only: an idle pool or cluster kept for another side is not counted against this one.
    pool_pids = {p.pid for p in pool._pool} if pool else set()
    helpers = {"notebook": set(), "pool": pool_pids,
               "dask": {c.pid for c in psutil.Process().children()} - pool_pids - {srv.proc.pid}}
    trees = {k: [ProcTree(pid) for pid in v] for k, v in helpers.items()}

    def side_cpu(name: str) -> float:
        return time.process_time() + sum(t.cpu() for t in trees[name])
    ref: dict = {}
    dataset_meta = pa.concat_tables(pa.ipc.open_file(pa.memory_map(p)).read_all().select(META) for p in paths)

    def peer(name: str, compute):
        def run() -> Run:
            c0, t0 = side_cpu(name), time.perf_counter()
            df = compute()
            wall, cpu = time.perf_counter() - t0, side_cpu(name) - c0
            psd, bands = frame_arrays(df)
            if "psd" not in ref:  # the notebook's first (warm-up) run is the reference
                ref.update(psd=psd, bands=bands, rows=len(df))
            else:
                check_close(f"{name}: psd", psd, ref["psd"], skew=False)
                for b in BANDS:
                    check_close(f"{name}: {b}_power", bands[b], ref["bands"][b], skew=False)
            return Run(wall, cpu)
        return run

    def flightbatch_run() -> Run:
        c0, p0, t0 = srv.cpu(), time.process_time(), time.perf_counter()
        job_id, job_s = run_job(srv.client, PSD)
        table = do_get(srv.client, f"jobs/{job_id}")
        df = table.to_pandas()
        wall = time.perf_counter() - t0
        server, client_cpu = srv.cpu() - c0, time.process_time() - p0
        del df
        if table.num_rows != ref["rows"]:
            raise CheckFailed(f"flightbatch: {table.num_rows} rows against {ref['rows']}")
        check_tables("flightbatch: metadata columns", table.select(META), dataset_meta, skew=False)
        psd, bands = result_arrays(table)
        check_close("flightbatch: psd", psd, ref["psd"])
        for b in BANDS:
            check_close(f"flightbatch: {b}_power", bands[b], ref["bands"][b])
        action(srv.client, "delete-job", {"job_id": job_id})  # keep the store as it was
        return Run(wall, server + client_cpu, {"server_cpu": server, "job": job_s, "bytes": table.nbytes})

    sides = {"notebook": peer("notebook", lambda: to_frame([psd_file(p) for p in paths]))}
    sides["flightbatch"] = flightbatch_run
    if pool:
        sides["pool"] = peer("pool", lambda: to_frame(pool.map(psd_file, paths, chunksize=1)))
    if client:
        sides["dask"] = peer("dask", lambda: to_frame(client.gather(client.map(psd_file, paths, pure=False))))
    try:
        runs = interleave(sides, args.reps, show=lambda n, r: (
            f"(server {r.extra['server_cpu']:.3f} CPU-s; submit to SUCCEEDED {r.extra['job']:.3f} s)"
            if n == "flightbatch" else ""))
    finally:
        if client:
            client.close()
            cluster.close()
        if pool:
            pool.close()
            pool.join()
        srv.stop()
    fb = runs["flightbatch"]
    print()
    for name, rs in runs.items():
        note = ""
        if name == "flightbatch":
            note = (f"server+children CPU median {med([r.extra['server_cpu'] for r in rs]):.3f} s; "
                    f"result {rs[0].extra['bytes'] / 1e6:.1f} MB to the client")
        print(summary_line(name, rs, note))
    print(f"outputs checked in every run: psd and band powers of all {ref['rows']} records equal to the "
          f"notebook's at rtol 1e-9; the result's metadata columns equal to the dataset's")
    wfb, cfb = med(walls(fb)), med([r.cpu for r in fb])
    for name in runs:
        if name == "flightbatch":
            continue
        w = med(walls(runs[name]))
        c = med([r.cpu for r in runs[name]])
        ratio(f"psd {name}/flightbatch job (wall)", w / wfb,
              f"{name} {w:.3f} s / flightbatch {wfb:.3f} s, medians; min {min(walls(runs[name])):.3f} / {min(walls(fb)):.3f}")
        ratio(f"psd {name}/flightbatch job (CPU)", div(c, cfb), f"{name} {c:.3f} CPU-s / flightbatch {cfb:.3f} CPU-s, medians")


# ---------------------------------------------------------------------------------------------
# The DoGet suite


def quartiles(xs: list[float]) -> str:
    """Median and quartiles of the ratios xs (NaNs left out)."""
    xs = sorted(v for v in xs if v == v)
    if len(xs) < 4:
        return f"{med(xs):.2f}x" if xs else "n/a"
    q = statistics.quantiles(xs, n=4)
    return f"{q[1]:.2f}x (quartiles {q[0]:.2f}-{q[2]:.2f})"


def paired_ab(name: str, a: list[Run], b: list[Run]) -> str:
    """An A/B of two builds, round by round: a's throughput over b's, and a's server and client CPU
    over b's, as median and quartiles."""
    thr = [y.wall / x.wall for x, y in zip(a, b)]
    server = [div(x.extra["server_cpu"], y.extra["server_cpu"]) for x, y in zip(a, b)]
    client = [div(x.extra["client_cpu"], y.extra["client_cpu"]) for x, y in zip(a, b)]
    return (f"paired A/B by round, {name}: throughput {quartiles(thr)}, server CPU {quartiles(server)}, "
            f"client CPU {quartiles(client)}; faster in {sum(t > 1 for t in thr)} of {len(thr)} rounds")


def paired(name: str, a: list[Run], b: list[Run]) -> str:
    """The ratios of a's run to b's run of the same round (runs are interleaved, so the two of a
    round saw the same machine): throughput b.wall / a.wall and server CPU a / b, each as median
    and quartiles, and in how many rounds a met 0.9x throughput and 1.5x server CPU."""
    thr = [y.wall / x.wall for x, y in zip(a, b)]
    cpu = [div(x.extra["server_cpu"], y.extra["server_cpu"]) for x, y in zip(a, b)]

    met_thr = sum(t >= 0.9 for t in thr)
    met_cpu = sum(c <= 1.5 for c in cpu if c == c)
    return (f"paired by round, {name}: throughput {quartiles(thr)}, server CPU {quartiles(cpu)}; "
            f">= 0.9x throughput in {met_thr} of {len(thr)} rounds, <= 1.5x server CPU in {met_cpu}")


def doget_suite(args, binary: pathlib.Path, store: pathlib.Path, tmp: pathlib.Path) -> None:
    log = tmp / "server.log"
    fbs = serve_flightbatch(binary, store, log)
    job_id, _ = run_job(fbs.client, PSD)  # the result served by all three
    here = pathlib.Path(__file__).resolve().parent
    servers = {"flightbatch": fbs}
    try:
        if args.vs_bin:
            servers["flightbatch-vs"] = serve_flightbatch(pathlib.Path(args.vs_bin).resolve(), store, log)
        for mode in ("files", "memory"):
            servers[f"pyarrow-{mode}"] = Server([sys.executable, str(here / "arrowserver.py"), str(store), mode], log)
        for what, ticket in (("dataset", "datasets/demo"), ("job result", f"jobs/{job_id}")):
            # The reference: the stored files themselves, as pyarrow reads them.
            where = store / "datasets" / "demo" if what == "dataset" else store / "jobs" / job_id / "parts"
            want = pa.concat_tables(pa.ipc.open_file(pa.memory_map(str(p))).read_all()
                                    for p in sorted(where.glob("part-*.arrow")))
            # A run reads the stream as many times as make about 400 MB, so that a small one's CPU
            # time is not a few ticks of the 0.01 s clock.
            reads = max(1, round(400e6 / max(want.nbytes, 1))) if not args.quick else 1
            print(f"\n== DoGet of the {what} ({ticket.split('/')[0]}/...; {want.num_rows} records, "
                  f"{want.nbytes / 1e6:.1f} MB of Arrow data), read_all() from a pyarrow client; "
                  f"{args.doget_reps} interleaved runs each after a warm-up, each run reading it {reads} "
                  f"time(s) ==")

            def side(name: str, srv: Server):
                def run() -> Run:
                    tables, c0, p0, t0 = [], srv.cpu(), time.process_time(), time.perf_counter()
                    for _ in range(reads):
                        tables.append(do_get(srv.client, ticket))
                    wall = time.perf_counter() - t0
                    server, client_cpu = srv.cpu() - c0, time.process_time() - p0
                    for table in tables:
                        check_tables(f"{name}: DoGet {ticket}", table, want, skew=name.startswith("flightbatch"))
                    return Run(wall, server + client_cpu,
                               {"server_cpu": server, "client_cpu": client_cpu,
                                "bytes": sum(t.nbytes for t in tables)})
                return run

            runs = interleave({n: side(n, s) for n, s in servers.items()}, args.doget_reps,
                              show=lambda n, r: f"{r.extra['bytes'] / 1e6 / r.wall:7.0f} MB/s  server {r.extra['server_cpu']:.3f} CPU-s")
            print()
            gb = reads * want.nbytes / 1e9
            mbs = {n: 1e3 * gb / med(walls(rs)) for n, rs in runs.items()}
            cpg = {n: med([r.extra["server_cpu"] for r in rs]) / gb for n, rs in runs.items()}
            client = {n: med([r.extra["client_cpu"] for r in rs]) / gb for n, rs in runs.items()}
            for n, rs in runs.items():
                print(summary_line(n, rs, f"{mbs[n]:.0f} MB/s (best {1e3 * gb / min(walls(rs)):.0f}); "
                                          f"server {cpg[n]:.2f}, client {client[n]:.2f} CPU-s per GB"))
            print(f"every table received equal to the stored files' ({want.num_rows} records)")
            for peer in ("pyarrow-files", "pyarrow-memory"):
                ratio(f"DoGet {what} throughput flightbatch/{peer}", mbs["flightbatch"] / mbs[peer],
                      f"{mbs['flightbatch']:.0f} / {mbs[peer]:.0f} MB/s, medians")
                ratio(f"DoGet {what} server CPU per GB flightbatch/{peer}", div(cpg["flightbatch"], cpg[peer]),
                      f"{cpg['flightbatch']:.2f} / {cpg[peer]:.2f} CPU-s per GB, medians")
                print(paired(f"DoGet {what} flightbatch/{peer}", runs["flightbatch"], runs[peer]))
            print(f"the pyarrow client's own CPU per GB: {client['flightbatch']:.2f} from flightbatch, "
                  f"{client['pyarrow-files']:.2f} from pyarrow-files "
                  f"({div(client['flightbatch'], client['pyarrow-files']):.2f}x), medians")
            if "flightbatch-vs" in mbs:
                print(f"A/B DoGet {what}: flightbatch/flightbatch-vs throughput "
                      f"{mbs['flightbatch'] / mbs['flightbatch-vs']:.2f}x, server CPU per GB "
                      f"{div(cpg['flightbatch'], cpg['flightbatch-vs']):.2f}x; flightbatch-vs/pyarrow-files "
                      f"{mbs['flightbatch-vs'] / mbs['pyarrow-files']:.2f}x, "
                      f"{div(cpg['flightbatch-vs'], cpg['pyarrow-files']):.2f}x; client CPU per GB "
                      f"{client['flightbatch']:.2f} / {client['flightbatch-vs']:.2f}")
                print(paired_ab(f"DoGet {what} flightbatch/flightbatch-vs", runs["flightbatch"], runs["flightbatch-vs"]))
        print()
        for n, s in servers.items():
            print(f"{n:<15} peak RSS {s.status('VmHWM'):6.0f} MiB (now {s.status('RssAnon'):.0f} MiB anonymous, "
                  f"{s.status('RssFile'):.0f} MiB file-backed)")
    finally:
        for s in servers.values():
            s.stop()


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", nargs="+", choices=["psd", "doget"], default=["psd", "doget"])
    ap.add_argument("--mb", type=int, default=500, help="approximate size of the demo dataset")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5, help="timed runs of each side of the psd suite")
    ap.add_argument("--doget-reps", type=int, default=5, help="timed runs of each server in the DoGet suite")
    ap.add_argument("--peers", nargs="+", choices=["notebook", "pool", "dask"], default=None,
                    help="the psd suite's peers (default all; dask only when installed)")
    ap.add_argument("--workers", type=int, default=0, help="flightbatch serve --workers (default: its own, the CPUs)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: --mb 8 --shards 2 --reps 1 --doget-reps 1")
    ap.add_argument("--bin", default=os.environ.get("FLIGHTBATCH_BIN"), help="flightbatch binary (default: go build)")
    ap.add_argument("--vs-bin", default=None,
                    help="a second flightbatch binary, served beside the first in the DoGet suite (an A/B of two builds)")
    args = ap.parse_args()
    if args.quick:
        args.mb, args.shards, args.reps, args.doget_reps = 8, 2, 1, 1
    args.peers_given = args.peers is not None
    args.peers = args.peers or ["notebook", "pool", "dask"]
    if "notebook" not in args.peers:
        args.peers.insert(0, "notebook")  # the reference every output is checked against

    preamble("flightbatch against its peers")
    with tempfile.TemporaryDirectory(prefix="flightbatch-peers-") as tmp:
        tmp = pathlib.Path(tmp)
        binary = flightbatch_binary(tmp, args.bin)
        store = tmp / "store"
        t0 = time.perf_counter()
        files = gen_demo(binary, store, args.mb, args.shards)
        size = sum(p.stat().st_size for p in files)
        print(f"demo dataset: {size / 1e6:.0f} MB in {len(files)} shards (generated in "
              f"{time.perf_counter() - t0:.1f} s); pyarrow {pa.__version__}, numpy {np.__version__}, "
              f"pandas {pd.__version__}", flush=True)
        if "psd" in args.suite:
            psd_suite(args, binary, store, files, tmp)
        if "doget" in args.suite:
            doget_suite(args, binary, store, tmp)
    postamble()
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
