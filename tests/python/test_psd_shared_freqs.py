"""psd with "shared_freqs": true: no freqs column, the frequency axis once in the schema metadata.

Records of several lengths (one shorter than nperseg) are uploaded; scipy.signal.welch, at test
time, gives each record's frequencies and PSD. The schema's `flightbatch.freqs` must equal
scipy's frequencies and every row's psd scipy's PSD at them (rtol 1e-9); the short record, whose
frequencies differ, gets a null psd and a reason. The Python client's `freqs()` and the pandas
idiom of the README are exercised on the same result, and the axis survives a Parquet file.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import signal

import flightbatch
import flightbatch.plot
from conftest import assert_succeeded, raw_do_action, read_result, run_psd, upload_records, wait_job

FS = 250.0
LENGTHS = [3000, 1000, 300, 5000, 500]
RTOL = 1e-9


@pytest.fixture(scope="module")
def records(client) -> list[np.ndarray]:
    rng = np.random.default_rng(191)
    recs = [np.sin(2 * np.pi * 20 * np.arange(n) / FS) + rng.standard_normal(n) for n in LENGTHS]
    upload_records(client, "sharedfreqs", recs)
    return recs


@pytest.mark.parametrize(
    "params",
    [
        {"nperseg": 512},
        {"nperseg": 400, "noverlap": 100, "window": "hamming", "fmin": 1, "fmax": 45},
        {"nperseg": 512, "nfft": 1024, "average": "median"},
        {"nperseg": 256, "return_onesided": False, "scaling": "spectrum"},
    ],
    ids=["hann-512", "hamming-400-crop", "nfft-1024-median", "two-sided-spectrum"],
)
def test_shared_freqs_match_scipy(client, records, params):
    job_id = run_psd(client, {"dataset": "sharedfreqs", "fs": FS, "shared_freqs": True, **params})
    assert_succeeded(wait_job(client, job_id))
    table = read_result(client, job_id).sort_by("id")
    assert "freqs" not in table.column_names
    assert table.column_names[-1] == "invalid_reason"
    freqs = np.array(json.loads(table.schema.metadata[b"flightbatch.freqs"]))
    fmin, fmax = params.get("fmin"), params.get("fmax")
    welch = {k: v for k, v in params.items() if k not in ("fmin", "fmax")}
    compared = 0
    for i, x in enumerate(records):
        f, p = signal.welch(x, fs=FS, **welch) if len(x) >= params["nperseg"] else (None, None)
        got = table.column("psd")[i].as_py()
        reason = table.column("invalid_reason")[i].as_py()
        if f is None and "nfft" not in params:
            # nperseg clipped to the record: other frequencies than the shared ones.
            assert got is None and "shared_freqs" in reason, (i, reason)
            continue
        if f is None:
            with pytest.warns(UserWarning):
                f, p = signal.welch(x, fs=FS, **welch)   # scipy clips nperseg, nfft stays
        if fmin is not None:
            m = (f >= fmin) & (f <= fmax)
            f, p = f[m], p[m]
        assert reason is None, (i, reason)
        np.testing.assert_allclose(freqs, f, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got, p, rtol=RTOL, atol=1e-12 * float(np.max(p)), err_msg=f"record {i}")
        compared += 1
    long_enough = sum(len(x) >= params["nperseg"] for x in records)
    assert compared == (len(records) if "nfft" in params else long_enough) and long_enough >= 3


def test_client_freqs_and_the_pandas_idiom(server, records, tmp_path):
    with flightbatch.connect(server.location) as fb:
        job = fb.psd("sharedfreqs", fs=FS, nperseg=256, fmin=1, fmax=45, shared_freqs=True).wait(progress=False)
        df = job.to_pandas()
        freqs = job.freqs()
        # The README's idiom: one column per frequency, one row per record.
        spectra = pd.DataFrame(np.vstack(df.psd), index=df.id, columns=pd.Index(freqs, name="hz"))
        f, p = signal.welch(records[3], fs=FS, nperseg=256)
        m = (f >= 1) & (f <= 45)
        np.testing.assert_allclose(spectra.columns.to_numpy(), f[m], rtol=1e-12, atol=0)
        np.testing.assert_allclose(spectra.loc[3].to_numpy(), p[m], rtol=RTOL, atol=1e-12 * float(p.max()))
        assert float(spectra.idxmax(axis=1).loc[3]) == pytest.approx(20, abs=1)   # the 20 Hz sine
        job.to_parquet(tmp_path / "r.parquet")
        np.testing.assert_array_equal(flightbatch.freqs(tmp_path / "r.parquet"), freqs)
        assert flightbatch.freqs(fb.psd("sharedfreqs", fs=FS, nperseg=256).wait(progress=False)) is None
        matplotlib = pytest.importorskip("matplotlib")
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = flightbatch.plot.psd(job)          # the plot takes the axis from the metadata
        np.testing.assert_array_equal(ax.lines[0].get_xdata(), freqs)
        np.testing.assert_allclose(ax.lines[0].get_ydata(), np.vstack(df.psd).mean(axis=0), rtol=1e-12)
        plt.close("all")


@pytest.mark.parametrize(
    "extra, word",
    [({"fs_column": "fs"}, "fixed"), ({"fs": FS, "method": "multitaper"}, "multitaper"),
     ({"fs": FS, "nperseg": 32768}, "fmin")],
)
def test_shared_freqs_refused(server, records, extra, word):
    reply = raw_do_action(server.addr, "psd", {"dataset": "sharedfreqs", "shared_freqs": True, **extra})
    assert reply.code.name == "INVALID_ARGUMENT" and "shared_freqs" in reply.details and word in reply.details, reply
