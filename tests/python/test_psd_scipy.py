"""The server's Welch PSD equals scipy.signal.welch, row by row.

For each parameter set the test submits a psd job, reads the records back from the server
(`datasets/demo`), runs scipy on each record's samples converted to float64 with the same
parameters, and compares freqs and psd to a relative tolerance of 1e-9 (with an absolute
tolerance of 1e-12 of the row's largest power, for bins that are nearly zero). The reference
is computed here, at test time.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import signal

from conftest import assert_succeeded, read_dataset, read_result, run_psd, wait_job

RTOL = 1e-9
ATOL_OF_MAX = 1e-12

# (id, request params beyond dataset/column). "fs" fixed or "fs_column"; everything else is
# passed to scipy.signal.welch under the same name.
CASES = [
    ("defaults-hann-256", {"fs": 250}),
    ("hann-256-fs-column", {"fs_column": "fs", "window": "hann", "nperseg": 256}),
    ("hamming-512-noverlap100", {"fs": 250, "window": "hamming", "nperseg": 512, "noverlap": 100}),
    ("boxcar-1000-nfft2048", {"fs": 250, "window": "boxcar", "nperseg": 1000, "noverlap": 0, "nfft": 2048}),
    ("hann-512-nfft1000-detrend-false", {"fs": 250, "nperseg": 512, "nfft": 1000, "detrend": False}),
    ("hamming-256-spectrum", {"fs_column": "fs", "window": "hamming", "nperseg": 256, "scaling": "spectrum"}),
    ("hann-1000-constant-density-fs500", {"fs": 500, "nperseg": 1000, "noverlap": 750, "detrend": "constant", "scaling": "density"}),
    ("boxcar-256-nfft-odd", {"fs_column": "fs", "window": "boxcar", "nperseg": 256, "nfft": 301}),
    ("hann-256-linear-detrend", {"fs": 250, "nperseg": 256, "detrend": "linear"}),
    ("hann-256-median", {"fs": 250, "nperseg": 256, "average": "median"}),
    ("hann-256-two-sided", {"fs": 250, "nperseg": 256, "return_onesided": False}),
]


@pytest.fixture(scope="module")
def dataset(client) -> pa.Table:
    return read_dataset(client)


def scipy_kwargs(params: dict, fs: float) -> dict:
    kw = {k: v for k, v in params.items() if k not in ("fs", "fs_column")}
    kw["fs"] = fs
    return kw


@pytest.mark.parametrize("params", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_psd_matches_scipy_welch(client, dataset, params):
    job_id = run_psd(client, {"dataset": "demo", "column": "samples", **params})
    assert_succeeded(wait_job(client, job_id))
    result = read_result(client, job_id)
    assert result.num_rows == dataset.num_rows

    samples = dataset.column("samples").to_pylist()
    fs_col = dataset.column("fs").to_pylist()
    got_freqs = result.column("freqs").to_pylist()
    got_psd = result.column("psd").to_pylist()
    assert result.column("patient_id").to_pylist() == dataset.column("patient_id").to_pylist()

    for i, x in enumerate(samples):
        fs = fs_col[i] if "fs_column" in params else params["fs"]
        x64 = np.asarray(x, dtype=np.float32).astype(np.float64)
        want_f, want_p = signal.welch(x64, **scipy_kwargs(params, fs))
        gf, gp = np.asarray(got_freqs[i]), np.asarray(got_psd[i])
        assert gf.shape == want_f.shape, f"row {i}: {gf.shape[0]} freqs, scipy has {want_f.shape[0]}"
        np.testing.assert_allclose(gf, want_f, rtol=RTOL, atol=0, err_msg=f"row {i} freqs")
        atol = ATOL_OF_MAX * float(np.max(np.abs(want_p)))
        np.testing.assert_allclose(gp, want_p, rtol=RTOL, atol=atol, err_msg=f"row {i} psd")


def test_band_powers_for_several_bands(client, dataset):
    bands = {"theta": [4, 8], "alpha": [8, 13], "beta": [13, 30], "gamma": [30, 125]}
    job_id = run_psd(client, {"dataset": "demo", "column": "samples", "fs": 250, "nperseg": 500, "bands": bands})
    assert_succeeded(wait_job(client, job_id))
    result = read_result(client, job_id)
    names = [f"{b}_power" for b in bands]
    assert result.column_names[-len(bands) :] == names, result.column_names
    freqs = result.column("freqs").to_pylist()
    psd = result.column("psd").to_pylist()
    for name, (lo, hi) in zip(names, bands.values()):
        got = result.column(name).to_numpy()
        want = []
        for f, p in zip(freqs, psd):
            f, p = np.asarray(f), np.asarray(p)
            m = (f >= lo) & (f <= hi)
            want.append(np.trapezoid(p[m], f[m]))
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=0, err_msg=name)


@pytest.mark.parametrize("total", [None, (2.0, 40.0)], ids=["default-1-45", "fmin2-fmax40"])
def test_relative_band_power(client, dataset, total):
    bands = {"alpha": [8, 13], "beta": [13, 30]}
    body = {"dataset": "demo", "fs": 250, "nperseg": 500, "bands": bands, "relative": True}
    if total is not None:
        body["fmin"], body["fmax"] = total
    lo_t, hi_t = total or (1.0, 45.0)
    job_id = run_psd(client, body)
    assert_succeeded(wait_job(client, job_id))
    result = read_result(client, job_id)
    assert result.column_names[-4:] == ["alpha_power", "beta_power", "alpha_relative", "beta_relative"]
    freqs = result.column("freqs").to_pylist()
    psd = result.column("psd").to_pylist()

    def trapz(f, p, lo, hi):
        m = (f >= lo) & (f <= hi)
        return np.trapezoid(p[m], f[m])

    for name, (lo, hi) in bands.items():
        want = []
        for f, p in zip(freqs, psd):
            f, p = np.asarray(f), np.asarray(p)
            want.append(trapz(f, p, lo, hi) / trapz(f, p, lo_t, hi_t))
        np.testing.assert_allclose(result.column(f"{name}_relative").to_numpy(), want, rtol=1e-9, atol=0)


def test_demo_has_beta_peak(dataset):
    # The demo is built with a beta-band (13-30 Hz) oscillation over a 1/f background: the mean
    # spectrum over all records peaks in the beta band above its 35-45 Hz flank. This checks the
    # generated data, not the server's arithmetic.
    spectra = []
    for x in dataset.column("samples").to_pylist():
        f, p = signal.welch(np.asarray(x, dtype=np.float64), fs=250, nperseg=500)
        spectra.append(p)
    p = np.mean(spectra, axis=0)
    beta = p[(f >= 13) & (f <= 30)].max()
    flank = p[(f >= 35) & (f <= 45)].mean()
    assert beta > 2 * flank, (beta, flank)


@pytest.mark.parametrize("average", [None, "none"], ids=["null", "none"])
@pytest.mark.parametrize(
    "params",
    [
        {"fs": 250, "window": "hann", "nperseg": 256, "noverlap": 128, "detrend": "constant"},
        {"fs_column": "fs", "window": "hamming", "nperseg": 500, "noverlap": 100, "nfft": 512,
         "detrend": "linear", "scaling": "spectrum"},
    ],
    ids=["hann-density", "hamming-spectrum-fs-column"],
)
def test_average_null_matches_scipy_spectrogram(client, dataset, params, average):
    """average null/"none": one row per segment, each scipy.signal.spectrogram's column."""
    job_id = run_psd(client, {"dataset": "demo", **params, "average": average})
    assert_succeeded(wait_job(client, job_id))
    result = read_result(client, job_id)
    assert result.column_names[-4:] == ["segment", "segment_time", "freqs", "psd"]
    df = result.select(["patient_id", "channel", "segment", "segment_time", "freqs", "psd"]).to_pandas()
    start = 0
    for i, x in enumerate(dataset.column("samples").to_pylist()):
        fs = dataset.column("fs")[i].as_py() if "fs_column" in params else params["fs"]
        kw = scipy_kwargs(params, fs)
        kw.setdefault("scaling", "density")
        x64 = np.asarray(x, dtype=np.float32).astype(np.float64)
        f, t, sxx = signal.spectrogram(x64, mode="psd", **kw)
        rows = df.iloc[start : start + len(t)]
        start += len(t)
        assert rows["segment"].tolist() == list(range(len(t))), f"record {i}"
        assert (rows["patient_id"] == dataset.column("patient_id")[i].as_py()).all()
        np.testing.assert_allclose(rows["segment_time"].to_numpy(), t, rtol=1e-12, atol=0)
        for s in range(len(t)):
            np.testing.assert_allclose(rows["freqs"].iloc[s], f, rtol=RTOL, atol=0)
            want = sxx[:, s]
            np.testing.assert_allclose(rows["psd"].iloc[s], want, rtol=RTOL, atol=ATOL_OF_MAX * float(np.max(want)),
                                       err_msg=f"record {i} segment {s}")
    assert start == len(df)


def test_crop_matches_scipy(client, dataset):
    """fmin/fmax crop freqs and psd to [fmin, fmax], without "relative"."""
    job_id = run_psd(client, {"dataset": "demo", "fs": 250, "nperseg": 500, "fmin": 1, "fmax": 45})
    assert_succeeded(wait_job(client, job_id))
    result = read_result(client, job_id)
    for i, x in enumerate(dataset.column("samples").to_pylist()):
        f, p = signal.welch(np.asarray(x, dtype=np.float32).astype(np.float64), fs=250, nperseg=500)
        m = (f >= 1) & (f <= 45)
        np.testing.assert_allclose(result.column("freqs")[i].as_py(), f[m], rtol=RTOL, atol=0)
        np.testing.assert_allclose(result.column("psd")[i].as_py(), p[m], rtol=RTOL, atol=ATOL_OF_MAX * float(p.max()))
