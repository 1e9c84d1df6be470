"""The flightbatch Python package (python/) against real server processes.

References come from elsewhere: the raw pyarrow.flight calls of conftest, scipy.signal.welch,
MNE, examples/functions/peaks.py run in-process, and the `flightbatch get` command.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
import scipy.signal

import flightbatch
from conftest import REPO, assert_succeeded, read_dataset, read_result, read_ticket, start_server

PEAKS = REPO / "examples" / "functions" / "peaks.py"


@pytest.fixture(scope="module")
def fb(server) -> flightbatch.Client:
    c = flightbatch.connect(server.location)
    yield c
    c.close()


@pytest.fixture(scope="module")
def beta_job(fb) -> flightbatch.Job:
    return fb.psd("demo", nperseg=128, bands={"beta": (13, 30), "alpha": (8, 12)}).wait(progress=False)


def _start_with_faults(flightbatch_bin, tmp_path, monkeypatch, faults: str, *extra: str):
    monkeypatch.setenv("FLIGHTBATCH_FAULTS", faults)
    srv = start_server(flightbatch_bin, tmp_path / "server", "--max-attempts", "2", *extra)
    monkeypatch.delenv("FLIGHTBATCH_FAULTS")
    return srv


# ---------------------------------------------------------------------------------------------
# Connecting, datasets


def test_connect_defaults_from_environment(server, monkeypatch):
    monkeypatch.setenv("FLIGHTBATCH_ADDR", server.addr)  # host:port means grpc://
    monkeypatch.delenv("FLIGHTBATCH_TOKEN", raising=False)
    with flightbatch.connect() as fb:
        assert fb.addr == server.location
        assert "demo" in fb.datasets()["name"].tolist()


def test_datasets_and_dataset(fb, client):
    info = client.get_flight_info(flight.FlightDescriptor.for_path("datasets", "demo"))
    df = fb.datasets()
    row = df[df["name"] == "demo"].iloc[0]
    assert row["records"] == info.total_records and row["bytes"] == info.total_bytes
    assert row["shards"] == len(info.endpoints)

    ds = fb.dataset("demo")
    assert ds.schema.equals(info.schema)
    assert ds.rows == info.total_records
    assert ds.shards == [e.ticket.ticket.decode().rsplit("/", 1)[1] for e in info.endpoints]
    assert ds.version == row["version"] and ds.version

    whole = read_dataset(client)
    pd.testing.assert_frame_equal(ds.head(3), whole.slice(0, 3).to_pandas())
    assert ds.reader().read_all().equals(whole)
    assert ds.to_arrow().equals(whole)
    assert len(ds.head(10_000)) == info.total_records  # more than there is: everything


def test_unknown_dataset_is_a_clear_error(fb):
    with pytest.raises(pa.ArrowKeyError, match="nope"):
        fb.dataset("nope")


# ---------------------------------------------------------------------------------------------
# A psd job and its result in every form


def test_psd_result_forms(fb, client, beta_job):
    status = beta_job.status()
    assert_succeeded(status)
    assert status["params"]["nperseg"] == 128 and status["params"]["fs_column"] == "fs"

    want = read_result(client, beta_job.id)
    got = beta_job.to_arrow()
    assert got.equals(want)
    assert got.schema.metadata == want.schema.metadata  # provenance comes with the data
    pd.testing.assert_frame_equal(beta_job.to_pandas(), want.to_pandas())
    assert beta_job.to_polars().equals(pl.from_arrow(want))
    streamed = beta_job.reader()
    assert isinstance(streamed, pa.RecordBatchReader)
    assert streamed.read_all().equals(want)

    # The numbers are scipy's.
    demo = read_dataset(client)
    for i in (0, demo.num_rows - 1):
        x = np.asarray(demo.column("samples")[i].as_py(), dtype=np.float64)
        f, p = scipy.signal.welch(x, fs=demo.column("fs")[i].as_py(), nperseg=128)
        np.testing.assert_allclose(got.column("freqs")[i].as_py(), f, rtol=1e-9)
        np.testing.assert_allclose(got.column("psd")[i].as_py(), p, rtol=1e-9)


def test_fixed_fs_and_welch_params_reach_the_server(fb):
    job = fb.psd("demo", fs=250, nperseg=64, window=("tukey", 0.25), detrend="linear", average="median")
    params = job.wait(progress=False).status()["params"]
    assert params["fs"] == 250 and "fs_column" not in params
    assert params["window"] == ["tukey", 0.25] and params["detrend"] == "linear" and params["average"] == "median"


def test_sql_and_duckdb_idiom(fb, beta_job):
    got = fb.sql(
        "SELECT patient_id, avg(beta_power) AS beta, count(*) AS n FROM r GROUP BY patient_id ORDER BY patient_id",
        r=beta_job,
    )
    df = beta_job.to_pandas()
    want = df.groupby("patient_id").agg(beta=("beta_power", "mean"), n=("beta_power", "size")).reset_index()
    np.testing.assert_allclose(got["beta"], want["beta"], rtol=1e-12)
    assert got["patient_id"].tolist() == want["patient_id"].tolist()
    assert got["n"].tolist() == want["n"].tolist()


def test_job_by_id_and_repr(fb, beta_job):
    again = fb.job(beta_job.id)
    assert again.to_arrow().equals(beta_job.to_arrow())
    assert fb.job(f"jobs/{beta_job.id}").id == beta_job.id
    assert beta_job.id in repr(beta_job) and str(beta_job) == beta_job.id


def test_bad_request_raises_before_any_job(fb):
    before = len(fb.jobs())
    with pytest.raises(pa.ArrowInvalid, match="nperseg"):
        fb.psd("demo", nperseg=-3)
    assert len(fb.jobs()) == before


# ---------------------------------------------------------------------------------------------
# Provenance and units


def test_result_provenance_survives_files(fb, beta_job, flightbatch_bin, server, tmp_path):
    status = beta_job.status()
    prov = beta_job.provenance()
    assert prov is not None
    assert prov.job_id == beta_job.id and prov.function == "psd" and prov.dataset == "demo"
    assert prov.dataset_version == status["dataset_version"]
    assert prov.params == status["params"]
    assert prov.version
    assert prov.units["freqs"] == "Hz"
    assert "psd" not in prov.units  # the demo's samples declare no unit

    path = tmp_path / "mine.parquet"
    beta_job.to_parquet(path)
    assert flightbatch.provenance(path) == prov
    assert flightbatch.provenance(pq.read_table(path)) == prov
    for name in ("got.parquet", "got.arrow"):
        subprocess.run(
            [str(flightbatch_bin), "get", "--addr", server.addr, beta_job.id, "-o", str(tmp_path / name)],
            check=True, capture_output=True,
        )
        assert flightbatch.provenance(tmp_path / name) == prov, name
    # Each part carries it too.
    part = next(iter(beta_job.parts()))
    assert flightbatch.provenance(part.table) == prov


def test_units_follow_the_signal(fb):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 512))
    one = fb.upload(x, "units-one", fs=128, ch_names=["a", "b", "c"], unit="uV")
    assert one.schema.field("samples").metadata == {b"unit": b"uV"}
    prov = fb.psd(one, nperseg=64, bands={"beta": (13, 30)}, relative=True).wait(progress=False).provenance()
    assert prov.units == {"freqs": "Hz", "psd": "uV²/Hz", "beta_power": "uV²", "beta_relative": "1"}
    spec = fb.psd(one, nperseg=64, scaling="spectrum", bands={"beta": (13, 30)}).wait(progress=False).provenance()
    assert spec.units == {"freqs": "Hz", "psd": "uV²", "beta_power": "uV²·Hz"}

    # Units that differ by channel: the per-row unit column is the reference.
    mixed = fb.upload(x, "units-mixed", fs=128, ch_names=["a", "b", "c"], unit=["uV", "uV", "mV"])
    assert mixed.schema.field("samples").metadata is None
    prov = fb.psd(mixed, nperseg=64).wait(progress=False).provenance()
    assert prov.units == {"freqs": "Hz", "psd": "[unit]²/Hz"}
    assert fb.psd(mixed, nperseg=64).to_pandas()["unit"].tolist() == ["uV", "uV", "mV"] * 2

    # Plots say the unit: the declared one, or the rows' own when the plotted rows share one.
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import flightbatch.plot

    one_job = fb.psd(one, nperseg=64, bands={"beta": (13, 30)})
    assert flightbatch.plot.psd(one_job, by="channel").get_ylabel() == "PSD (uV²/Hz)"
    assert flightbatch.plot.band_power(one_job, "beta").get_ylabel() == "beta power (uV²)"
    mixed_result = fb.psd(mixed, nperseg=64).to_arrow()
    assert flightbatch.plot.psd(mixed_result).get_ylabel() == "PSD"  # uV and mV: no one unit
    only_mv = mixed_result.filter(pa.compute.equal(mixed_result.column("unit"), "mV"))
    assert flightbatch.plot.psd(only_mv).get_ylabel() == "PSD (mV²/Hz)"
    assert flightbatch.plot.band_power(only_mv, (13, 30)).get_ylabel() == "13–30 Hz power (mV²)"
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# Uploads


def test_upload_numpy_epochs(fb):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 2, 300)).astype(np.float32)
    t0 = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.timezone.utc)
    ds = fb.upload(x, "np-epochs", fs=100.0, ch_names=["C3", "C4"], unit="uV", start_time=t0)
    assert ds.rows == 8
    got = ds.to_arrow()
    assert got.schema.names == ["file", "channel", "epoch", "start_time", "unit", "fs", "samples"]
    assert got.schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    assert got.schema.field("samples").type == pa.list_(pa.float64())
    df = got.to_pandas()
    assert df["file"].unique().tolist() == ["np-epochs"]
    assert df["channel"].tolist() == ["C3", "C4"] * 4
    assert df["epoch"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert (df["fs"] == 100.0).all() and (df["unit"] == "uV").all()
    for i, row in df.iterrows():
        np.testing.assert_array_equal(row["samples"], x[row["epoch"], i % 2].astype(np.float64))
        assert row["start_time"] == pd.Timestamp(t0) + pd.Timedelta(seconds=3 * row["epoch"])


def test_upload_numpy_continuous_cut_into_epochs(fb):
    x = np.arange(2 * 1050, dtype=np.float64).reshape(2, 1050)
    ds = fb.upload(x, "np-cont", fs=100, epoch_s=5, file="rec.edf")
    df = ds.to_pandas()
    assert len(df) == 2 * 2  # two full 5-s epochs; the last 50 samples are dropped
    assert df["file"].unique().tolist() == ["rec.edf"]
    assert df["start_time"].isna().all()  # no start time given
    np.testing.assert_array_equal(df["samples"][3], x[1, 500:1000])


def test_upload_tables(fb, client):
    demo = read_dataset(client).slice(0, 20)
    for name, obj in [
        ("up-arrow", demo),
        ("up-pandas", demo.to_pandas()),
        ("up-polars", pl.from_arrow(demo)),
    ]:
        ds = fb.upload(obj, name)
        back = ds.to_arrow()
        assert back.num_rows == 20, name
        assert back.column("samples").to_pylist() == demo.column("samples").to_pylist(), name
        assert back.column("patient_id").to_pylist() == demo.column("patient_id").to_pylist(), name


def test_upload_refuses_what_it_cannot_read(fb):
    with pytest.raises(ValueError, match="fs"):
        fb.upload(np.zeros((2, 3, 4)), "np-nofs")
    with pytest.raises(ValueError, match="ch_names"):
        fb.upload(np.zeros((2, 3, 4)), "np-badnames", fs=10, ch_names=["a"])
    with pytest.raises(TypeError, match="cannot upload"):
        fb.upload({"a": 1}, "np-dict")
    fb.upload(np.zeros((1, 1, 8)), "np-twice", fs=10)
    with pytest.raises(pa.ArrowException, match="exists"):
        fb.upload(np.zeros((1, 1, 8)), "np-twice", fs=10)


def test_upload_mne_raw_and_epochs(fb):
    mne = pytest.importorskip("mne")
    mne.set_log_level("ERROR")
    rng = np.random.default_rng(3)
    sfreq = 200.0
    data = rng.standard_normal((3, 2000)) * 1e-5
    info = mne.create_info(["Fz", "Cz", "STN"], sfreq, ch_types=["eeg", "eeg", "dbs"])
    raw = mne.io.RawArray(data, info, first_samp=400)
    meas = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    raw.set_meas_date(meas)

    ds = fb.upload(raw, "mne-raw", epoch_s=2.5, file="sub-01.fif")
    df = ds.to_pandas()
    assert len(df) == 3 * 4
    assert df["unit"].unique().tolist() == ["V"]
    assert df["file"].unique().tolist() == ["sub-01.fif"]
    assert df["channel"].tolist() == ["Fz", "Cz", "STN"] * 4
    want_start = pd.Timestamp(meas) + pd.Timedelta(seconds=400 / sfreq)
    for _, row in df.iterrows():
        e, c = row["epoch"], ["Fz", "Cz", "STN"].index(row["channel"])
        np.testing.assert_array_equal(row["samples"], raw.get_data()[c, e * 500 : (e + 1) * 500])
        assert row["start_time"] == want_start + pd.Timedelta(seconds=2.5 * e)

    job = fb.psd(ds, nperseg=256, bands={"beta": (13, 30)})
    res = job.to_pandas()
    assert job.provenance().units["psd"] == "V²/Hz"
    _, want = scipy.signal.welch(raw.get_data()[1, 500:1000], fs=sfreq, nperseg=256)
    np.testing.assert_allclose(res["psd"][4], want, rtol=1e-9)

    epochs = mne.make_fixed_length_epochs(raw, duration=1.0, preload=True)
    eds = fb.upload(epochs, "mne-epochs")
    edf = eds.to_pandas()
    edata = epochs.get_data()
    assert len(edf) == edata.shape[0] * 3
    assert (edf["fs"] == sfreq).all()
    for _, row in edf.iterrows():
        c = ["Fz", "Cz", "STN"].index(row["channel"])
        np.testing.assert_array_equal(row["samples"], edata[row["epoch"], c])
        onset = epochs.events[row["epoch"], 0] / sfreq + epochs.tmin
        assert row["start_time"] == pd.Timestamp(meas) + pd.Timedelta(seconds=onset)


# ---------------------------------------------------------------------------------------------
# Chaining, history


def test_chaining_a_job_into_a_function(flightbatch_bin, tmp_path):
    fns = tmp_path / "functions.json"
    fns.write_text(json.dumps({"peaks": {"command": [sys.executable, str(PEAKS)], "description": "peaks"}}))
    srv = start_server(flightbatch_bin, tmp_path / "server", "--functions", str(fns))
    try:
        fb = flightbatch.connect(srv.location)
        assert "peaks" in fb.functions()["name"].tolist()
        spectra = fb.psd("demo", nperseg=256)
        for given in (spectra, spectra.id, f"jobs/{spectra.id}"):
            peaks = fb.run("peaks", given, fmin=2.0, fmax=40.0)
            st = peaks.wait(progress=False).status()
            assert st["dataset"] == f"jobs/{spectra.id}" and st["function"] == "peaks"
        spec = importlib.util.spec_from_file_location("peaks", PEAKS)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        want = mod.analyze(spectra.to_arrow(), fmin=2.0, fmax=40.0)
        got = peaks.to_arrow()
        np.testing.assert_allclose(
            got.column("peak_freq").to_numpy(zero_copy_only=False),
            want.column("peak_freq").to_numpy(zero_copy_only=False),
        )
        assert peaks.provenance().dataset == f"jobs/{spectra.id}"
        assert peaks.provenance().function == "peaks"
        hist = fb.jobs(dataset=spectra)
        assert hist["job_id"].tolist() == sorted(hist["job_id"]) and len(hist) == 3
        assert (hist["function"] == "peaks").all()
        fb.close()
    finally:
        assert srv.stop() == 0


def test_jobs_history_filters(fb, beta_job):
    other = fb.upload(np.zeros((1, 2, 64)), "hist-ds", fs=64)
    mine = fb.psd(other, nperseg=32).wait(progress=False)
    all_jobs = fb.jobs()
    assert {beta_job.id, mine.id} <= set(all_jobs["job_id"])
    assert all_jobs["job_id"].tolist() == sorted(all_jobs["job_id"])
    assert all_jobs["created_at"].dt.tz is not None
    only = fb.jobs(dataset="hist-ds")
    assert only["job_id"].tolist() == [mine.id]
    assert only["state"].tolist() == ["SUCCEEDED"] and only["shards"].tolist() == [1]
    assert fb.jobs(dataset=other, state="succeeded")["job_id"].tolist() == [mine.id]
    assert fb.jobs(dataset="hist-ds", state="FAILED").empty
    assert fb.jobs(limit=1)["job_id"].tolist() == [all_jobs["job_id"].iloc[-1]]
    assert set(fb.jobs(function="psd")["function"]) == {"psd"}
    with pytest.raises(ValueError, match="key=value"):
        fb.jobs(label="nolabel")


# ---------------------------------------------------------------------------------------------
# Progress, early parts, failures, cancel, interrupt


def test_progress_bar_only_when_asked_or_interactive(fb, capsys):
    fb.psd("demo", nperseg=64).wait()  # pytest's stderr is no terminal and this is no kernel
    assert capsys.readouterr().err == ""
    job = fb.psd("demo", nperseg=96).wait(progress=True)
    err = capsys.readouterr().err
    shards = job.status()["shards"]["total"]
    assert f"{shards}/{shards}" in err and "shard" in err and job.id in err


def test_early_parts_then_cancel(flightbatch_bin, tmp_path, monkeypatch, capsys):
    srv = _start_with_faults(flightbatch_bin, tmp_path, monkeypatch, "part-00003:sleep=600")
    try:
        fb = flightbatch.connect(srv.location)
        job = fb.psd("demo", nperseg=128)
        raw = srv.connect()
        parts = job.parts()
        got = [next(parts) for _ in range(3)]
        assert job.state == "RUNNING"  # the last shard sleeps: these parts came early
        assert sorted(p.shard for p in got) == ["part-00000", "part-00001", "part-00002"]
        for p in got:
            assert p.table.num_rows == read_ticket(raw, f"datasets/demo/{p.shard}").num_rows
            assert flightbatch.provenance(p.table).job_id == job.id
            assert set(p.to_pandas().columns) >= {"patient_id", "freqs", "psd"}
        raw.close()
        job.cancel()
        with pytest.raises(flightbatch.JobCancelled, match=f"job {job.id} CANCELLED"):
            next(parts)
        with pytest.raises(flightbatch.JobCancelled):
            job.wait(progress=False)
        assert job.status()["state"] == "CANCELLED"
        fb.close()
    finally:
        assert srv.stop() == 0


def test_failed_job_shows_its_failures(flightbatch_bin, tmp_path, monkeypatch):
    srv = _start_with_faults(flightbatch_bin, tmp_path, monkeypatch, "part-00001:always")
    try:
        fb = flightbatch.connect(srv.location)
        job = fb.psd("demo", nperseg=128)
        with pytest.raises(flightbatch.JobFailed) as e:
            job.wait(progress=False)
        assert e.value.job_id == job.id and e.value.state == "FAILED"
        assert "part-00001" in str(e.value) and "after 2 attempts" in str(e.value)
        fails = job.failures()
        assert fails["shard"].tolist() == ["part-00001"]
        assert fails["attempts"].tolist() == [2] and len(fails["errors"][0]) == 2
        assert "attempt 2" in fails["error"][0]
        assert fails.attrs["failures_total"] == 1 and not fails.attrs["cut"]
        assert job.wait(progress=False, raise_on_error=False).status()["state"] == "FAILED"
        shards = [p.shard for p in _parts_until_error(job, flightbatch.JobFailed)]
        assert sorted(shards) == ["part-00000", "part-00002", "part-00003"]
        with pytest.raises(flightbatch.JobFailed):
            job.to_pandas()
        assert fb.jobs(state="FAILED")["job_id"].tolist() == [job.id]
        fb.close()
    finally:
        assert srv.stop() == 0


def test_failures_say_when_the_list_is_cut():
    # job-status lists at most 100 shards' failures; failures_total counts them all.
    status = {
        "job_id": "j",
        "state": "FAILED",
        "error": "shard part-00000 failed after 1 attempt(s): boom; and 129 more shards failed; see failures",
        "failures": [{"shard": f"part-{i:05d}", "state": "FAILED", "attempts": 1, "errors": ["attempt 1: boom"]} for i in range(100)],
        "failures_total": 130,
    }
    fails = flightbatch.Job.failures(types.SimpleNamespace(status=lambda: status))
    assert len(fails) == 100 and fails.attrs["failures_total"] == 130 and fails.attrs["cut"]
    assert "and 30 more shards with failures, not listed" in str(flightbatch.JobFailed(status))
    # A server from before failures_total: the list is whole.
    old = {k: v for k, v in status.items() if k != "failures_total"}
    fails = flightbatch.Job.failures(types.SimpleNamespace(status=lambda: old))
    assert fails.attrs["failures_total"] == 100 and not fails.attrs["cut"]
    assert "not listed" not in str(flightbatch.JobFailed(old))


def _parts_until_error(job, error):
    out = []
    with pytest.raises(error):
        for p in job.parts():
            out.append(p)
    return out


INTERRUPTED = textwrap.dedent(
    """
    import sys, flightbatch
    job = flightbatch.connect(sys.argv[1]).job(sys.argv[2])
    print("waiting", flush=True)
    try:
        job.wait(progress=False)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    print("wait returned", flush=True)
    """
)


def test_interrupted_wait_leaves_the_job_running(flightbatch_bin, tmp_path, monkeypatch):
    srv = _start_with_faults(flightbatch_bin, tmp_path, monkeypatch, "*:sleep=600")
    try:
        fb = flightbatch.connect(srv.location)
        job = fb.psd("demo", nperseg=128)
        proc = subprocess.Popen(
            [sys.executable, "-c", INTERRUPTED, srv.location, job.id],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert proc.stdout.readline().strip() == "waiting"
            time.sleep(1.0)  # well inside wait()'s polling loop
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 3 and "interrupted" in out, (out, err)
        assert f"Job {job.id} goes on running on the server" in err
        assert "job.cancel()" in err and f"flightbatch cancel {job.id}" in err
        assert job.state in ("SUBMITTED", "RUNNING")  # the job went on
        job.cancel()
        with pytest.raises(flightbatch.JobCancelled):
            job.wait(progress=False, timeout=60)
        fb.close()
    finally:
        assert srv.stop() == 0


def test_wait_timeout(flightbatch_bin, tmp_path, monkeypatch):
    srv = _start_with_faults(flightbatch_bin, tmp_path, monkeypatch, "*:sleep=600")
    try:
        fb = flightbatch.connect(srv.location)
        job = fb.psd("demo", nperseg=128)
        with pytest.raises(TimeoutError, match=job.id):
            job.wait(timeout=0.5, progress=False)
        job.cancel()
        fb.close()
    finally:
        assert srv.stop() == 0


def _count_actions(fb, monkeypatch, refuse: dict | None = None) -> list[str]:
    """Records the kind of every action fb runs; kinds in refuse raise the exception given."""
    kinds: list[str] = []
    real = fb.action

    def spy(kind, body=None):
        kinds.append(kind)
        if refuse and kind in refuse:
            raise refuse[kind]
        return real(kind, body)

    monkeypatch.setattr(fb, "action", spy)
    return kinds


def test_wait_is_held_by_the_server(flightbatch_bin, tmp_path, monkeypatch):
    # One shard sleeps 2 s: polling from 50 ms up to 0.2 s would ask job-status at least five
    # times a second; job-wait calls are held up to 1 s each and the last answers when the job
    # ends. The bound follows the wait's own length, so a slow, busy machine does not fail it.
    srv = _start_with_faults(flightbatch_bin, tmp_path, monkeypatch, "part-00001:sleep=2")
    try:
        fb = flightbatch.connect(srv.location)
        job = fb.psd("demo", nperseg=128)
        kinds = _count_actions(fb, monkeypatch)
        t0 = time.monotonic()
        job.wait(progress=False, timeout=120)
        waited = time.monotonic() - t0
        assert job.status()["state"] == "SUCCEEDED"
        waits = kinds[:-1]
        assert waits and set(waits) == {"job-wait"}, kinds
        assert len(waits) <= 2 + waited / 0.5, (waited, kinds)  # held, not polled
        assert fb._job_wait
        fb.close()
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize(
    "refusal, still_tries",
    [
        # A server without job-wait: polled from then on.
        (pa.ArrowNotImplementedError("Flight returned unimplemented error, with message: unknown action"), False),
        # Too many waiting calls on the server: this step polls, the next tries job-wait again.
        (pa.ArrowInvalid("gRPC returned resource exhausted error, with message: 1024 calls already wait"), True),
    ],
)
def test_wait_polls_when_the_server_cannot_hold_it(flightbatch_bin, tmp_path, monkeypatch, refusal, still_tries):
    srv = _start_with_faults(flightbatch_bin, tmp_path, monkeypatch, "part-00001:sleep=1")
    try:
        fb = flightbatch.connect(srv.location)
        job = fb.psd("demo", nperseg=128)
        kinds = _count_actions(fb, monkeypatch, refuse={"job-wait": refusal})
        job.wait(progress=False, timeout=120)
        assert job.state == "SUCCEEDED"
        assert "job-status" in kinds, kinds
        assert fb._job_wait is still_tries
        assert (kinds.count("job-wait") > 1) is still_tries, kinds
        fb.close()
    finally:
        assert srv.stop() == 0


def test_wait_raises_other_errors(fb, monkeypatch):
    job = fb.psd("demo", nperseg=128)
    _count_actions(fb, monkeypatch, refuse={"job-wait": pa.ArrowKeyError("Flight returned not found error")})
    with pytest.raises(pa.ArrowKeyError):
        job.wait(progress=False)
    monkeypatch.undo()
    job.wait(progress=False, timeout=120)


# ---------------------------------------------------------------------------------------------
# Authentication


def test_token_auth(flightbatch_bin, tmp_path, monkeypatch):
    read_token, submit_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [
        {"name": "reader", "sha256": hashlib.sha256(read_token.encode()).hexdigest(), "role": "read"},
        {"name": "writer", "sha256": hashlib.sha256(submit_token.encode()).hexdigest(), "role": "submit"},
    ]}))
    srv = start_server(flightbatch_bin, tmp_path / "server", "--auth-tokens", str(tokens))
    try:
        monkeypatch.delenv("FLIGHTBATCH_TOKEN", raising=False)
        with pytest.raises(flight.FlightUnauthenticatedError):
            flightbatch.connect(srv.location).datasets()
        with pytest.raises(flight.FlightUnauthenticatedError):
            flightbatch.connect(srv.location, token="wrong").datasets()

        writer = flightbatch.connect(srv.location, token=submit_token)
        job = writer.psd("demo", nperseg=128)
        assert job.to_arrow().num_rows == writer.dataset("demo").rows
        assert job.status()["submitted_by"] == "writer"
        assert not writer.dataset("demo").head(2).empty
        assert next(iter(job.parts())).table.num_rows > 0

        monkeypatch.setenv("FLIGHTBATCH_TOKEN", read_token)
        reader = flightbatch.connect(srv.location)  # the token from the environment
        assert reader.jobs()["job_id"].tolist() == [job.id]
        assert reader.job(job.id).to_pandas().shape[0] == job.to_arrow().num_rows
        with pytest.raises(flight.FlightUnauthorizedError, match="submit"):
            reader.psd("demo", nperseg=128)
        with pytest.raises(flight.FlightUnauthorizedError):
            reader.upload(np.zeros((1, 1, 8)), "denied", fs=10)
    finally:
        assert srv.stop() == 0


# ---------------------------------------------------------------------------------------------
# Plots


def test_plots(fb, beta_job):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import flightbatch.plot

    df = beta_job.to_pandas()
    patients = sorted(df["patient_id"].unique())
    ax = flightbatch.plot.psd(beta_job, by="patient_id", bands={"beta": (13, 30)}, fmax=60)
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == patients
    # Each line is the mean spectrum of its patient's records.
    first = df[df["patient_id"] == patients[0]]
    want = np.mean(np.stack(first["psd"].to_numpy()), axis=0)
    freqs = np.asarray(first["freqs"].iloc[0])
    keep = freqs <= 60
    np.testing.assert_allclose(lines[0].get_ydata(), want[keep], rtol=1e-12)
    np.testing.assert_allclose(lines[0].get_xdata(), freqs[keep])
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "frequency (Hz)"
    assert "beta" in [t.get_text() for t in ax.texts]
    plt.close("all")

    ax = flightbatch.plot.band_power(df, "beta", by="patient_id")
    assert [t.get_text() for t in ax.get_xticklabels()] == patients
    ax2 = flightbatch.plot.band_power(beta_job.to_arrow(), (13, 30), by="patient_id")
    # Integrating the psd gives the server's band power.
    pts = [c.get_offsets()[:, 1] for c in ax.collections]
    pts2 = [c.get_offsets()[:, 1] for c in ax2.collections]
    for a, b in zip(pts, pts2):
        np.testing.assert_allclose(np.sort(a), np.sort(b), rtol=1e-9)
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# TLS


def test_tls_settings_from_the_environment_and_mutual_tls(flightbatch_bin, tmp_path, monkeypatch):
    """tests/python/test_tls.py covers tls_root_certs; here the environment and client certificates."""
    from tlscerts import CA

    ca, other = CA("lab CA"), CA("other CA")
    ca_file, other_file = ca.write(tmp_path, "ca"), other.write(tmp_path, "other")
    server_cert, server_key = ca.server().write(tmp_path, "server")
    srv = start_server(flightbatch_bin, tmp_path / "tls", "--tls-cert", str(server_cert), "--tls-key", str(server_key))
    try:
        addr = srv.location
        assert addr.startswith("grpc+tls://")
        monkeypatch.setenv("FLIGHTBATCH_ADDR", addr)
        monkeypatch.setenv("FLIGHTBATCH_TLS_CA", str(ca_file))
        assert "demo" in flightbatch.connect().datasets()["name"].tolist()
        with pytest.raises(flight.FlightUnavailableError):
            flightbatch.connect(addr, tls_root_certs=str(other_file)).datasets()
    finally:
        assert srv.stop() == 0

    alice_cert, alice_key = ca.client("alice", "Neuro Lab").write(tmp_path, "alice")
    srv = start_server(
        flightbatch_bin, tmp_path / "mtls", "--tls-cert", str(server_cert), "--tls-key", str(server_key),
        "--tls-client-ca", str(ca_file),
    )
    try:
        addr = srv.location
        fb = flightbatch.connect(addr, tls_root_certs=str(ca_file), tls_cert=str(alice_cert), tls_key=str(alice_key))
        assert fb.psd("demo", nperseg=128).to_pandas().shape[0] == fb.dataset("demo").rows
        fb.close()
        monkeypatch.setenv("FLIGHTBATCH_TLS_CERT", str(alice_cert))
        monkeypatch.setenv("FLIGHTBATCH_TLS_KEY", str(alice_key))
        monkeypatch.setenv("FLIGHTBATCH_ADDR", addr)
        assert "demo" in flightbatch.connect().datasets()["name"].tolist()
        monkeypatch.delenv("FLIGHTBATCH_TLS_CERT")
        monkeypatch.delenv("FLIGHTBATCH_TLS_KEY")
        with pytest.raises((flight.FlightUnauthenticatedError, flight.FlightUnavailableError)):
            flightbatch.connect(addr, tls_root_certs=str(ca_file)).datasets()
    finally:
        assert srv.stop() == 0


def test_jobs_names_labels_and_filters(fb):
    ds = fb.upload(np.ones((1, 2, 64)), "label-ds", fs=64)
    a = fb.psd(ds, nperseg=32, name="baseline", labels={"cohort": "a", "run": "1"}).wait(progress=False)
    b = fb.psd(ds, nperseg=16, labels={"cohort": "b", "run": "1"}).wait(progress=False)
    st = a.status()
    assert st["name"] == "baseline" and st["labels"] == {"cohort": "a", "run": "1"}
    hist = fb.jobs(dataset=ds)
    assert hist["job_id"].tolist() == [a.id, b.id]
    assert hist["name"].iloc[0] == "baseline" and pd.isna(hist["name"].iloc[1])
    assert hist["labels"].tolist() == [{"cohort": "a", "run": "1"}, {"cohort": "b", "run": "1"}]
    assert fb.jobs(label="cohort=a")["job_id"].tolist() == [a.id]
    assert fb.jobs(dataset=ds, label={"run": "1"})["job_id"].tolist() == [a.id, b.id]
    assert fb.jobs(label={"run": "1", "cohort": "b"})["job_id"].tolist() == [b.id]
    assert fb.jobs(label="cohort=c").empty
    assert fb.jobs(name="baseline")["job_id"].tolist() == [a.id]
    assert fb.jobs(dataset=ds, state=["SUCCEEDED", "FAILED"], limit=1)["job_id"].tolist() == [b.id]
    created = pd.Timestamp(fb.jobs(dataset=ds)["created_at"].iloc[1])
    assert fb.jobs(dataset=ds, since=created.to_pydatetime())["job_id"].tolist() == [b.id]
    assert fb.jobs(dataset=ds, until=created.to_pydatetime())["job_id"].tolist() == [a.id]
    assert fb.job("baseline").id == a.id
    assert fb.job(f"jobs/baseline").to_arrow().equals(a.to_arrow())
    assert fb.job("latest?dataset=label-ds").id == b.id
    assert fb.job("latest?dataset=label-ds&label=cohort=a").id == a.id
