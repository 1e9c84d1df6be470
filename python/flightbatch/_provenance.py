"""Reading the provenance a flightbatch result carries in its Arrow schema metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

#: Schema metadata keys of a job's result (all values are UTF-8 text).
KEY_JOB_ID = "flightbatch.job_id"
KEY_FUNCTION = "flightbatch.function"
KEY_PARAMS = "flightbatch.params"
KEY_DATASET = "flightbatch.dataset"
KEY_DATASET_VERSION = "flightbatch.dataset_version"
KEY_VERSION = "flightbatch.version"
KEY_UNITS = "flightbatch.units"
#: With ``shared_freqs=True``: every row's frequencies (Hz), a JSON array, instead of a column.
KEY_FREQS = "flightbatch.freqs"


@dataclass(frozen=True)
class Provenance:
    """Where a result came from, as recorded in its Arrow schema metadata.

    Attributes:
        job_id: the job that computed the result.
        function: the function the job ran (``"psd"`` or a registered function's name).
        params: the job's parameters, as the server recorded them (defaults filled in).
        dataset: the job's input: a dataset name, or ``"jobs/<id>"`` for a chained job.
        dataset_version: the version of the input the job read.
        version: the flightbatch server version that created the job.
        units: the physical unit of each result column the server knows one for, e.g.
            ``{"freqs": "Hz", "psd": "V²/Hz"}``. A unit written ``"[unit]²/Hz"`` refers to the
            per-row ``unit`` column: each row's value there, squared, per hertz.
    """

    job_id: str
    function: str
    params: dict[str, Any]
    dataset: str
    dataset_version: str
    version: str
    units: dict[str, str] = field(default_factory=dict)


def provenance(obj: pa.Schema | pa.Table | pa.RecordBatch | pa.RecordBatchReader | Any) -> Provenance | None:
    """The provenance recorded in a result's schema, or None if it carries none.

    ``obj`` is a pyarrow Schema, Table, RecordBatch or reader, a :class:`flightbatch.Job`, or a
    path of a Parquet or Arrow IPC file written from a result (by the client or by
    ``flightbatch get``)::

        flightbatch.provenance(pq.read_schema("beta.parquet")).params["nperseg"]
    """
    schema = _schema_of(obj)
    md = schema.metadata or {}
    if KEY_JOB_ID.encode() not in md:
        return None

    def text(key: str) -> str:
        return md.get(key.encode(), b"").decode()

    def obj_json(key: str) -> dict:
        raw = text(key)
        if not raw:
            return {}
        value = json.loads(raw)
        return value if isinstance(value, dict) else {}

    return Provenance(
        job_id=text(KEY_JOB_ID),
        function=text(KEY_FUNCTION),
        params=obj_json(KEY_PARAMS),
        dataset=text(KEY_DATASET),
        dataset_version=text(KEY_DATASET_VERSION),
        version=text(KEY_VERSION),
        units=obj_json(KEY_UNITS),
    )


def freqs(obj: pa.Schema | pa.Table | pa.RecordBatch | pa.RecordBatchReader | Any) -> np.ndarray | None:
    """The frequencies (Hz) shared by every row of a psd result made with ``shared_freqs=True``.

    Such a result has no ``freqs`` column; its schema metadata keeps the frequency axis once, and
    each row's ``psd`` holds the values at these frequencies, in order. None for a result with a
    ``freqs`` column. ``obj`` is anything :func:`provenance` takes::

        spectra = pd.DataFrame(np.vstack(df.psd), columns=flightbatch.freqs(job))
    """
    raw = (_schema_of(obj).metadata or {}).get(KEY_FREQS.encode())
    if raw is None:
        return None
    return np.asarray(json.loads(raw), dtype=np.float64)


def _schema_of(obj: Any) -> pa.Schema:
    if isinstance(obj, pa.Schema):
        return obj
    if isinstance(obj, (pa.Table, pa.RecordBatch, pa.RecordBatchReader)):
        return obj.schema
    schema = getattr(obj, "schema", None)  # a Job, a Dataset, a flight reader
    if isinstance(schema, pa.Schema):
        return schema
    if isinstance(obj, str) or hasattr(obj, "__fspath__"):
        path = str(obj)
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            return pq.read_schema(path)
        import pyarrow.ipc as ipc

        try:
            with ipc.open_file(path) as f:
                return f.schema
        except pa.ArrowInvalid:
            with ipc.open_stream(path) as s:
                return s.schema
    raise TypeError(f"cannot find an Arrow schema in {type(obj).__name__}")
