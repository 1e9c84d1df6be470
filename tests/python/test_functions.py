"""Registered functions: the operator's own analysis run as a job over shards.

Each test starts its own `flightbatch serve --demo --functions FILE` (built from
the repository with `go build`) on a free port, with a functions file written
for the test whose commands run this interpreter (sys.executable), so numpy and
pyarrow are there.
"""

import contextlib
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pyarrow as pa
import pyarrow.flight as flight
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PEAKS = REPO / "examples" / "functions" / "peaks.py"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    out = tmp_path_factory.mktemp("bin") / "flightbatch"
    subprocess.run(["go", "build", "-o", str(out), "./cmd/flightbatch"], cwd=REPO, check=True)
    return out


def load_peaks():
    spec = importlib.util.spec_from_file_location("peaks", PEAKS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def serve(binary, tmp, functions):
    """Starts a server whose functions file holds `functions`; yields a client."""
    fn_file = tmp / "functions.json"
    fn_file.write_text(json.dumps(functions))
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [str(binary), "serve", "--addr", "127.0.0.1:0", "--store", f"file://{tmp / 'store'}",
         "--demo", "--demo-shards", "4", "--demo-mb", "8", "--functions", str(fn_file)],
        stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("flightbatch listening on "):
            proc.wait(timeout=10)
            pytest.fail(f"server did not start: {line!r}\n{(tmp / 'server.log').read_text()}")
        client = flight.FlightClient(line.split()[-1])
        yield client
        client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def action(client, kind, body):
    res = list(client.do_action(flight.Action(kind, json.dumps(body).encode())))
    return json.loads(res[0].body.to_pybytes())


def wait(client, job_id, timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        st = action(client, "job-status", {"job_id": job_id})
        if st["state"] in TERMINAL:
            return st
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {st['state']} after {timeout}s: {st}")
        time.sleep(0.1)


def read(client, ticket):
    return client.do_get(flight.Ticket(ticket.encode())).read_all()


def shard_names(client, dataset="demo"):
    info = client.get_flight_info(flight.FlightDescriptor.for_path("datasets", dataset))
    return [ep.ticket.ticket.decode().rsplit("/", 1)[1] for ep in info.endpoints]


def script(tmp, name, body):
    path = tmp / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_peaks_over_a_psd_result(binary, tmp_path):
    fns = {"peaks": {"command": [sys.executable, str(PEAKS)], "description": "peak and 1/f slope"}}
    with serve(binary, tmp_path, fns) as client:
        listed = {f["name"]: f["description"] for f in action(client, "list-functions", {})["functions"]}
        assert listed["peaks"] == "peak and 1/f slope"
        assert "psd" in listed

        psd = action(client, "psd", {"dataset": "demo", "fs_column": "fs", "nperseg": 500, "bands": {"beta": [13, 30]}})
        assert wait(client, psd["job_id"])["state"] == "SUCCEEDED"
        params = {"fmin": 2, "fmax": 40}
        job = action(client, "run", {"function": "peaks", "dataset": f"jobs/{psd['job_id']}", "params": params})
        assert job["shards"] == 4
        st = wait(client, job["job_id"])
        assert st["state"] == "SUCCEEDED", st
        assert st["function"] == "peaks" and st["dataset"] == f"jobs/{psd['job_id']}"
        assert st["params"] == params

        got = read(client, f"jobs/{job['job_id']}")
        info = client.get_flight_info(flight.FlightDescriptor.for_path("jobs", job["job_id"]))
        assert info.schema.equals(got.schema)

        spectra = read(client, f"jobs/{psd['job_id']}")
        want = load_peaks().analyze(spectra, **params)
        assert got.column_names == ["patient_id", "session_id", "channel", "start_time", "fs", "beta_power",
                                    "invalid_reason", "peak_freq", "peak_height", "aperiodic_offset", "aperiodic_slope"]
        pd.testing.assert_frame_equal(got.to_pandas(), want.to_pandas(), check_exact=False, rtol=1e-12)
        # The demo's signal has a beta oscillation on a 1/f background.
        df = got.to_pandas()
        assert df["aperiodic_slope"].lt(0).all()
        assert df["peak_freq"].between(13, 30).mean() > 0.5


def test_failing_shard_is_retried_then_fails_the_job(binary, tmp_path):
    fail = script(tmp_path, "fail.py", """
        import json, os, sys
        import pyarrow as pa
        p = json.loads(os.environ["FLIGHTBATCH_PARAMS"])
        shard = os.environ["FLIGHTBATCH_SHARD"]
        with open(p["log"], "a") as log:
            log.write(f"{shard} {os.environ['FLIGHTBATCH_ATTEMPT']}\\n")
        reader = pa.ipc.open_stream(sys.stdin.buffer)
        if shard == p["fail_shard"]:
            print("noise " * 4000, file=sys.stderr)
            print(f"cannot analyse shard {shard}: electrode impedance out of range", file=sys.stderr)
            sys.exit(3)
        schema = pa.schema([f for f in reader.schema if f.name != "samples"])
        with pa.ipc.new_stream(sys.stdout.buffer, schema) as out:
            for b in reader:
                out.write_batch(b.select(schema.names))
        """)
    with serve(binary, tmp_path, {"flaky": {"command": [sys.executable, fail]}}) as client:
        bad = shard_names(client)[2]
        log = tmp_path / "runs.log"
        job = action(client, "run", {"function": "flaky", "dataset": "demo", "params": {"fail_shard": bad, "log": str(log)}})
        st = wait(client, job["job_id"])
        assert st["state"] == "FAILED"
        assert f"shard {bad} failed after 3 attempt(s)" in st["error"]
        assert "electrode impedance out of range" in st["error"]
        assert st["shards"]["succeeded"] == 3 and st["shards"]["failed"] == 1
        [failure] = st["failures"]
        assert failure["shard"] == bad and failure["attempts"] == 3
        assert len(failure["errors"]) == 3
        for e in failure["errors"]:
            assert e.startswith("attempt ") and ": function flaky: the command exited with status 3" in e
            assert "electrode impedance out of range" in e
            assert len(e) < 9 * 1024  # stderr is kept bounded
        runs = log.read_text().split("\n")
        assert sorted(r for r in runs if r.startswith(bad)) == [f"{bad} 1", f"{bad} 2", f"{bad} 3"]


def test_shards_with_different_schemas_fail_the_job(binary, tmp_path):
    odd = script(tmp_path, "odd.py", """
        import json, os, sys
        import pyarrow as pa
        p = json.loads(os.environ["FLIGHTBATCH_PARAMS"])
        reader = pa.ipc.open_stream(sys.stdin.buffer)
        n = sum(b.num_rows for b in reader)
        odd = os.environ["FLIGHTBATCH_SHARD"] == p["odd_shard"]
        t = pa.table({"rows": pa.array([str(n)] if odd else [float(n)])})
        with pa.ipc.new_stream(sys.stdout.buffer, t.schema) as out:
            out.write_table(t)
        """)
    with serve(binary, tmp_path, {"odd": {"command": [sys.executable, odd]}}) as client:
        names = shard_names(client)
        job = action(client, "run", {"function": "odd", "dataset": "demo", "params": {"odd_shard": names[1]}})
        st = wait(client, job["job_id"])
        assert st["state"] == "FAILED"
        err = st["error"]
        assert "do not share one schema" in err
        assert names[1] in err and names[0] in err
        assert 'field "rows" is string' in err or 'field "rows" is utf8' in err
        with pytest.raises(pa.ArrowInvalid, match="precondition"):  # FailedPrecondition
            read(client, f"jobs/{job['job_id']}")


def test_only_registered_functions_run(binary, tmp_path):
    marker = tmp_path / "marker"
    touch = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    with serve(binary, tmp_path, {"touch": {"command": touch}}) as client:
        with pytest.raises(pa.ArrowKeyError, match="not found"):  # NotFound
            action(client, "run", {"function": "nosuch", "dataset": "demo"})
        for name in ["../touch", "touch/../touch", "/bin/sh", str(PEAKS), "touch me", "TOUCH", ".."]:
            with pytest.raises(pa.ArrowInvalid, match="not a function name"):  # InvalidArgument
                action(client, "run", {"function": name, "dataset": "demo"})
        with pytest.raises(pa.ArrowInvalid, match="unknown field"):
            action(client, "run", {"function": "touch", "dataset": "demo", "command": ["sh", "-c", "true"]})
        time.sleep(0.5)
        assert not marker.exists()
        assert action(client, "list-jobs", {})["jobs"] == []

        # The check above can see an execution: running the registered function does.
        job = action(client, "run", {"function": "touch", "dataset": "demo"})
        wait(client, job["job_id"])
        assert marker.exists()


def test_bad_functions_file_stops_the_server(binary, tmp_path):
    bad = tmp_path / "functions.json"
    bad.write_text(json.dumps({"psd": {"command": ["true"]}}))
    res = subprocess.run([str(binary), "serve", "--addr", "127.0.0.1:0", "--store", f"file://{tmp_path}",
                          "--functions", str(bad)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "reserved" in res.stderr
