#!/usr/bin/env python3
"""A large EDF recording registered in place: psd over it in bounded server memory, on every worker.

Writes one EDF file of --gb GB with numpy (the header by hand, then data records of random
16-bit samples: seconds, not minutes), registers it in place in a file store with
register-dataset (`epoch_s` 10: one row per channel x 10 s), runs a psd job over every shard
with --workers N, and reads:

- the server's peak RSS (VmHWM in /proc/<pid>/status), which must stay under --limit-mib;
- the most children that ran at once, from the job manifest's shard start and end times, which
  must reach N (every worker used);
- one row's psd against scipy.signal.welch of the same samples (physical units), rtol 1e-9.

    go build -o bin/flightbatch ./cmd/flightbatch
    python bench/edf_scale.py --gb 2 --workers 2

Exits 1 if a check fails. Prints the figures bench/README.md quotes.
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
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow.flight as flight
import scipy.signal

REPO = Path(__file__).resolve().parents[1]
LISTEN_RE = re.compile(r"^flightbatch listening on grpc://(\S+)$")

SIGNALS = 64
FS = 512  # samples per 1-s record, per signal
PHYS = 500.0  # physical range +-500 uV over the full 16-bit digital range


def _f(v, n: int) -> bytes:
    s = str(v).encode("ascii")
    assert len(s) <= n, (v, n)
    return s.ljust(n)


def write_edf(path: Path, records: int, seed: int = 7) -> None:
    """A plain EDF file: SIGNALS signals at FS Hz in 1-s records, random 16-bit samples."""
    ns = SIGNALS
    h = b"".join([
        _f(0, 8), _f("X X X X", 80), _f("Startdate 01-MAR-2024 X X X", 80), b"01.03.24", b"22.00.00",
        _f(256 + 256 * ns, 8), _f("", 44), _f(records, 8), _f(1, 8), _f(ns, 4),
    ])
    for width, vals in [
        (16, [f"EEG{i:02d}" for i in range(ns)]), (80, ["AgAgCl"] * ns), (8, ["uV"] * ns),
        (8, [-PHYS] * ns), (8, [PHYS] * ns), (8, [-32768] * ns), (8, [32767] * ns),
        (80, [""] * ns), (8, [FS] * ns), (32, [""] * ns),
    ]:
        h += b"".join(_f(v, width) for v in vals)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(h)
        chunk = 256
        for r in range(0, records, chunk):
            n = min(chunk, records - r)
            f.write(rng.integers(-32768, 32768, size=(n, ns, FS), dtype=np.int16).astype("<i2").tobytes())


def physical(path: Path, signal: int, first_record: int, records: int) -> np.ndarray:
    """Samples of one signal over records, in physical units, read back from the file."""
    ns = SIGNALS
    header = 256 + 256 * ns
    rec_bytes = ns * FS * 2
    with open(path, "rb") as f:
        f.seek(header + first_record * rec_bytes)
        raw = np.frombuffer(f.read(records * rec_bytes), "<i2").reshape(records, ns, FS)
    d = raw[:, signal, :].ravel().astype(np.float64)
    return -PHYS + (d + 32768) * (2 * PHYS) / 65535


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def action(client, kind, body):
    return json.loads(next(iter(client.do_action(flight.Action(kind, json.dumps(body).encode())))).body.to_pybytes())


def max_concurrency(manifest: dict) -> int:
    events = []
    for s in manifest["shards"]:
        if s.get("started_at") and s.get("finished_at"):
            events.append((datetime.fromisoformat(s["started_at"]), 1))
            events.append((datetime.fromisoformat(s["finished_at"]), -1))
    best = cur = 0
    for _, d in sorted(events, key=lambda e: (e[0], e[1])):
        cur += d
        best = max(best, cur)
    return best


def run(binary: Path, gb: float, workers: int, limit_mib: float, workdir: Path) -> dict:
    store = workdir / "store"
    (store / "raw").mkdir(parents=True)
    path = store / "raw" / "night.edf"
    records = int(gb * 1e9 // (SIGNALS * FS * 2))
    t0 = time.monotonic()
    write_edf(path, records)
    gen_s = time.monotonic() - t0
    proc = subprocess.Popen(
        [str(binary), "serve", "--addr", "127.0.0.1:0", "--store", f"file://{store}", "--workers", str(workers),
         "--log-level", "warn"], stdout=subprocess.PIPE, text=True)
    try:
        m = LISTEN_RE.match(proc.stdout.readline().strip())
        client = flight.connect(f"grpc://{m.group(1)}")
        t0 = time.monotonic()
        reg = action(client, "register-dataset", {"name": "night", "prefix": "raw/", "epoch_s": 10})
        reg_s = time.monotonic() - t0
        t0 = time.monotonic()
        job = action(client, "psd", {"dataset": "night", "fs_column": "fs", "nperseg": 512})["job_id"]
        while (st := action(client, "job-status", {"job_id": job}))["state"] in ("SUBMITTED", "RUNNING"):
            time.sleep(0.5)
        psd_s = time.monotonic() - t0
        if st["state"] != "SUCCEEDED":
            raise SystemExit(f"psd job ended {st['state']}: {st.get('error')}")
        peak = peak_rss_mib(proc.pid)
        manifest = json.loads((store / "jobs" / job / "manifest.json").read_text())
        conc = max_concurrency(manifest)
        # One row, checked against scipy: the first row of a shard.
        shard = manifest['shards'][min(3, len(manifest['shards']) - 1)]['name']
        part = client.do_get(flight.Ticket(f"jobs/{job}/{shard}".encode())).read_all()
        row = part.slice(0, 1).to_pylist()[0]
        x = physical(path, int(row["channel"][3:]), row["epoch"] * 10, 10)
        _, ref = scipy.signal.welch(x, fs=FS, nperseg=512)
        np.testing.assert_allclose(row["psd"], ref, rtol=1e-9)
    finally:
        proc.terminate()
        proc.wait(60)
    return {"file_gb": path.stat().st_size / 1e9, "records": records, "generate_s": gen_s, "register_s": reg_s,
            "shards": reg["shards"], "rows": reg["rows"], "psd_s": psd_s, "peak_rss_mib": peak,
            "max_children_at_once": conc, "workers": workers,
            "ok": peak < limit_mib and conc >= workers}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit-mib", type=float, default=512)
    ap.add_argument("--bin", default=str(REPO / "bin" / "flightbatch"))
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one, removed after)")
    args = ap.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="flightbatch-edf-scale-"))
    try:
        res = run(Path(args.bin), args.gb, args.workers, args.limit_mib, work)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res, indent=2))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
