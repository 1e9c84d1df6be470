#!/usr/bin/env python3
"""A flightbatch function: the spectral peak and the aperiodic (1/f) slope of
every power spectrum in a psd job's result.

Run as a registered function (see docs/functions.md), it reads one shard as an
Arrow IPC stream on stdin and writes its result as an Arrow IPC stream on
stdout, batch by batch. Imported, `analyze(table, **params)` computes the same
on a pyarrow Table in a notebook.

For each row, over the frequencies f in [fmin, fmax] with a positive power p,
it fits the aperiodic component as a line in log-log space,

    log10 p = aperiodic_offset + aperiodic_slope * log10 f

by least squares (a 1/f^chi spectrum has slope -chi), and takes the peak as
the frequency where log10 p rises furthest above that line:

    peak_freq    the frequency of the peak, Hz
    peak_height  log10 p - fit at the peak (log10 of the power ratio)

A row whose spectrum is null, or has fewer than 3 usable frequencies in the
range, gets nulls. Every input column but `freqs` and `psd` (the metadata,
band powers included) is kept, in order, before the four new columns.

Params (JSON in FLIGHTBATCH_PARAMS): fmin (default 1.0), fmax (default 45.0),
keep_spectra (default false: drop the freqs and psd columns).
"""

import json
import os
import sys

import numpy as np
import pyarrow as pa

DEFAULTS = {"fmin": 1.0, "fmax": 45.0, "keep_spectra": False}
NEW_FIELDS = [
    pa.field("peak_freq", pa.float64()),
    pa.field("peak_height", pa.float64()),
    pa.field("aperiodic_offset", pa.float64()),
    pa.field("aperiodic_slope", pa.float64()),
]


def check_params(params):
    """Returns the params with defaults, or raises ValueError."""
    if not isinstance(params, dict):
        raise ValueError("params must be a JSON object")
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown params {unknown}; the params are {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    for k in ("fmin", "fmax"):
        if isinstance(p[k], bool) or not isinstance(p[k], (int, float)) or not np.isfinite(p[k]):
            raise ValueError(f"{k} must be a number of Hz")
    if not 0 <= p["fmin"] < p["fmax"]:
        raise ValueError(f"need 0 <= fmin < fmax, got fmin={p['fmin']} fmax={p['fmax']}")
    if not isinstance(p["keep_spectra"], bool):
        raise ValueError("keep_spectra must be true or false")
    return p


def output_schema(schema, params):
    """The result schema for an input schema."""
    for name in ("freqs", "psd"):
        if schema.get_field_index(name) < 0:
            raise ValueError(f"the input has no column {name!r}: run peaks on a psd job's result")
    drop = set() if params["keep_spectra"] else {"freqs", "psd"}
    return pa.schema([f for f in schema if f.name not in drop] + NEW_FIELDS)


def _rows(column):
    """Yields each row of a list column as a float64 numpy array, or None."""
    arr = column.cast(pa.large_list(pa.float64()))
    offsets = arr.offsets.to_numpy()
    values = arr.values.to_numpy(zero_copy_only=False)
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    for i in range(len(arr)):
        yield None if nulls[i] else values[offsets[i]:offsets[i + 1]]


def fit_row(f, p, fmin, fmax):
    """(peak_freq, peak_height, aperiodic_offset, aperiodic_slope) of one spectrum."""
    if f is None or p is None or len(f) != len(p):
        return None, None, None, None
    with np.errstate(invalid="ignore"):
        m = (f >= fmin) & (f <= fmax) & (f > 0) & (p > 0) & np.isfinite(p)
    if m.sum() < 3:
        return None, None, None, None
    fm = f[m]
    x, y = np.log10(fm), np.log10(p[m])
    xc = x - x.mean()
    slope = float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))
    offset = float(y.mean() - slope * x.mean())
    resid = y - (offset + slope * x)
    k = int(np.argmax(resid))
    return float(fm[k]), float(resid[k]), offset, slope


def analyze_batch(batch, params, schema):
    """The result batch of one input batch."""
    cols = {name: [] for name in (f.name for f in NEW_FIELDS)}
    for f, p in zip(_rows(batch.column("freqs")), _rows(batch.column("psd"))):
        for name, v in zip(cols, fit_row(f, p, params["fmin"], params["fmax"])):
            cols[name].append(v)
    arrays = []
    for field in schema:
        if field.name in cols:
            arrays.append(pa.array(cols[field.name], type=pa.float64()))
        else:
            arrays.append(batch.column(field.name))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def analyze(table, **params):
    """Runs the function on a pyarrow Table (or RecordBatch) in this process."""
    p = check_params(params)
    schema = output_schema(table.schema, p)
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    return pa.Table.from_batches([analyze_batch(b, p, schema) for b in table.to_batches()], schema=schema)


def main():
    try:
        params = check_params(json.loads(os.environ.get("FLIGHTBATCH_PARAMS") or "{}"))
        reader = pa.ipc.open_stream(sys.stdin.buffer)
        schema = output_schema(reader.schema, params)
    except ValueError as e:
        print(f"peaks: {e}", file=sys.stderr)
        return 2
    with pa.ipc.new_stream(sys.stdout.buffer, schema) as out:
        for batch in reader:
            out.write_batch(analyze_batch(batch, params, schema))
    return 0


if __name__ == "__main__":
    sys.exit(main())
