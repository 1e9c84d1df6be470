"""What the benchmarks share: the binary, the demo dataset, servers, CPU accounting, A/B runs, checks.

Every benchmark in bench/ follows the same rules, kept here so that they cannot drift apart:

- sides are run interleaved (A B, then B A, ...) after one untimed warm-up run of each, so that
  drift on the machine and cold caches fall on both sides alike (`interleave`);
- each run records wall seconds and CPU seconds of every process that did the work: a server with
  its child processes (`ProcTree`: user + system time of the process, of its live descendants and of
  the children it has reaped), the benchmark's own process, and worker pools started from it;
- every run's output is checked against a reference (`check_close`, `check_tables`); a failed check
  stops the benchmark with exit status 3 (`CheckFailed`);
- figures are medians with the minimum beside them, and each ratio is printed on a line of its own,
  `RATIO <name>: <value>` (`ratio`), which bench/run_all.py collects into its summary.

`$FLIGHTBATCH_BENCH_SKEW` exists for the benchmarks' own tests only: a number by which the
flightbatch side's output is scaled (by 1 + SKEW) before each check, to show that the checks fail
when the outputs differ. Leave it unset.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import psutil

REPO = pathlib.Path(__file__).resolve().parents[1]
LISTEN_RE = re.compile(r"^(?:flightbatch|pyarrow) listening on grpc://(127\.0\.0\.1:\d+)$")
SKEW = float(os.environ.get("FLIGHTBATCH_BENCH_SKEW") or 0)


# ---------------------------------------------------------------------------------------------
# Setup


def flightbatch_binary(tmp: pathlib.Path, given: str | None) -> pathlib.Path:
    """The binary given (--bin / $FLIGHTBATCH_BIN), or one built into tmp."""
    if given:
        return pathlib.Path(given).resolve()
    binary = tmp / "flightbatch"
    subprocess.run(["go", "build", "-o", str(binary), "./cmd/flightbatch"], cwd=REPO, check=True)
    return binary


def gen_demo(binary: pathlib.Path, store: pathlib.Path, mb: int, shards: int) -> list[pathlib.Path]:
    """Writes the demo dataset into the file store at store; returns its shard files."""
    subprocess.run([str(binary), "gen", "--store", f"file://{store}", "--mb", str(mb),
                    "--shards", str(shards)], check=True, stdout=subprocess.DEVNULL)
    return sorted((store / "datasets" / "demo").glob("part-*.arrow"))


def loadavg() -> str:
    """The machine's load average over 1, 5 and 15 minutes, as uptime prints it."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def preamble(title: str) -> None:
    """Prints what a reader needs to weigh the figures: the command, the machine, its load."""
    print(f"== {title}")
    print(f"command: {shlex.join([pathlib.Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {os.cpu_count()} CPUs, load average {loadavg()} (1, 5, 15 min) at start; "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", flush=True)


def postamble() -> None:
    print(f"load average {loadavg()} at end", flush=True)


# ---------------------------------------------------------------------------------------------
# CPU accounting


class ProcTree:
    """CPU seconds (user + system) used by a process and everything it started.

    The sum over the process and its live descendants of their own time and of the time of the
    children each has reaped, so a child process that has ended (a `flightbatch worker`) still
    counts once its parent has waited for it. Take the difference of two readings.
    """

    def __init__(self, pid: int, exclude: Callable[[], set[int]] | None = None):
        self.proc = psutil.Process(pid)
        self.exclude = exclude or (lambda: set())

    def cpu(self) -> float:
        skip = self.exclude()
        total = 0.0
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return float("nan")
        seen_skip: set[int] = set()
        for p in procs:
            if p.pid in skip or p.pid in seen_skip:
                continue
            try:
                t = p.cpu_times()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            total += t.user + t.system + t.children_user + t.children_system
        return total


def tree_pids(pid: int) -> set[int]:
    """The process and its live descendants."""
    try:
        p = psutil.Process(pid)
        return {pid, *(c.pid for c in p.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy (not idle, not waiting for I/O), /proc/stat."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0) + getattr(t, "steal", 0)


# ---------------------------------------------------------------------------------------------
# Servers


class Server:
    """A server process that prints one `... listening on grpc://ADDR` line when ready."""

    def __init__(self, argv: list[str], log: pathlib.Path, env: dict[str, str] | None = None):
        import pyarrow.flight as flight

        with open(log, "ab") as errf:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=errf, env=env)
        line = self.proc.stdout.readline().decode().strip()
        m = LISTEN_RE.match(line)
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"server did not start: {line!r}; see {log}")
        self.addr = m.group(1)
        self.client = flight.connect(f"grpc://{self.addr}")
        self.tree = ProcTree(self.proc.pid)

    def cpu(self) -> float:
        """CPU seconds of the server and its children so far."""
        return self.tree.cpu()

    def status(self, key: str) -> float:
        """A /proc/<pid>/status memory field (VmHWM, RssAnon, ...) in MiB."""
        for line in pathlib.Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no {key} in /proc/{self.proc.pid}/status")

    def stop(self) -> None:
        try:
            self.client.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serve_flightbatch(binary: pathlib.Path, store: pathlib.Path, log: pathlib.Path, *flags: str) -> Server:
    """`flightbatch serve` on a free port over the file store at store."""
    return Server([str(binary), "serve", "--addr", "127.0.0.1:0", "--store", f"file://{store}",
                   "--log-level", "warn", *flags], log)


def action(client, kind: str, body: dict) -> dict:
    """One Flight action with a JSON body and a JSON answer."""
    import pyarrow.flight as flight

    res = next(iter(client.do_action(flight.Action(kind, json.dumps(body).encode()))))
    return json.loads(res.body.to_pybytes())


def run_job(client, body: dict, poll: float = 0.02, kind: str = "psd") -> tuple[str, float]:
    """Submits a job and waits for it as the Python client (`flightbatch.Job.wait`) does: `job-wait`
    calls the server holds up to 1 s each, answered as soon as the job ends; a server without
    job-wait (an older binary) is polled with job-status every `poll` s. Returns (job id, wall
    seconds from submitting to SUCCEEDED). Raises if the job did not succeed."""
    import pyarrow as pa

    t0 = time.perf_counter()
    job_id = action(client, kind, body)["job_id"]
    held = True
    while True:
        if held:
            try:
                st = action(client, "job-wait", {"job_id": job_id, "timeout_s": 1.0})
            except pa.ArrowNotImplementedError:
                held = False
                continue
        else:
            st = action(client, "job-status", {"job_id": job_id})
        if st["state"] not in ("SUBMITTED", "RUNNING"):
            break
        if not held:
            time.sleep(poll)
    wall = time.perf_counter() - t0
    if st["state"] != "SUCCEEDED":
        raise RuntimeError(f"job {job_id} ended {st['state']}: {st.get('error')}")
    return job_id, wall


def job_side(name: str, binary: pathlib.Path, store: pathlib.Path, log: pathlib.Path, flags: list[str],
             body: dict, ref: dict) -> Callable[[], "Run"]:
    """One side of a job benchmark: each call starts `flightbatch serve <flags>` on the store, runs
    the job (`run_job`), reads its result, stops the server and deletes the store's jobs. The Run's
    wall is submit to SUCCEEDED; its CPU is the server's with its worker children; extra
    machine_cpu is what the whole machine spent meanwhile (children an executor starts elsewhere,
    such as Slurm's, count only there). The first result becomes ref["table"]; every later one is
    checked equal to it."""

    def run() -> Run:
        srv = serve_flightbatch(binary, store, log, *flags)
        try:
            c0, m0 = srv.cpu(), machine_cpu()
            job_id, wall = run_job(srv.client, body)
            server_cpu, mach = srv.cpu() - c0, machine_cpu() - m0
            table = do_get(srv.client, f"jobs/{job_id}")
        finally:
            srv.stop()
            shutil.rmtree(store / "jobs", ignore_errors=True)  # keep the store from growing
        if "table" not in ref:
            ref["table"] = table
        else:
            check_tables(f"{name}: the job's result against the first run's", table, ref["table"])
        return Run(wall, server_cpu, {"machine_cpu": mach, "rows": table.num_rows})

    return run


def do_get(client, ticket: str):
    """DoGet a ticket into a pyarrow Table."""
    import pyarrow.flight as flight

    return client.do_get(flight.Ticket(ticket.encode())).read_all()


# ---------------------------------------------------------------------------------------------
# Interleaved runs


@dataclass
class Run:
    """One timed run: wall seconds, CPU seconds of everything that did the work, and extras
    (server CPU, bytes, ...)."""

    wall: float
    cpu: float
    extra: dict[str, float] = field(default_factory=dict)


def interleave(sides: dict[str, Callable[[], Run]], reps: int, warmup: int = 1,
               show: Callable[[str, Run], str] | None = None) -> dict[str, list[Run]]:
    """Runs every side `warmup` times untimed, then `reps` times each, interleaved: the order
    of the sides is reversed every other round. Prints each timed run; returns the runs by side."""
    names = list(sides)
    for w in range(warmup):
        for name in names:
            r = sides[name]()
            print(f"warm-up {w + 1}: {name:<14} {r.wall:7.3f} s wall (not counted)", flush=True)
    runs: dict[str, list[Run]] = {n: [] for n in names}
    for rep in range(reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            r = sides[name]()
            runs[name].append(r)
            more = f"  {show(name, r)}" if show else ""
            print(f"run {rep + 1}: {name:<14} {r.wall:7.3f} s wall  {r.cpu:7.3f} CPU-s{more}", flush=True)
    return runs


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def walls(runs: list[Run]) -> list[float]:
    return [r.wall for r in runs]


def cpus(runs: list[Run]) -> list[float]:
    return [r.cpu for r in runs]


def extras(runs: list[Run], key: str) -> list[float]:
    return [r.extra[key] for r in runs]


def summary_line(name: str, runs: list[Run], note: str = "") -> str:
    """`name  wall median (min)  CPU median (min)` for a side."""
    w, c = walls(runs), cpus(runs)
    return (f"{name:<14} wall median {med(w):7.3f} s (min {min(w):7.3f})   "
            f"CPU median {med(c):7.3f} s (min {min(c):7.3f}){'   ' + note if note else ''}")


def div(a: float, b: float) -> float:
    """a / b, NaN when b is 0 (a CPU time below the clock's tick in a tiny run)."""
    return a / b if b else float("nan")


def ratio(name: str, value: float, detail: str = "") -> None:
    """Prints one ratio as `RATIO <name>: <value>x  (<detail>)`; run_all.py collects these lines."""
    print(f"RATIO {name}: {value:.2f}x{'  (' + detail + ')' if detail else ''}", flush=True)


# ---------------------------------------------------------------------------------------------
# Output checks


class CheckFailed(AssertionError):
    """The two sides' outputs differ: the benchmark's figures would compare different work."""


def skewed(x: np.ndarray) -> np.ndarray:
    """The flightbatch side's numbers as the checks see them (scaled only under the test hook)."""
    return x * (1 + SKEW) if SKEW else x


def check_close(what: str, got, want, rtol: float = 1e-9, skew: bool = True) -> None:
    """Fails unless got equals want to rtol, NaN where want is NaN. skew: got is the flightbatch
    side's output (scaled under the test hook)."""
    got = np.asarray(got, dtype=np.float64)
    got = skewed(got) if skew else got
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise CheckFailed(f"{what}: shape {got.shape} against {want.shape}")
    try:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=0, equal_nan=True)
    except AssertionError as e:
        raise CheckFailed(f"{what}: outputs differ beyond rtol {rtol:g}\n{e}") from None


def check_tables(what: str, got, want, skew: bool = True) -> None:
    """Fails unless two pyarrow Tables hold the same rows (schema metadata and batch boundaries
    aside). skew: got is the flightbatch side's output; under the test hook its first floating
    point column is scaled first."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if SKEW and skew:
        for i, f in enumerate(got.schema):
            if pa.types.is_floating(f.type):
                got = got.set_column(i, f, pc.multiply(got.column(i), pa.scalar(1 + SKEW, f.type)))
                break
    if got.schema.remove_metadata() != want.schema.remove_metadata():
        raise CheckFailed(f"{what}: schemas differ:\n{got.schema}\nagainst\n{want.schema}")
    if not got.equals(want):
        raise CheckFailed(f"{what}: {got.num_rows} rows against {want.num_rows}, contents differ")


def main_guard(fn: Callable[[], int]) -> int:
    """Runs a benchmark's main; a failed output check exits with status 3 and says so."""
    try:
        return fn()
    except CheckFailed as e:
        print(f"OUTPUT CHECK FAILED: {e}", file=sys.stderr, flush=True)
        return 3
