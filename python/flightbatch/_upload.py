"""Turning what a notebook holds (DataFrames, Arrow tables, numpy arrays, MNE objects) into the
Arrow table an upload sends."""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

#: The columns of a recording dataset, in order: one row per channel and epoch.
RECORDING_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("epoch", pa.int64(), nullable=False),
        pa.field("start_time", pa.timestamp("us", tz="UTC")),
        pa.field("unit", pa.string()),
        pa.field("fs", pa.float64(), nullable=False),
        pa.field("samples", pa.list_(pa.float64()), nullable=False),
    ]
)

# MNE's FIFF unit codes of the data get_data() returns (SI units).
_FIFF_UNITS = {107: "V", 112: "T", 201: "T/m", 202: "Am", 108: "K", 0: "", -1: ""}


def to_table(
    obj: Any,
    *,
    fs: float | None = None,
    ch_names: Sequence[str] | None = None,
    unit: str | Sequence[str] | None = None,
    epoch_s: float | None = None,
    file: str | None = None,
    start_time: dt.datetime | None = None,
    default_file: str = "",
) -> pa.Table:
    """The Arrow table to upload for obj (see :meth:`flightbatch.Client.upload`)."""
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    if isinstance(obj, pa.RecordBatchReader):
        return obj.read_all()
    mod = type(obj).__module__.split(".")[0]
    if mod == "pandas":
        return pa.Table.from_pandas(obj, preserve_index=False)
    if mod == "polars":
        return obj.to_arrow()
    if mod == "mne":
        return _from_mne(obj, ch_names=ch_names, unit=unit, epoch_s=epoch_s, file=file)
    if isinstance(obj, np.ndarray):
        if fs is None:
            raise ValueError("a numpy array needs fs, its sampling rate in Hz")
        return recording_table(
            obj,
            fs=fs,
            ch_names=ch_names,
            unit=unit,
            epoch_s=epoch_s,
            file=file or default_file,
            start_time=start_time,
        )
    raise TypeError(
        f"cannot upload a {type(obj).__module__}.{type(obj).__name__}: give a pandas or polars "
        "DataFrame, a pyarrow Table, a numpy array (epochs, channels, times) with fs, or an MNE "
        "Raw or Epochs"
    )


def recording_table(
    data: np.ndarray,
    *,
    fs: float,
    ch_names: Sequence[str] | None = None,
    unit: str | Sequence[str] | None = None,
    epoch_s: float | None = None,
    file: str = "",
    start_time: dt.datetime | None = None,
    epoch_starts: Sequence[float] | None = None,
) -> pa.Table:
    """Rows of the recording layout from samples of shape (epochs, channels, times) or (channels, times).

    A 2-D array is one continuous recording: with ``epoch_s`` it is cut into epochs of that many
    seconds (a last, shorter remainder is dropped, as MNE's fixed-length epochs do), otherwise it is
    one epoch. ``epoch_starts`` gives each epoch's start in seconds after ``start_time``.
    """
    if not (isinstance(fs, (int, float)) and math.isfinite(fs) and fs > 0):
        raise ValueError(f"fs must be a positive number of Hz, got {fs!r}")
    data = np.asarray(data)
    if data.ndim == 2:
        n_ch, n_t = data.shape
        if epoch_s:
            per = int(round(epoch_s * fs))
            if per <= 0:
                raise ValueError(f"epoch_s {epoch_s} is shorter than one sample at {fs} Hz")
            n_ep = n_t // per
            if n_ep == 0:
                raise ValueError(f"the recording ({n_t} samples) is shorter than one epoch of {epoch_s} s")
            data = data[:, : n_ep * per].reshape(n_ch, n_ep, per).transpose(1, 0, 2)
            if epoch_starts is None:
                epoch_starts = [e * per / fs for e in range(n_ep)]
        else:
            data = data[np.newaxis]
    if data.ndim != 3:
        raise ValueError(f"samples must have shape (epochs, channels, times) or (channels, times), not {data.shape}")
    n_ep, n_ch, n_t = data.shape
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise ValueError(f"samples must be real numbers, not {data.dtype}")
    if ch_names is None:
        ch_names = [f"ch{i}" for i in range(n_ch)]
    ch_names = [str(c) for c in ch_names]
    if len(ch_names) != n_ch:
        raise ValueError(f"ch_names has {len(ch_names)} names for {n_ch} channels")
    units: list[str | None]
    if unit is None or isinstance(unit, str):
        units = [unit] * n_ch
    else:
        units = [None if u is None else str(u) for u in unit]
        if len(units) != n_ch:
            raise ValueError(f"unit has {len(units)} units for {n_ch} channels")
    if epoch_starts is None:
        epoch_starts = [e * n_t / fs for e in range(n_ep)]

    rows = n_ep * n_ch
    values = np.ascontiguousarray(data, dtype=np.float64).reshape(-1)
    offsets = np.arange(0, rows * n_t + 1, n_t, dtype=np.int32 if rows * n_t < 2**31 else np.int64)
    list_type = pa.list_(pa.float64()) if offsets.dtype == np.int32 else pa.large_list(pa.float64())
    samples = (pa.ListArray if offsets.dtype == np.int32 else pa.LargeListArray).from_arrays(
        pa.array(offsets), pa.array(values)
    )
    if start_time is None:
        starts = pa.nulls(rows, pa.timestamp("us", tz="UTC"))
    else:
        if start_time.tzinfo is None:
            start_time = start_time.replace(tzinfo=dt.timezone.utc)
        t0 = start_time.astimezone(dt.timezone.utc)
        starts = pa.array(
            [t0 + dt.timedelta(seconds=float(epoch_starts[e])) for e in range(n_ep) for _ in range(n_ch)],
            pa.timestamp("us", tz="UTC"),
        )
    fields = list(RECORDING_SCHEMA)
    distinct = {u for u in units if u}
    if len(distinct) == 1 and None not in units and "" not in units:
        # One unit for every row: say so on the signal column too, so results carry it.
        fields[6] = fields[6].with_metadata({"unit": distinct.pop()})
    if list_type != fields[6].type:
        fields[6] = pa.field("samples", list_type, nullable=False, metadata=fields[6].metadata)
    md = {"flightbatch.recording.epoch_s": str(float(epoch_s or 0))}
    return pa.Table.from_arrays(
        [
            pa.array([file] * rows, pa.string()),
            pa.array([c for _ in range(n_ep) for c in ch_names], pa.string()),
            pa.array(np.repeat(np.arange(n_ep, dtype=np.int64), n_ch)),
            starts,
            pa.array([u for _ in range(n_ep) for u in units], pa.string()),
            pa.array(np.full(rows, float(fs))),
            samples,
        ],
        schema=pa.schema(fields, metadata=md),
    )


def _from_mne(
    obj: Any,
    *,
    ch_names: Sequence[str] | None,
    unit: str | Sequence[str] | None,
    epoch_s: float | None,
    file: str | None,
) -> pa.Table:
    import mne  # noqa: F401  (an optional dependency: needed only here)

    kind = type(obj).__name__
    info = obj.info
    fs = float(info["sfreq"])
    names = list(ch_names) if ch_names is not None else list(obj.ch_names)
    units = unit if unit is not None else [_FIFF_UNITS.get(int(ch["unit"]), None) or None for ch in info["chs"]]
    meas = info.get("meas_date")
    if hasattr(obj, "get_data") and hasattr(obj, "events") and hasattr(obj, "tmin"):  # Epochs
        # meas_date is the time of sample 0; events count samples from there.
        starts = [int(ev[0]) / fs + float(obj.tmin) for ev in obj.events]
        return recording_table(
            obj.get_data(), fs=fs, ch_names=names, unit=units, file=file or _mne_file(obj),
            start_time=meas, epoch_starts=starts,
        )
    if hasattr(obj, "get_data") and hasattr(obj, "first_samp"):  # Raw
        data = obj.get_data()
        name = file or _mne_file(obj)
        t0 = meas + dt.timedelta(seconds=obj.first_samp / fs) if meas is not None else None
        return recording_table(data, fs=fs, ch_names=names, unit=units, epoch_s=epoch_s, file=name, start_time=t0)
    raise TypeError(f"cannot upload an MNE {kind}: give a Raw or an Epochs")


def _mne_file(obj: Any) -> str:
    for attr in ("filenames", "filename"):
        value = getattr(obj, attr, None)
        if isinstance(value, (list, tuple)):
            value = next((v for v in value if v), None)
        if value:
            return os.path.basename(str(value))
    return ""
