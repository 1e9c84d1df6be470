"""Fault injection against real server processes: what a crash, an outage, a full disk or a
damaged object does to the jobs and datasets a server keeps.

Each test injects one fault, then checks the invariants: the server serves (or, after a crash,
serves again once restarted), and every job that finished before or after the fault returns
every row of its input exactly once. The figures (faults tried, survived, rows lost) are
printed at the end of the module.

- SIGKILL of the server during a job, and during a DoPut;
- the S3 server stopped for 6 s (a job used to fail: retries came within milliseconds, and its
  manifest then disagreed with the state clients saw) and for 10 s, mid-job;
- a full tmpfs store (mounted here as root; if the mount is refused the test fails, unless
  FLIGHTBATCH_ALLOW_NO_TMPFS=1 says that is expected);
- a flipped byte in a shard;
- a truncated manifest.json (a job used to vanish after a restart) and _dataset.json (a whole
  dataset used to vanish).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import REPO, _RUNNING, action, start_server, wait_job

KEY = ["patient_id", "session_id", "channel", "start_time"]

FIGURES = {"tried": 0, "survived": 0, "rows_lost": 0, "rows_duplicated": 0}


def keys(table: pa.Table) -> list[tuple]:
    return list(zip(*[table.column(k).to_pylist() for k in KEY]))


class Fault:
    """Counts a fault as tried, and as survived if its block ends without an exception."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        FIGURES["tried"] += 1
        return self

    def __exit__(self, typ, value, tb):
        if typ is None:
            FIGURES["survived"] += 1
        return False


def kill9(srv) -> None:
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    if srv in _RUNNING:
        _RUNNING.remove(srv)


def restart(binary: Path, srv, *extra: str):
    """A new server on the same store and flags."""
    workdir = srv.store.parent
    args = srv.args[srv.args.index("--demo") + 1 :]
    return start_server(binary, workdir, *args, *extra)


def wait_state(client, job_id, pred, timeout=120.0):
    deadline = time.monotonic() + timeout
    while True:
        st = action(client, "job-status", {"job_id": job_id})
        if pred(st):
            return st
        assert time.monotonic() < deadline, f"timed out: {st}"
        time.sleep(0.1)


def check_invariants(client, dataset: str = "demo", skip=()) -> None:
    """The server serves; every finished job has every row of its input exactly once.

    skip names jobs whose input was damaged on purpose."""
    names = [f.descriptor.path for f in client.list_flights()]
    assert [b"datasets", dataset.encode()] in names, names
    want = sorted(keys(client.do_get(flight.Ticket(f"datasets/{dataset}".encode())).read_all()))
    for job in action(client, "list-jobs", {})["jobs"]:
        if job["state"] != "SUCCEEDED" or job["dataset"] != dataset or job["job_id"] in skip:
            continue
        got = sorted(keys(client.do_get(flight.Ticket(f"jobs/{job['job_id']}".encode())).read_all()))
        lost = len(set(want) - set(got))
        dup = len(got) - len(set(got))
        FIGURES["rows_lost"] += lost
        FIGURES["rows_duplicated"] += dup
        assert got == want, f"job {job['job_id']}: {lost} rows lost, {dup} duplicated"


def worker_pids(store: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"worker .*--store {store}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


# ---------------------------------------------------------------------------------------------


def test_sigkill_during_job(flightbatch_bin, tmp_path):
    srv = start_server(flightbatch_bin, tmp_path / "a", "--workers", "2")
    client = srv.connect()
    with Fault("SIGKILL of the server during a job"):
        done = action(client, "psd", {"dataset": "demo", "fs": 250})["job_id"]
        assert wait_job(client, done)["state"] == "SUCCEEDED"
        # Long enough records that the job is mid-way when the server dies.
        job = action(client, "psd", {"dataset": "demo", "fs": 250, "nperseg": 4096, "noverlap": 4000})["job_id"]
        wait_state(client, job, lambda st: st["shards"]["running"] > 0 or st["state"] != "RUNNING")
        kill9(srv)
        # The server's children die with it.
        deadline = time.monotonic() + 30
        while worker_pids(f"file://{srv.store}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not worker_pids(f"file://{srv.store}"), "worker processes outlived the killed server"
        srv = restart(flightbatch_bin, srv)
        client = srv.connect()
        st = wait_job(client, job, timeout=300)
        assert st["state"] == "SUCCEEDED", st
        check_invariants(client)
    srv.stop()


def test_sigkill_during_doput(flightbatch_bin, tmp_path):
    srv = start_server(flightbatch_bin, tmp_path / "a", "--shard-mb", "1")
    client = srv.connect()
    with Fault("SIGKILL of the server during DoPut"):
        done = action(client, "psd", {"dataset": "demo", "fs": 250})["job_id"]
        assert wait_job(client, done)["state"] == "SUCCEEDED"
        n = 4000
        table = pa.table({
            "patient_id": [f"P{i}" for i in range(256)],
            "samples": pa.array([[float(i)] * n for i in range(256)], type=pa.list_(pa.float32())),
        })
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("datasets", "upload"), table.schema)
        for i, batch in enumerate(table.to_batches(max_chunksize=16)):
            writer.write_batch(batch)
            if i == 8:
                kill9(srv)
                break
        try:
            writer.close()
        except Exception:
            pass
        srv = restart(flightbatch_bin, srv)
        client = srv.connect()
        names = [f.descriptor.path for f in client.list_flights()]
        assert [b"datasets", b"upload"] not in names, "a half-uploaded dataset is listed"
        check_invariants(client)
        # The name is free again, and the leftovers are what check calls an unfinished upload.
        out = subprocess.run([str(flightbatch_bin), "check", "--store", f"file://{srv.store}", "--temp-age", "1ms"],
                             capture_output=True, text=True)
        assert "an upload that never finished" in out.stdout, out.stdout + out.stderr
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("datasets", "upload"), table.schema)
        with writer:
            writer.write_table(table)
            writer.done_writing()
            reader.read()
        assert client.do_get(flight.Ticket(b"datasets/upload")).read_all().num_rows == table.num_rows
    srv.stop()


# ---------------------------------------------------------------------------------------------
# S3 outages


def s3_server(tmp_path: Path, port: int | None = None) -> dict:
    env = dict(os.environ)
    if port:
        env["FLIGHTBATCH_S3_PORT"] = str(port)
    out = subprocess.run(["bash", str(REPO / "scripts/s3-server.sh"), "start", str(tmp_path)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    vals = {}
    for line in Path(out.stdout.strip()).read_text().splitlines():
        k, v = line.removeprefix("export ").split("=", 1)
        vals[k] = v
    return vals


def s3_stop(tmp_path: Path) -> None:
    subprocess.run(["bash", str(REPO / "scripts/s3-server.sh"), "stop", str(tmp_path)], check=True,
                   capture_output=True)


@pytest.mark.parametrize("outage", [6, 10])
def test_s3_outage_mid_job(flightbatch_bin, tmp_path, monkeypatch, outage):
    s3dir = tmp_path / "s3"
    env = s3_server(s3dir)
    port = int(env["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1])
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.setenv(k, env[k])
    monkeypatch.setenv("FLIGHTBATCH_FAULTS", "*:sleep=1")
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    url = f"s3://{env['FLIGHTBATCH_TEST_S3_BUCKET']}/{prefix}"
    workdir = tmp_path / "srv"
    srv = start_server(flightbatch_bin, workdir, "--store", url, "--workers", "1")
    client = srv.connect()
    try:
        with Fault(f"the S3 server stopped for {outage} s mid-job"):
            job = action(client, "psd", {"dataset": "demo", "fs": 250})["job_id"]
            wait_state(client, job, lambda st: st["shards"]["running"] > 0)
            s3_stop(s3dir)
            time.sleep(outage)
            s3_server(s3dir, port)
            st = wait_job(client, job, timeout=300)
            assert st["state"] == "SUCCEEDED", st
            # The stored manifest says what clients were told.
            manifest = Path(env["FLIGHTBATCH_TEST_S3_DIR"], env["FLIGHTBATCH_TEST_S3_BUCKET"], prefix, "jobs", job,
                            "manifest.json")
            assert json.loads(manifest.read_text())["state"] == "SUCCEEDED"
            check_invariants(client)
            # A final state never changes, across a restart too.
            srv.stop()
            srv = start_server(flightbatch_bin, workdir, "--store", url, "--workers", "1")
            client = srv.connect()
            time.sleep(1)
            assert action(client, "job-status", {"job_id": job})["state"] == "SUCCEEDED"
            check_invariants(client)
    finally:
        srv.stop()
        s3_stop(s3dir)


# ---------------------------------------------------------------------------------------------


def test_full_tmpfs_store(flightbatch_bin, tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        if os.environ.get("FLIGHTBATCH_ALLOW_NO_TMPFS") == "1":
            pytest.skip(f"cannot mount a tmpfs ({out.stderr.strip()}); FLIGHTBATCH_ALLOW_NO_TMPFS=1")
        pytest.fail(f"mount -t tmpfs failed: {out.stderr.strip()} (run as root, or set FLIGHTBATCH_ALLOW_NO_TMPFS=1)")
    srv = None
    try:
        srv = start_server(flightbatch_bin, mnt, "--demo-mb", "4")
        client = srv.connect()
        with Fault("a full store"):
            done = action(client, "psd", {"dataset": "demo", "fs": 250})["job_id"]
            assert wait_job(client, done)["state"] == "SUCCEEDED"
            filler = mnt / "store" / "filler.bin"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=64"], capture_output=True)
            assert shutil.disk_usage(mnt).free < 1 << 20
            # Writes fail with an error; the server stays up.
            table = pa.table({"samples": pa.array([[1.0] * 50000] * 64, type=pa.list_(pa.float32()))})
            with pytest.raises(flight.FlightError):
                writer, reader = client.do_put(flight.FlightDescriptor.for_path("datasets", "big"), table.schema)
                with writer:
                    writer.write_table(table)
                    writer.done_writing()
                    reader.read()
            try:
                job = action(client, "psd", {"dataset": "demo", "fs": 250})["job_id"]
            except flight.FlightError:
                job = None  # refused: its request could not be stored
            check_invariants(client)
            # Space again: a job left waiting to store its state goes on.
            filler.unlink()
            if job:
                st = wait_job(client, job, timeout=300)
                assert st["state"] in ("SUCCEEDED", "FAILED"), st
            again = action(client, "psd", {"dataset": "demo", "fs": 250})["job_id"]
            assert wait_job(client, again)["state"] == "SUCCEEDED"
            check_invariants(client)
    finally:
        if srv:
            srv.stop()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_flipped_byte_in_shard(flightbatch_bin, tmp_path):
    srv = start_server(flightbatch_bin, tmp_path / "a")
    client = srv.connect()
    with Fault("a flipped byte in a shard"):
        done = action(client, "psd", {"dataset": "demo", "fs": 250})["job_id"]
        assert wait_job(client, done)["state"] == "SUCCEEDED"
        shard = sorted((srv.store / "datasets" / "demo").glob("*.arrow"))[-1]
        original = shard.read_bytes()
        rng = random.Random(11)
        damaged_jobs = set()
        for offset in [8, 64, len(original) - 40, len(original) - 12] + [rng.randrange(len(original)) for _ in range(6)]:
            damaged = bytearray(original)
            damaged[offset] ^= 0xFF
            shard.write_bytes(bytes(damaged))
            job = action(client, "psd", {"dataset": "demo", "fs": 250})["job_id"]
            damaged_jobs.add(job)
            st = wait_job(client, job, timeout=300)
            assert st["state"] in ("SUCCEEDED", "FAILED"), st
            try:
                client.do_get(flight.Ticket(f"datasets/demo/{shard.stem}".encode())).read_all()
            except (flight.FlightError, pa.ArrowException):
                pass  # refused with a status; the point is the server is still here
            assert srv.proc.poll() is None, "the server died"
            shard.write_bytes(original)
            check_invariants(client, skip=damaged_jobs)
    srv.stop()


def test_truncated_manifest_and_index(flightbatch_bin, tmp_path):
    srv = start_server(flightbatch_bin, tmp_path / "a")
    client = srv.connect()
    with Fault("a truncated manifest.json and _dataset.json"):
        job = action(client, "psd", {"dataset": "demo", "fs": 250})["job_id"]
        assert wait_job(client, job)["state"] == "SUCCEEDED"
        rows = client.do_get(flight.Ticket(f"jobs/{job}".encode())).read_all().num_rows
        srv.stop()
        for p in [srv.store / "jobs" / job / "manifest.json", srv.store / "datasets" / "demo" / "_dataset.json"]:
            data = p.read_bytes()
            p.write_bytes(data[: len(data) // 2])
        srv = restart(flightbatch_bin, srv)
        client = srv.connect()
        st = action(client, "job-status", {"job_id": job})
        assert st["state"] == "SUCCEEDED", st
        assert client.do_get(flight.Ticket(f"jobs/{job}".encode())).read_all().num_rows == rows
        check_invariants(client)
        out = subprocess.run([str(flightbatch_bin), "check", "--store", f"file://{srv.store}", "--repair"],
                             capture_output=True, text=True)
        assert out.returncode == 0 and "_dataset.json" in out.stdout, out.stdout + out.stderr
        out = subprocess.run([str(flightbatch_bin), "check", "--store", f"file://{srv.store}"],
                             capture_output=True, text=True)
        assert out.returncode == 0 and "no problems" in out.stdout, out.stdout + out.stderr
    srv.stop()


def test_zz_figures(capsys):
    with capsys.disabled():
        print(f"\nfault injection: {FIGURES['tried']} faults tried, {FIGURES['survived']} survived, "
              f"rows lost: {FIGURES['rows_lost']}, rows duplicated: {FIGURES['rows_duplicated']}")
    assert FIGURES["tried"] > 0 and FIGURES["survived"] == FIGURES["tried"], FIGURES
    assert FIGURES["rows_lost"] == 0 and FIGURES["rows_duplicated"] == 0, FIGURES
