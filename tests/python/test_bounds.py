"""Hostile and careless requests are refused before any work starts, and damaged bytes fail only
what touches them: after each case the same server process still serves.

Each request is made through grpcio (raw bytes in, exact status code out). The cases are the
reproductions of requests that used to kill the server or blow up its memory: a huge `nfft`, a
window of ten million weights, params nested 9000 deep, a 100 MB action body, params over 128 KiB,
a 100 KB name, a DoPut batch whose body is garbage, and a shard with damaged bytes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import (
    FLIGHT_SERVICE,
    _len_field,
    action,
    assert_succeeded,
    raw_do_action,
    raw_do_get,
    raw_get_flight_info,
    run_psd,
    start_server,
    wait_job,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
DATA_LOSS = grpc.StatusCode.DATA_LOSS

# A refusal quotes at most a short prefix of what it refuses.
MAX_DETAILS = 2048

OK_PSD = {"dataset": "demo", "column": "samples", "fs": 250}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture(scope="module")
def bserver(flightbatch_bin, tmp_path_factory):
    """A server with a registered function (for `run`) and a second, small dataset."""
    work = tmp_path_factory.mktemp("bounds")
    fns = work / "functions.json"
    fns.write_text(json.dumps({"echo": {"command": ["cat"], "description": "echoes its input"}}))
    srv = start_server(flightbatch_bin, work, "--functions", str(fns))
    client = srv.connect()
    table = pa.table({"samples": pa.array([[0.0, 1.0, 0.5, 0.25] * 64] * 8, pa.list_(pa.float64())),
                      "fs": pa.array([250.0] * 8)})
    writer, _ = client.do_put(flight.FlightDescriptor.for_path("datasets", "other"), table.schema)
    writer.write_table(table)
    writer.close()
    client.close()
    yield srv
    assert srv.stop() == 0, srv.stderr_text()


def assert_serving(srv) -> None:
    assert srv.proc.poll() is None, f"the server died:\n{srv.stderr_text()[-4000:]}"
    client = srv.connect()
    paths = {tuple(p.decode() for p in info.descriptor.path) for info in client.list_flights()}
    assert ("datasets", "other") in paths, paths
    client.close()


# (id, action, raw body, code, a word the message must contain)
ACTION_CASES = [
    ("nfft-2**62", "psd", json.dumps({**OK_PSD, "nfft": 2**62}).encode(), INVALID, "nfft"),
    ("nfft-2**31", "psd", json.dumps({**OK_PSD, "nfft": 2**31}).encode(), INVALID, "nfft"),
    ("nfft-over-64-nperseg", "psd", json.dumps({**OK_PSD, "nperseg": 256, "nfft": 256 * 64 + 2}).encode(), INVALID, "nfft"),
    ("nperseg-2**40", "psd", json.dumps({**OK_PSD, "nperseg": 2**40}).encode(), INVALID, "nperseg"),
    ("window-1e7-weights", "psd",
     b'{"dataset": "demo", "fs": 250, "window": [' + b",".join([b"1"] * 10_000_000) + b"]}", INVALID, "limit"),
    ("params-nested-9000", "run",
     b'{"function": "echo", "dataset": "demo", "params": {"a": ' + nested(9000).encode() + b"}}", INVALID, "deep"),
    ("psd-nested-9000", "psd", b'{"dataset": "demo", "fs": 250, "window": ' + nested(9000).encode() + b"}", INVALID, "deep"),
    ("action-body-100MB", "psd", b'{"dataset": "demo", "fs": 250, "pad": "' + b"x" * (100 << 20) + b'"}', EXHAUSTED, None),
    ("params-over-128KiB", "run",
     json.dumps({"function": "echo", "dataset": "demo", "params": {"a": "x" * (130 << 10)}}).encode(), INVALID, "params"),
    ("dataset-name-100KB", "psd", json.dumps({**OK_PSD, "dataset": "a" * 100_000}).encode(), INVALID, "name"),
    ("column-name-100KB", "psd", json.dumps({**OK_PSD, "column": "c" * 100_000}).encode(), INVALID, "column"),
    ("band-name-100KB", "psd", json.dumps({**OK_PSD, "bands": {"b" * 100_000: [1, 4]}}).encode(), INVALID, "band"),
    ("window-name-100KB", "psd", json.dumps({**OK_PSD, "window": "w" * 100_000}).encode(), INVALID, "window"),
    ("function-name-100KB", "run", json.dumps({"function": "f" * 100_000, "dataset": "demo"}).encode(), INVALID, "function"),
    ("action-name-100KB", "x" * 100_000, b"{}", INVALID, "action"),
    ("unknown-field-100KB", "psd", json.dumps({**OK_PSD, "k" * 100_000: 1}).encode(), INVALID, None),
    ("job-id-100KB", "job-status", json.dumps({"job_id": "j" * 100_000}).encode(), grpc.StatusCode.NOT_FOUND, "job"),
    ("bands-1000", "psd", json.dumps({**OK_PSD, "bands": {f"b{i}": [1, 4] for i in range(1000)}}).encode(), INVALID, "bands"),
]


@pytest.mark.parametrize("kind,body,code,word", [c[1:] for c in ACTION_CASES], ids=[c[0] for c in ACTION_CASES])
def test_bounded_action(bserver, kind, body, code, word):
    jobs_dir = bserver.store / "jobs"
    before = set(jobs_dir.iterdir()) if jobs_dir.exists() else set()
    reply = raw_do_action(bserver.addr, kind, body)
    assert reply.code == code, f"want {code.name}, got {reply.code.name}: {reply.details[:300]!r}"
    assert reply.details.strip() and len(reply.details) <= MAX_DETAILS, f"{len(reply.details)} bytes: {reply.details[:300]!r}"
    if word is not None:
        assert word in reply.details.lower(), reply.details
    after = set(jobs_dir.iterdir()) if jobs_dir.exists() else set()
    assert after == before, "a refused request created a job"
    assert_serving(bserver)


@pytest.mark.parametrize(
    "ticket",
    ["datasets/" + "a" * 100_000, "jobs/" + "j" * 100_000, json.dumps({"path": "datasets/demo", "columns": ["c" * 100_000]}),
     json.dumps({"path": nested(9000)})],
    ids=["dataset-name-100KB", "job-id-100KB", "column-100KB", "nested-9000"],
)
def test_bounded_ticket(bserver, ticket):
    reply = raw_do_get(bserver.addr, ticket)
    assert reply.code in (INVALID, grpc.StatusCode.NOT_FOUND), f"{reply.code.name}: {reply.details[:300]!r}"
    assert reply.details.strip() and len(reply.details) <= MAX_DETAILS, len(reply.details)
    assert_serving(bserver)


def test_bounded_flight_info_name(bserver):
    reply = raw_get_flight_info(bserver.addr, "datasets", "a" * 100_000)
    assert reply.code == INVALID, f"{reply.code.name}: {reply.details[:300]!r}"
    assert len(reply.details) <= MAX_DETAILS
    assert_serving(bserver)


def ipc_message(buf: pa.Buffer) -> tuple[bytes, bytes]:
    """The flatbuffer metadata and the body of one encapsulated IPC message."""
    data = buf.to_pybytes()
    assert data[:4] == b"\xff\xff\xff\xff"
    (meta_len,) = struct.unpack("<i", data[4:8])
    return data[8 : 8 + meta_len], data[8 + meta_len :]


def flight_data(descriptor: bytes = b"", header: bytes = b"", body: bytes = b"") -> bytes:
    # FlightData { FlightDescriptor flight_descriptor = 1; bytes data_header = 2; bytes data_body = 1000; }
    out = b""
    if descriptor:
        out += _len_field(1, descriptor)
    if header:
        out += _len_field(2, header)
    if body:
        out += _len_field(1000, body)
    return out


def test_malformed_doput_is_refused(bserver):
    """Schema (list<float32>, float64), then a batch whose body is all 0xff."""
    schema = pa.schema([("samples", pa.list_(pa.float32())), ("fs", pa.float64())])
    batch = pa.record_batch([pa.array([[1.0, 2.0, 3.0]] * 4, pa.list_(pa.float32())), pa.array([250.0] * 4)], schema=schema)
    schema_meta, _ = ipc_message(schema.serialize())
    batch_meta, body = ipc_message(batch.serialize())
    # FlightDescriptor { type = PATH (1); path = ["datasets", "garbage"] }
    descriptor = b"\x08\x01" + _len_field(3, b"datasets") + _len_field(3, b"garbage")
    messages = [flight_data(descriptor, schema_meta), flight_data(header=batch_meta, body=b"\xff" * len(body))]
    with grpc.insecure_channel(bserver.addr) as channel:
        call = channel.stream_stream(f"{FLIGHT_SERVICE}/DoPut")
        with pytest.raises(grpc.RpcError) as e:
            list(call(iter(messages), timeout=30))
    assert e.value.code() == INVALID, f"{e.value.code().name}: {e.value.details()!r}"
    assert "batch 0" in e.value.details(), e.value.details()
    left = [p for p in (bserver.store / "datasets" / "garbage").rglob("*") if p.is_file()]
    assert not left, f"a refused upload left files: {left}"
    assert_serving(bserver)


def damage_footer(path: Path) -> None:
    """Flip 64 bytes of an Arrow IPC file's footer (which holds its schema and batch index)."""
    data = bytearray(path.read_bytes())
    assert data[-6:] == b"ARROW1", path
    (footer_len,) = struct.unpack("<i", data[-10:-6])
    start = len(data) - 10 - footer_len
    for i in range(start, start + min(64, footer_len)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_shards_fail_only_what_reads_them(flightbatch_bin, tmp_path):
    srv = start_server(flightbatch_bin, tmp_path)
    client = srv.connect()
    table = pa.table({"samples": pa.array([[0.0, 1.0] * 128] * 4, pa.list_(pa.float64()))})
    writer, _ = client.do_put(flight.FlightDescriptor.for_path("datasets", "other"), table.schema)
    writer.write_table(table)
    writer.close()
    shards = sorted((srv.store / "datasets" / "demo").glob("*.arrow"))
    assert len(shards) >= 3, shards

    # A later shard damaged: a psd job fails that shard, naming it, and nothing else.
    damage_footer(shards[2])
    job = wait_job(client, run_psd(client, OK_PSD))
    assert job["state"] == "FAILED", job
    failed = [f["shard"] for f in job["failures"] if f["state"] == "FAILED"]
    assert failed == [shards[2].stem], job["failures"]
    assert shards[2].stem in job["failures"][0]["errors"][0], job["failures"]
    reply = raw_do_get(srv.addr, f"datasets/demo/{shards[2].stem}")
    assert reply.code == DATA_LOSS and shards[2].stem in reply.details, (reply.code, reply.details)
    ok = raw_do_get(srv.addr, f"datasets/demo/{shards[1].stem}")
    assert ok.code == grpc.StatusCode.OK, ok.details

    # The first shard damaged: ListFlights still lists the other datasets; the demo's reads fail
    # cleanly, naming the shard.
    damage_footer(shards[0])
    paths = {tuple(p.decode() for p in info.descriptor.path) for info in client.list_flights()}
    assert ("datasets", "other") in paths and ("datasets", "demo") not in paths, paths
    for ticket in (f"datasets/demo/{shards[0].stem}", "datasets/demo"):
        reply = raw_do_get(srv.addr, ticket)
        assert reply.code == DATA_LOSS and shards[0].stem in reply.details, (ticket, reply.code, reply.details)
    reply = raw_do_action(srv.addr, "psd", OK_PSD)
    assert reply.code == DATA_LOSS and shards[0].stem in reply.details, (reply.code, reply.details)
    assert_succeeded(wait_job(client, run_psd(client, {**OK_PSD, "dataset": "other"})))
    client.close()
    assert srv.proc.poll() is None
    assert srv.stop() == 0

    # A restart resumes nothing that crashes, and serves.
    srv = start_server(flightbatch_bin, tmp_path)
    client = srv.connect()
    assert ("datasets", "other") in {tuple(p.decode() for p in i.descriptor.path) for i in client.list_flights()}
    assert action(client, "list-jobs", {})["jobs"]
    client.close()
    assert srv.stop() == 0
