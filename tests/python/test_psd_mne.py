"""psd with "nan_policy": "omit" equals MNE's psd_array_welch on data whose bad spans are NaN.

MNE splits a record into its good spans, lays segments from each span's first sample, gives a
span shorter than a segment one shorter window zero-padded to n_fft, and averages the spans'
spectra weighted by the samples their segments cover; each span's spectrum is the mean of its
segments', or with average "median" their median over scipy's median bias for the span's
segment count. The references are computed here, with the pinned mne, on the same arrays the
server reads.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import assert_succeeded, read_result, run_psd, upload_records, wait_job

mne = pytest.importorskip("mne")

FS = 200.0
N = 4000


def _records() -> list[np.ndarray]:
    rng = np.random.default_rng(19)
    t = np.arange(N) / FS
    base = [np.sin(2 * np.pi * 10 * t) + rng.standard_normal(N) for _ in range(6)]
    x = [b.copy() for b in base]
    x[0][1000:1300] = np.nan                      # one bad span in the middle
    x[1][:700] = np.nan                           # bad at the start: the first good span starts later
    x[1][3950:3990] = np.nan                      # ... and a good span of 10 samples runs to the end
    x[2][500:520] = np.nan                        # good spans shorter than a segment between bad ones
    x[2][600:2000] = np.nan
    x[2][2100:2105] = np.nan
    x[3][:] = x[3]                                # no NaN at all
    x[4][:3000] = np.nan                          # one good span at the end, several segments long
    x[5][:] = np.nan                              # no good sample
    return x


@pytest.fixture(scope="module")
def nan_dataset(client) -> list[np.ndarray]:
    recs = _records()
    upload_records(client, "nanspans", recs)
    return recs


@pytest.mark.parametrize(
    "params",
    [
        {"window": "hamming", "nperseg": 256, "noverlap": 128, "nfft": 256},
        {"window": "hann", "nperseg": 200, "noverlap": 0, "nfft": 512},
        {"window": "hamming", "nperseg": 400, "noverlap": 300, "nfft": 400, "detrend": False},
        {"window": "hamming", "nperseg": 256, "noverlap": 128, "nfft": 256, "average": "median"},
        {"window": "hann", "nperseg": 100, "noverlap": 0, "nfft": 128, "average": "median"},
    ],
    ids=["hamming-256-half", "hann-200-nfft512", "hamming-400-no-dc-removal", "median-256-half",
         "median-100-nfft128"],
)
def test_nan_omit_matches_mne(client, nan_dataset, params):
    job_id = run_psd(client, {"dataset": "nanspans", "fs": FS, "nan_policy": "omit", **params})
    assert_succeeded(wait_job(client, job_id))
    result = read_result(client, job_id).sort_by("id")
    assert result.column_names[-1] == "invalid_reason"
    compared = []
    for i, x in enumerate(nan_dataset):
        got_f = result.column("freqs")[i].as_py()
        got_p = result.column("psd")[i].as_py()
        reason = result.column("invalid_reason")[i].as_py()
        if np.isnan(x).all():
            assert got_p is None and got_f is None and "no good sample" in reason
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # scipy: nperseg greater than a short span
                want_p, want_f = mne.time_frequency.psd_array_welch(
                    x, FS, fmin=0, fmax=np.inf, n_fft=params["nfft"], n_overlap=params["noverlap"],
                    n_per_seg=params["nperseg"], window=params["window"],
                    average=params.get("average", "mean"),
                    remove_dc=params.get("detrend", "constant") == "constant", verbose="error")
        except ValueError as e:
            # A good span no longer than noverlap: MNE raises, the server gives a null row.
            assert "noverlap" in str(e)
            assert got_p is None and "cannot be analysed" in reason, (i, reason)
            continue
        assert reason is None, (i, reason)
        compared.append(i)
        np.testing.assert_allclose(got_f, want_f, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got_p, want_p, rtol=1e-9, atol=1e-12 * float(np.max(want_p)), err_msg=f"record {i}")
    assert {0, 3, 4} <= set(compared), compared
    if params["noverlap"] == 0:
        assert {1, 2} <= set(compared), "spans shorter than a segment must be compared"


def test_nan_propagate_is_default(client, nan_dataset):
    job_id = run_psd(client, {"dataset": "nanspans", "fs": FS, "nperseg": 256})
    assert_succeeded(wait_job(client, job_id))
    result = read_result(client, job_id).sort_by("id")
    assert "invalid_reason" not in result.column_names
    assert np.isnan(result.column("psd")[0].as_py()).any()      # scipy's behaviour
    assert not np.isnan(result.column("psd")[3].as_py()).any()
