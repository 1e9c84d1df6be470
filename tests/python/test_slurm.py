"""End to end: `flightbatch serve --executor slurm` on a real single-node Slurm cluster.

scripts/slurm.sh starts the cluster (scripts/test.sh does, and sources the env file it writes:
SLURM_CONF and FLIGHTBATCH_TEST_SLURM=1). Each child is a task of a job array that runs the real
`flightbatch worker` through slurmd, reading its shard from and writing its part to the server's
file store. Faults are injected with the test-only FLIGHTBATCH_FAULTS hook: sbatch hands the
server's environment to the children.

When the cluster keeps accounting (scripts/slurm.sh start --accounting: FLIGHTBATCH_TEST_SLURM_ACCOUNTING=1),
every server also reads sacct (--slurm-sacct), and the controller forgets a task 10 to 20 s after
it ends, so that a server down that long learns how its tasks ended from sacct alone.

Skipped without a cluster; failed if FLIGHTBATCH_REQUIRE_SLURM=1 and there is none (or it keeps
no accounting, for the test that needs it).
"""

import os
import subprocess
import time

import pytest

from conftest import TERMINAL_STATES, action, read_dataset, read_result, read_ticket, start_server

PSD = {"dataset": "demo", "column": "samples", "fs_column": "fs", "nperseg": 256, "bands": {"beta": [13, 30]}}
KEY = ["patient_id", "session_id", "channel", "start_time"]
SLURM = ["--executor", "slurm", "--slurm-poll-interval", "200ms"]


def accounting():
    return bool(os.environ.get("FLIGHTBATCH_TEST_SLURM_ACCOUNTING"))


@pytest.fixture
def slurm_server(flightbatch_bin, tmp_path, monkeypatch):
    """slurm_server(faults="", *flags) starts a slurm server on tmp_path/slurm (the same store
    each time, so a second call is a restart); children left at the end are cancelled."""
    if not os.environ.get("FLIGHTBATCH_TEST_SLURM"):
        msg = "no Slurm test cluster: start one with scripts/slurm.sh start DIR and source its env file"
        if os.environ.get("FLIGHTBATCH_REQUIRE_SLURM") == "1":
            pytest.fail("FLIGHTBATCH_REQUIRE_SLURM=1 but " + msg)
        pytest.skip(msg)
    servers, jobs = [], []

    def start(faults="", *flags):
        monkeypatch.setenv("FLIGHTBATCH_FAULTS", faults)
        sacct = ["--slurm-sacct"] if accounting() else []
        srv = start_server(flightbatch_bin, tmp_path / "slurm", *SLURM, *sacct, *flags)
        servers.append(srv)
        return srv

    start.jobs = jobs
    yield start
    for srv in servers:
        srv.stop()
    for job_id in jobs:
        subprocess.run(["scancel", f"--name=flightbatch-{job_id}"], check=False)


def submit(start, srv, body=PSD):
    with srv.connect() as c:
        job = action(c, "psd", body)
    start.jobs.append(job["job_id"])
    return job["job_id"]


def status(srv, job_id):
    with srv.connect() as c:
        return action(c, "job-status", {"job_id": job_id})


def wait(srv, job_id, until=lambda st: st["state"] in TERMINAL_STATES, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        st = status(srv, job_id)
        if until(st):
            return st
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id}: condition not met after {timeout}s; last status {st}")
        time.sleep(0.1)


def result(srv, job_id):
    with srv.connect() as c:
        return read_result(c, job_id)


def keys(table):
    return list(zip(*(table.column(k).to_pylist() for k in KEY)))


def test_psd_on_slurm_equals_local(slurm_server, flightbatch_bin, tmp_path):
    srv = slurm_server()
    job_id = submit(slurm_server, srv)
    st = wait(srv, job_id)
    assert st["state"] == "SUCCEEDED", st
    assert st["executor"] == "slurm"
    assert st["shards"]["succeeded"] == st["shards"]["total"] == 4, st
    got = result(srv, job_id)

    local = start_server(flightbatch_bin, tmp_path / "local", "--executor", "local")
    try:
        with local.connect() as c:
            ljob = action(c, "psd", PSD)["job_id"]
        lst = wait(local, ljob)
        assert lst["state"] == "SUCCEEDED", lst
        want = result(local, ljob)
    finally:
        local.stop()
    assert got.num_rows == want.num_rows > 0
    assert got.schema.equals(want.schema)
    assert got.equals(want), "the Slurm result differs from the local executor's"


def test_failed_child_is_requeued(slurm_server):
    srv = slurm_server("part-00001:1")
    job_id = submit(slurm_server, srv)
    st = wait(srv, job_id)
    assert st["state"] == "SUCCEEDED", st
    retried = {f["shard"]: f for f in st.get("failures") or []}
    assert set(retried) == {"part-00001"}, st
    f = retried["part-00001"]
    assert f["state"] == "SUCCEEDED" and f["attempts"] == 2, f
    assert len(f["errors"]) == 1, f
    assert "exit code 1" in f["errors"][0] and "injected fault" in f["errors"][0], f


def test_child_failing_for_good_fails_the_job(slurm_server):
    srv = slurm_server("part-00002:always", "--max-attempts", "2")
    job_id = submit(slurm_server, srv)
    st = wait(srv, job_id)
    assert st["state"] == "FAILED", st
    assert "part-00002" in st["error"] and "2 attempt" in st["error"], st["error"]
    # Slurm's account: the exit code, and the tail of the task's log (every attempt appended).
    assert "exit code 1" in st["error"], st["error"]
    assert " ends: " in st["error"] and "child failed" in st["error"], st["error"]
    [f] = st["failures"]
    assert f["shard"] == "part-00002" and f["state"] == "FAILED" and f["attempts"] == 2, f
    assert len(f["errors"]) == 2, f


def test_cancel_ends_cancelled(slurm_server):
    srv = slurm_server("*:sleep=60")
    job_id = submit(slurm_server, srv)
    wait(srv, job_id, until=lambda st: st["shards"]["running"] > 0)
    began = time.monotonic()
    with srv.connect() as c:
        action(c, "cancel-job", {"job_id": job_id})
    st = wait(srv, job_id, timeout=60)
    took = time.monotonic() - began
    assert st["state"] == "CANCELLED", st
    # scancel signals running tasks at once (SIGKILL KillWait=2 s later); 5 s is the bound
    # asked of every executor, and 5 s more are slack for a loaded machine.
    assert took < 10, f"cancel took {took:.1f} s"
    out = subprocess.run(["squeue", "-h", "-n", f"flightbatch-{job_id}", "-o", "%i %T"],
                         capture_output=True, text=True, check=True).stdout
    assert not out.strip(), f"tasks still queued or running after cancel: {out}"


def test_server_killed_and_restarted_finishes_the_job(slurm_server):
    srv = slurm_server("*:sleep=2")
    job_id = submit(slurm_server, srv)
    st = wait(srv, job_id, until=lambda st: st["shards"]["running"] > 0 or st["state"] in TERMINAL_STATES)
    assert st["state"] == "RUNNING" and st["shards"]["succeeded"] < 4, st
    srv.proc.kill()
    srv.proc.wait()
    srv.stop()

    srv = slurm_server("*:sleep=2")
    st = wait(srv, job_id)
    assert st["state"] == "SUCCEEDED", st
    with srv.connect() as c:
        demo_rows = read_dataset(c).num_rows
    got = result(srv, job_id)
    assert got.num_rows == demo_rows
    assert len(set(keys(got))) == demo_rows, "a row is missing or repeated"


@pytest.mark.parametrize("faults,want", [("part-00001:1", "SUCCEEDED"), ("part-00001:always", "FAILED")])
def test_server_down_past_min_job_age_reads_sacct(slurm_server, faults, want):
    """The server is killed at once; its tasks end (one fails) and the controller forgets them;
    the restarted server learns from sacct how each ended, and runs the failed one, which Slurm can
    no longer requeue, again as a new Slurm job, its attempts continuing up to --max-attempts: the
    job succeeds if a later attempt does, else fails with each attempt's exit code and error."""
    if not accounting():
        msg = "the Slurm test cluster keeps no accounting: start it with scripts/slurm.sh start --accounting DIR"
        if os.environ.get("FLIGHTBATCH_REQUIRE_SLURM") == "1":
            pytest.fail("FLIGHTBATCH_REQUIRE_SLURM=1 but " + msg)
        pytest.skip(msg)
    srv = slurm_server(faults, "--max-attempts", "2")
    job_id = submit(slurm_server, srv)
    wait(srv, job_id, until=lambda st: st["state"] != "SUBMITTED")
    srv.proc.kill()
    srv.proc.wait()
    srv.stop()

    # The controller forgets the tasks MinJobAge (10 s) after they end, at its next purge.
    deadline = time.monotonic() + 120
    while True:
        out = subprocess.run(["squeue", "-h", "-t", "all", "-n", f"flightbatch-{job_id}", "-o", "%i %T"],
                             capture_output=True, text=True, check=True).stdout
        if not out.strip():
            break
        if time.monotonic() > deadline:
            pytest.fail(f"the controller still holds the tasks of {job_id} after 120 s: {out}")
        time.sleep(1)

    srv = slurm_server(faults, "--max-attempts", "2")
    st = wait(srv, job_id)
    assert st["state"] == want, st
    assert st["shards"]["succeeded"] == (4 if want == "SUCCEEDED" else 3), st
    [f] = st["failures"]
    assert f["shard"] == "part-00001" and f["state"] == want and f["attempts"] == 2, f
    assert len(f["errors"]) == (1 if want == "SUCCEEDED" else 2), f
    # Attempt 1: sacct's exit code and the worker's own record.
    for w in ("attempt 1: ", "FAILED, exit code 1", "injected fault"):
        assert w in f["errors"][0], (w, f["errors"][0])
    if want == "FAILED":
        # Attempt 2, the resubmitted job's, knew its number.
        assert f["errors"][1].startswith("attempt 2: ") and "in shard part-00001, attempt 2" in f["errors"][1], f
    # The parts of the shards that succeeded: each of their input rows once (psd with averaging
    # gives one row per input row).
    shards = ("part-00000", "part-00001", "part-00002", "part-00003") if want == "SUCCEEDED" else ("part-00000", "part-00002", "part-00003")
    with srv.connect() as c:
        for shard in shards:
            got = read_ticket(c, f"jobs/{job_id}/{shard}")
            want = read_ticket(c, f"datasets/demo/{shard}")
            assert got.num_rows == want.num_rows > 0, shard
            assert len(set(keys(got))) == got.num_rows, f"{shard}: a row is repeated"
