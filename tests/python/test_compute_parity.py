"""Parity of flightbatch's Welch PSD kernel (compute/) with scipy.signal.welch.

Random cases (fixed seed) run through `welchbench -mode ref`, built from the
repository with `go build`; each result must equal scipy's within rtol 1e-9
and atol 1e-12 * max(|psd_ref|). Cases that scipy rejects must be rejected too.
"""

import json
import os
import pathlib
import subprocess
import warnings

import numpy as np
import pytest
import scipy.signal

REPO = pathlib.Path(__file__).resolve().parents[2]
N_CASES = 400
RTOL = 1e-9
NOISE_FLOOR = 1e-24  # relative to max(x**2): far below any real PSD value

NAMES = [
    "boxcar", "box", "ones", "rect", "rectangular", "triang", "triangle", "blackman",
    "hamming", "hann", "han", "bartlett", "flattop", "parzen", "bohman", "blackmanharris",
    "nuttall", "barthann", "cosine", "halfcosine", "exponential", "poisson", "tukey",
    "taylor", "lanczos", "sinc", "hann_periodic", "hann_symmetric", "blackman_symmetric",
    "tukey_symmetric", "flattop_periodic",
]


@pytest.fixture(scope="session")
def welchbench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bin") / "welchbench"
    subprocess.run(["go", "build", "-o", str(out), "./bench/welchbench"], cwd=REPO, check=True)
    return out


def random_window(rng):
    """Returns (scipy window argument, JSON form)."""
    kind = rng.integers(0, 10)
    if kind < 5:
        name = str(rng.choice(NAMES))
        return name, name
    if kind == 9:
        return None, None  # default
    tuples = [
        lambda: ("tukey", float(rng.uniform(-0.2, 1.2))),
        lambda: ("tuk", float(rng.uniform(0, 1))),
        lambda: ("kaiser", float(rng.uniform(0, 20))),
        lambda: ("kaiser_symmetric", float(rng.uniform(0, 20))),
        lambda: ("gaussian", float(rng.uniform(0.5, 100))),
        lambda: ("general_gaussian", float(rng.uniform(0.5, 3)), float(rng.uniform(1, 80))),
        lambda: ("exponential",),
        lambda: ("exponential", None, float(rng.uniform(0.5, 50))),
        lambda: ("exponential", float(rng.uniform(0, 50)), float(rng.uniform(0.5, 50))),
        lambda: ("taylor", int(rng.integers(1, 8)), float(rng.uniform(20, 60)), bool(rng.integers(0, 2))),
        lambda: ("taylor", int(rng.integers(1, 8))),
        lambda: ("chebwin", float(rng.uniform(50, 120))),
        lambda: ("general_hamming", float(rng.uniform(0.4, 0.7))),
        lambda: ("general_cosine", [float(v) for v in rng.uniform(0, 1, rng.integers(1, 5))]),
        lambda: ("hann",),
        lambda: ("dpss", float(rng.uniform(0.5, 6))),
        lambda: ("dpss_symmetric", float(rng.uniform(0.5, 4))),
    ]
    win = tuples[rng.integers(0, len(tuples))]()
    if kind == 8:  # explicit weights
        m = int(rng.choice([1, 2, 3, 16, 33, 64, 100, 128, 255, 256, 300]))
        w = rng.uniform(0.05, 1.0, m)
        return w, [float(v) for v in w]
    return win, list(win)


def random_case(rng):
    win, wjson = random_window(rng)
    params, kwargs = {}, {}
    if win is not None:
        params["window"], kwargs["window"] = wjson, win
    if isinstance(win, np.ndarray):
        nperseg = len(win) if rng.integers(0, 2) else None
        n = int(rng.integers(len(win), len(win) * 8 + 10))
        if rng.integers(0, 20) == 0:
            n = int(rng.integers(0, len(win) + 1))  # possibly too short: both must fail
    else:
        nperseg = [None, 1, 2, 3, 4, 5, 7, 8, 16, 31, 32, 64, 100, 128, 250, 256, 500, 512, 1000, 1024][
            rng.integers(0, 20)]
        n = int(rng.integers(1, 4000))
        if rng.integers(0, 6) == 0:
            n = int(rng.integers(1, 300))  # often shorter than nperseg
        if rng.integers(0, 80) == 0:
            n = 0
    if nperseg is not None:
        params["nperseg"] = kwargs["nperseg"] = int(nperseg)
    eff = len(win) if isinstance(win, np.ndarray) else min(nperseg or 256, max(n, 1))
    if rng.integers(0, 2):
        nov = int(rng.integers(-3, eff)) if rng.integers(0, 10) else int(rng.integers(0, eff + 3))
        params["noverlap"] = kwargs["noverlap"] = nov
    if rng.integers(0, 2):
        extra = int(rng.integers(0, 300)) if rng.integers(0, 10) else int(rng.integers(-3, 1))
        # Within flightbatch's documented bound nfft <= 64 * nperseg (the
        # nperseg asked for, before clipping); beyond it flightbatch refuses.
        asked = len(win) if isinstance(win, np.ndarray) else (nperseg or 256)
        params["nfft"] = kwargs["nfft"] = min(max(1, eff + extra), 64 * asked)
    if rng.integers(0, 2):
        d = [False, "constant", "linear"][rng.integers(0, 3)]
        params["detrend"] = kwargs["detrend"] = d
    if rng.integers(0, 2):
        params["return_onesided"] = kwargs["return_onesided"] = bool(rng.integers(0, 2))
    if rng.integers(0, 2):
        params["scaling"] = kwargs["scaling"] = ["density", "spectrum"][rng.integers(0, 2)]
    if rng.integers(0, 2):
        params["average"] = kwargs["average"] = ["mean", "median"][rng.integers(0, 2)]
    fs = float(rng.uniform(0.5, 2000))
    t = np.arange(n) / fs
    x = rng.standard_normal(n) * rng.uniform(0.1, 100) + rng.uniform(-50, 50)
    if rng.integers(0, 2):
        x += rng.uniform(-5, 5) * t + 3 * np.sin(2 * np.pi * rng.uniform(0, fs / 2) * t)
    return x, fs, params, kwargs


def scipy_welch(x, fs, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return scipy.signal.welch(x, fs=fs, **kwargs), None
        except (ValueError, TypeError) as e:
            return None, e


def test_parity_with_scipy(welchbench):
    rng = np.random.default_rng(20240611)
    cases = [random_case(rng) for _ in range(N_CASES)]
    lines = "".join(
        json.dumps({"x": [float(v) for v in x], "fs": fs, "params": p}) + "\n" for x, fs, p, _ in cases)
    proc = subprocess.run([str(welchbench), "-mode", "ref"], input=lines, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(cases)
    failures, compared = [], 0
    for i, ((x, fs, params, kwargs), got) in enumerate(zip(cases, results)):
        ref, err = scipy_welch(x, fs, kwargs)
        desc = f"case {i}: n={len(x)} fs={fs} params={json.dumps(params)[:300]}"
        if err is not None:
            if "error" not in got:
                failures.append(f"{desc}: scipy raised {err!r}, flightbatch did not")
            continue
        if "error" in got:
            failures.append(f"{desc}: flightbatch error {got['error']}")
            continue
        f_ref, p_ref = ref
        f_got, p_got = np.asarray(got["freqs"], float), np.asarray(got["psd"], float)
        if f_got.shape != f_ref.shape or p_got.shape != p_ref.shape:
            failures.append(f"{desc}: shape {p_got.shape} vs scipy {p_ref.shape}")
            continue
        compared += 1
        atol = 1e-12 * np.max(np.abs(p_ref[np.isfinite(p_ref)]), initial=0.0)
        # Results that are pure rounding noise (e.g. a linear detrend of
        # 2-point segments) are compared against the signal's own scale.
        atol = max(atol, NOISE_FLOOR * np.max(x * x, initial=0.0) / (fs if kwargs.get("scaling") != "spectrum" else 1))
        if not np.allclose(f_got, f_ref, rtol=RTOL, atol=0):
            failures.append(f"{desc}: freqs differ")
        elif not np.allclose(p_got, p_ref, rtol=RTOL, atol=atol, equal_nan=True):
            bad = np.argmax(np.abs(p_got - p_ref) - RTOL * np.abs(p_ref))
            failures.append(f"{desc}: psd[{bad}]={p_got[bad]!r} scipy {p_ref[bad]!r}")
    for f in failures[:20]:
        print(f)
    assert not failures, f"{len(failures)} of {len(cases)} cases differ from scipy (first: {failures[0]})"
    assert compared >= 300


def test_known_cases(welchbench):
    """A few hand-picked parameter sets, including every supported window name."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(5000)
    cases = [({"window": name, "nperseg": 300}, {"window": name, "nperseg": 300}) for name in NAMES]
    cases += [
        ({}, {}),
        ({"nperseg": 1024, "average": "median"}, {"nperseg": 1024, "average": "median"}),
        ({"nperseg": 256, "nfft": 1000, "return_onesided": False},
         {"nperseg": 256, "nfft": 1000, "return_onesided": False}),
        ({"nperseg": 255, "detrend": "linear", "scaling": "spectrum"},
         {"nperseg": 255, "detrend": "linear", "scaling": "spectrum"}),
        ({"nperseg": 8192}, {"nperseg": 8192}),
    ]
    lines = "".join(json.dumps({"x": x.tolist(), "fs": 250.0, "params": p}) + "\n" for p, _ in cases)
    proc = subprocess.run([str(welchbench), "-mode", "ref"], input=lines, capture_output=True, text=True,
                          check=True)
    for (p, kw), line in zip(cases, proc.stdout.splitlines()):
        got = json.loads(line)
        (f_ref, p_ref), err = scipy_welch(x, 250.0, kw)
        assert err is None
        assert "error" not in got, (p, got)
        np.testing.assert_allclose(got["freqs"], f_ref, rtol=RTOL, err_msg=str(p))
        np.testing.assert_allclose(got["psd"], p_ref, rtol=RTOL, atol=1e-12 * np.max(p_ref), err_msg=str(p))


def test_large_offset_constant_detrend(welchbench):
    """Constant detrending must match scipy in the lowest bins even when the
    signal rides on an offset 1e8 times its fluctuations."""
    rng = np.random.default_rng(11)
    cases = []
    for nperseg in (255, 256, 1000, 1024, 4096):
        x = rng.standard_normal(20000) + 1e8
        cases.append((x, {"nperseg": nperseg}))
        cases.append((x, {"nperseg": nperseg, "average": "median", "window": ["tukey", 0.3]}))
    lines = "".join(json.dumps({"x": x.tolist(), "fs": 500.0, "params": p}) + "\n" for x, p in cases)
    proc = subprocess.run([str(welchbench), "-mode", "ref"], input=lines, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for (x, p), line in zip(cases, proc.stdout.splitlines()):
        got = json.loads(line)
        (_, p_ref), err = scipy_welch(x, 500.0, dict(p, window=tuple(p["window"])) if "window" in p else p)
        assert err is None
        np.testing.assert_allclose(got["psd"], p_ref, rtol=RTOL, atol=0, err_msg=str(p))
