"""Bearer-token authentication, as a pyarrow user meets it.

A server started with --auth-tokens refuses a call without a known token with UNAUTHENTICATED
(pyarrow: FlightUnauthenticatedError) and a call its token's role does not cover with
PERMISSION_DENIED (pyarrow: FlightUnauthorizedError). The token goes in the header
`authorization: Bearer <token>` of each call, through FlightCallOptions.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import start_server

DEMO_SHARDS = 2


def call_options(token: str | None) -> flight.FlightCallOptions:
    if token is None:
        return flight.FlightCallOptions(timeout=30)
    return flight.FlightCallOptions(timeout=30, headers=[(b"authorization", b"Bearer " + token.encode())])


def act(client: flight.FlightClient, token: str | None, kind: str, body: dict) -> dict:
    results = list(client.do_action(flight.Action(kind, json.dumps(body).encode()), call_options(token)))
    return json.loads(results[0].body.to_pybytes())


@pytest.fixture(scope="module")
def auth_server(flightbatch_bin, tmp_path_factory):
    """A server with a read token (made here) and a submit token (made by `flightbatch token`)."""
    work = tmp_path_factory.mktemp("auth")
    read_token = secrets.token_urlsafe(32)
    made = subprocess.run(
        [str(flightbatch_bin), "token", "--name", "bob", "--role", "submit"],
        capture_output=True,
        text=True,
        check=True,
    )
    submit_token, submit_line = made.stdout.splitlines()
    tokens = {
        "tokens": [
            {"name": "alice", "sha256": hashlib.sha256(read_token.encode()).hexdigest(), "role": "read"},
            json.loads(submit_line),
        ]
    }
    token_file = work / "tokens.json"
    token_file.write_text(json.dumps(tokens))
    srv = start_server(
        flightbatch_bin,
        work,
        "--demo-shards",
        str(DEMO_SHARDS),
        "--demo-mb",
        "2",
        "--auth-tokens",
        str(token_file),
    )
    client = srv.connect()
    yield client, read_token, submit_token
    client.close()
    assert srv.stop() == 0, srv.stderr_text()


@pytest.mark.parametrize("token", [None, "not-a-known-token"], ids=["no token", "wrong token"])
def test_unknown_caller_is_unauthenticated(auth_server, token):
    client, _, _ = auth_server
    calls = {
        "list_flights": lambda o: list(client.list_flights(options=o)),
        "get_flight_info": lambda o: client.get_flight_info(flight.FlightDescriptor.for_path("datasets", "demo"), o),
        "do_get": lambda o: client.do_get(flight.Ticket(b"datasets/demo"), o).read_all(),
        "list-jobs": lambda o: list(client.do_action(flight.Action("list-jobs", b"{}"), o)),
        "psd": lambda o: list(client.do_action(flight.Action("psd", b'{"dataset": "demo", "fs": 250}'), o)),
    }
    for name, call in calls.items():
        with pytest.raises(flight.FlightUnauthenticatedError, match="authorization: Bearer <token>"):
            call(call_options(token))
            pytest.fail(f"{name} succeeded without a known token")


def test_read_token_reads(auth_server):
    client, read_token, _ = auth_server
    o = call_options(read_token)
    paths = [f.descriptor.path for f in client.list_flights(options=o)]
    assert [b"datasets", b"demo"] in paths
    info = client.get_flight_info(flight.FlightDescriptor.for_path("datasets", "demo"), o)
    assert len(info.endpoints) == DEMO_SHARDS
    schema = client.get_schema(flight.FlightDescriptor.for_path("datasets", "demo"), o).schema
    assert "samples" in schema.names
    assert client.do_get(info.endpoints[0].ticket, o).read_all().num_rows > 0
    assert {a.type for a in client.list_actions(o)} >= {"psd", "job-status"}
    assert "jobs" in act(client, read_token, "list-jobs", {})
    assert "functions" in act(client, read_token, "list-functions", {})


def test_read_token_cannot_submit(auth_server):
    client, read_token, _ = auth_server
    before = act(client, read_token, "list-jobs", {})["jobs"]
    with pytest.raises(flight.FlightUnauthorizedError, match="role submit"):
        act(client, read_token, "psd", {"dataset": "demo", "fs": 250})
    with pytest.raises(flight.FlightUnauthorizedError, match="role submit"):
        act(client, read_token, "run", {"function": "psd", "dataset": "demo", "params": {"fs": 250}})
    table = pa.table({"samples": pa.array([[1.0, 2.0, 3.0]] * 3, pa.list_(pa.float64()))})
    with pytest.raises(flight.FlightUnauthorizedError, match="role submit"):
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("datasets", "by-reader"), table.schema, call_options(read_token))
        writer.write_table(table)
        writer.close()
    assert act(client, read_token, "list-jobs", {})["jobs"] == before, "a refused submission created a job"


def test_submit_token_runs_job_read_token_reads_result(auth_server):
    client, read_token, submit_token = auth_server
    job = act(client, submit_token, "psd", {"dataset": "demo", "fs_column": "fs", "nperseg": 256})
    deadline = time.monotonic() + 120
    while (status := act(client, read_token, "job-status", {"job_id": job["job_id"]}))["state"] not in (
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
    ):
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["state"] == "SUCCEEDED", status
    assert status["submitted_by"] == "bob"
    result = client.do_get(flight.Ticket(f"jobs/{job['job_id']}".encode()), call_options(read_token)).read_all()
    demo = client.do_get(flight.Ticket(b"datasets/demo"), call_options(read_token)).read_all()
    assert result.num_rows == demo.num_rows
    assert result.column_names[-2:] == ["freqs", "psd"]

    table = pa.table({"samples": pa.array([[1.0, 2.0, 3.0]] * 3, pa.list_(pa.float64()))})
    writer, _ = client.do_put(flight.FlightDescriptor.for_path("datasets", "by-submitter"), table.schema, call_options(submit_token))
    writer.write_table(table)
    writer.close()
    assert client.do_get(flight.Ticket(b"datasets/by-submitter"), call_options(read_token)).read_all().num_rows == 3


def test_token_file_edits_apply_without_a_restart(flightbatch_bin, tmp_path):
    """Revoking a token in the file of a running server refuses it within a second (the file is
    looked at once a second at most); the other token keeps working."""
    keep, revoke = secrets.token_urlsafe(32), secrets.token_urlsafe(32)

    def line(name: str, token: str) -> dict:
        return {"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest(), "role": "read"}

    token_file = tmp_path / "tokens.json"
    token_file.write_text(json.dumps({"tokens": [line("keep", keep), line("revoke", revoke)]}))
    srv = start_server(flightbatch_bin, tmp_path, "--demo-shards", "1", "--demo-mb", "1", "--auth-tokens", str(token_file))
    client = srv.connect()
    try:
        assert act(client, revoke, "list-jobs", {}) == {"jobs": []}
        edited = tmp_path / "tokens.json.new"
        edited.write_text(json.dumps({"tokens": [line("keep", keep)]}))
        edited.replace(token_file)
        deadline = time.monotonic() + 15  # the check is due after 1 s; the rest is slack
        while True:
            assert act(client, keep, "list-jobs", {}) == {"jobs": []}
            try:
                act(client, revoke, "list-jobs", {})
            except flight.FlightUnauthenticatedError as e:
                assert "unknown token" in str(e)
                break
            assert time.monotonic() < deadline, "the revoked token is still let in 15 s after the edit"
            time.sleep(0.1)
    finally:
        client.close()
        assert srv.stop() == 0, srv.stderr_text()
