"""End to end: `flightbatch serve --executor aws-batch` against a local AWS Batch endpoint.

The endpoint (internal/batchtest/cmd/batchtest-endpoint) serves the AWS Batch API and runs every
child attempt as a real `flightbatch worker` process, from the job definition shipped in
deploy/aws-batch/job-definition.json (its command, `flightbatch worker`, is found on PATH). The
children read their shards from and write their parts to a real S3 server (versitygw, started by
scripts/s3-server.sh), exactly as containers on AWS Batch would.

Skipped unless FLIGHTBATCH_TEST_S3_BUCKET is set (source the env file of scripts/s3-server.sh);
failed if FLIGHTBATCH_REQUIRE_S3=1 and it is not.
"""

import json
import os
import pathlib
import secrets
import shutil
import signal
import subprocess
import time

import pyarrow.flight as flight
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFINITION = REPO / "deploy" / "aws-batch" / "job-definition.json"
DEMO = ["--demo", "--demo-shards", "4", "--demo-mb", "4"]
PSD = {"dataset": "demo", "column": "samples", "fs_column": "fs", "nperseg": 256, "bands": {"beta": [13, 30]}}
PASS_ENV = "AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_SESSION_TOKEN,AWS_REGION,AWS_ENDPOINT_URL_S3,FLIGHTBATCH_FAULTS"
TIMEOUT = 120


@pytest.fixture(scope="module")
def s3_bucket():
    bucket = os.environ.get("FLIGHTBATCH_TEST_S3_BUCKET")
    if not bucket:
        if os.environ.get("FLIGHTBATCH_REQUIRE_S3") == "1":
            pytest.fail("FLIGHTBATCH_REQUIRE_S3=1 but FLIGHTBATCH_TEST_S3_BUCKET is not set: "
                        "start a server with scripts/s3-server.sh and source its env file")
        pytest.skip("FLIGHTBATCH_TEST_S3_BUCKET is not set; start scripts/s3-server.sh for the AWS Batch tests")
    return bucket


@pytest.fixture(scope="module")
def bindir(tmp_path_factory):
    out = tmp_path_factory.mktemp("aws-batch-bin")
    for target, pkg in [("flightbatch", "./cmd/flightbatch"),
                        ("batchtest-endpoint", "./internal/batchtest/cmd/batchtest-endpoint")]:
        subprocess.run(["go", "build", "-o", str(out / target), pkg], cwd=REPO, check=True)
    return out


def read_first_line(proc, prefix, what):
    line = proc.stdout.readline()
    if not line.startswith(prefix):
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise RuntimeError(f"{what} did not start: {line!r}\n{err}")
    return line[len(prefix):].strip()


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Endpoint:
    """The local AWS Batch endpoint, as a process; restartable on the same address."""

    def __init__(self, bindir, logdir, faults="", max_running=4, args=()):
        self.bindir, self.logdir = bindir, logdir
        self.faults, self.max_running, self.args = faults, max_running, list(args)
        self.addr, self.proc = "127.0.0.1:0", None

    def start(self):
        env = dict(os.environ, PATH=f"{self.bindir}{os.pathsep}{os.environ['PATH']}", FLIGHTBATCH_FAULTS=self.faults)
        self.proc = subprocess.Popen(
            [str(self.bindir / "batchtest-endpoint"), "--addr", self.addr, "--definitions", str(DEFINITION),
             "--pass-env", PASS_ENV, "--max-running", str(self.max_running), "--log-dir", str(self.logdir),
             "--grace", "2s", *self.args],
            env=env, stdout=subprocess.PIPE, stderr=open(self.logdir / "endpoint.log", "a"), text=True)
        self.url = read_first_line(self.proc, "listening ", "batchtest-endpoint")
        self.addr = self.url.removeprefix("http://")
        return self

    def stop(self):
        stop(self.proc)


class Server:
    """A `flightbatch serve` process and a Flight client of it."""

    def __init__(self, bindir, logdir, args, env=None):
        self.proc = subprocess.Popen(
            [str(bindir / "flightbatch"), "serve", "--addr", "127.0.0.1:0", "--log-level", "debug", *args],
            env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE,
            stderr=open(logdir / f"serve-{secrets.token_hex(3)}.log", "w"), text=True)
        self.addr = read_first_line(self.proc, "flightbatch listening on ", "flightbatch serve")
        self.client = flight.connect(self.addr)

    def action(self, name, body):
        results = list(self.client.do_action(flight.Action(name, json.dumps(body).encode())))
        return json.loads(results[0].body.to_pybytes())

    def status(self, job_id):
        return self.action("job-status", {"job_id": job_id})

    def wait(self, job_id, until, timeout=TIMEOUT):
        """Polls job-status until until(status) holds; returns every status seen."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(job_id)
            seen.append(st)
            if until(st):
                return seen
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id}: condition not met after {timeout}s; last status {st}")
            time.sleep(0.1)

    def result(self, job_id):
        return self.client.do_get(flight.Ticket(f"jobs/{job_id}".encode())).read_all()

    def close(self):
        self.client.close()
        stop(self.proc)


def finished(st):
    return st["state"] in ("SUCCEEDED", "FAILED", "CANCELLED")


@pytest.fixture
def aws(s3_bucket, bindir, tmp_path):
    """Starts an endpoint and an aws-batch server on a fresh S3 prefix; yields a starter."""
    started, prefixes = [], []

    def start(faults="", max_running=4, endpoint_args=(), serve_args=()):
        ep = Endpoint(bindir, tmp_path, faults, max_running, endpoint_args).start()
        started.append(ep)
        prefixes.append(f"aws-batch-e2e-{secrets.token_hex(6)}")
        srv = Server(bindir, tmp_path, [
            "--executor", "aws-batch", "--batch-job-queue", "flightbatch-test",
            "--batch-job-definition", "flightbatch-worker", "--batch-poll-interval", "300ms",
            "--store", f"s3://{s3_bucket}/{prefixes[-1]}", *DEMO, *serve_args,
        ], env={"AWS_ENDPOINT_URL_BATCH": ep.url})
        started.append(srv)
        return ep, srv

    yield start
    for p in reversed(started):
        p.close() if isinstance(p, Server) else p.stop()
    # The S3 test server keeps objects as files (scripts/s3-server.sh): drop this test's prefix.
    root = os.environ.get("FLIGHTBATCH_TEST_S3_DIR")
    if root:
        for prefix in prefixes:
            shutil.rmtree(pathlib.Path(root) / s3_bucket / prefix, ignore_errors=True)


def worker_pids(bindir):
    """The pids of `flightbatch worker` processes of this test's binary."""
    exe = str(bindir / "flightbatch")
    pids = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            path = os.readlink(d / "exe")
        except OSError:
            continue
        if path == exe and len(argv) >= 2 and argv[1] == b"worker":
            pids.append(int(d.name))
    return pids


def test_psd_on_aws_batch_equals_local(aws, bindir, tmp_path):
    # Two children at a time, each slowed by a second, so progress is visible between polls.
    _, srv = aws(faults="*:sleep=1", max_running=2)
    job = srv.action("psd", PSD)
    assert job["shards"] == 4
    seen = srv.wait(job["job_id"], finished)
    final = seen[-1]
    assert final["state"] == "SUCCEEDED", final
    assert final["executor"] == "aws-batch"
    assert final["shards"] == {"total": 4, "pending": 0, "running": 0, "succeeded": 4, "failed": 0, "cancelled": 0}
    # Children progressed: some ran while others waited or had finished.
    assert any(s["shards"]["running"] > 0 for s in seen), seen
    assert any(0 < s["shards"]["succeeded"] < 4 for s in seen), seen
    done = [s["shards"]["succeeded"] for s in seen]
    assert done == sorted(done), "succeeded children never go back"

    got = srv.result(job["job_id"])

    local = Server(bindir, tmp_path, ["--executor", "local", "--store", f"file://{tmp_path / 'local'}", *DEMO])
    try:
        ljob = local.action("psd", PSD)
        lfinal = local.wait(ljob["job_id"], finished)[-1]
        assert lfinal["state"] == "SUCCEEDED", lfinal
        want = local.result(ljob["job_id"])
    finally:
        local.close()
    assert got.num_rows == want.num_rows > 0
    assert got.schema.equals(want.schema)
    assert got.equals(want), "the AWS Batch result differs from the local executor's"


def test_failed_child_is_retried(aws):
    _, srv = aws(faults="part-00001:1")
    job = srv.action("psd", PSD)
    final = srv.wait(job["job_id"], finished)[-1]
    assert final["state"] == "SUCCEEDED", final
    retried = {f["shard"]: f for f in final.get("failures") or []}
    assert set(retried) == {"part-00001"}, final
    f = retried["part-00001"]
    assert f["state"] == "SUCCEEDED" and f["attempts"] == 2, f
    assert len(f["errors"]) == 1 and "injected fault" in f["errors"][0], f


def test_cancel_terminates_children(aws, bindir):
    _, srv = aws(faults="*:sleep=60")
    job = srv.action("psd", PSD)
    srv.wait(job["job_id"], lambda s: s["shards"]["running"] > 0)
    assert worker_pids(bindir), "children should be running"
    srv.action("cancel-job", {"job_id": job["job_id"]})
    final = srv.wait(job["job_id"], finished, timeout=60)[-1]
    assert final["state"] == "CANCELLED", final
    deadline = time.monotonic() + 15
    while worker_pids(bindir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not worker_pids(bindir), "children still running after cancel"


@pytest.mark.parametrize("max_attempts", [2, 1])
def test_vanished_batch_job_is_reconciled(aws, max_attempts):
    # Shard 1 runs long; the others store their parts. Then the endpoint restarts on the same
    # address, forgetting every job (and killing shard 1's child).
    ep, srv = aws(faults="part-00001:sleep=60", serve_args=["--max-attempts", str(max_attempts)])
    job = srv.action("psd", PSD)
    srv.wait(job["job_id"], lambda s: s["shards"]["succeeded"] == 3 and s["shards"]["running"] == 1)
    ep.stop()
    ep.faults = ""
    ep.start()
    final = srv.wait(job["job_id"], finished, timeout=60)[-1]
    # The server reconciles with the store: the three stored parts count, shard 1 lost an
    # attempt and runs again while its attempts last.
    lost = failure_of(final, "part-00001")
    assert "attempt lost" in lost["errors"][0] and "no longer knows" in lost["errors"][0], lost
    if max_attempts == 2:
        assert final["state"] == "SUCCEEDED", final
        assert lost["state"] == "SUCCEEDED" and lost["attempts"] == 2, lost
        assert srv.result(job["job_id"]).num_rows > 0
    else:
        assert final["state"] == "FAILED", final
        assert "part-00001" in final["error"] and "attempt lost" in final["error"], final["error"]
        assert final["shards"]["succeeded"] == 3, final["shards"]
    # No child runs any longer, and the status says so.
    assert final["shards"]["running"] == 0 and final["shards"]["pending"] == 0, final["shards"]


def failure_of(final, shard):
    return {f["shard"]: f for f in final.get("failures") or []}[shard]


def test_out_of_memory_child_fails_saying_why(aws):
    # AWS Batch kills the container of shard 1 out of memory: not retried, and job-status says
    # what to change.
    _, srv = aws(endpoint_args=["--fail", "out-of-memory:1"])
    job = srv.action("psd", PSD)
    final = srv.wait(job["job_id"], finished)[-1]
    assert final["state"] == "FAILED", final
    assert final["shards"]["succeeded"] == 3 and final["shards"]["failed"] == 1, final
    f = failure_of(final, "part-00001")
    assert f["attempts"] == 1 and len(f["errors"]) == 1, f
    for want in ("OutOfMemoryError: Container killed due to memory usage", "exit code 137", "--batch-memory"):
        assert want in f["errors"][0] and want in final["error"], (want, final)


def test_stuck_runnable_fails_saying_why(aws):
    reason = ("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) "
              "is higher than that can be met by the CE(s) attached to the job queue.")
    _, srv = aws(endpoint_args=["--stuck-runnable", reason], serve_args=["--batch-runnable-timeout", "3s"])
    job = srv.action("psd", PSD)
    final = srv.wait(job["job_id"], finished)[-1]
    assert final["state"] == "FAILED", final
    assert final["shards"]["failed"] == 4, final
    for want in ("waited RUNNABLE", "--batch-runnable-timeout", reason):
        assert want in final["error"], (want, final["error"])
        assert want in failure_of(final, "part-00000")["errors"][0]


def test_lost_submit_reply_runs_once(aws, tmp_path):
    # The endpoint takes the SubmitJob and closes the connection without a reply: the server
    # finds the job by its name and follows it rather than submit it again.
    _, srv = aws(endpoint_args=["--drop-submit-replies", "1"])
    job = srv.action("psd", PSD)
    final = srv.wait(job["job_id"], finished)[-1]
    assert final["state"] == "SUCCEEDED", final
    log = (tmp_path / "endpoint.log").read_text()
    assert log.count("submit reply dropped") == 1, log
    assert log.count("job submitted") == 1, "the array job was submitted more than once"
