"""Plots of PSD results with matplotlib (an optional dependency, imported when a plot is drawn).

    import flightbatch.plot
    flightbatch.plot.psd(job, by="patient_id", bands={"beta": (13, 30)})
    flightbatch.plot.band_power(job, "beta", by="patient_id")

``result`` is a :class:`flightbatch.Job` (its result is read), a pyarrow Table, or a pandas or
polars DataFrame with ``freqs`` and ``psd`` list columns, as a psd job returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._provenance import freqs, provenance

BandSpec = Mapping[str, Sequence[float]]


def psd(
    result: Any,
    by: str | None = None,
    bands: BandSpec | None = None,
    log: bool = True,
    *,
    fmax: float | None = None,
    ax: Any = None,
) -> Any:
    """Mean spectrum per group of ``by`` (one line each; all records if None), bands shaded.

    Args:
        result: a psd job's result (Job, pyarrow Table, pandas or polars DataFrame).
        by: a column to group records by, e.g. ``"patient_id"`` or ``"channel"``.
        bands: frequency bands to shade and label, e.g. ``{"beta": (13, 30)}``.
        log: a logarithmic power axis.
        fmax: the highest frequency shown (default: all).
        ax: the matplotlib Axes to draw on (default: a new figure's).

    Records whose spectra lie on another frequency grid than the group's first are interpolated
    onto it. Returns the Axes.
    """
    import matplotlib.pyplot as plt

    table = _table(result)
    freqs_col, psd_col = _need(table, "freqs"), _need(table, "psd")
    groups = _groups(table, by)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for label, rows in groups:
        grid, mean = _mean_spectrum(freqs_col, psd_col, rows)
        if grid is None:
            continue
        keep = grid <= fmax if fmax is not None else np.ones(len(grid), bool)
        ax.plot(grid[keep], mean[keep], label=str(label) if by else "mean", lw=1.3)
    if log:
        ax.set_yscale("log")
    for i, (name, (lo, hi)) in enumerate((bands or {}).items()):
        ax.axvspan(lo, hi, color=f"C{(i + 3) % 10}", alpha=0.15, lw=0)
        ax.text((lo + hi) / 2, 0.98, name, transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=9)
    if fmax is not None:
        ax.set_xlim(left=0, right=fmax)
    unit = _unit(table, "psd")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel(f"PSD ({unit})" if unit else "PSD")
    if by:
        ax.legend(title=by, fontsize=8, ncol=2 if len(groups) > 6 else 1)
    return ax


def band_power(
    result: Any,
    band: str | tuple[float, float],
    by: str | None = None,
    *,
    ax: Any = None,
) -> Any:
    """Band power per record, one box (with the records as points) per group of ``by``.

    ``band`` names a ``<band>_power`` column of the result, or is a ``(low, high)`` range in Hz
    integrated from ``psd`` by the trapezoid rule (as the server computes band power). Returns the
    Axes.
    """
    import matplotlib.pyplot as plt

    table = _table(result)
    if isinstance(band, str):
        values = np.asarray(_need(table, f"{band}_power").to_numpy(zero_copy_only=False), dtype=float)
        title = band
        unit = _unit(table, f"{band}_power")
    else:
        lo, hi = band
        values = _band_from_psd(_need(table, "freqs"), _need(table, "psd"), lo, hi)
        title = f"{lo:g}–{hi:g} Hz"
        unit = _unit(table, "psd")
        unit = unit[: -len("/Hz")] if unit and unit.endswith("/Hz") else None
    groups = _groups(table, by)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4, 0.8 * len(groups) + 2), 4))
    data = [values[rows][np.isfinite(values[rows])] for _, rows in groups]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(groups) + 1), [str(g) for g, _ in groups], rotation=30 if len(groups) > 6 else 0)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=8, alpha=0.5, color="C0")
    ax.set_ylabel(f"{title} power ({unit})" if unit else f"{title} power")
    if by:
        ax.set_xlabel(by)
    return ax


def _table(result: Any) -> pa.Table:
    table = _as_table(result)
    shared = freqs(table)
    if shared is not None and "freqs" not in table.column_names and "psd" in table.column_names:
        # shared_freqs: the axis is kept once in the schema; give every computed row its copy.
        valid = table.column("psd").is_valid().to_numpy(zero_copy_only=False)
        col = pa.array([shared if v else None for v in valid], pa.list_(pa.float64()))
        table = table.append_column("freqs", col)
    return table


def _as_table(result: Any) -> pa.Table:
    if isinstance(result, pa.Table):
        return result
    to_arrow = getattr(result, "to_arrow", None)  # Job, polars DataFrame
    if callable(to_arrow):
        return to_arrow()
    if type(result).__module__.split(".")[0] == "pandas":
        return pa.Table.from_pandas(result, preserve_index=False)
    raise TypeError(f"cannot plot a {type(result).__name__}: give a Job, a pyarrow Table or a DataFrame")


def _need(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise ValueError(f"the result has no column {name!r}; its columns are {', '.join(table.column_names)}")
    return table.column(name)


def _groups(table: pa.Table, by: str | None) -> list[tuple[Any, np.ndarray]]:
    if by is None:
        return [("all", np.arange(table.num_rows))]
    keys = np.asarray(_need(table, by).to_numpy(zero_copy_only=False), dtype=object)
    out = []
    for k in sorted({k for k in keys}, key=lambda x: (x is None, str(x))):
        out.append((k, np.flatnonzero(keys == k)))
    return out


def _rows(col: pa.ChunkedArray, rows: np.ndarray) -> list[np.ndarray | None]:
    taken = col.take(pa.array(rows, pa.int64()))
    out: list[np.ndarray | None] = []
    for chunk in taken.chunks:
        chunk = chunk.cast(pa.list_(pa.float64())) if not pa.types.is_list(chunk.type) else chunk
        offsets = chunk.offsets.to_numpy()
        values = pc.list_flatten(chunk).to_numpy(zero_copy_only=False) if len(chunk) else np.array([])
        base = offsets[0] if len(offsets) else 0
        for i in range(len(chunk)):
            out.append(None if not chunk[i].is_valid else values[offsets[i] - base : offsets[i + 1] - base])
    return out


def _mean_spectrum(freqs: pa.ChunkedArray, psd: pa.ChunkedArray, rows: np.ndarray):
    fs, ps = _rows(freqs, rows), _rows(psd, rows)
    pairs = [(f, p) for f, p in zip(fs, ps) if f is not None and p is not None and len(f)]
    if not pairs:
        return None, None
    grid = pairs[0][0]
    stack = [p if len(f) == len(grid) and np.array_equal(f, grid) else np.interp(grid, f, p) for f, p in pairs]
    return grid, np.nanmean(np.vstack(stack), axis=0)


def _band_from_psd(freqs: pa.ChunkedArray, psd: pa.ChunkedArray, lo: float, hi: float) -> np.ndarray:
    rows = np.arange(len(freqs))
    out = np.full(len(rows), np.nan)
    for i, (f, p) in enumerate(zip(_rows(freqs, rows), _rows(psd, rows))):
        if f is not None and p is not None:
            m = (f >= lo) & (f <= hi)
            out[i] = np.trapezoid(p[m], f[m])
    return out


def _unit(table: pa.Table, column: str) -> str | None:
    prov = provenance(table)
    unit = prov.units.get(column) if prov else None
    if unit and "[unit]" in unit:
        if "unit" not in table.column_names:
            return None
        distinct = {u for u in table.column("unit").to_pylist() if u}
        if len(distinct) != 1:
            return None
        unit = unit.replace("[unit]", distinct.pop())
    return unit
