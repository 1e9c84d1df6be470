#!/usr/bin/env python3
"""flightbatch against the peers a researcher would otherwise use, on the same machine and data.

Writes the demo dataset once with `flightbatch gen` (default ~500 MB in 8 shards) into a temporary
file store, then:

1. Streaming: serves the dataset from `flightbatch serve` (DoGet `datasets/demo`) and from a minimal
   pyarrow Flight server in this script (`--serve-pyarrow STORE`, run as a separate process), whose
   do_get streams the same `part-*.arrow` files batch by batch (memory-mapped, `pa.ipc.open_file` and
   `flight.GeneratorStream`). Times `do_get(...).read_all()` from a pyarrow client, alternating the
   servers run by run; prints the median MB/s of each, the ratio flightbatch/pyarrow, each
   server's CPU seconds per download and its peak RSS (VmHWM of /proc/<pid>/status).

2. Job against download-then-compute: the researcher downloads the whole dataset with DoGet and runs
   `scipy.signal.welch` on every record in one process (one call per batch over the batch's records
   when they share a length and fs, per record otherwise), against submitting the same psd job to
   flightbatch, polling job-status to SUCCEEDED and downloading the merged result. Prints wall
   seconds and bytes received by the client for both, the ratios, the bytes of the result projected
   on the metadata and band power, and checks that the psd and band power of the two agree to
   rtol 1e-9 for every record.

Usage: python bench/peers.py [--mb 500] [--shards 8] [--reps 5] [--job-reps 3] [--bin PATH]
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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight

from benchlib import flightbatch_binary, gen_demo
from scipy.signal import welch

LISTEN_RE = re.compile(r"^(?:flightbatch|pyarrow) listening on grpc://(127\.0\.0\.1:\d+)$")
NPERSEG = 512
BANDS = {"beta": [13, 30]}
PSD = {"dataset": "demo", "column": "samples", "fs_column": "fs", "nperseg": NPERSEG, "bands": BANDS}


# ---------------------------------------------------------------------------------------------
# The pyarrow peer: a minimal Flight server over the same Arrow IPC files.


class ArrowFileServer(flight.FlightServerBase):
    """DoGet `datasets/<name>` streams <store>/datasets/<name>/part-*.arrow batch by batch."""

    def __init__(self, store: pathlib.Path, location: str = "grpc://127.0.0.1:0"):
        super().__init__(location)
        self.store = store

    def _files(self, name: str) -> list[pathlib.Path]:
        files = sorted((self.store / "datasets" / name).glob("part-*.arrow"))
        if not files:
            raise flight.FlightServerError(f"no dataset {name!r}")
        return files

    def do_get(self, context, ticket):
        kind, _, name = ticket.ticket.decode().partition("/")
        if kind != "datasets" or not name:
            raise flight.FlightServerError(f"bad ticket {ticket.ticket!r}")
        files = self._files(name)
        schema = pa.ipc.open_file(pa.memory_map(str(files[0]))).schema

        def batches():
            for path in files:
                with pa.memory_map(str(path)) as source:
                    reader = pa.ipc.open_file(source)
                    for i in range(reader.num_record_batches):
                        yield reader.get_batch(i)

        return flight.GeneratorStream(schema, batches())


def serve_pyarrow(store: str) -> int:
    server = ArrowFileServer(pathlib.Path(store))
    print(f"pyarrow listening on grpc://127.0.0.1:{server.port}", flush=True)
    server.serve()
    return 0


# ---------------------------------------------------------------------------------------------
# Helpers.


class Server:
    """A server process that prints one `... listening on grpc://ADDR` line when ready."""

    def __init__(self, argv: list[str], log: pathlib.Path):
        with open(log, "ab") as errf:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf)
        line = self.proc.stdout.readline().decode().strip()
        m = LISTEN_RE.match(line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}; see {log}")
        self.client = flight.connect(f"grpc://{m.group(1)}")

    def status(self, key: str) -> float:
        """A /proc/<pid>/status memory field in MiB."""
        for line in pathlib.Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no {key}")

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds the process has used (/proc/<pid>/stat)."""
        fields = pathlib.Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def action(client, kind: str, body: dict) -> dict:
    res = next(iter(client.do_action(flight.Action(kind, json.dumps(body).encode()))))
    return json.loads(res.body.to_pybytes())


def download(client, ticket: str) -> tuple[pa.Table, float]:
    t0 = time.perf_counter()
    table = client.do_get(flight.Ticket(ticket.encode())).read_all()
    return table, time.perf_counter() - t0


def welch_table(table: pa.Table) -> tuple[np.ndarray, list[np.ndarray | None], np.ndarray]:
    """scipy.signal.welch over every record of the table, as a researcher would in a notebook.

    One welch call per batch over all its records when they share a length and fs (the demo's case),
    one per record otherwise. Returns (freqs of the first record, psd per record, beta power).
    """
    lo, hi = BANDS["beta"]
    psds: list[np.ndarray | None] = []
    powers: list[float] = []
    freqs0 = None
    for batch in table.to_batches():
        samples = batch.column("samples")
        fs = batch.column("fs").to_numpy(zero_copy_only=False)
        lengths = pc.list_value_length(samples).to_numpy(zero_copy_only=False)
        uniform = (len(batch) > 0 and samples.null_count == 0 and batch.column("fs").null_count == 0
                   and (lengths == lengths[0]).all() and (fs == fs[0]).all() and lengths[0] > 0)
        if uniform:
            x = samples.flatten().to_numpy().astype(np.float64).reshape(len(batch), lengths[0])
            f, p = welch(x, fs=fs[0], nperseg=NPERSEG, axis=-1)
            m = (f >= lo) & (f <= hi)
            powers.extend(np.trapezoid(p[:, m], f[m], axis=-1))
            psds.extend(p)
            freqs0 = f if freqs0 is None else freqs0
            continue
        for i in range(len(batch)):
            rec = samples[i]
            if not rec.is_valid or len(rec) == 0 or not fs[i] > 0:
                psds.append(None)
                powers.append(np.nan)
                continue
            f, p = welch(rec.values.to_numpy().astype(np.float64), fs=fs[i], nperseg=NPERSEG)
            m = (f >= lo) & (f <= hi)
            psds.append(p)
            powers.append(np.trapezoid(p[m], f[m]))
            freqs0 = f if freqs0 is None else freqs0
    return freqs0, psds, np.asarray(powers)


def run_job(client) -> tuple[str, pa.Table, float, float]:
    """Submits the psd job, polls it to SUCCEEDED, downloads the result: (id, result, job s, download s)."""
    t0 = time.perf_counter()
    job_id = action(client, "psd", PSD)["job_id"]
    while (st := action(client, "job-status", {"job_id": job_id}))["state"] in ("SUBMITTED", "RUNNING"):
        time.sleep(0.02)
    if st["state"] != "SUCCEEDED":
        raise RuntimeError(f"job {job_id} ended {st['state']}: {st['error']}")
    t1 = time.perf_counter()
    result, _ = download(client, f"jobs/{job_id}")
    return job_id, result, t1 - t0, time.perf_counter() - t1


def check_agree(result: pa.Table, freqs0, psds, powers) -> int:
    """Compares flightbatch's result with scipy's, row by row (all rows); returns rows compared."""
    if result.num_rows != len(psds):
        raise AssertionError(f"{result.num_rows} result rows, {len(psds)} records")
    got_psd = result.column("psd").to_pylist()
    got_freqs = result.column("freqs")
    got_beta = result.column("beta_power").to_numpy(zero_copy_only=False)
    np.testing.assert_allclose(np.asarray(got_freqs[0].as_py()), freqs0, rtol=1e-12)
    for i, want in enumerate(psds):
        if want is None:
            assert got_psd[i] is None, i
            continue
        np.testing.assert_allclose(np.asarray(got_psd[i]), want, rtol=1e-9, atol=0, err_msg=f"row {i}")
    np.testing.assert_allclose(got_beta, powers, rtol=1e-9, atol=0, equal_nan=True)
    return len(psds)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def runs(xs: list[float], fmt: str = "{:.2f}") -> str:
    return ", ".join(fmt.format(x) for x in xs)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=500, help="approximate size of the demo dataset")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5, help="DoGet runs per server")
    ap.add_argument("--job-reps", type=int, default=3, help="runs of the job and of download-then-compute")
    ap.add_argument("--bin", default=os.environ.get("FLIGHTBATCH_BIN"), help="flightbatch binary (default: go build)")
    ap.add_argument("--serve-pyarrow", metavar="STORE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_pyarrow:
        return serve_pyarrow(args.serve_pyarrow)

    with tempfile.TemporaryDirectory(prefix="flightbatch-peers-") as tmp:
        tmp = pathlib.Path(tmp)
        log = tmp / "servers.log"
        binary = flightbatch_binary(tmp, args.bin)
        store = tmp / "store"
        t0 = time.perf_counter()
        files = gen_demo(binary, store, args.mb, args.shards)
        size = sum(p.stat().st_size for p in files)
        print(f"demo dataset: {size / 1e6:.0f} MB in {len(files)} shards (generated in "
              f"{time.perf_counter() - t0:.1f} s); {os.cpu_count()} CPUs; pyarrow {pa.__version__}")

        # 1. Streaming: flightbatch against pyarrow's Flight server, alternating.
        print(f"\n== DoGet of the whole dataset, read_all() from a pyarrow client, {args.reps} runs each ==")
        fb_argv = [str(binary), "serve", "--addr", "127.0.0.1:0", "--store", f"file://{store}", "--log-level", "warn"]
        pa_argv = [sys.executable, str(pathlib.Path(__file__).resolve()), "--serve-pyarrow", str(store)]
        servers = {"flightbatch": Server(fb_argv, log), "pyarrow": Server(pa_argv, log)}
        secs: dict[str, list[float]] = {k: [] for k in servers}
        cpu: dict[str, list[float]] = {k: [] for k in servers}
        nbytes: dict[str, int] = {}
        rows: dict[str, int] = {}
        try:
            for rep in range(args.reps):
                order = list(servers) if rep % 2 == 0 else list(reversed(servers))
                for name in order:
                    c0 = servers[name].cpu_seconds()
                    table, s = download(servers[name].client, "datasets/demo")
                    cpu[name].append(servers[name].cpu_seconds() - c0)
                    secs[name].append(s)
                    nbytes[name], rows[name] = table.nbytes, table.num_rows
                    del table
                    print(f"run {rep + 1}: {name:<11} {s:6.2f} s  {nbytes[name] / 1e6 / s:6.0f} MB/s  "
                          f"server CPU {cpu[name][-1]:.2f} s", flush=True)
            peak = {k: srv.status("VmHWM") for k, srv in servers.items()}
            anon = {k: srv.status("RssAnon") for k, srv in servers.items()}
            filemap = {k: srv.status("RssFile") for k, srv in servers.items()}
        finally:
            for srv in servers.values():
                srv.stop()
        if rows["flightbatch"] != rows["pyarrow"] or nbytes["flightbatch"] != nbytes["pyarrow"]:
            raise AssertionError(f"the servers sent different data: {rows} rows, {nbytes} bytes")
        print()
        mbs = {k: nbytes[k] / 1e6 / med(v) for k, v in secs.items()}
        for k in servers:
            print(f"{k:<11} median {med(secs[k]):5.2f} s  {mbs[k]:5.0f} MB/s  server CPU {med(cpu[k]):.2f} s  peak RSS {peak[k]:5.0f} MiB "
                  f"(now: {anon[k]:.0f} MiB anonymous, {filemap[k]:.0f} MiB file-backed)   runs: {runs(secs[k])}")
        print(f"throughput flightbatch/pyarrow: {mbs['flightbatch'] / mbs['pyarrow']:.2f}x "
              f"({rows['flightbatch']} records, {nbytes['flightbatch'] / 1e6:.0f} MB of Arrow data)")

        # 2. The psd job against download-then-compute with scipy.
        print(f"\n== psd (fs_column fs, nperseg {NPERSEG}, beta band): flightbatch job against "
              f"DoGet + scipy.signal.welch in one process, {args.job_reps} runs each ==")
        srv = Server(fb_argv, log)
        dl: list[float] = []
        comp: list[float] = []
        job: list[float] = []
        res_dl: list[float] = []
        try:
            for rep in range(args.job_reps):
                for what in (("job", "scipy") if rep % 2 == 0 else ("scipy", "job")):
                    if what == "scipy":
                        table, s = download(srv.client, "datasets/demo")
                        data_bytes = table.nbytes
                        t0 = time.perf_counter()
                        freqs0, psds, powers = welch_table(table)
                        comp.append(time.perf_counter() - t0)
                        dl.append(s)
                        del table
                        print(f"run {rep + 1}: download + scipy  {s + comp[-1]:6.2f} s  "
                              f"(download {s:.2f} s, welch {comp[-1]:.2f} s)", flush=True)
                    else:
                        job_id, result, js, rs = run_job(srv.client)
                        # The band powers alone, with the metadata: what a notebook that needs no
                        # spectra downloads (a projected ticket).
                        cols = [n for n in result.schema.names if n not in ("freqs", "psd")]
                        ticket = json.dumps({"path": f"jobs/{job_id}", "columns": cols})
                        bands, _ = download(srv.client, ticket)
                        job.append(js)
                        res_dl.append(rs)
                        print(f"run {rep + 1}: flightbatch job   {js + rs:6.2f} s  "
                              f"(submit to SUCCEEDED {js:.2f} s, result download {rs:.2f} s)", flush=True)
                shutil.rmtree(store / "jobs", ignore_errors=True)
        finally:
            srv.stop()
        checked = check_agree(result, freqs0, psds, powers)
        scipy_s = [a + b for a, b in zip(dl, comp)]
        job_s = [a + b for a, b in zip(job, res_dl)]
        print()
        print(f"download + scipy: median {med(scipy_s):6.2f} s (download {med(dl):.2f} s, welch {med(comp):.2f} s); "
              f"client received {data_bytes / 1e6:8.1f} MB")
        print(f"flightbatch job:  median {med(job_s):6.2f} s (job {med(job):.2f} s, result download "
              f"{med(res_dl):.2f} s); client received {result.nbytes / 1e6:8.1f} MB")
        print(f"time scipy/flightbatch: {med(scipy_s) / med(job_s):.1f}x; "
              f"bytes dataset/result: {data_bytes / result.nbytes:.0f}x")
        print(f"the band power alone (result projected on {', '.join(bands.schema.names)}): "
              f"{bands.nbytes / 1e6:.1f} MB, dataset/that: {data_bytes / bands.nbytes:.0f}x")
        print(f"results agree: psd and beta power of all {checked} records equal to rtol 1e-9")
    return 0


if __name__ == "__main__":
    sys.exit(main())
