"""Bad input gets an exact gRPC status, a clear message, and changes nothing.

The status code is read through grpcio (`raw_do_action`, `raw_do_get`), because pyarrow maps
several codes to one exception class (INVALID_ARGUMENT and FAILED_PRECONDITION are both
`pyarrow.ArrowInvalid`). Each case is also made through pyarrow.flight, to pin down what a
notebook sees.
"""

from __future__ import annotations

import json
import time

import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import (
    action,
    assert_succeeded,
    list_job_ids,
    raw_do_action,
    raw_do_get,
    raw_get_flight_info,
    run_psd,
    start_server,
    wait_job,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED

# What pyarrow.flight raises for each code (measured against pyarrow 26 with a grpcio server
# that aborts with each code).
PYARROW_EXC = {
    INVALID: pa.ArrowInvalid,
    NOT_FOUND: pa.ArrowKeyError,
    PRECONDITION: pa.ArrowInvalid,
    UNIMPLEMENTED: pa.ArrowNotImplementedError,
}

UNKNOWN_JOB = "20200101T000000000Z-000000"
OK_PSD = {"dataset": "demo", "column": "samples", "fs": 250}

# (id, action, body, code, a word the message must contain (case-insensitive) or None).
# Every body is a psd that would otherwise be accepted, or a lookup of something absent.
ACTION_CASES = [
    ("malformed-json", "psd", b'{"dataset": "demo", "column": ', INVALID, None),
    ("not-an-object", "psd", b'["demo"]', INVALID, None),
    ("unknown-parameter", "psd", {**OK_PSD, "npersge": 256}, INVALID, "npersge"),
    ("wrong-type", "psd", {**OK_PSD, "nperseg": "many"}, INVALID, "nperseg"),
    ("unknown-dataset", "psd", {**OK_PSD, "dataset": "no-such-dataset"}, NOT_FOUND, "no-such-dataset"),
    ("fs-zero", "psd", {**OK_PSD, "fs": 0}, INVALID, "fs"),
    ("fs-negative", "psd", {**OK_PSD, "fs": -250}, INVALID, "fs"),
    ("nperseg-zero", "psd", {**OK_PSD, "nperseg": 0}, INVALID, "nperseg"),
    ("noverlap-equals-nperseg", "psd", {**OK_PSD, "nperseg": 256, "noverlap": 256}, INVALID, "noverlap"),
    ("noverlap-above-nperseg", "psd", {**OK_PSD, "nperseg": 256, "noverlap": 300}, INVALID, "noverlap"),
    ("nfft-below-nperseg", "psd", {**OK_PSD, "nperseg": 256, "nfft": 128}, INVALID, "nfft"),
    ("unknown-window", "psd", {**OK_PSD, "window": "no-such-window"}, INVALID, "window"),
    ("unknown-scaling", "psd", {**OK_PSD, "scaling": "loudness"}, INVALID, "scaling"),
    ("unknown-average", "psd", {**OK_PSD, "average": "mode"}, INVALID, "average"),
    ("band-above-nyquist", "psd", {**OK_PSD, "bands": {"beta": [13, 200]}}, INVALID, "beta"),
    ("band-negative", "psd", {**OK_PSD, "bands": {"low": [-1, 4]}}, INVALID, "low"),
    ("band-reversed", "psd", {**OK_PSD, "bands": {"beta": [30, 13]}}, INVALID, "beta"),
    ("unknown-job-status", "job-status", {"job_id": UNKNOWN_JOB}, NOT_FOUND, UNKNOWN_JOB),
    ("unknown-job-cancel", "cancel-job", {"job_id": UNKNOWN_JOB}, NOT_FOUND, UNKNOWN_JOB),
    ("unknown-action", "no-such-action", {}, UNIMPLEMENTED, "no-such-action"),
    ("job-status-missing-id", "job-status", {}, INVALID, "job_id"),
    ("job-status-malformed-json", "job-status", b"job_id", INVALID, None),
    ("job-status-unknown-parameter", "job-status", {"job_id": UNKNOWN_JOB, "verbose": True}, INVALID, "verbose"),
]

# (id, ticket, code, word in the message)
TICKET_CASES = [
    ("unknown-dataset", "datasets/no-such-dataset", NOT_FOUND, "no-such-dataset"),
    ("unknown-shard", "datasets/demo/part-99999", NOT_FOUND, "part-99999"),
    ("unknown-job", f"jobs/{UNKNOWN_JOB}", NOT_FOUND, UNKNOWN_JOB),
    ("unknown-path-kind", "tables/demo", INVALID, "tables"),
    ("empty-ticket", "", INVALID, None),
    ("bad-dataset-name", "datasets/Not A Name!", INVALID, None),
]


def job_dirs(server) -> set[str]:
    root = server.store / "jobs"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def check_message(details: str, word: str | None) -> None:
    assert details.strip(), "the status carries no message"
    if word is not None:
        assert word.lower() in details.lower(), f"message {details!r} does not name {word!r}"


@pytest.mark.parametrize(
    "kind,body,code,word", [c[1:] for c in ACTION_CASES], ids=[c[0] for c in ACTION_CASES]
)
def test_bad_action(server, client, kind, body, code, word):
    jobs_before, dirs_before = list_job_ids(client), job_dirs(server)

    reply = raw_do_action(server.addr, kind, body)
    assert reply.code == code, f"want {code.name}, got {reply.code.name}: {reply.details!r}"
    check_message(reply.details, word)

    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(PYARROW_EXC[code]):
        list(client.do_action(flight.Action(kind, payload)))

    assert list_job_ids(client) == jobs_before, "a rejected request created or changed jobs"
    assert job_dirs(server) == dirs_before, "a rejected request wrote under <store>/jobs"


@pytest.mark.parametrize("ticket,code,word", [c[1:] for c in TICKET_CASES], ids=[c[0] for c in TICKET_CASES])
def test_bad_ticket(server, client, ticket, code, word):
    reply = raw_do_get(server.addr, ticket)
    assert reply.code == code, f"want {code.name}, got {reply.code.name}: {reply.details!r}"
    check_message(reply.details, word)
    with pytest.raises(PYARROW_EXC[code]):
        client.do_get(flight.Ticket(ticket.encode())).read_all()


@pytest.mark.parametrize(
    "path,code",
    [
        (("datasets", "no-such-dataset"), NOT_FOUND),
        (("jobs", UNKNOWN_JOB), NOT_FOUND),
    ],
    ids=["unknown-dataset", "unknown-job"],
)
def test_bad_flight_info(server, client, path, code):
    reply = raw_get_flight_info(server.addr, *path)
    assert reply.code == code, f"want {code.name}, got {reply.code.name}: {reply.details!r}"
    check_message(reply.details, path[-1])
    with pytest.raises(PYARROW_EXC[code]):
        client.get_flight_info(flight.FlightDescriptor.for_path(*path))


# Bytes that are no protobuf message: field 1 claims more bytes than follow.
MALFORMED_PROTOBUF = b"\x0a\xff\x01" + b"x" * 100


@pytest.mark.parametrize(
    "method,unary,message",
    [
        ("DoGet", False, "Ticket"),
        ("DoAction", False, "Action"),
        ("ListFlights", False, "Criteria"),
        ("GetFlightInfo", True, "FlightDescriptor"),
        ("GetSchema", True, "FlightDescriptor"),
        ("PollFlightInfo", True, "FlightDescriptor"),
    ],
)
def test_malformed_protobuf_request(server, client, method, unary, message):
    """A request that is not the protobuf message a method takes is INVALID_ARGUMENT (gRPC
    alone says INTERNAL), names the message, and repeats only the start of the bytes."""
    jobs_before = list_job_ids(client)
    with grpc.insecure_channel(server.addr) as channel:
        name = f"/arrow.flight.protocol.FlightService/{method}"
        call = channel.unary_unary(name) if unary else channel.unary_stream(name)
        with pytest.raises(grpc.RpcError) as err:
            reply = call(MALFORMED_PROTOBUF, timeout=30.0)
            if not unary:
                list(reply)
    code, details = err.value.code(), err.value.details() or ""
    assert code == INVALID, f"want INVALID_ARGUMENT, got {code.name}: {details!r}"
    check_message(details, f"arrow.flight.protocol.{message}")
    assert "x" * 30 not in details, details
    assert list_job_ids(client) == jobs_before, "a malformed request created or changed jobs"


@pytest.fixture(scope="module")
def slow_server(flightbatch_bin, tmp_path_factory):
    """A server with one worker, so a heavy job stays unfinished for a while."""
    srv = start_server(flightbatch_bin, tmp_path_factory.mktemp("slow"), "--workers", "1")
    yield srv
    assert srv.stop() == 0, srv.stderr_text()


def test_result_of_unfinished_job_is_failed_precondition(slow_server):
    client = slow_server.connect()
    # A segment every 4 samples and a long FFT: seconds of work in all, one shard at a time.
    heavy = {"dataset": "demo", "column": "samples", "fs": 250, "nperseg": 256, "noverlap": 252, "nfft": 1024}
    seen = []
    for _ in range(3):
        job_id = run_psd(client, heavy)
        reply = raw_do_get(slow_server.addr, f"jobs/{job_id}")
        state = action(client, "job-status", {"job_id": job_id})["state"]
        seen.append((reply.code.name, state))
        if reply.code == PRECONDITION:
            check_message(reply.details, None)
            with pytest.raises(pa.ArrowInvalid, match="(?i)precondition"):
                client.do_get(flight.Ticket(f"jobs/{job_id}".encode())).read_all()
            cancel = action(client, "cancel-job", {"job_id": job_id})
            assert isinstance(cancel, dict)
            final = wait_job(client, job_id, timeout=120)
            assert final["state"] == "CANCELLED", final
            break
        # The job finished before we asked: only OK is acceptable then.
        assert reply.code == grpc.StatusCode.OK, (reply.code, reply.details)
        assert state == "SUCCEEDED", state
    else:
        pytest.fail(f"never caught a job unfinished: {seen}")
    client.close()


def test_server_still_serves_after_errors(server, client):
    # Runs last in this module: after every rejected request the server still answers.
    paths = [tuple(p.decode() for p in info.descriptor.path) for info in client.list_flights()]
    assert ("datasets", "demo") in paths
    job_id = run_psd(client, {"dataset": "demo", "column": "samples", "fs": 250})
    assert_succeeded(wait_job(client, job_id))
    assert server.proc.poll() is None
