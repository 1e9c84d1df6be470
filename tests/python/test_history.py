"""Results a lab finds again and removes, as pyarrow meets them: names and labels, list-jobs
filters, jobs/<name> and jobs/latest tickets, delete-job (with its refusals) leaving nothing in the
store. The Go tests pin every filter and retention with a fake clock; these pin the wire shapes.
"""

from __future__ import annotations

import time
import uuid

import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import (
    action,
    assert_succeeded,
    list_job_ids,
    raw_do_action,
    read_result,
    read_ticket,
    run_psd,
    start_server,
    wait_job,
)


@pytest.fixture
def tag() -> str:
    """A label value no other test uses, so the shared server's history does not interfere."""
    return uuid.uuid4().hex[:12]


def test_labels_filters_and_lookups(server, client, tag):
    name = f"beta-{tag}"
    first = run_psd(client, {"dataset": "demo", "fs": 250, "name": name, "labels": {"run": tag, "cohort": "pd"}})
    assert_succeeded(wait_job(client, first))
    second = run_psd(client, {"dataset": "demo", "fs": 250, "nperseg": 64, "labels": {"run": tag, "cohort": "et"}})
    assert_succeeded(wait_job(client, second))

    st = action(client, "job-status", {"job_id": first})
    assert st["name"] == name and st["labels"] == {"run": tag, "cohort": "pd"}

    assert list_job_ids(client, {"labels": {"run": tag}}) == [first, second]
    assert list_job_ids(client, {"labels": {"run": tag}, "order": "newest"}) == [second, first]
    assert list_job_ids(client, {"labels": {"run": tag, "cohort": "pd"}}) == [first]
    assert list_job_ids(client, {"labels": {"run": tag}, "state": ["FAILED", "CANCELLED"]}) == []
    assert list_job_ids(client, {"labels": {"run": tag}, "state": "SUCCEEDED", "limit": 1}) == [first]
    assert list_job_ids(client, {"name": name}) == [first]

    reply = raw_do_action(server.addr, "list-jobs", {"colour": "red"})
    assert reply.code == grpc.StatusCode.INVALID_ARGUMENT and "colour" in reply.details

    assert read_ticket(client, f"jobs/{name}").equals(read_result(client, first))
    assert read_ticket(client, f"jobs/latest?label=run={tag}").equals(read_result(client, second))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(f"jobs/latest?label=cohort=pd&label=run={tag}"))
    assert info.descriptor.path == [b"jobs", first.encode()]
    with pytest.raises(pa.ArrowKeyError):
        read_ticket(client, f"jobs/latest?label=run={tag}-none")


def test_delete_job(server, client, tag):
    job = run_psd(client, {"dataset": "demo", "fs": 250, "labels": {"run": tag}})
    assert_succeeded(wait_job(client, job))
    job_dir = server.store / "jobs" / job
    assert job_dir.exists()

    reply = raw_do_action(server.addr, "delete-job", {"job_id": job, "force": "yes"})
    assert reply.code == grpc.StatusCode.INVALID_ARGUMENT
    assert action(client, "delete-job", {"job_id": job}) == {"job_id": job, "deleted": True}
    assert not job_dir.exists(), f"the store still holds {sorted(job_dir.rglob('*'))}"
    assert job not in list_job_ids(client, {"labels": {"run": tag}})
    with pytest.raises(pa.ArrowKeyError):
        read_result(client, job)
    reply = raw_do_action(server.addr, "delete-job", {"job_id": job})
    assert reply.code == grpc.StatusCode.NOT_FOUND


def test_serve_keep_results(flightbatch_bin, tmp_path):
    """serve --keep-results deletes a job some time after it ended, leaving nothing in the store."""
    srv = start_server(flightbatch_bin, tmp_path, "--keep-results", "2s")
    try:
        c = srv.connect()
        job = run_psd(c, {"dataset": "demo", "fs": 250})
        assert_succeeded(wait_job(c, job))
        job_dir = srv.store / "jobs" / job
        deadline = time.monotonic() + 60
        while job in list_job_ids(c) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert job not in list_job_ids(c), "the job was kept past --keep-results"
        assert not job_dir.exists(), f"the store still holds {sorted(job_dir.rglob('*'))}"
        c.close()
    finally:
        assert srv.stop() == 0
