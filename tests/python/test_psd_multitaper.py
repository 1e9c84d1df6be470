"""psd with "method": "multitaper" equals MNE's psd_array_multitaper on the same arrays.

The references are computed here, with the pinned mne, on the float64 arrays the server reads:
several record lengths (even, odd, a prime), bandwidths, low_bias on and off, both
normalizations, and fmin/fmax cropping. rtol is 1e-7: two DPSS eigen-solvers (LAPACK's and the
server's) agree to about 1e-8 in the tapers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import assert_succeeded, raw_do_action, read_result, run_psd, upload_records, wait_job

mne = pytest.importorskip("mne")
grpc = pytest.importorskip("grpc")

FS = 200.0
LENGTHS = [1000, 1001, 997, 2048, 300, 64]


def _records() -> list[np.ndarray]:
    rng = np.random.default_rng(23)
    out = []
    for n in LENGTHS:
        t = np.arange(n) / FS
        out.append(3 + np.sin(2 * np.pi * 10 * t) + 0.5 * np.sin(2 * np.pi * 31 * t) + rng.standard_normal(n))
    return out


@pytest.fixture(scope="module")
def mt_dataset(client) -> list[np.ndarray]:
    recs = _records()
    upload_records(client, "mtrecords", recs)
    return recs


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"bandwidth": 2.0},
        {"bandwidth": 2.0, "low_bias": False},
        {"bandwidth": 0.5, "normalization": "full"},
        {"bandwidth": 6.0, "low_bias": False, "normalization": "full"},
        {"low_bias": True, "normalization": "length", "fmin": 1.0, "fmax": 45.0},
    ],
    ids=["defaults", "bw2", "bw2-all-tapers", "bw0.5-full", "bw6-all-tapers-full", "crop-1-45"],
)
def test_multitaper_matches_mne(client, mt_dataset, params):
    job_id = run_psd(client, {"dataset": "mtrecords", "fs": FS, "method": "multitaper", **params})
    assert_succeeded(wait_job(client, job_id))
    result = read_result(client, job_id).sort_by("id")
    compared = []
    for i, x in enumerate(mt_dataset):
        got_f = result.column("freqs")[i].as_py()
        got_p = result.column("psd")[i].as_py()
        try:
            want_p, want_f = mne.time_frequency.psd_array_multitaper(
                x, FS, fmin=params.get("fmin", 0.0), fmax=params.get("fmax", np.inf),
                bandwidth=params.get("bandwidth"), adaptive=False, low_bias=params.get("low_bias", True),
                normalization=params.get("normalization", "length"), verbose="error")
        except ValueError as e:
            # A half-bandwidth below 0.5 (or not below n/2): MNE raises, the server gives a null row.
            assert "bandwidth" in str(e).lower() or "NW" in str(e), e
            assert got_p is None and got_f is None, (i, len(x))
            continue
        compared.append(i)
        np.testing.assert_allclose(got_f, want_f, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got_p, want_p, rtol=1e-7, atol=0, err_msg=f"record {i} ({len(x)} samples)")
    assert len(compared) >= 4, compared


@pytest.mark.parametrize(
    "params",
    [
        {"adaptive": True},
        {"adaptive": True, "bandwidth": 3.0, "low_bias": False},
        {"adaptive": True, "bandwidth": 1.0, "normalization": "full"},
        {"adaptive": True, "bandwidth": 4.0, "fmin": 5.0, "fmax": 40.0},
        {"adaptive": True, "max_iter": 3},
    ],
    ids=["defaults", "bw3-all-tapers", "bw1-full", "crop-5-40", "max-iter-3"],
)
def test_multitaper_adaptive_matches_mne(client, mt_dataset, params):
    """MNE's adaptive weights, its iteration and stopping rule (over the cropped frequencies)."""
    job_id = run_psd(client, {"dataset": "mtrecords", "fs": FS, "method": "multitaper", **params})
    assert_succeeded(wait_job(client, job_id))
    result = read_result(client, job_id).sort_by("id")
    compared = []
    for i, x in enumerate(mt_dataset):
        got_p = result.column("psd")[i].as_py()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # fewer than 3 tapers; not converged within max_iter
                want_p, want_f = mne.time_frequency.psd_array_multitaper(
                    x, FS, fmin=params.get("fmin", 0.0), fmax=params.get("fmax", np.inf),
                    bandwidth=params.get("bandwidth"), adaptive=True, low_bias=params.get("low_bias", True),
                    normalization=params.get("normalization", "length"), max_iter=params.get("max_iter", 150),
                    verbose="error")
        except ValueError:
            assert got_p is None, (i, len(x))
            continue
        compared.append(i)
        np.testing.assert_allclose(result.column("freqs")[i].as_py(), want_f, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got_p, want_p, rtol=1e-6, atol=0, err_msg=f"record {i} ({len(x)} samples)")
    assert len(compared) >= 4, compared


def test_multitaper_bands(client, mt_dataset):
    job_id = run_psd(client, {"dataset": "mtrecords", "fs": FS, "method": "multitaper", "bandwidth": 2.0,
                              "bands": {"alpha": [8, 12]}, "relative": True})
    assert_succeeded(wait_job(client, job_id))
    result = read_result(client, job_id).sort_by("id")
    x = mt_dataset[0]
    p, f = mne.time_frequency.psd_array_multitaper(x, FS, bandwidth=2.0, verbose="error")
    alpha = result.column("alpha_power")[0].as_py()
    sel = (f >= 8) & (f <= 12)
    want = np.trapezoid(p[sel], f[sel])
    np.testing.assert_allclose(alpha, want, rtol=1e-7)
    rel = result.column("alpha_relative")[0].as_py()
    tot = (f >= 1) & (f <= 45)
    np.testing.assert_allclose(rel, want / np.trapezoid(p[tot], f[tot]), rtol=1e-7)


@pytest.mark.parametrize(
    "extra,word",
    [
        ({"adaptive": True, "max_iter": 0}, "max_iter"),
        ({"nperseg": 256}, "nperseg"),
        ({"window": "hamming"}, "window"),
        ({"noverlap": 10, "average": "median"}, "noverlap"),
        ({"nan_policy": "omit"}, "nan_policy"),
        ({"normalization": "sqrt"}, "normalization"),
        ({"bandwidth": -1}, "bandwidth"),
        ({"method": "periodogram"}, "method"),
    ],
    ids=["max-iter", "nperseg", "window", "welch-params", "nan-omit", "normalization", "bandwidth", "method"],
)
def test_multitaper_refusals(server, mt_dataset, extra, word):
    body = {"dataset": "mtrecords", "fs": FS, "method": "multitaper", **extra}
    reply = raw_do_action(server.addr, "psd", body)
    assert reply.code == grpc.StatusCode.INVALID_ARGUMENT, reply
    assert word in reply.details, reply.details


@pytest.mark.parametrize("extra", [{"bandwidth": 2.0}, {"low_bias": False}, {"normalization": "full"}, {"adaptive": True}])
def test_multitaper_params_need_the_method(server, mt_dataset, extra):
    reply = raw_do_action(server.addr, "psd", {"dataset": "mtrecords", "fs": FS, **extra})
    assert reply.code == grpc.StatusCode.INVALID_ARGUMENT, reply
    assert "multitaper" in reply.details, reply.details
