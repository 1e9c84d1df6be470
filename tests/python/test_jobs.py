"""Jobs a researcher can leave running: retries, failures, cancel, a server
killed mid-job, and PollFlightInfo through a raw gRPC call.

Self-contained: each test starts its own `flightbatch serve` (built from the
repository with `go build`) on 127.0.0.1:0 with a small demo dataset, and
injects faults with the test-only FLIGHTBATCH_FAULTS hook.
"""

import json
import os
import pathlib
import signal
import struct
import subprocess
import threading
import time

import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
POLL = "/arrow.flight.protocol.FlightService/PollFlightInfo"
KEY = ["patient_id", "session_id", "channel", "start_time"]


@pytest.fixture(scope="session")
def flightbatch_bin(tmp_path_factory):
    out = tmp_path_factory.mktemp("bin") / "flightbatch"
    subprocess.run(["go", "build", "-o", str(out), "./cmd/flightbatch"], cwd=REPO, check=True)
    return out


class Server:
    """A `flightbatch serve` process and a pyarrow client to it."""

    def __init__(self, binary, store, faults=None, args=()):
        env = dict(os.environ)
        env.pop("FLIGHTBATCH_FAULTS", None)
        if faults:
            env["FLIGHTBATCH_FAULTS"] = faults
        cmd = [str(binary), "serve", "--addr", "127.0.0.1:0", "--store", f"file://{store}",
               "--demo", "--demo-shards", "4", "--demo-mb", "2", "--log-level", "warn", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        line = self._first_line(timeout=60)
        prefix = "flightbatch listening on grpc://"
        assert line.startswith(prefix), f"unexpected first line {line!r}; stderr: {self.proc.stderr.read()}"
        self.addr = line[len(prefix):].strip()
        self.client = flight.connect(f"grpc://{self.addr}")
        # Keep the pipes drained so that the server never blocks on them.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.stderr = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _first_line(self, timeout):
        box = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not box:
            self.proc.kill()
            raise TimeoutError("the server did not start")
        return box[0]

    def action(self, kind, body):
        results = list(self.client.do_action(flight.Action(kind, json.dumps(body).encode())))
        return json.loads(results[0].body.to_pybytes())

    def status(self, job_id):
        return self.action("job-status", {"job_id": job_id})

    def wait(self, job_id, timeout=60, until=None):
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(job_id)
            if (until or (lambda s: s["state"] in ("SUCCEEDED", "FAILED", "CANCELLED")))(st):
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id}: {st}")
            time.sleep(0.02)

    def read(self, ticket):
        return self.client.do_get(flight.Ticket(ticket.encode())).read_all()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.client.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.client.close()


@pytest.fixture
def serve(flightbatch_bin, tmp_path):
    """serve(faults=None, args=()) starts a server on the test's store."""
    started = []

    def start(faults=None, args=()):
        s = Server(flightbatch_bin, tmp_path / "store", faults, args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def keys(table):
    cols = [table.column(k).to_pylist() for k in KEY]
    return list(zip(*cols))


def test_retry_succeeds(serve):
    s = serve(faults="part-00001:2", args=["--max-attempts", "3"])
    job = s.action("psd", {"dataset": "demo", "fs": 250})
    st = s.wait(job["job_id"])
    assert st["state"] == "SUCCEEDED", st
    assert st["shards"]["succeeded"] == 4
    [f] = st["failures"]
    assert f["shard"] == "part-00001" and f["state"] == "SUCCEEDED" and f["attempts"] == 3
    assert len(f["errors"]) == 2 and all("injected fault" in e for e in f["errors"])
    assert s.read("jobs/" + job["job_id"]).num_rows == s.read("datasets/demo").num_rows


def test_permanent_failure_keeps_other_parts(serve):
    s = serve(faults="part-00002:always", args=["--max-attempts", "2"])
    job_id = s.action("psd", {"dataset": "demo", "fs": 250})["job_id"]
    st = s.wait(job_id)
    assert st["state"] == "FAILED", st
    assert "part-00002" in st["error"] and "2 attempt" in st["error"]
    [f] = st["failures"]
    assert f["shard"] == "part-00002" and f["state"] == "FAILED" and f["attempts"] == 2
    assert [e.split(":")[0] for e in f["errors"]] == ["attempt 1", "attempt 2"]
    assert all("injected fault" in e for e in f["errors"])

    info = s.client.get_flight_info(flight.FlightDescriptor.for_path("jobs", job_id, "shards"))
    tickets = [ep.ticket.ticket.decode() for ep in info.endpoints]
    assert tickets == [f"jobs/{job_id}/part-0000{i}" for i in (0, 1, 3)]
    for i in (0, 1, 3):
        part = s.read(f"jobs/{job_id}/part-0000{i}")
        shard = s.read(f"datasets/demo/part-0000{i}")
        assert keys(part) == keys(shard)
    # pyarrow reports FailedPrecondition as ArrowInvalid.
    with pytest.raises(pa.ArrowInvalid, match="precondition failed.*FAILED"):
        s.read(f"jobs/{job_id}")


def test_cancel_running_job(serve):
    s = serve(faults="*:sleep=30")
    job_id = s.action("psd", {"dataset": "demo", "fs": 250})["job_id"]
    s.wait(job_id, until=lambda st: st["shards"]["running"] > 0)
    start = time.monotonic()
    s.action("cancel-job", {"job_id": job_id})
    st = s.wait(job_id, timeout=60)
    elapsed = time.monotonic() - start
    assert st["state"] == "CANCELLED", st
    # The children sleep 30 s: a cancel that waited for them would take that long.
    assert elapsed <= 10, f"cancel took {elapsed:.2f} s"
    # A cancelled job stays in the history.
    jobs = s.action("list-jobs", {})["jobs"]
    assert [j["state"] for j in jobs if j["job_id"] == job_id] == ["CANCELLED"]


def test_restart_after_sigkill(serve, tmp_path):
    s = serve(faults="*:sleep=1.5", args=["--workers", "2"])
    demo = s.read("datasets/demo")
    job_id = s.action("psd", {"dataset": "demo", "fs": 250, "bands": {"beta": [13, 30]}})["job_id"]
    st = s.wait(job_id, until=lambda st: st["shards"]["succeeded"] >= 2)
    assert st["state"] == "RUNNING", st
    parts = tmp_path / "store" / "jobs" / job_id / "parts"
    finished = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.arrow")}
    assert len(finished) >= 2
    s.kill()

    s2 = serve()
    st = s2.wait(job_id, timeout=60)
    assert st["state"] == "SUCCEEDED", st
    for name, mtime in finished.items():
        assert (parts / name).stat().st_mtime_ns == mtime, f"finished part {name} was written again"
    result = s2.read(f"jobs/{job_id}")
    assert result.num_rows == demo.num_rows
    assert keys(result) == keys(demo)
    assert len(set(keys(result))) == demo.num_rows
    assert result.column("beta_power").null_count == 0


def _fields(buf):
    """Decodes the top-level fields of a protobuf message: {number: [value]}."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        out.setdefault(num, []).append(val)
    return out


def _varint(buf, i):
    shift = val = 0
    while True:
        b = buf[i]
        i += 1
        val |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return val, i


def poll(channel, descriptor, timeout=30):
    """One raw PollFlightInfo: returns (FlightInfo, next descriptor or None,
    progress or None, expiration in seconds since the epoch or None)."""
    reply = channel.unary_unary(POLL)(descriptor.serialize(), timeout=timeout)
    f = _fields(reply)
    info = flight.FlightInfo.deserialize(f[1][0]) if 1 in f else None
    nxt = flight.FlightDescriptor.deserialize(f[2][0]) if 2 in f else None
    progress = struct.unpack("<d", f[3][0])[0] if 3 in f else None
    expires = None
    if 4 in f:
        ts = _fields(f[4][0])
        expires = ts.get(1, [0])[0] + ts.get(2, [0])[0] / 1e9
    return info, nxt, progress, expires


def test_poll_flight_info_raw_grpc(serve):
    s = serve(faults="*:sleep=0.3", args=["--workers", "2"])
    channel = grpc.insecure_channel(s.addr)
    cmd = flight.FlightDescriptor.for_command(json.dumps({"dataset": "demo", "fs": 250, "nperseg": 256}).encode())
    start = time.monotonic()
    info, nxt, progress, expires = poll(channel, cmd)
    # A held poll answers after the server's 10 s hold; 6 s leaves room for a loaded machine.
    assert time.monotonic() - start < 6, "the first poll must return at once"
    assert nxt is not None and nxt.path[0] == b"jobs"
    job_id = nxt.path[1].decode()
    assert info.descriptor.path == [b"jobs", job_id.encode()]
    assert json.loads(info.app_metadata)["job_id"] == job_id
    assert progress is not None and 0 <= progress <= 1
    assert expires is not None and expires > time.time()

    seen, progresses = [], [progress]
    while nxt is not None:
        info, nxt, progress, _ = poll(channel, nxt)
        tickets = [ep.ticket.ticket.decode() for ep in info.endpoints]
        assert tickets[:len(seen)] == seen, "endpoints may only be appended"
        seen = tickets
        assert 0 <= progress <= 1
        progresses.append(progress)
    assert progresses[-1] == 1 and progresses == sorted(progresses)
    assert len(progresses) > 2, "the poll never saw the job running"
    # Endpoints come in finishing order; each one's app_metadata gives its input index.
    assert sorted(seen) == [f"jobs/{job_id}/part-0000{i}" for i in range(4)]
    assert not info.ordered and info.schema.names[-2:] == ["freqs", "psd"]
    by_index = sorted(info.endpoints, key=lambda ep: json.loads(ep.app_metadata)["index"])
    assert [json.loads(ep.app_metadata)["index"] for ep in by_index] == [0, 1, 2, 3]
    assert info.total_bytes > 0

    parts = pa.concat_tables(s.read(ep.ticket.ticket.decode()) for ep in by_index)
    merged = s.read(f"jobs/{job_id}")
    assert info.total_records == merged.num_rows == s.read("datasets/demo").num_rows
    assert parts.equals(merged)

    # A finished job's first poll is its final info; an unknown job is NotFound.
    info2, nxt2, progress2, _ = poll(channel, flight.FlightDescriptor.for_path("jobs", job_id))
    assert nxt2 is None and progress2 == 1 and len(info2.endpoints) == 4
    with pytest.raises(grpc.RpcError) as e:
        poll(channel, flight.FlightDescriptor.for_path("jobs", "20260101T000000000Z-abcdef"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    channel.close()


def test_poll_failed_job_is_aborted(serve):
    s = serve(faults="part-00000:always", args=["--max-attempts", "1"])
    channel = grpc.insecure_channel(s.addr)
    _, nxt, _, _ = poll(channel, flight.FlightDescriptor.for_command(b'{"dataset": "demo", "fs": 250}'))
    with pytest.raises(grpc.RpcError) as e:
        while nxt is not None:
            _, nxt, _, _ = poll(channel, nxt)
    assert e.value.code() == grpc.StatusCode.ABORTED
    assert "FAILED" in e.value.details() and "part-00000" in e.value.details()
    channel.close()
