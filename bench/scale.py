#!/usr/bin/env python3
"""Server memory at dataset scale: peak RSS of `flightbatch serve` against dataset size.

For each size (MB), builds the synthetic demo dataset with `flightbatch gen` in a file
store (one shard per 64 MB), starts a server on it, runs a psd job over every shard,
then streams the whole dataset and the whole result with DoGet, and reads the server's
peak RSS (VmHWM in /proc/<pid>/status). Then, on a fresh server, uploads a table of
--put-mb MB from pyarrow with DoPut and reads it back for equality.

    go build -o bin/flightbatch ./cmd/flightbatch
    python bench/scale.py --sizes 512 2048 --put-mb 500

The peak must stay under --limit-mib (default 512) and must not grow with the dataset;
the script exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

REPO = Path(__file__).resolve().parents[1]
LISTEN_RE = re.compile(r"^flightbatch listening on grpc://(\S+)$")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


class Server:
    def __init__(self, binary: Path, store: str, *args: str):
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--addr", "127.0.0.1:0", "--store", store, "--log-level", "warn", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        m = LISTEN_RE.match(line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.client = flight.connect(f"grpc://{m.group(1)}")

    def peak_mib(self) -> float:
        return peak_rss_mib(self.proc.pid)

    def stop(self):
        self.client.close()
        self.proc.terminate()
        self.proc.wait(60)


def action(client, typ: str, body: dict) -> dict:
    (res,) = list(client.do_action(flight.Action(typ, json.dumps(body).encode())))
    return json.loads(res.body.to_pybytes())


def stream(client, ticket: str) -> tuple[int, int, int, float]:
    """Streams a ticket, keeping nothing: (rows, bytes, largest batch, seconds)."""
    start = time.monotonic()
    reader = client.do_get(flight.Ticket(ticket.encode()))
    rows = nbytes = largest = 0
    for chunk in reader:
        b = chunk.data.nbytes
        rows += chunk.data.num_rows
        nbytes += b
        largest = max(largest, b)
    return rows, nbytes, largest, time.monotonic() - start


def bench_size(binary: Path, root: Path, mb: int, workers: int) -> dict:
    store = f"file://{root / f'store-{mb}'}"
    shards = max(1, mb // 64)
    t0 = time.monotonic()
    subprocess.run(
        [str(binary), "gen", "--store", store, "--name", "scale", "--mb", str(mb), "--shards", str(shards)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    gen_s = time.monotonic() - t0
    srv = Server(binary, store, "--workers", str(workers))
    try:
        info = srv.client.get_flight_info(flight.FlightDescriptor.for_path("datasets", "scale"))
        t0 = time.monotonic()
        job = action(srv.client, "psd", {"dataset": "scale", "fs": 250, "nperseg": 512, "bands": {"beta": [13, 30]}})
        while True:
            st = action(srv.client, "job-status", {"job_id": job["job_id"]})
            if st["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            time.sleep(0.2)
        psd_s = time.monotonic() - t0
        if st["state"] != "SUCCEEDED":
            raise RuntimeError(f"psd job {st}")
        after_psd = srv.peak_mib()
        rows, nbytes, largest, get_s = stream(srv.client, "datasets/scale")
        assert rows == info.total_records, (rows, info.total_records)
        rrows, _, _, rget_s = stream(srv.client, f"jobs/{job['job_id']}")
        assert rrows == rows
        return {
            "dataset_mb": info.total_bytes / 2**20,
            "shards": len(info.endpoints),
            "records": rows,
            "gen_s": gen_s,
            "psd_s": psd_s,
            "doget_s": get_s,
            "doget_mb_s": nbytes / 2**20 / get_s,
            "largest_batch_kib": largest / 1024,
            "result_doget_s": rget_s,
            "peak_after_psd_mib": after_psd,
            "peak_rss_mib": srv.peak_mib(),
        }
    finally:
        srv.stop()
        shutil.rmtree(root / f"store-{mb}", ignore_errors=True)


def bench_put(binary: Path, root: Path, mb: int) -> dict:
    n = 7500  # 30 s at 250 Hz: 30 KB a record
    rows = mb * 2**20 // (4 * n)
    rng = np.random.default_rng(1)
    samples = rng.standard_normal(rows * n, dtype=np.float32)
    table = pa.table(
        {
            "record": pa.array(np.arange(rows)),
            "channel": pa.array([f"CH{i % 8}" for i in range(rows)]),
            "samples": pa.ListArray.from_arrays(pa.array(np.arange(rows + 1, dtype=np.int32) * n), pa.array(samples)),
        }
    )
    store = f"file://{root / 'store-put'}"
    srv = Server(binary, store)
    try:
        t0 = time.monotonic()
        writer, reader = srv.client.do_put(flight.FlightDescriptor.for_path("datasets", "uploaded"), table.schema)
        with writer:
            writer.write_table(table, max_chunksize=256)  # batches of about 7.5 MB
            writer.done_writing()
            res = json.loads(reader.read().to_pybytes())
        put_s = time.monotonic() - t0
        put_peak = srv.peak_mib()
        t0 = time.monotonic()
        back = srv.client.do_get(flight.Ticket(b"datasets/uploaded")).read_all()
        get_s = time.monotonic() - t0
        equal = back.equals(table)
        return {
            "table_mb": table.nbytes / 2**20,
            "shards": res["shards"],
            "put_s": put_s,
            "put_mb_s": table.nbytes / 2**20 / put_s,
            "peak_after_put_mib": put_peak,
            "readback_s": get_s,
            "equal": equal,
            "peak_rss_mib": srv.peak_mib(),
        }
    finally:
        srv.stop()
        shutil.rmtree(root / "store-put", ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / "bin" / "flightbatch"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 2048], help="dataset sizes in MB")
    ap.add_argument("--put-mb", type=int, default=500, help="size of the DoPut table in MB (0: skip)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit-mib", type=float, default=512)
    ap.add_argument("--dir", help="work directory (default: a temporary one)")
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="flightbatch-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    ok = True
    peaks = []
    print(f"{'dataset MB':>10} {'shards':>6} {'records':>8} {'psd s':>7} {'DoGet s':>8} {'MB/s':>6} "
          f"{'batch KiB':>9} {'peak RSS MiB':>12}")
    for mb in args.sizes:
        r = bench_size(Path(args.bin), root, mb, args.workers)
        peaks.append(r["peak_rss_mib"])
        print(f"{r['dataset_mb']:10.0f} {r['shards']:6d} {r['records']:8d} {r['psd_s']:7.1f} {r['doget_s']:8.1f} "
              f"{r['doget_mb_s']:6.0f} {r['largest_batch_kib']:9.0f} {r['peak_rss_mib']:12.0f}", flush=True)
        print("   ", json.dumps(r), flush=True)
        ok = ok and r["peak_rss_mib"] < args.limit_mib
    if len(peaks) > 1 and max(peaks) > 1.5 * min(peaks) + 32:
        print(f"peak RSS grows with the dataset: {peaks}")
        ok = False
    if args.put_mb > 0:
        r = bench_put(Path(args.bin), root, args.put_mb)
        print(f"DoPut {r['table_mb']:.0f} MB from pyarrow: {r['put_s']:.1f} s ({r['put_mb_s']:.0f} MB/s), "
              f"{r['shards']} shards, read back equal: {r['equal']}, server peak RSS {r['peak_rss_mib']:.0f} MiB")
        print("   ", json.dumps(r), flush=True)
        ok = ok and r["equal"] and r["peak_rss_mib"] < args.limit_mib
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
