"""Datasets through pyarrow.flight: upload (DoPut), read back, projection, Parquet files
registered in place, and uploads that fail leaving nothing.

Self-contained: starts its own `flightbatch serve --addr 127.0.0.1:0` on a file store, or on
the S3 test server when FLIGHTBATCH_TEST_S3_BUCKET is set (source the env file that
scripts/s3-server.sh writes). The binary is $FLIGHTBATCH_BIN, else bin/flightbatch built from
the repository.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import scipy.signal

REPO = Path(__file__).resolve().parents[2]
LISTEN_RE = re.compile(r"^flightbatch listening on grpc://(\S+)$")


@pytest.fixture(scope="module")
def fb_bin() -> Path:
    env_bin = os.environ.get("FLIGHTBATCH_BIN")
    if env_bin:
        return Path(env_bin)
    out = REPO / "bin" / "flightbatch"
    subprocess.run(["go", "build", "-o", str(out), "./cmd/flightbatch"], cwd=REPO, check=True)
    return out


class Store:
    """The server's store, and direct access to its objects (as a pyarrow filesystem)."""

    def __init__(self, tmp: Path):
        bucket = os.environ.get("FLIGHTBATCH_TEST_S3_BUCKET")
        if bucket:
            prefix = f"pytest-datasets-{uuid.uuid4().hex[:12]}"
            self.url = f"s3://{bucket}/{prefix}"
            endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
            scheme, host = endpoint.split("://", 1)
            self.fs = pafs.S3FileSystem(
                access_key=os.environ["AWS_ACCESS_KEY_ID"],
                secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                region=os.environ.get("AWS_REGION", "us-east-1"),
                endpoint_override=host,
                scheme=scheme,
            )
            self.root = f"{bucket}/{prefix}"
        else:
            self.url = f"file://{tmp}"
            self.fs = pafs.LocalFileSystem()
            self.root = str(tmp)

    def keys(self, prefix: str) -> list[str]:
        sel = pafs.FileSelector(f"{self.root}/{prefix}", recursive=True, allow_not_found=True)
        return sorted(
            i.path[len(self.root) + 1 :] for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.File
        )

    def write_parquet(self, key: str, table: pa.Table, row_group_size: int):
        if isinstance(self.fs, pafs.LocalFileSystem):
            Path(self.root, key).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, f"{self.root}/{key}", filesystem=self.fs, row_group_size=row_group_size)


class Server:
    def __init__(self, fb_bin: Path, store: Store, *args: str):
        self.store = store
        self.proc = subprocess.Popen(
            [str(fb_bin), "serve", "--addr", "127.0.0.1:0", "--store", store.url, "--workers", "2", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        m = LISTEN_RE.match(line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.location = f"grpc://{m.group(1)}"
        self.stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.client = flight.connect(self.location)

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def stop(self):
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(fb_bin, tmp_path_factory):
    srv = Server(fb_bin, Store(tmp_path_factory.mktemp("store")), "--shard-mb", "1")
    yield srv
    srv.stop()


def lfp_table(rows: int, n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 250.0
    signals = (rng.standard_normal((rows, n)) + np.sin(2 * np.pi * 20 * t)).astype(np.float32)
    return pa.table(
        {
            "patient_id": pa.array([f"P{i % 5:02d}" for i in range(rows)]),
            "session_id": pa.array([f"S{i % 3}" for i in range(rows)]),
            "channel": pa.array([["STN-L-01", "STN-R-01"][i % 2] for i in range(rows)]),
            "start_time": pa.array(
                np.datetime64("2024-03-04T09:00:00") + np.arange(rows) * np.timedelta64(30, "s"),
                pa.timestamp("us", tz="UTC"),
            ),
            "fs": pa.array(np.full(rows, 250.0)),
            "samples": pa.ListArray.from_arrays(
                pa.array(np.arange(rows + 1, dtype=np.int32) * n), pa.array(signals.ravel())
            ),
        }
    )


def upload(client, name: str, table: pa.Table, chunk_rows: int = 64) -> dict:
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("datasets", name), table.schema)
    with writer:
        writer.write_table(table, max_chunksize=chunk_rows)
        writer.done_writing()
        meta = reader.read()
    return json.loads(meta.to_pybytes())


def read(client, ticket: str | dict) -> pa.Table:
    if isinstance(ticket, dict):
        ticket = json.dumps(ticket)
    return client.do_get(flight.Ticket(ticket.encode())).read_all()


def dataset_names(client) -> list[str]:
    return [
        "/".join(p.decode() if isinstance(p, bytes) else p for p in info.descriptor.path)
        for info in client.list_flights()
    ]


def action(client, typ: str, body: dict) -> dict:
    (res,) = list(client.do_action(flight.Action(typ, json.dumps(body).encode())))
    return json.loads(res.body.to_pybytes())


def wait_job(client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = action(client, "job-status", {"job_id": job_id})
        if st["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.1)


def test_doput_round_trip(server):
    table = lfp_table(300, 2500)  # 3 MB of samples: several 1 MiB shards
    res = upload(server.client, "roundtrip", table)
    assert res["dataset"] == "roundtrip" and res["rows"] == 300 and res["shards"] >= 3, res
    got = read(server.client, "datasets/roundtrip")
    assert got.schema.equals(table.schema)
    assert got.equals(table)
    assert got.to_pandas().equals(table.to_pandas())

    info = server.client.get_flight_info(flight.FlightDescriptor.for_path("datasets", "roundtrip"))
    assert info.total_records == 300
    assert len(info.endpoints) == res["shards"]
    parts = [server.client.do_get(ep.ticket).read_all() for ep in info.endpoints]
    assert pa.concat_tables(parts).equals(table)
    assert server.store.keys("datasets/roundtrip/")  # stored as shards in the store
    assert "datasets/roundtrip" in dataset_names(server.client)


def test_doput_existing_name_is_refused(server):
    table = lfp_table(10, 100, seed=1)
    upload(server.client, "once", table)
    # pyarrow has no exception for ALREADY_EXISTS: it raises ArrowException.
    with pytest.raises(pa.ArrowException, match="already exists"):
        upload(server.client, "once", lfp_table(5, 100, seed=2))
    assert read(server.client, "datasets/once").equals(table)


@pytest.mark.parametrize("name", ["Upper", "a..b", "-dash", "x" * 200])
def test_doput_bad_name(server, name):
    with pytest.raises(pa.ArrowInvalid, match="must match"):
        upload(server.client, name, lfp_table(2, 10))
    assert not server.store.keys(f"datasets/{name}/")


def test_projection(server):
    table = lfp_table(50, 500, seed=3)
    upload(server.client, "proj", table)
    got = read(server.client, {"path": "datasets/proj", "columns": ["channel", "samples"]})
    assert got.column_names == ["channel", "samples"]
    assert got.equals(table.select(["channel", "samples"]))
    shard = read(server.client, {"path": "datasets/proj/part-00000", "columns": ["fs"], "compression": "zstd"})
    assert shard.column_names == ["fs"] and shard.num_rows > 0
    with pytest.raises(pa.ArrowInvalid, match="does not exist"):
        read(server.client, {"path": "datasets/proj", "columns": ["nope"]})


def test_parquet_registered_in_place(server):
    # pyarrow writes the files straight into the store; no upload, no copy.
    a, b = lfp_table(40, 1000, seed=4), lfp_table(25, 1000, seed=5)
    server.store.write_parquet("datasets/inplace/a.parquet", a, row_group_size=8)
    server.store.write_parquet("datasets/inplace/b.parquet", b, row_group_size=10)
    assert pq.ParquetFile(f"{server.store.root}/datasets/inplace/a.parquet", filesystem=server.store.fs).num_row_groups == 5

    info = server.client.get_flight_info(flight.FlightDescriptor.for_path("datasets", "inplace"))
    assert info.total_records == 65 and len(info.endpoints) == 2
    got = read(server.client, "datasets/inplace")
    want = pa.concat_tables([a, b])
    assert got.num_rows == 65
    # Parquet names the list's element "element"; the values are the same.
    assert got.cast(want.schema).equals(want)

    job = action(server.client, "psd", {"dataset": "inplace", "fs_column": "fs", "nperseg": 256})
    st = wait_job(server.client, job["job_id"])
    assert st["state"] == "SUCCEEDED", st
    res = read(server.client, f"jobs/{job['job_id']}")
    assert res.num_rows == 65
    assert res.select(["patient_id", "session_id", "channel", "start_time", "fs"]).equals(
        want.select(["patient_id", "session_id", "channel", "start_time", "fs"])
    )
    samples = want.column("samples").combine_chunks()
    for i in (0, 39, 40, 64):
        x = samples[i].values.to_numpy(zero_copy_only=False).astype(np.float64)
        f, p = scipy.signal.welch(x, fs=250, nperseg=256)
        np.testing.assert_allclose(res.column("freqs")[i].as_py(), f, rtol=1e-12)
        np.testing.assert_allclose(res.column("psd")[i].as_py(), p, rtol=1e-9)


UPLOADER = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pyarrow as pa, pyarrow.flight as flight
    loc, name = sys.argv[1], sys.argv[2]
    n = 25000
    rows = 16
    schema = pa.schema([("id", pa.int64()), ("samples", pa.list_(pa.float32()))])
    client = flight.connect(loc)
    writer, _ = client.do_put(flight.FlightDescriptor.for_path("datasets", name), schema)
    for b in range(1000):
        vals = np.random.default_rng(b).standard_normal(rows * n).astype(np.float32)
        batch = pa.record_batch([pa.array(np.arange(rows) + b * rows),
            pa.ListArray.from_arrays(pa.array(np.arange(rows + 1, dtype=np.int32) * n), pa.array(vals))],
            schema=schema)
        writer.write_batch(batch)
        print(b, flush=True)
        if b >= 8:
            time.sleep(0.2)
    """
)


def wait_until(cond, timeout=30.0, what=""):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_killed_upload_leaves_nothing(server, tmp_path):
    # A client that dies midway: the server has stored shards, then aborts.
    script = tmp_path / "uploader.py"
    script.write_text(UPLOADER)
    proc = subprocess.Popen([sys.executable, str(script), server.location, "killed"], stdout=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(server.store.keys("datasets/killed/")) >= 3, what="shards of the upload")
        assert "datasets/killed" not in dataset_names(server.client)  # not visible while uploading
    finally:
        proc.kill()
        proc.wait()
    wait_until(lambda: not server.store.keys("datasets/killed/"), what="the aborted upload's objects to go")
    assert "datasets/killed" not in dataset_names(server.client)
    with pytest.raises(pa.ArrowKeyError, match="not found"):  # NOT_FOUND
        server.client.get_flight_info(flight.FlightDescriptor.for_path("datasets", "killed"))
    # The name is free again.
    upload(server.client, "killed", lfp_table(3, 10))


def test_upload_past_its_deadline_leaves_nothing(server):
    table = lfp_table(64, 20000, seed=6)  # 5 MB
    opts = flight.FlightCallOptions(timeout=1.0)
    writer, reader = server.client.do_put(
        flight.FlightDescriptor.for_path("datasets", "late"), table.schema, options=opts
    )
    with pytest.raises(pa.ArrowException):
        with writer:
            for batch in table.to_batches(max_chunksize=8):
                writer.write_batch(batch)
            time.sleep(1.5)
            writer.write_batch(batch)
            writer.done_writing()
            reader.read()
    wait_until(lambda: not server.store.keys("datasets/late/"), what="the expired upload's objects to go")
    assert "datasets/late" not in dataset_names(server.client)


def test_client_error_with_announced_rows_leaves_nothing(server):
    # pyarrow ends the stream cleanly even when the client raised midway, so a plain
    # upload would keep what arrived; announcing the row count makes the server refuse it.
    table = lfp_table(20, 100, seed=7)
    desc = flight.FlightDescriptor.for_command(json.dumps({"path": "datasets/mismatch", "rows": table.num_rows}))
    writer, reader = server.client.do_put(desc, table.schema)
    with pytest.raises(pa.ArrowException):
        with writer:
            writer.write_table(table.slice(0, 10))
            writer.write_table(pa.table({"other": [1]}))  # raises in the client
    assert not server.store.keys("datasets/mismatch/")
    assert "datasets/mismatch" not in dataset_names(server.client)

    writer, reader = server.client.do_put(desc, table.schema)
    with writer:
        writer.write_table(table)
        writer.done_writing()
        assert json.loads(reader.read().to_pybytes())["rows"] == 20
    assert read(server.client, "datasets/mismatch").equals(table)
