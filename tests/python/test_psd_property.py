"""Property test: the server's psd equals scipy.signal.welch on randomly drawn datasets and parameters.

Each case is a small dataset of its own (signal dtype float32 or float64; list, large_list or
fixed_size_list; records of different lengths, some shorter than nperseg, where scipy clips nperseg
to the record length) and a random set of welch parameters (window by name, as a [name, args...]
tuple or as explicit weights; nperseg, noverlap, nfft, detrend, return_onesided, scaling, average;
a fixed fs or a per-record fs column). The datasets are written as Arrow IPC files straight into
the server's file store (`<store>/datasets/<name>/part-00000.arrow`: a dataset can be registered
over files that already exist), every job is submitted at once, and each result row is compared
with scipy on the record's samples converted to float64: rtol 1e-9, atol 1e-12 of the row's largest
power. The cases are drawn from a fixed seed, so a failure is reproducible; its message prints the
case.

Also here: the documented edge behaviour (an empty or null record gives null freqs, psd and band
powers; a record holding NaN gives scipy's NaN spectrum; records of one or two samples) and a
sample of parameter sets scipy rejects, which the server must reject with INVALID_ARGUMENT.
"""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pytest
from scipy import signal

from conftest import (
    TERMINAL_STATES,
    action,
    assert_succeeded,
    raw_do_action,
    read_result,
    run_psd,
    start_server,
)

SEED = 20261124
N_CASES = 160
RTOL = 1e-9
ATOL_OF_MAX = 1e-12
ZERO_ATOL = 1e-300  # a row whose reference is all zeros

NAMED_WINDOWS = [
    "hann", "hamming", "blackman", "blackmanharris", "boxcar", "bartlett", "barthann", "bohman",
    "cosine", "flattop", "nuttall", "parzen", "triang", "lanczos",
]


# ---------------------------------------------------------------------------------------------
# Drawing cases


@dataclass
class Case:
    index: int
    name: str  # dataset name
    dtype: str  # float32 | float64
    list_type: str  # list | large_list | fixed_size_list
    records: list  # np.ndarray (float32/float64) per record
    fs_values: list[float]  # per record (the fs column)
    params: dict  # request params beyond dataset/column

    def describe(self) -> str:
        lengths = [len(r) for r in self.records]
        return (f"case {self.index} (dataset {self.name}): {self.dtype} {self.list_type}, "
                f"record lengths {lengths}, params {json.dumps(self.params)}")


def _draw_window(rng, nperseg_hint: int):
    """A window in scipy's JSON form, and the forced nperseg for weights (else None)."""
    kind = rng.choice(["named", "named", "tuple", "tuple", "weights"])
    if kind == "named":
        return str(rng.choice(NAMED_WINDOWS)), None
    if kind == "tuple":
        choice = int(rng.integers(7))
        if choice == 0:
            return ["tukey", float(rng.choice([0.25, 0.5, round(float(rng.uniform(0, 1)), 3)]))], None
        if choice == 1:
            return ["kaiser", float(rng.choice([8.0, 14.0, round(float(rng.uniform(0.5, 20)), 3)]))], None
        if choice == 2:
            return ["gaussian", round(float(rng.uniform(1, 40)), 3)], None
        if choice == 3:
            return ["general_hamming", round(float(rng.uniform(0.5, 0.9)), 3)], None
        if choice == 4:
            return ["general_gaussian", round(float(rng.uniform(0.5, 3)), 3), round(float(rng.uniform(2, 30)), 3)], None
        if choice == 5:
            return ["exponential", None, round(float(rng.uniform(1, 20)), 3)], None
        return ["chebwin", float(rng.choice([50.0, 80.0, 100.0]))], None
    m = int(max(3, nperseg_hint))
    weights = np.round(rng.uniform(0.05, 1.0, m), 6)
    return [float(w) for w in weights], m


def _draw_case(rng, index: int) -> Case:
    dtype = str(rng.choice(["float32", "float64"]))
    list_type = str(rng.choice(["list", "large_list", "fixed_size_list"]))
    nominal = int(rng.choice([None, 16, 32, 64, 100, 128, 200, 256, 300, 512]) or 256)
    window, forced = _draw_window(rng, nominal)
    params: dict = {"window": window}
    if forced is not None:
        nominal = forced
        if rng.random() < 0.5:
            params["nperseg"] = forced
    elif nominal != 256 or rng.random() < 0.3:
        params["nperseg"] = nominal

    # Records: lengths vary (except fixed_size_list); some shorter than nperseg, unless the window
    # is explicit weights (scipy rejects a record shorter than its window).
    n_records = int(rng.integers(1, 7))
    min_len = nominal if forced is not None else 3
    if list_type == "fixed_size_list":
        pick = [int(rng.integers(min_len, nominal + 1)), nominal, int(rng.integers(nominal, 6 * nominal + 1))]
        lengths = [pick[int(rng.integers(3))]] * n_records
    else:
        lengths = []
        for _ in range(n_records):
            r = rng.random()
            if r < 0.3:
                lengths.append(int(rng.integers(min_len, max(min_len, nominal) + 1)))
            elif r < 0.4:
                lengths.append(nominal)
            else:
                lengths.append(int(rng.integers(nominal, 8 * nominal + 1)))
    shortest = min(lengths)

    seg = min(nominal, shortest)  # the smallest nperseg after scipy's clipping
    if rng.random() < 0.5:
        params["noverlap"] = int(rng.integers(0, seg))
    if rng.random() < 0.4:
        params["nfft"] = nominal + int(rng.choice([0, 1, int(rng.integers(1, 300))]))
    if rng.random() < 0.7:
        params["detrend"] = ["constant", "linear", False][int(rng.integers(3))]
    if rng.random() < 0.5:
        params["return_onesided"] = bool(rng.random() < 0.5)
    if rng.random() < 0.5:
        params["scaling"] = str(rng.choice(["density", "spectrum"]))
    if rng.random() < 0.5:
        params["average"] = str(rng.choice(["mean", "median"]))

    fs_values = [float(np.round(rng.uniform(50, 2000), 3)) for _ in lengths]
    if rng.random() < 0.5:
        params["fs_column"] = "fs"
    else:
        params["fs"] = float(np.round(rng.uniform(1, 5000), 3))

    records = []
    for n in lengths:
        scale = 10.0 ** rng.uniform(-3, 3)
        t = np.arange(n)
        x = scale * (rng.standard_normal(n) + rng.uniform(-5, 5)
                     + rng.uniform(0, 3) * np.sin(2 * np.pi * rng.uniform(0, 0.5) * t))
        records.append(x.astype(dtype))
    return Case(index, f"prop-{index:03d}", dtype, list_type, records, fs_values, params)


def draw_cases() -> list[Case]:
    rng = np.random.default_rng(SEED)
    return [_draw_case(rng, i) for i in range(N_CASES)]


CASES = draw_cases()


# ---------------------------------------------------------------------------------------------
# Datasets in the store


def _list_type(list_type: str, dtype: str, size: int | None = None) -> pa.DataType:
    item = pa.float32() if dtype == "float32" else pa.float64()
    if list_type == "list":
        return pa.list_(item)
    if list_type == "large_list":
        return pa.large_list(item)
    return pa.list_(item, size)


def write_dataset(store: Path, name: str, samples: list, dtype: str, list_type: str,
                  fs_values: list[float], batch_rows: int | None = None) -> None:
    """Write one shard, datasets/<name>/part-00000.arrow, atomically (rename into place)."""
    size = None
    if list_type == "fixed_size_list":
        size = next(len(r) for r in samples if r is not None)
    table = pa.table({
        "record": pa.array(np.arange(len(samples), dtype=np.int32)),
        "fs": pa.array(fs_values, type=pa.float64()),
        "samples": pa.array([None if r is None else np.asarray(r) for r in samples],
                            type=_list_type(list_type, dtype, size)),
    })
    d = store / "datasets" / name
    d.mkdir(parents=True, exist_ok=True)
    tmp = store / f".tmp-{uuid.uuid4().hex}.arrow"
    with pa.OSFile(str(tmp), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table, max_chunksize=batch_rows)
    os.replace(tmp, d / "part-00000.arrow")


# ---------------------------------------------------------------------------------------------
# The reference


def scipy_welch(x, params: dict, fs: float):
    kw = {k: v for k, v in params.items() if k not in ("fs", "fs_column", "bands")}
    w = kw.get("window")
    if isinstance(w, list):
        kw["window"] = np.asarray(w) if not isinstance(w[0], str) else tuple(w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "nperseg = 256 is greater than input length"
        return signal.welch(np.asarray(x).astype(np.float64), fs=fs, **kw)


def compare_row(got_f, got_p, x, params: dict, fs: float, what: str) -> None:
    want_f, want_p = scipy_welch(x, params, fs)
    assert got_f is not None and got_p is not None, f"{what}: null freqs/psd, scipy gives {len(want_f)} bins"
    gf, gp = np.asarray(got_f, dtype=np.float64), np.asarray(got_p, dtype=np.float64)
    assert gf.shape == want_f.shape, f"{what}: {gf.shape[0]} freqs, scipy has {want_f.shape[0]}"
    assert gp.shape == want_p.shape, f"{what}: {gp.shape[0]} psd bins, scipy has {want_p.shape[0]}"
    np.testing.assert_allclose(gf, want_f, rtol=RTOL, atol=0, err_msg=f"{what}: freqs")
    peak = float(np.max(np.abs(want_p))) if want_p.size else 0.0
    atol = ATOL_OF_MAX * peak if peak > 0 else ZERO_ATOL
    np.testing.assert_allclose(gp, want_p, rtol=RTOL, atol=atol, equal_nan=True, err_msg=f"{what}: psd")


# ---------------------------------------------------------------------------------------------
# The server and the jobs


@pytest.fixture(scope="module")
def prop_server(flightbatch_bin, tmp_path_factory):
    srv = start_server(flightbatch_bin, tmp_path_factory.mktemp("prop-server"),
                       "--demo-mb", "1", "--demo-shards", "1")
    yield srv
    assert srv.stop() == 0, srv.stderr_text()


@pytest.fixture(scope="module")
def prop_client(prop_server):
    c = prop_server.connect()
    yield c
    c.close()


def wait_all(client, job_ids: list[str], timeout: float = 120.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    pending = list(job_ids)
    done: dict[str, dict] = {}
    while pending:
        st = action(client, "list-jobs", {})
        by_id = {j["job_id"]: j for j in st["jobs"]}
        still = []
        for j in pending:
            s = by_id.get(j)
            if s and s["state"] in TERMINAL_STATES:
                done[j] = s
            else:
                still.append(j)
        pending = still
        if pending and time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} jobs not finished after {timeout}s, e.g. {pending[0]}")
        if pending:
            time.sleep(0.1)
    return done


@pytest.fixture(scope="module")
def case_results(prop_server, prop_client):
    """Write every case's dataset, submit every job, wait; job ID and result table per case."""
    rng = np.random.default_rng(SEED + 1)
    for c in CASES:
        batch_rows = int(rng.integers(1, 4)) if rng.random() < 0.3 else None
        write_dataset(prop_server.store, c.name, c.records, c.dtype, c.list_type, c.fs_values, batch_rows)
    job_ids = {}
    for c in CASES:
        job_ids[c.index] = run_psd(prop_client, {"dataset": c.name, "column": "samples", **c.params})
    statuses = wait_all(prop_client, list(job_ids.values()))
    out = {}
    for c in CASES:
        st = statuses[job_ids[c.index]]
        out[c.index] = (st, read_result(prop_client, st["job_id"]) if st["state"] == "SUCCEEDED" else None)
    return out


def test_cases_cover_the_space():
    # The draw covers what it claims to (guards against a change of the drawing code).
    assert len(CASES) >= 150
    assert {c.dtype for c in CASES} == {"float32", "float64"}
    assert {c.list_type for c in CASES} == {"list", "large_list", "fixed_size_list"}
    windows = [c.params["window"] for c in CASES]
    assert any(isinstance(w, str) for w in windows)
    assert any(isinstance(w, list) and w[0] == "tukey" for w in windows)
    assert any(isinstance(w, list) and w[0] == "kaiser" for w in windows)
    assert any(isinstance(w, list) and not isinstance(w[0], str) for w in windows)
    for key in ("nperseg", "noverlap", "nfft", "detrend", "return_onesided", "scaling", "average", "fs", "fs_column"):
        assert any(key in c.params for c in CASES), key
    assert {c.params.get("detrend", "constant") for c in CASES} == {"constant", "linear", False}
    assert {c.params.get("average", "mean") for c in CASES} == {"mean", "median"}
    short = [c for c in CASES if c.list_type != "fixed_size_list"
             and min(len(r) for r in c.records) < c.params.get("nperseg", 256)
             and len({len(r) for r in c.records}) > 1]
    assert len(short) >= 10, "too few datasets mixing records shorter than nperseg with longer ones"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_psd_matches_scipy(case_results, case):
    status, result = case_results[case.index]
    if status["state"] != "SUCCEEDED":
        pytest.fail(f"{case.describe()}\njob {status['job_id']} ended {status['state']}: {status.get('error')!r}")
    assert result.num_rows == len(case.records), case.describe()
    assert result.column("record").to_pylist() == list(range(len(case.records))), case.describe()
    freqs = result.column("freqs").to_pylist()
    psd = result.column("psd").to_pylist()
    for i, x in enumerate(case.records):
        fs = case.fs_values[i] if "fs_column" in case.params else case.params["fs"]
        compare_row(freqs[i], psd[i], x, case.params, fs, f"{case.describe()}\nrecord {i} (length {len(x)})")


# ---------------------------------------------------------------------------------------------
# Edge behaviour


def run_one(client, store: Path, name: str, samples: list, dtype: str, list_type: str,
            params: dict, fs_values: list[float] | None = None):
    fs_values = fs_values or [250.0] * len(samples)
    write_dataset(store, name, samples, dtype, list_type, fs_values)
    job_id = run_psd(client, {"dataset": name, "column": "samples", **params})
    st = wait_all(client, [job_id])[job_id]
    return st, (read_result(client, job_id) if st["state"] == "SUCCEEDED" else None)


@pytest.mark.parametrize("list_type", ["list", "large_list", "fixed_size_list"])
def test_null_and_empty_records_give_null_rows(prop_server, prop_client, list_type):
    rng = np.random.default_rng(SEED + 2)
    if list_type == "fixed_size_list":
        samples = [rng.standard_normal(300), None, rng.standard_normal(300)]
    else:
        samples = [rng.standard_normal(300), None, np.array([]), rng.standard_normal(40)]
    params = {"fs": 250.0, "nperseg": 128, "bands": {"beta": [13, 30]}}
    st, result = run_one(prop_client, prop_server.store, f"edge-null-{list_type.replace('_', '-')}",
                         samples, "float64", list_type, params)
    assert_succeeded(st)
    freqs = result.column("freqs").to_pylist()
    psd = result.column("psd").to_pylist()
    beta = result.column("beta_power").to_pylist()
    for i, x in enumerate(samples):
        if x is None or len(x) == 0:
            assert freqs[i] is None and psd[i] is None and beta[i] is None, (
                f"record {i} ({'null' if x is None else 'empty'}): freqs={freqs[i]!r:.60} psd={psd[i]!r:.60} beta={beta[i]!r}")
        else:
            compare_row(freqs[i], psd[i], x, params, 250.0, f"{list_type} record {i}")
            assert beta[i] is not None


@pytest.mark.parametrize("average", ["mean", "median"])
@pytest.mark.parametrize("detrend", ["constant", "linear", False])
def test_nan_record_gives_scipys_nan_psd(prop_server, prop_client, average, detrend):
    rng = np.random.default_rng(SEED + 3)
    x_one = rng.standard_normal(1000)
    x_one[517] = np.nan  # one NaN: every segment holding it is NaN, so is the average
    x_all = np.full(300, np.nan)
    x_ok = rng.standard_normal(700)
    samples = [x_one, x_all, x_ok]
    params = {"fs": 250.0, "nperseg": 200, "detrend": detrend, "average": average}
    name = f"edge-nan-{average}-{str(detrend).lower()}"
    st, result = run_one(prop_client, prop_server.store, name, samples, "float64", "list", params)
    assert_succeeded(st)
    freqs = result.column("freqs").to_pylist()
    psd = result.column("psd").to_pylist()
    for i, x in enumerate(samples):
        what = f"{name} record {i}"
        if detrend == "linear" and np.isnan(x).any():
            # scipy has no answer here: its linear detrending (a least-squares fit) raises
            # "array must not contain infs or NaNs". The server gives what the other detrend
            # modes give: the frequencies, and NaN at every bin.
            with pytest.raises(ValueError):
                scipy_welch(x, params, 250.0)
            want_f, _ = scipy_welch(x, {**params, "detrend": "constant"}, 250.0)
            np.testing.assert_allclose(freqs[i], want_f, rtol=RTOL, atol=0, err_msg=what)
            got = np.asarray(psd[i], dtype=np.float64)
            assert got.shape == want_f.shape and np.isnan(got).all(), f"{what}: psd {got}"
            continue
        compare_row(freqs[i], psd[i], x, params, 250.0, what)


@pytest.mark.parametrize("detrend", ["constant", "linear", False])
def test_records_of_one_and_two_samples(prop_server, prop_client, detrend):
    # nperseg is clipped to 1 or 2. Where scipy's answer is exactly zero up to round-off (constant
    # detrending of one sample, linear detrending of one or two), compare on the scale of the
    # record's power instead of the row's.
    rng = np.random.default_rng(SEED + 4)
    samples = [rng.standard_normal(1) + 3, rng.standard_normal(2) + 3, rng.standard_normal(3) + 3]
    params = {"fs": 100.0, "detrend": detrend}
    st, result = run_one(prop_client, prop_server.store, f"edge-tiny-{str(detrend).lower()}",
                         samples, "float64", "list", params)
    assert_succeeded(st)
    freqs = result.column("freqs").to_pylist()
    psd = result.column("psd").to_pylist()
    for i, x in enumerate(samples):
        want_f, want_p = scipy_welch(x, params, 100.0)
        np.testing.assert_allclose(freqs[i], want_f, rtol=RTOL, atol=0)
        atol = 1e-12 * float(np.sum(x * x)) / 100.0
        np.testing.assert_allclose(psd[i], want_p, rtol=RTOL, atol=atol, err_msg=f"record {i} {detrend}")


# ---------------------------------------------------------------------------------------------
# Parameters scipy rejects


def _draw_rejected(rng) -> list[tuple[str, dict]]:
    """(why, params) that scipy.signal.welch rejects on a long record, drawn at random."""
    out = []
    for _ in range(3):
        nperseg = int(rng.integers(8, 512))
        out.append(("noverlap >= nperseg", {"nperseg": nperseg, "noverlap": nperseg + int(rng.integers(0, 50))}))
    for _ in range(2):
        nperseg = int(rng.integers(16, 512))
        out.append(("nfft < nperseg", {"nperseg": nperseg, "nfft": nperseg - int(rng.integers(1, 16))}))
    out.append(("nperseg <= 0", {"nperseg": -int(rng.integers(0, 10))}))
    out.append(("unknown window", {"window": str(rng.choice(["hannn", "gauss-ian", "blackman_harris2"]))}))
    out.append(("window needing a parameter", {"window": str(rng.choice(["kaiser", "gaussian", "chebwin"]))}))
    m = int(rng.integers(16, 128))
    out.append(("nperseg differs from the weights", {"window": [1.0] * m, "nperseg": m + int(rng.integers(1, 10))}))
    out.append(("unknown detrend", {"detrend": str(rng.choice(["quadratic", "mean", "none"]))}))
    out.append(("unknown scaling", {"scaling": str(rng.choice(["power", "psd", "magnitude"]))}))
    out.append(("unknown average", {"average": str(rng.choice(["mode", "max", "geometric"]))}))
    return out


REJECTED = _draw_rejected(np.random.default_rng(SEED + 5))


@pytest.mark.parametrize("why,params", REJECTED, ids=[f"{i}-{w.replace(' ', '-')}" for i, (w, _) in enumerate(REJECTED)])
def test_scipy_rejects_so_does_the_server(prop_server, prop_client, why, params):
    x = np.random.default_rng(SEED + 6).standard_normal(4096)
    with pytest.raises(ValueError):
        scipy_welch(x, params, 250.0)
    write_dataset(prop_server.store, "edge-rejected", [x], "float64", "list", [250.0])
    before = len(action(prop_client, "list-jobs", {})["jobs"])
    reply = raw_do_action(prop_server.addr, "psd", {"dataset": "edge-rejected", "column": "samples",
                                                    "fs": 250.0, **params})
    assert reply.code == grpc.StatusCode.INVALID_ARGUMENT, (why, params, reply.code, reply.details)
    assert reply.details, (why, params)
    assert len(action(prop_client, "list-jobs", {})["jobs"]) == before, f"{why}: a rejected request created a job"


# Records too short for the request: scipy raises on them (a record shorter than explicit window
# weights; noverlap not less than the clipped nperseg; dpss's NW not less than half of it). Whatever
# the server does with such a record, it must say so and keep serving: the job ends FAILED with a
# message naming the record, or SUCCEEDED with a null row for it and the other records' spectra.
TOO_SHORT = [
    ("shorter-than-weights", {"window": [1.0] * 16}),
    ("noverlap-vs-clipped-nperseg", {"nperseg": 16, "noverlap": 12}),
    ("dpss-nw-vs-clipped-nperseg", {"nperseg": 16, "window": ["dpss", 6.0]}),
]


@pytest.mark.parametrize("why,params", TOO_SHORT, ids=[t[0] for t in TOO_SHORT])
def test_record_too_short_for_the_request(prop_server, prop_client, why, params):
    rng = np.random.default_rng(SEED + 7)
    samples = [rng.standard_normal(1000), rng.standard_normal(10), rng.standard_normal(1000)]
    with pytest.raises(ValueError):
        scipy_welch(samples[1], params, 250.0)
    st, result = run_one(prop_client, prop_server.store, f"edge-short-{why}", samples, "float64", "list",
                         {"fs": 250.0, **params})
    assert_succeeded(st)
    psd = result.column("psd").to_pylist()
    assert psd[1] is None, f"{why}: record 1 has a spectrum scipy cannot compute"
    assert result.column("freqs")[1].as_py() is None
    for i in (0, 2):
        compare_row(result.column("freqs")[i].as_py(), psd[i], samples[i], params, 250.0, f"{why} record {i}")
    # Still serving.
    assert action(prop_client, "list-jobs", {})["jobs"]


def test_null_or_non_positive_fs_gives_null_rows(prop_server, prop_client):
    rng = np.random.default_rng(SEED + 8)
    samples = [rng.standard_normal(500) for _ in range(5)]
    fs_values = [250.0, None, 0.0, -10.0, 1000.0]
    params = {"fs_column": "fs", "nperseg": 128, "bands": {"alpha": [8, 12]}}
    st, result = run_one(prop_client, prop_server.store, "edge-fs", samples, "float32", "large_list",
                         params, fs_values)
    assert_succeeded(st)
    freqs = result.column("freqs").to_pylist()
    psd = result.column("psd").to_pylist()
    alpha = result.column("alpha_power").to_pylist()
    for i, (x, fs) in enumerate(zip(samples, fs_values)):
        if fs is None or fs <= 0:
            assert freqs[i] is None and psd[i] is None and alpha[i] is None, f"record {i} with fs={fs}"
        else:
            compare_row(freqs[i], psd[i], x.astype(np.float32), params, fs, f"record {i} fs={fs}")
