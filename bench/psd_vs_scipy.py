#!/usr/bin/env python3
"""Single-core Welch PSD throughput: flightbatch's compute kernel against scipy.

Builds bench/welchbench with `go build`, runs it in `-mode bench` (one
goroutine, GOMAXPROCS=1), and times scipy.signal.welch on the same workload
(64 float64 records of 60000 samples, hann window, default noverlap) pinned to
one CPU, as one call over the whole 2-D array (scipy's fastest way) and as one
call per record. Prints a table of Msamples per CPU second (CPU time is less
disturbed than wall time by other work on the machine) and the ratio of
flightbatch to scipy's 2-D call. A last row times multitaper (MNE's defaults:
NW 4, low_bias, the whole 60000-sample record) against
mne.time_frequency.psd_array_multitaper on the same 2-D array, one core.

Usage: python bench/psd_vs_scipy.py [--seconds S] [--nperseg 256 1024 4096]
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.signal  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
RECORDS, LENGTH, FS = 64, 60000, 250.0


def time_scipy(x, nperseg, seconds, per_record):
    def once():
        if per_record:
            for row in x:
                scipy.signal.welch(row, fs=FS, nperseg=nperseg)
        else:
            scipy.signal.welch(x, fs=FS, nperseg=nperseg, axis=-1)

    once()  # warm up
    passes, start, cpu0 = 0, time.perf_counter(), time.process_time()
    while True:
        once()
        passes += 1
        el = time.perf_counter() - start
        if el >= seconds:
            return passes * x.size / (time.process_time() - cpu0)


def time_mne_multitaper(x, seconds):
    import mne

    def once():
        mne.time_frequency.psd_array_multitaper(x, FS, n_jobs=1, verbose="error")

    once()  # warm up
    passes, start, cpu0 = 0, time.perf_counter(), time.process_time()
    while True:
        once()
        passes += 1
        if time.perf_counter() - start >= seconds:
            return passes * x.size / (time.process_time() - cpu0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--nperseg", type=int, nargs="+", default=[256, 1024, 4096])
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory() as tmp:
        exe = pathlib.Path(tmp) / "welchbench"
        subprocess.run(["go", "build", "-o", str(exe), "./bench/welchbench"], cwd=REPO, check=True)
        x = np.random.default_rng(1).standard_normal((RECORDS, LENGTH))
        print(f"scipy {scipy.__version__}, numpy {np.__version__}; {RECORDS} records x {LENGTH} samples, "
              f"hann, noverlap = nperseg/2, one core")
        print(f"{'nperseg':>8} {'flightbatch':>12} {'scipy 2-D':>10} {'scipy/rec':>10} {'ratio':>6}  (Msamples per CPU second)")
        for nperseg in args.nperseg:
            out = subprocess.run([str(exe), "-mode", "bench", "-nperseg", str(nperseg), "-seconds",
                                  str(args.seconds), "-records", str(RECORDS), "-length", str(LENGTH)],
                                 check=True, capture_output=True, text=True).stdout
            fb = json.loads(out)["samples_per_cpu_second"] / 1e6
            sp = time_scipy(x, nperseg, args.seconds, per_record=False) / 1e6
            spr = time_scipy(x, nperseg, args.seconds, per_record=True) / 1e6
            print(f"{nperseg:>8} {fb:>12.1f} {sp:>10.1f} {spr:>10.1f} {fb / sp:>6.2f}")
        out = subprocess.run([str(exe), "-mode", "bench", "-method", "multitaper", "-seconds", str(args.seconds),
                              "-records", str(RECORDS), "-length", str(LENGTH)],
                             check=True, capture_output=True, text=True).stdout
        fb = json.loads(out)["samples_per_cpu_second"] / 1e6
        mn = time_mne_multitaper(x, args.seconds) / 1e6
        print(f"{'multitaper':>10} {fb:>10.1f} {'MNE ' + format(mn, '.1f'):>10} {'':>10} {fb / mn:>6.2f}  (vs MNE psd_array_multitaper, 2-D)")


if __name__ == "__main__":
    main()
