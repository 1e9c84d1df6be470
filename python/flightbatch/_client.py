"""The flightbatch client: a connection, datasets, jobs and their results."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.flight as flight

from ._provenance import Provenance, provenance
from ._provenance import freqs as _shared_freqs
from ._upload import to_table

if TYPE_CHECKING:  # pragma: no cover
    import polars

DEFAULT_ADDR = "grpc://127.0.0.1:8815"
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
_JOB_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$")
# A DoPut batch of about this many bytes: far under the server's receive limit.
_UPLOAD_BATCH_BYTES = 4 << 20
# Following parts, and waiting for a job on a server that cannot hold a job-wait call, polls
# job-status after 50 ms, then 1.5 times longer each time up to this: a job is seen to end on
# average half of it after it ends, and a job-status call costs the server a fraction of a
# millisecond.
_POLL_MAX_S = 0.2
# Waiting for a job holds a job-wait call on the server this long at most, which answers as soon
# as the job ends: short enough that Ctrl-C and a progress bar are never long unanswered.
_WAIT_HOLD_S = 1.0
_WAIT_HOLD_BAR_S = 0.25

DatasetLike = Union[str, "Dataset", "Job"]
"""Anything that names a job's input: a dataset name, a :class:`Dataset`, a :class:`Job`, a job ID
or ``"jobs/<id>"``."""


class JobError(RuntimeError):
    """A job ended FAILED or CANCELLED. ``status`` is its last ``job-status``."""

    def __init__(self, status: Mapping[str, Any]):
        self.status = dict(status)
        self.job_id: str = self.status.get("job_id", "")
        self.state: str = self.status.get("state", "")
        lines = [f"job {self.job_id} {self.state}"]
        if self.status.get("error"):
            lines[0] += f": {self.status['error']}"
        for f in self.status.get("failures") or []:
            errors = f.get("errors") or []
            last = errors[-1] if errors else ""
            lines.append(f"  shard {f.get('shard')}: {f.get('state')} after {f.get('attempts')} attempts: {last}")
        more = _failures_left_out(self.status)
        if more:
            lines.append(f"  and {more} more shards with failures, not listed")
        super().__init__("\n".join(lines))


def _failures_left_out(status: Mapping[str, Any]) -> int:
    """How many shards with failures a job-status left out of ``failures`` (it lists at most
    the first 100; ``failures_total`` counts them all)."""
    listed = len(status.get("failures") or [])
    return max(int(status.get("failures_total") or listed) - listed, 0)


class JobFailed(JobError):
    """A job ended FAILED: at least one shard failed every attempt (see :meth:`Job.failures`)."""


class JobCancelled(JobError):
    """A job ended CANCELLED."""


def connect(
    addr: str | None = None,
    token: str | bytes | None = None,
    tls_root_certs: str | bytes | os.PathLike | None = None,
    *,
    tls_cert: str | bytes | os.PathLike | None = None,
    tls_key: str | bytes | os.PathLike | None = None,
) -> Client:
    """Connect to a flightbatch server.

    Args:
        addr: ``grpc://host:port`` or ``grpc+tls://host:port`` (``host:port`` means ``grpc://``).
            Default: ``$FLIGHTBATCH_ADDR``, else ``grpc://127.0.0.1:8815``.
        token: bearer token of a server with authentication on. Default: ``$FLIGHTBATCH_TOKEN``.
        tls_root_certs: PEM certificates to trust for ``grpc+tls://`` (bytes, or a file path)
            when no system-trusted authority signed the server's certificate.
            Default: the file ``$FLIGHTBATCH_TLS_CA``, else the system's authorities.
        tls_cert, tls_key: a client certificate and its key (PEM bytes or file paths) for a
            server with mutual TLS. Default: the files ``$FLIGHTBATCH_TLS_CERT`` and
            ``$FLIGHTBATCH_TLS_KEY``.

    The same environment variables configure the ``flightbatch`` command line. The connection
    is lazy: the first call reaches the server.
    """
    return Client(addr, token=token, tls_root_certs=tls_root_certs, tls_cert=tls_cert, tls_key=tls_key)


class Client:
    """A connection to a flightbatch server; make one with :func:`flightbatch.connect`."""

    def __init__(
        self,
        addr: str | None = None,
        *,
        token: str | bytes | None = None,
        tls_root_certs: str | bytes | os.PathLike | None = None,
        tls_cert: str | bytes | os.PathLike | None = None,
        tls_key: str | bytes | os.PathLike | None = None,
    ):
        addr = addr or os.environ.get("FLIGHTBATCH_ADDR") or DEFAULT_ADDR
        if "://" not in addr:
            addr = "grpc://" + addr
        self.addr: str = addr
        """The server's address, with its scheme."""
        if token is None:
            token = os.environ.get("FLIGHTBATCH_TOKEN") or None
        headers = []
        if token:
            tok = token.encode() if isinstance(token, str) else token
            headers.append((b"authorization", b"Bearer " + tok))
        self._options = flight.FlightCallOptions(headers=headers)
        kwargs: dict[str, Any] = {}
        for arg, env, value in (
            ("tls_root_certs", "FLIGHTBATCH_TLS_CA", tls_root_certs),
            ("cert_chain", "FLIGHTBATCH_TLS_CERT", tls_cert),
            ("private_key", "FLIGHTBATCH_TLS_KEY", tls_key),
        ):
            if value is None:
                value = os.environ.get(env) or None
            if value is not None:
                kwargs[arg] = _pem(value)
        self._flight = flight.FlightClient(addr, **kwargs)
        # False once the server has said it has no job-wait action (an older server).
        self._job_wait = True

    # -- plumbing -------------------------------------------------------------------------

    @property
    def flight(self) -> flight.FlightClient:
        """The underlying ``pyarrow.flight.FlightClient`` (pass :attr:`call_options` to its calls)."""
        return self._flight

    @property
    def call_options(self) -> flight.FlightCallOptions:
        """The call options (the bearer token, if any) every call of this client carries."""
        return self._options

    def action(self, kind: str, body: Mapping[str, Any] | None = None) -> Any:
        """Run a flightbatch action: JSON body in, the JSON of its first result out."""
        payload = json.dumps(body or {}).encode()
        results = self._flight.do_action(flight.Action(kind, payload), self._options)
        for r in results:
            return json.loads(r.body.to_pybytes())
        raise RuntimeError(f"action {kind!r} returned no result")

    def close(self) -> None:
        """Close the connection."""
        self._flight.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"flightbatch.Client({self.addr!r})"

    def _read(self, ticket: str | bytes) -> flight.FlightStreamReader:
        t = ticket.encode() if isinstance(ticket, str) else ticket
        return self._flight.do_get(flight.Ticket(t), self._options)

    # -- datasets -------------------------------------------------------------------------

    def datasets(self) -> pd.DataFrame:
        """The server's datasets: one row each with ``name``, ``records``, ``bytes``, ``shards``, ``version``."""
        rows = []
        for info in self._flight.list_flights(b"", self._options):
            path = [p.decode() for p in info.descriptor.path]
            if len(path) != 2 or path[0] != "datasets":
                continue
            meta = _json_or_empty(info.app_metadata)
            rows.append(
                {
                    "name": path[1],
                    "records": info.total_records,
                    "bytes": info.total_bytes,
                    "shards": meta.get("shards", len(info.endpoints)),
                    "version": meta.get("version", ""),
                }
            )
        return pd.DataFrame(rows, columns=["name", "records", "bytes", "shards", "version"])

    def dataset(self, name: str) -> Dataset:
        """A dataset by name (its schema, rows and shards are fetched now)."""
        if isinstance(name, Dataset):
            name = name.name
        info = self._flight.get_flight_info(flight.FlightDescriptor.for_path("datasets", name), self._options)
        return Dataset(self, name, info)

    def upload(
        self,
        obj: Any,
        name: str,
        *,
        fs: float | None = None,
        ch_names: Sequence[str] | None = None,
        unit: str | Sequence[str] | None = None,
        epoch_s: float | None = None,
        file: str | None = None,
        start_time: dt.datetime | None = None,
    ) -> Dataset:
        """Upload data as a new dataset ``name`` and return it.

        ``obj`` may be:

        - a pandas or polars DataFrame, or a pyarrow Table: uploaded as it is (one row per record;
          the signal a list column);
        - a numpy array of shape (epochs, channels, times), or (channels, times) for one continuous
          recording, with ``fs`` in Hz and optionally ``ch_names``, ``unit`` (one for all channels,
          or one per channel), ``epoch_s`` (cut a continuous recording into epochs of that many
          seconds), ``file`` (the value of the ``file`` column) and ``start_time``;
        - an MNE ``Raw`` (cut into epochs of ``epoch_s`` seconds, default: the whole recording) or
          ``Epochs``: samples in the SI units MNE holds them in (volts for EEG/LFP), with each
          channel's unit, the measurement date as ``start_time`` and the file name as ``file``.

        Arrays and MNE objects become the recording layout: one row per channel and epoch with
        columns ``file``, ``channel``, ``epoch``, ``start_time``, ``unit``, ``fs`` and ``samples``
        (list<float64>). When every channel shares one unit, the ``samples`` field also carries it
        as field metadata ``unit``, so PSD results carry their unit.

        The server cuts the upload into shards; a dataset's name is never reused (an existing
        name is refused with ``ALREADY_EXISTS``).
        """
        table = to_table(
            obj, fs=fs, ch_names=ch_names, unit=unit, epoch_s=epoch_s, file=file,
            start_time=start_time, default_file=name,
        )
        desc = flight.FlightDescriptor.for_command(json.dumps({"path": f"datasets/{name}", "rows": table.num_rows}))
        per_row = table.nbytes / table.num_rows if table.num_rows else 1
        chunk = max(1, int(_UPLOAD_BATCH_BYTES // max(per_row, 1)))
        writer, reader = self._flight.do_put(desc, table.schema, self._options)
        with writer:
            writer.write_table(table, max_chunksize=chunk)
            writer.done_writing()
            reader.read()
        return self.dataset(name)

    # -- jobs -----------------------------------------------------------------------------

    def psd(
        self,
        dataset: DatasetLike,
        *,
        fs: float | None = None,
        fs_column: str | None = None,
        column: str | None = None,
        bands: Mapping[str, Sequence[float]] | None = None,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        reuse: bool = False,
        **welch: Any,
    ) -> Job:
        """Submit a Welch PSD job over every record of ``dataset``; returns at once.

        ``welch`` takes the parameters of ``scipy.signal.welch`` under its names (``nperseg``,
        ``noverlap``, ``window``, ``nfft``, ``detrend``, ``scaling``, ``average``, ...) and the
        server's extras (``relative``, ``fmin``, ``fmax``). Give ``fs`` (Hz) or ``fs_column``;
        with neither, each record's rate is read from its ``fs`` column. ``bands`` adds one
        ``<band>_power`` column per band, e.g. ``{"beta": (13, 30)}``. ``dataset`` may be a job
        (its result is the input; a :class:`Job` that has not finished is waited for first).
        ``labels`` and ``name`` tag the job in the history.
        """
        params: dict[str, Any] = {k: v for k, v in welch.items() if v is not None}
        if column is not None:
            params["column"] = column
        if fs is not None:
            params["fs"] = fs
        elif fs_column is not None:
            params["fs_column"] = fs_column
        else:
            params["fs_column"] = "fs"
        if bands:
            params["bands"] = {k: list(v) for k, v in bands.items()}
        return self._submit("psd", {"dataset": _dataset_ref(dataset, wait=True), **params}, name, labels, reuse)

    def run(
        self,
        function: str,
        dataset: DatasetLike,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        reuse: bool = False,
        **params: Any,
    ) -> Job:
        """Submit a job of a registered function (see :meth:`functions`) over ``dataset``.

        ``params`` are the function's own; ``dataset`` may be a job, as for :meth:`psd`.
        """
        body = {"function": function, "dataset": _dataset_ref(dataset, wait=True), "params": params}
        return self._submit("run", body, name, labels, reuse)

    def _submit(
        self, kind: str, body: dict[str, Any], name: str | None, labels: Mapping[str, str] | None, reuse: bool
    ) -> Job:
        if name is not None:
            body["name"] = name
        if labels:
            body["labels"] = {str(k): str(v) for k, v in labels.items()}
        if reuse:
            body["reuse"] = True
        resp = self.action(kind, body)
        return Job(self, resp["job_id"])

    def job(self, job: str | Job) -> Job:
        """A job by ID (or ``"jobs/<id>"``), or found by a lookup the server resolves to its ID:
        a job name (the newest SUCCEEDED job of that name), ``"latest"``, or
        ``"latest?dataset=demo&label=cohort=pd"`` (see the README's "Finding a result again")."""
        if isinstance(job, Job):
            return job
        ref = _job_id(job)
        if _JOB_ID_RE.match(ref):
            return Job(self, ref)
        info = self._flight.get_flight_info(flight.FlightDescriptor.for_path("jobs", ref), self._options)
        return Job(self, info.descriptor.path[1].decode())

    def jobs(
        self,
        dataset: DatasetLike | None = None,
        state: str | Sequence[str] | None = None,
        label: str | Mapping[str, str] | None = None,
        *,
        function: str | None = None,
        name: str | None = None,
        submitted_by: str | None = None,
        since: str | dt.datetime | None = None,
        until: str | dt.datetime | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """The job history, oldest first, as a DataFrame (one row per job).

        Filters (all must match): ``dataset`` (a name, or a job for the jobs chained on it),
        ``state`` (``"SUCCEEDED"``, or several), ``label`` (``"key=value"``, or a dict of labels
        that must all be on the job), ``function``, ``name``, ``submitted_by``, and ``since`` <=
        created_at < ``until`` (datetimes, or RFC 3339 text). ``limit`` keeps the newest
        ``limit`` jobs. The server filters; an older server that knows only the dataset filter
        gets the rest done here.
        """
        labels: dict[str, str] = {}
        if isinstance(label, str):
            key, sep, value = label.partition("=")
            if not sep:
                raise ValueError(f"label {label!r}: write it key=value")
            labels[key] = value
        elif label:
            labels = {str(k): str(v) for k, v in label.items()}
        states = [state] if isinstance(state, str) else list(state or [])
        states = [s.upper() for s in states]
        ds = _dataset_ref(dataset) if dataset is not None else None
        t0, t1 = _utc(since), _utc(until)

        body: dict[str, Any] = {}
        if ds:
            body["dataset"] = ds
        if states:
            body["state"] = states
        for key, value in (("labels", labels), ("function", function), ("name", name), ("submitted_by", submitted_by)):
            if value:
                body[key] = value
        if t0 is not None:
            body["since"] = t0.isoformat().replace("+00:00", "Z")
        if t1 is not None:
            body["until"] = t1.isoformat().replace("+00:00", "Z")
        if limit is not None and limit > 0:
            body.update(order="newest", limit=limit)
        try:
            jobs = self.action("list-jobs", body)["jobs"]
        except pa.ArrowInvalid:
            # A server that knows only the dataset filter: filter here.
            jobs = self.action("list-jobs", {"dataset": ds} if ds else {})["jobs"]

        def keep(j: Mapping[str, Any]) -> bool:
            created = _utc(j.get("created_at"))
            return (
                (not states or j.get("state") in states)
                and (not function or j.get("function") == function)
                and (not name or j.get("name") == name)
                and (not submitted_by or j.get("submitted_by") == submitted_by)
                and all((j.get("labels") or {}).get(k) == v for k, v in labels.items())
                and (not ds or j.get("dataset") == ds)
                and (t0 is None or (created is not None and created >= t0))
                and (t1 is None or (created is not None and created < t1))
            )

        jobs = sorted((j for j in jobs if keep(j)), key=lambda j: j.get("job_id", ""))
        if limit is not None:
            jobs = jobs[-limit:] if limit > 0 else []
        return _jobs_frame(jobs)

    def functions(self) -> pd.DataFrame:
        """The functions the server runs: ``name`` and ``description``."""
        fns = self.action("list-functions", {}).get("functions", [])
        return pd.DataFrame(fns, columns=["name", "description"])

    def sql(self, query: str, **tables: Any) -> pd.DataFrame:
        """Run DuckDB SQL over results and datasets; returns a pandas DataFrame.

        Each keyword names a table in the query: a :class:`Job` (its result), a :class:`Dataset`,
        or anything DuckDB scans (pyarrow Table, pandas or polars DataFrame)::

            fb.sql("SELECT patient_id, avg(beta_power) FROM r GROUP BY ALL", r=job)

        Needs the ``duckdb`` package.
        """
        import duckdb

        con = duckdb.connect()
        try:
            for name, obj in tables.items():
                if isinstance(obj, (Job, Dataset)):
                    obj = obj.to_arrow()
                con.register(name, obj)
            return con.sql(query).df()
        finally:
            con.close()


@dataclass
class Part:
    """One finished part of a job's result: the rows computed from one input shard."""

    shard: str
    """The input shard's name."""
    table: pa.Table
    """The part's rows (with the job's provenance in its schema metadata)."""

    def to_pandas(self) -> pd.DataFrame:
        """The part as a pandas DataFrame."""
        return self.table.to_pandas()


class Dataset:
    """A dataset on the server: :attr:`schema`, :attr:`rows`, :attr:`shards`, :meth:`head`."""

    def __init__(self, client: Client, name: str, info: flight.FlightInfo):
        self._client = client
        self.name: str = name
        """The dataset's name."""
        self.schema: pa.Schema = info.schema
        """Its Arrow schema."""
        self.rows: int = info.total_records
        """Its number of records (rows), or -1 if the server does not know."""
        self.bytes: int = info.total_bytes
        """Its size in bytes, or -1."""
        meta = _json_or_empty(info.app_metadata)
        self.version: str = meta.get("version", "")
        """Its version: changes whenever a shard changes."""
        self.shards: list[str] = [_json_or_empty(e.app_metadata).get("shard") or "" for e in info.endpoints]
        """Its shards' names, in order."""
        self._tickets = [e.ticket.ticket for e in info.endpoints]

    def __repr__(self) -> str:
        return f"<flightbatch.Dataset {self.name!r}: {self.rows} rows in {len(self.shards)} shards>"

    def head(self, n: int = 5) -> pd.DataFrame:
        """The first ``n`` rows, read from the first shards only."""
        batches: list[pa.RecordBatch] = []
        got = 0
        for ticket in self._tickets:
            reader = self._client._read(ticket)
            try:
                for chunk in reader:
                    batches.append(chunk.data)
                    got += chunk.data.num_rows
                    if got >= n:
                        break
            finally:
                reader.cancel()
            if got >= n:
                break
        table = pa.Table.from_batches(batches, schema=self.schema) if batches else self.schema.empty_table()
        return table.slice(0, n).to_pandas()

    def reader(self) -> pa.RecordBatchReader:
        """Stream the whole dataset, batch by batch."""
        return self._client._read(f"datasets/{self.name}").to_reader()

    def to_arrow(self) -> pa.Table:
        """The whole dataset as a pyarrow Table (mind its size)."""
        return self._client._read(f"datasets/{self.name}").read_all()

    def to_pandas(self) -> pd.DataFrame:
        """The whole dataset as a pandas DataFrame (mind its size)."""
        return self.to_arrow().to_pandas()


class Job:
    """A job on the server. Pass it wherever a dataset goes to chain on its result."""

    def __init__(self, client: Client, job_id: str):
        self._client = client
        self.id: str = job_id
        """The job's ID."""
        self._last: dict[str, Any] | None = None

    def __repr__(self) -> str:
        state = self._last["state"] if self._last else "?"
        return f"<flightbatch.Job {self.id} {state}>"

    def __str__(self) -> str:
        return self.id

    # -- state ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The job's ``job-status``: state, shard counts, progress, times, params, failures."""
        self._last = self._client.action("job-status", {"job_id": self.id})
        return self._last

    def _wait_step(self, hold: float) -> tuple[dict[str, Any], bool]:
        """The job's status once it has ended or ``hold`` seconds have passed, from the server's
        ``job-wait``; with False when the server could not wait (an older server, or too many
        waiting calls): then it is ``job-status`` at once, and the caller sleeps before asking again.
        """
        if self._client._job_wait:
            try:
                self._last = self._client.action("job-wait", {"job_id": self.id, "timeout_s": round(max(hold, 0.0), 3)})
                return self._last, True
            except pa.ArrowNotImplementedError:
                self._client._job_wait = False
            except pa.ArrowException as e:
                if "resource exhausted" not in str(e).lower():
                    raise
        return self.status(), False

    @property
    def state(self) -> str:
        """The job's state now: SUBMITTED, RUNNING, SUCCEEDED, FAILED or CANCELLED."""
        return self.status()["state"]

    def cancel(self) -> dict[str, Any]:
        """Cancel the job: its children stop and it ends CANCELLED. Returns its status."""
        self._last = self._client.action("cancel-job", {"job_id": self.id})
        return self._last

    def failures(self) -> pd.DataFrame:
        """The shards with failed attempts: ``shard``, ``state``, ``attempts``, ``error`` (the
        last), ``errors`` (every attempt's). Empty when nothing failed.

        The server lists at most the first 100 such shards, and cuts the middle out of an error
        longer than 2 KiB (the whole one is in the job's attempt records in the store):
        ``attrs["failures_total"]`` counts all the shards with failures, and
        ``attrs["cut"]`` is true when some were left out."""
        rows = []
        status = self.status()
        for f in status.get("failures") or []:
            errors = list(f.get("errors") or [])
            rows.append(
                {
                    "shard": f.get("shard"),
                    "state": f.get("state"),
                    "attempts": f.get("attempts"),
                    "error": errors[-1] if errors else "",
                    "errors": errors,
                }
            )
        df = pd.DataFrame(rows, columns=["shard", "state", "attempts", "error", "errors"])
        more = _failures_left_out(status)
        df.attrs["failures_total"] = len(rows) + more
        df.attrs["cut"] = more > 0
        return df

    def wait(self, timeout: float | None = None, progress: bool | None = None, *, raise_on_error: bool = True) -> Job:
        """Wait for the job to end; returns the job.

        Shows a progress bar of shards done (a widget in Jupyter, text on a terminal, nothing
        when neither: ``progress`` forces it on or off). Reading a result (``to_pandas()``...)
        waits the same way, with no bar for a job that had already ended. Interrupting (Ctrl-C,
        Jupyter's stop button) stops waiting and says how to cancel; the job goes on. Raises
        :class:`JobFailed` or :class:`JobCancelled` if the job did not succeed (unless
        ``raise_on_error`` is false), ``TimeoutError`` after ``timeout`` seconds.
        """
        return self._wait(timeout, progress, raise_on_error, explicit=True)

    def _wait(self, timeout: float | None, progress: bool | None, raise_on_error: bool, explicit: bool) -> Job:
        """wait(); ``explicit`` false (reading a result) shows no bar for a job already ended."""
        if self._last is not None and self._last.get("state") in TERMINAL_STATES:
            st = self._last  # an ended job never changes again
            if raise_on_error:
                _raise_for(st)
            return self
        auto = progress is None
        if auto:
            progress = _interactive()
        bar = None
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        first = True
        try:
            while True:
                # The server holds the call until the job ends (or hold passes): the end is
                # known at once, not at the next poll.
                hold = _WAIT_HOLD_BAR_S if progress else _WAIT_HOLD_S
                if deadline is not None:
                    hold = min(hold, deadline - time.monotonic())
                st, waited = self._wait_step(hold)
                shards = st.get("shards") or {}
                if first and auto and not explicit and st["state"] in TERMINAL_STATES:
                    progress = False  # reading an ended job's result: nothing to watch
                first = False
                if progress:
                    if bar is None:
                        bar = _progress_bar(total=shards.get("total", 0), desc=f"job {self.id}")
                    done = shards.get("succeeded", 0)
                    if done != bar.n:
                        bar.update(done - bar.n)
                    failed = shards.get("failed", 0)
                    bar.set_postfix_str(f"{st['state'].lower()}" + (f", {failed} failed" if failed else ""), refresh=False)
                    bar.refresh()
                if st["state"] in TERMINAL_STATES:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"job {self.id} is still {st['state']} after {timeout} s")
                if not waited:
                    time.sleep(delay)
                    delay = min(delay * 1.5, _POLL_MAX_S)
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
                bar = None
            print(
                f"Stopped waiting. Job {self.id} goes on running on the server; cancel it with "
                f"job.cancel(), fb.job({self.id!r}).cancel() or `flightbatch cancel {self.id}`.",
                file=sys.stderr,
                flush=True,
            )
            raise
        finally:
            if bar is not None:
                bar.close()
        if raise_on_error:
            _raise_for(st)
        return self

    # -- results --------------------------------------------------------------------------

    @property
    def schema(self) -> pa.Schema:
        """The result's Arrow schema, with the job's provenance in its metadata."""
        return self._client.flight.get_schema(flight.FlightDescriptor.for_path("jobs", self.id), self._client.call_options).schema

    def provenance(self) -> Provenance | None:
        """Where the result came from: job, function, parameters, dataset version, units."""
        return provenance(self.schema)

    def freqs(self) -> np.ndarray | None:
        """With ``shared_freqs=True``: the frequencies (Hz) of every row's ``psd``, else None."""
        return _shared_freqs(self.schema)

    def reader(self) -> pa.RecordBatchReader:
        """Wait for the job, then stream its merged result batch by batch (read it once)."""
        self._wait(None, None, True, explicit=False)
        return self._client._read(f"jobs/{self.id}").to_reader()

    def to_arrow(self) -> pa.Table:
        """Wait for the job, then its merged result as a pyarrow Table."""
        self._wait(None, None, True, explicit=False)
        return self._client._read(f"jobs/{self.id}").read_all()

    def to_pandas(self) -> pd.DataFrame:
        """Wait for the job, then its merged result as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def to_polars(self) -> polars.DataFrame:
        """Wait for the job, then its merged result as a polars DataFrame (needs polars)."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def to_parquet(self, path: str | os.PathLike) -> None:
        """Write the result to a Parquet file, provenance included (see :func:`flightbatch.provenance`)."""
        import pyarrow.parquet as pq

        pq.write_table(self.to_arrow(), path)

    def parts(self, timeout: float | None = None) -> Iterator[Part]:
        """Yield each finished part of the result as soon as it lands, while the job runs.

        Parts come in the order they finish, not in input order; together they hold the whole
        result. Raises :class:`JobFailed` or :class:`JobCancelled` after the last finished part
        if the job did not succeed.
        """
        seen: set[bytes] = set()
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            st = self.status()  # before listing parts: a job seen ended has all its parts listed
            for ticket, shard in self._finished_parts():
                if ticket in seen:
                    continue
                seen.add(ticket)
                yield Part(shard=shard, table=self._client._read(ticket).read_all())
                delay = 0.05
            if st["state"] in TERMINAL_STATES:
                _raise_for(st)
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} is still {st['state']} after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, _POLL_MAX_S)

    def _finished_parts(self) -> list[tuple[bytes, str]]:
        desc = flight.FlightDescriptor.for_path("jobs", self.id, "shards")
        try:
            info = self._client.flight.get_flight_info(desc, self._client.call_options)
        except pa.ArrowInvalid:
            # FAILED_PRECONDITION: a function whose schema only its first part tells.
            return []
        return [(e.ticket.ticket, _json_or_empty(e.app_metadata).get("shard", "")) for e in info.endpoints]


def _raise_for(st: Mapping[str, Any]) -> None:
    if st.get("state") == "FAILED":
        raise JobFailed(st)
    if st.get("state") == "CANCELLED":
        raise JobCancelled(st)


def _job_id(job: str) -> str:
    job = str(job)
    return job[len("jobs/"):] if job.startswith("jobs/") else job


def _dataset_ref(ds: Any, wait: bool = False) -> str:
    if isinstance(ds, Job):
        if wait:
            ds.wait()  # the server takes only a succeeded job's result as an input
        return f"jobs/{ds.id}"
    if isinstance(ds, Dataset):
        return ds.name
    ds = str(ds)
    if _JOB_ID_RE.match(ds):
        return f"jobs/{ds}"
    return ds


def _pem(value: str | bytes | os.PathLike) -> bytes:
    """PEM bytes: given as such, as PEM text, or as a file's path."""
    if isinstance(value, bytes):
        return value
    text = os.fspath(value)
    if text.lstrip().startswith("-----BEGIN"):
        return text.encode()
    with open(text, "rb") as f:
        return f.read()


def _utc(t: str | dt.datetime | None) -> dt.datetime | None:
    """A time as an aware UTC datetime; naive datetimes are taken as UTC."""
    if t is None or t == "":
        return None
    if isinstance(t, str):
        t = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc)


def _json_or_empty(raw: bytes | None) -> dict:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


_JOB_COLUMNS = [
    "job_id", "name", "function", "dataset", "state", "progress", "shards", "succeeded", "failed",
    "labels", "params", "dataset_version", "submitted_by", "created_at", "started_at", "finished_at", "error",
]


def _jobs_frame(jobs: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for j in jobs:
        shards = j.get("shards") or {}
        rows.append(
            {
                "job_id": j.get("job_id"),
                "name": j.get("name") or None,
                "function": j.get("function"),
                "dataset": j.get("dataset"),
                "state": j.get("state"),
                "progress": j.get("progress"),
                "shards": shards.get("total"),
                "succeeded": shards.get("succeeded"),
                "failed": shards.get("failed"),
                "labels": j.get("labels") or {},
                "params": j.get("params") or {},
                "dataset_version": j.get("dataset_version"),
                "submitted_by": j.get("submitted_by") or None,
                "created_at": j.get("created_at"),
                "started_at": j.get("started_at"),
                "finished_at": j.get("finished_at"),
                "error": j.get("error") or None,
            }
        )
    df = pd.DataFrame(rows, columns=_JOB_COLUMNS)
    for c in ("created_at", "started_at", "finished_at"):
        df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
    return df


def _interactive() -> bool:
    """Whether a progress bar has someone to show it to: a Jupyter kernel or a terminal."""
    ip = sys.modules.get("IPython")
    if ip is not None:
        try:
            shell = ip.get_ipython()
        except Exception:  # pragma: no cover
            shell = None
        if shell is not None and "IPKernelApp" in getattr(shell, "config", {}):
            return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _progress_bar(total: int, desc: str) -> Any:
    """tqdm.auto's bar (a widget in Jupyter); text when Jupyter's widgets are not installed."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm.auto's "IProgress not found": we fall back below
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, desc=desc, unit="shard")
        except ImportError:  # tqdm.notebook without ipywidgets
            from tqdm.std import tqdm as text_tqdm

            return text_tqdm(total=total, desc=desc, unit="shard", file=sys.stderr)
