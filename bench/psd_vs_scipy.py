#!/usr/bin/env python3
"""Single-core PSD throughput: flightbatch's compute kernel against scipy and MNE on the same data.

Builds bench/welchbench with `go build` (or takes --welchbench), writes one workload (64 float64
records of 60000 samples, random normal, fixed seed) to a file, and for each row runs, pinned to
one CPU and interleaved (Go first in odd rounds, the reference first in even ones) after an untimed
warm-up run of each:

  flightbatch  `welchbench -mode bench` (GOMAXPROCS=1; one untimed pass, then passes over the
               records for --seconds), which reads the records from the file and writes its PSDs;
  reference    Welch rows: `scipy.signal.welch` over the whole 2-D array (hann, noverlap =
               nperseg/2; scipy's fastest way), passes for --seconds after one untimed pass;
               the multitaper row: `mne.time_frequency.psd_array_multitaper` on the same 2-D array
               (MNE's defaults: half-bandwidth 4, low_bias, normalization "length"; n_jobs=1).

Every run's PSDs are checked against the reference's: Welch at rtol 1e-9, multitaper at rtol 1e-7
(two DPSS eigen-solvers alone differ by up to ~1e-8). Prints Msamples per CPU second of each side
(median and best of the rounds; CPU time is less disturbed than wall time by other work on the
machine, and both sides run single-threaded), wall-clock throughput beside it, and the ratio of
the medians on a `RATIO` line per row.

Usage: python bench/psd_vs_scipy.py [--seconds 2] [--reps 3] [--nperseg 256 512 1024 4096]
                                    [--no-multitaper] [--quick] [--welchbench PATH]
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.signal  # noqa: E402

from benchlib import REPO, Run, check_close, interleave, main_guard, med, postamble, preamble, ratio  # noqa: E402

FS = 250.0


def timed_passes(once, seconds: float, samples: int) -> Run:
    """Runs once() for at least `seconds` after one untimed call; Run of seconds per pass, with
    the throughput in extra."""
    out = once()
    passes, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        once()
        passes += 1
        wall = time.perf_counter() - t0
        if wall >= seconds:
            break
    cpu = time.process_time() - c0
    return Run(wall / passes, cpu / passes, {"mps_cpu": passes * samples / cpu / 1e6,
                                             "mps_wall": passes * samples / wall / 1e6, "out": out})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per run")
    ap.add_argument("--reps", type=int, default=3, help="interleaved timed runs per side and row")
    ap.add_argument("--nperseg", type=int, nargs="+", default=[256, 512, 1024, 4096])
    ap.add_argument("--records", type=int, default=64)
    ap.add_argument("--length", type=int, default=60000)
    ap.add_argument("--no-multitaper", action="store_true", help="leave out the multitaper row (needs mne)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: --seconds 0.05 --reps 1 --nperseg 256, 4 records of 6000 samples")
    ap.add_argument("--welchbench", help="a built bench/welchbench (default: go build)")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.reps, args.records, args.length, args.nperseg = 0.05, 1, 4, 6000, [256]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # inherited by welchbench
    preamble("PSD kernel against scipy / MNE, one core")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        exe = pathlib.Path(args.welchbench) if args.welchbench else tmp / "welchbench"
        if not args.welchbench:
            subprocess.run(["go", "build", "-o", str(exe), "./bench/welchbench"], cwd=REPO, check=True)
        x = np.random.default_rng(1).standard_normal((args.records, args.length))
        x.astype("<f8").tofile(tmp / "x.bin")
        samples = x.size
        print(f"scipy {scipy.__version__}, numpy {np.__version__}; {args.records} records x {args.length} samples "
              f"(fs {FS:g}); one core; {args.reps} interleaved runs per side after a warm-up, "
              f"each at least {args.seconds:g} s", flush=True)

        rows: list[tuple[str, str, str, float, dict]] = []
        for nperseg in args.nperseg:
            rows.append((f"welch nperseg {nperseg}", "scipy", "welch", 1e-9,
                         {"nperseg": nperseg,
                          "ref": lambda n=nperseg: scipy.signal.welch(x, fs=FS, nperseg=n, axis=-1)[1]}))
        if not args.no_multitaper:
            import mne

            print(f"mne {mne.__version__}")
            rows.append(("multitaper", "MNE", "multitaper", 1e-7,
                         {"nperseg": 256, "ref": lambda: mne.time_frequency.psd_array_multitaper(
                             x, FS, n_jobs=1, verbose="error")[0]}))

        results = []
        for label, refname, method, rtol, p in rows:
            print(f"\n-- {label}: flightbatch against {refname}")
            ref_out: dict = {}

            def go_side(method=method, p=p, rtol=rtol, label=label) -> Run:
                out = tmp / "psd.bin"
                res = subprocess.run([str(exe), "-mode", "bench", "-method", method, "-nperseg", str(p["nperseg"]),
                                      "-seconds", str(args.seconds), "-records", str(args.records),
                                      "-length", str(args.length), "-in", str(tmp / "x.bin"), "-out", str(out)],
                                     check=True, capture_output=True, text=True).stdout
                r = json.loads(res)
                got = np.fromfile(out, dtype="<f8").reshape(args.records, -1)
                want = ref_out["psd"]
                check_close(f"{label}: flightbatch's PSDs against the reference's", got, want, rtol=rtol)
                return Run(r["seconds"] / r["passes"], r["cpu_seconds"] / r["passes"],
                           {"mps_cpu": r["samples_per_cpu_second"] / 1e6, "mps_wall": r["samples_per_second"] / 1e6})

            def ref_side(p=p) -> Run:
                r = timed_passes(p["ref"], args.seconds, samples)
                ref_out.setdefault("psd", r.extra.pop("out"))
                return r

            runs = interleave({"reference": ref_side, "flightbatch": go_side}, args.reps,
                              show=lambda n, r: f"per pass; {r.extra['mps_cpu']:.1f} Msamples per CPU-s")
            fb = [r.extra["mps_cpu"] for r in runs["flightbatch"]]
            rf = [r.extra["mps_cpu"] for r in runs["reference"]]
            fbw = [r.extra["mps_wall"] for r in runs["flightbatch"]]
            rfw = [r.extra["mps_wall"] for r in runs["reference"]]
            results.append((label, refname, med(fb), max(fb), med(rf), max(rf), med(fbw), med(rfw)))
            ratio(f"{label} kernel flightbatch/{refname} (one core, CPU)", med(fb) / med(rf),
                  f"{med(fb):.1f} / {med(rf):.1f} Msamples per CPU-s, medians; best {max(fb):.1f} / {max(rf):.1f}; "
                  f"PSDs equal at rtol {rtol:g} in every run")

        print(f"\n{'':<20} {'flightbatch':>21} {'reference':>27} {'ratio':>6}   Msamples per CPU second: median (best)")
        for label, refname, fbm, fbb, rfm, rfb, fbw, rfw in results:
            print(f"{label:<20} {fbm:>12.1f} ({fbb:6.1f}) {refname:>8} {rfm:>8.1f} ({rfb:6.1f}) {fbm / rfm:>6.2f}x"
                  f"   wall-clock: {fbw:.1f} against {rfw:.1f}")
    postamble()
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
