"""Fixtures for the Python side of the flightbatch tests.

Every test talks to a real `flightbatch serve` process over Arrow Flight, the way a notebook does.

- `flightbatch_bin`: the binary. `$FLIGHTBATCH_BIN` when set (scripts/test.sh sets it to the
  bin/flightbatch it just built), otherwise a fresh `go build ./cmd/flightbatch` into a temp dir.
- `server`: one server for the session, on a free port, with a small demo dataset in its own
  file store. `start_server()` starts further servers for tests that need other flags.
- `client`: a `pyarrow.flight` client connected to `server`.
- helpers: `action`, `run_psd`, `wait_job`, `list_job_ids`, `upload_records`, `read_dataset`,
  `read_result`, and `raw_do_action` / `raw_do_get`, which call the Flight service through
  grpcio so a test sees the exact gRPC status code (pyarrow maps INVALID_ARGUMENT,
  FAILED_PRECONDITION, OUT_OF_RANGE and RESOURCE_EXHAUSTED all to `pyarrow.ArrowInvalid`).

A failing test's report carries the tail of every running server's stderr.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest

REPO = Path(__file__).resolve().parents[2]
LISTEN_RE = re.compile(r"^flightbatch listening on (grpc|grpc\+tls)://(127\.0\.0\.1:\d+)$")
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
TERMINAL_STATES = {"SUCCEEDED", "FAILED", "CANCELLED"}

DEMO_SHARDS = 4
DEMO_MB = 8


# ---------------------------------------------------------------------------------------------
# The binary


@pytest.fixture(scope="session")
def flightbatch_bin(tmp_path_factory) -> Path:
    env_bin = os.environ.get("FLIGHTBATCH_BIN")
    if env_bin:
        path = Path(env_bin)
        if not path.is_file() or not os.access(path, os.X_OK):
            pytest.fail(f"FLIGHTBATCH_BIN={env_bin} is not an executable file")
        return path
    if shutil.which("go") is None:
        pytest.fail("go is not on PATH and FLIGHTBATCH_BIN is not set: cannot build flightbatch")
    out = tmp_path_factory.mktemp("bin") / "flightbatch"
    proc = subprocess.run(
        ["go", "build", "-o", str(out), "./cmd/flightbatch"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"go build ./cmd/flightbatch failed:\n{proc.stdout}\n{proc.stderr}")
    return out


# ---------------------------------------------------------------------------------------------
# Servers

_RUNNING: list["Server"] = []


@dataclass
class Server:
    proc: subprocess.Popen
    addr: str
    store: Path
    stderr_path: Path
    args: list[str]
    scheme: str = "grpc"
    _stdout_lines: list[str] = field(default_factory=list)

    @property
    def location(self) -> str:
        return f"{self.scheme}://{self.addr}"

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def connect(self) -> flight.FlightClient:
        return flight.connect(self.location)

    def stop(self) -> int:
        """SIGTERM, wait for a graceful exit; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if self in _RUNNING:
                    _RUNNING.remove(self)
                raise AssertionError(
                    f"flightbatch did not exit within {STOP_TIMEOUT}s of SIGTERM; killed.\n"
                    f"stderr:\n{_tail(self.stderr_text())}"
                )
        if self in _RUNNING:
            _RUNNING.remove(self)
        return self.proc.returncode


def _tail(text: str, lines: int = 80) -> str:
    return "\n".join(text.splitlines()[-lines:])


def start_server(binary: Path, workdir: Path, *extra: str) -> Server:
    """Start `flightbatch serve` on a free port with a file store under workdir.

    extra are further flags; the defaults give a small demo dataset and two workers.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "store"
    store.mkdir(exist_ok=True)
    stderr_path = workdir / "server.stderr.log"
    args = [
        str(binary),
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--store",
        f"file://{store}",
        "--demo",
        *extra,
    ]
    if "--demo-shards" not in extra:
        args += ["--demo-shards", str(DEMO_SHARDS)]
    if "--demo-mb" not in extra:
        args += ["--demo-mb", str(DEMO_MB)]
    if "--workers" not in extra:
        args += ["--workers", "2"]
    errf = open(stderr_path, "wb")
    proc = subprocess.Popen(
        args,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=errf,
    )
    errf.close()
    server = Server(proc=proc, addr="", store=store, stderr_path=stderr_path, args=args)

    first_line: list[str] = []
    got_line = threading.Event()

    def drain() -> None:
        # The server prints one line; keep reading anyway so the pipe never fills.
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            server._stdout_lines.append(line)
            if not first_line:
                first_line.append(line)
                got_line.set()
        got_line.set()

    threading.Thread(target=drain, daemon=True).start()
    got_line.wait(READY_TIMEOUT)

    def fail(why: str) -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        pytest.fail(
            f"flightbatch serve {why}\ncommand: {' '.join(args)}\n"
            f"stdout: {server._stdout_lines!r}\nstderr:\n{_tail(server.stderr_text())}"
        )

    if not first_line:
        if proc.poll() is not None:
            fail(f"exited with code {proc.returncode} before printing its address")
        fail(f"printed no address line within {READY_TIMEOUT:.0f}s")
    m = LISTEN_RE.match(first_line[0])
    if not m:
        fail(f"first stdout line is not 'flightbatch listening on grpc://127.0.0.1:PORT': {first_line[0]!r}")
    server.scheme, server.addr = m.group(1), m.group(2)
    _RUNNING.append(server)
    return server


@pytest.fixture(scope="session")
def server(flightbatch_bin, tmp_path_factory) -> Server:
    srv = start_server(flightbatch_bin, tmp_path_factory.mktemp("server"))
    yield srv
    code = srv.stop()
    assert code == 0, (
        f"flightbatch serve exited with code {code} after SIGTERM (want 0)\n"
        f"stderr:\n{_tail(srv.stderr_text())}"
    )


@pytest.fixture(scope="session")
def client(server) -> flight.FlightClient:
    c = server.connect()
    yield c
    c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for srv in list(_RUNNING):
            report.sections.append(
                (f"flightbatch server {srv.addr} stderr ({srv.stderr_path})", _tail(srv.stderr_text()))
            )


# ---------------------------------------------------------------------------------------------
# Flight helpers


def action(client: flight.FlightClient, kind: str, body) -> dict | list:
    """DoAction with a JSON body; returns the JSON of the first Result."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    results = list(client.do_action(flight.Action(kind, payload)))
    assert results, f"action {kind!r} returned no Result"
    return json.loads(results[0].body.to_pybytes())


def run_psd(client: flight.FlightClient, body: dict) -> str:
    """Submit a psd job; returns its job ID."""
    resp = action(client, "psd", body)
    assert isinstance(resp, dict) and resp.get("job_id"), f"psd response without job_id: {resp!r}"
    return resp["job_id"]


def job_status(client: flight.FlightClient, job_id: str) -> dict:
    return action(client, "job-status", {"job_id": job_id})


def wait_job(client: flight.FlightClient, job_id: str, timeout: float = 120.0) -> dict:
    """Poll job-status until the job is SUCCEEDED, FAILED or CANCELLED; returns the last status."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        status = job_status(client, job_id)
        if status.get("state") in TERMINAL_STATES:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not finished after {timeout}s: {status!r}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def list_job_ids(client: flight.FlightClient, body: dict | None = None) -> list[str]:
    """list-jobs ({"jobs": [job-status objects]}) as job IDs, in the server's order."""
    resp = action(client, "list-jobs", body or {})
    assert isinstance(resp, dict) and isinstance(resp.get("jobs"), list), f"list-jobs: {resp!r}"
    return [j["job_id"] for j in resp["jobs"]]


def assert_succeeded(status: dict) -> None:
    assert status["state"] == "SUCCEEDED", (
        f"job {status.get('job_id')} ended {status.get('state')}: error={status.get('error')!r} "
        f"shards={status.get('shards')}"
    )


def upload_records(client: flight.FlightClient, name: str, records) -> None:
    """DoPut the float64 arrays `records` as dataset `name`: columns `id` (int64) and `samples`."""
    table = pa.table({"id": pa.array(range(len(records)), pa.int64()),
                      "samples": pa.array([list(map(float, r)) for r in records], pa.list_(pa.float64()))})
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("datasets", name), table.schema)
    writer.write_table(table)
    writer.done_writing()
    reader.read()
    writer.close()


def read_ticket(client: flight.FlightClient, ticket: str) -> pa.Table:
    return client.do_get(flight.Ticket(ticket.encode())).read_all()


def read_dataset(client: flight.FlightClient, name: str = "demo") -> pa.Table:
    return read_ticket(client, f"datasets/{name}")


def read_result(client: flight.FlightClient, job_id: str) -> pa.Table:
    return read_ticket(client, f"jobs/{job_id}")


# ---------------------------------------------------------------------------------------------
# Raw gRPC: the exact status code of a call, with no client library in between.
#
# Flight's protobuf messages used here are tiny, so they are encoded by hand:
#   Action { string type = 1; bytes body = 2; }     Ticket { bytes ticket = 1; }
#   Result { bytes body = 1; }

FLIGHT_SERVICE = "/arrow.flight.protocol.FlightService"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(number: int, value: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(value)) + value


def encode_action(kind: str, body: bytes) -> bytes:
    return _len_field(1, kind.encode()) + _len_field(2, body)


def encode_ticket(ticket: bytes) -> bytes:
    return _len_field(1, ticket)


def decode_len_field(msg: bytes, number: int) -> bytes | None:
    """The first length-delimited field `number` of a protobuf message (enough for Result)."""
    i = 0
    while i < len(msg):
        key, i = _read_varint(msg, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _read_varint(msg, i)
        elif wire == 2:
            n, i = _read_varint(msg, i)
            if num == number:
                return msg[i : i + n]
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return None


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


@dataclass
class RawReply:
    code: grpc.StatusCode
    details: str
    messages: list[bytes]


def _raw_unary_stream(addr: str, method: str, request: bytes, timeout: float = 30.0) -> RawReply:
    with grpc.insecure_channel(addr) as channel:
        call = channel.unary_stream(f"{FLIGHT_SERVICE}/{method}")  # bytes in, bytes out
        messages: list[bytes] = []
        try:
            for msg in call(request, timeout=timeout):
                messages.append(msg)
        except grpc.RpcError as e:
            return RawReply(e.code(), e.details() or "", messages)
        return RawReply(grpc.StatusCode.OK, "", messages)


def raw_do_action(addr: str, kind: str, body) -> RawReply:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return _raw_unary_stream(addr, "DoAction", encode_action(kind, payload))


def raw_do_get(addr: str, ticket: str | bytes) -> RawReply:
    t = ticket.encode() if isinstance(ticket, str) else ticket
    return _raw_unary_stream(addr, "DoGet", encode_ticket(t))


def raw_get_flight_info(addr: str, *path: str) -> RawReply:
    # FlightDescriptor { DescriptorType type = 1 (PATH = 1); bytes cmd = 2; repeated string path = 3; }
    msg = _varint((1 << 3) | 0) + _varint(1) + b"".join(_len_field(3, p.encode()) for p in path)
    with grpc.insecure_channel(addr) as channel:
        call = channel.unary_unary(f"{FLIGHT_SERVICE}/GetFlightInfo")
        try:
            reply = call(msg, timeout=30.0)
        except grpc.RpcError as e:
            return RawReply(e.code(), e.details() or "", [])
        return RawReply(grpc.StatusCode.OK, "", [reply])


if sys.version_info < (3, 11):  # pragma: no cover
    raise RuntimeError("the flightbatch Python tests need CPython 3.11 or newer")
