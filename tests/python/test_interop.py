"""A notebook's path through flightbatch: find the dataset, run a PSD job, read the result
into pandas, polars and DuckDB, and find it again in the job history."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pyarrow.ipc as ipc
import pytest

from conftest import (
    DEMO_SHARDS,
    action,
    assert_succeeded,
    decode_len_field,
    list_job_ids,
    raw_do_action,
    read_dataset,
    read_result,
    read_ticket,
    run_psd,
    wait_job,
)

DEMO_SCHEMA = pa.schema(
    [
        ("patient_id", pa.utf8()),
        ("session_id", pa.utf8()),
        ("channel", pa.utf8()),
        ("start_time", pa.timestamp("us", tz="UTC")),
        ("fs", pa.float64()),
        ("samples", pa.list_(pa.float32())),
    ]
)
METADATA = ["patient_id", "session_id", "channel", "start_time", "fs"]
BETA = (13.0, 30.0)
PSD_BODY = {"dataset": "demo", "column": "samples", "fs": 250, "nperseg": 256, "bands": {"beta": list(BETA)}}


def demo_descriptor() -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_path("datasets", "demo")


def shard_files(server) -> list:
    files = sorted((server.store / "datasets" / "demo").glob("*.arrow"))
    assert files, f"no demo shards under {server.store}/datasets/demo"
    return files


def read_shard_file(path) -> pa.Table:
    with pa.memory_map(str(path)) as src:
        return ipc.open_file(src).read_all()


def same_types(a: pa.Schema, b: pa.Schema) -> bool:
    """Schemas equal in names and types (list field names and metadata aside)."""
    if a.names != b.names:
        return False
    for fa, fb in zip(a, b):
        ta, tb = fa.type, fb.type
        if pa.types.is_list(ta) and pa.types.is_list(tb):
            if ta.value_type != tb.value_type:
                return False
        elif ta != tb:
            return False
    return True


@pytest.fixture(scope="module")
def dataset(client) -> pa.Table:
    return read_dataset(client)


@pytest.fixture(scope="module")
def psd_job(client) -> tuple[str, dict]:
    job_id = run_psd(client, PSD_BODY)
    return job_id, wait_job(client, job_id)


@pytest.fixture(scope="module")
def result(client, psd_job) -> pa.Table:
    return read_result(client, psd_job[0])


# ---------------------------------------------------------------------------------------------
# Datasets


def test_list_flights_shows_demo(client):
    paths = [tuple(p.decode() for p in info.descriptor.path) for info in client.list_flights()]
    assert ("datasets", "demo") in paths, paths


def test_demo_flight_info(client, server):
    info = client.get_flight_info(demo_descriptor())
    files = shard_files(server)
    assert len(files) == DEMO_SHARDS
    assert len(info.endpoints) == DEMO_SHARDS, "one endpoint per shard"
    assert info.total_records == sum(read_shard_file(f).num_rows for f in files)
    assert info.total_bytes > 0
    assert same_types(info.schema, DEMO_SCHEMA), info.schema


def test_endpoints_stream_the_shards_in_order(client, server):
    info = client.get_flight_info(demo_descriptor())
    tickets = [ep.ticket.ticket.decode() for ep in info.endpoints]
    assert len(set(tickets)) == len(tickets), f"duplicate tickets: {tickets}"
    for t in tickets:
        assert t.startswith("datasets/demo/"), f"shard ticket {t!r} is not datasets/demo/<shard>"
    for ep, path in zip(info.endpoints, shard_files(server)):
        got = client.do_get(ep.ticket).read_all()
        want = read_shard_file(path)
        assert got.select(METADATA).equals(want.select(METADATA)), f"{ep.ticket.ticket!r} vs {path.name}"
        assert got.column("samples").to_pylist() == want.column("samples").to_pylist()


def test_do_get_dataset_round_trips(client, server, dataset):
    assert same_types(dataset.schema, DEMO_SCHEMA), dataset.schema
    want = pa.concat_tables([read_shard_file(f) for f in shard_files(server)])
    assert dataset.num_rows == want.num_rows
    assert dataset.select(METADATA).equals(want.select(METADATA))
    got_s, want_s = dataset.column("samples"), want.column("samples")
    assert pc.all(pc.equal(pc.list_value_length(got_s), pc.list_value_length(want_s))).as_py()
    np.testing.assert_array_equal(
        pc.list_flatten(got_s).to_numpy(), pc.list_flatten(want_s).to_numpy()
    )
    assert set(dataset.column("fs").to_pylist()) == {250.0}


def test_get_schema(client):
    schema = client.get_schema(demo_descriptor()).schema
    assert same_types(schema, DEMO_SCHEMA), schema


# ---------------------------------------------------------------------------------------------
# A PSD job


def test_psd_submit_response(client):
    resp = action(client, "psd", PSD_BODY)
    assert set(resp) >= {"job_id", "state", "shards"}, resp
    assert resp["shards"] == DEMO_SHARDS
    assert resp["state"] in {"SUBMITTED", "RUNNING", "SUCCEEDED"}
    wait_job(client, resp["job_id"])


def test_psd_job_succeeds(psd_job):
    job_id, status = psd_job
    assert status["job_id"] == job_id
    assert_succeeded(status)
    assert status["shards"] == {
        "total": DEMO_SHARDS,
        "pending": 0,
        "running": 0,
        "succeeded": DEMO_SHARDS,
        "failed": 0,
        "cancelled": 0,
    }, status
    assert status["dataset"] == "demo"
    assert status["params"]["nperseg"] == 256
    assert status["created_at"] and status["finished_at"]
    assert pd.Timestamp(status["created_at"]) <= pd.Timestamp(status["finished_at"])
    assert not status.get("error")


def test_result_in_pandas(result, dataset):
    df = result.to_pandas()
    assert len(df) == dataset.num_rows, "one row per input record"
    assert list(df.columns) == METADATA + ["freqs", "psd", "beta_power"]
    meta = dataset.select(METADATA).to_pandas()
    pd.testing.assert_frame_equal(df[METADATA], meta)  # same rows, in input order
    assert result.schema.field("freqs").type.value_type == pa.float64()
    assert result.schema.field("psd").type.value_type == pa.float64()
    assert result.schema.field("beta_power").type == pa.float64()
    for freqs, psd in zip(df["freqs"].head(5), df["psd"].head(5)):
        assert len(freqs) == len(psd) == 256 // 2 + 1


def test_read_pandas_from_job_ticket(client, psd_job, dataset):
    df = client.do_get(flight.Ticket(f"jobs/{psd_job[0]}".encode())).read_pandas()
    assert len(df) == dataset.num_rows
    assert df["patient_id"].tolist() == dataset.column("patient_id").to_pylist()
    assert {"freqs", "psd", "beta_power"} <= set(df.columns)


def test_beta_power_is_trapezoid_over_band(result):
    lo, hi = BETA
    freqs = result.column("freqs").to_pylist()
    psd = result.column("psd").to_pylist()
    got = result.column("beta_power").to_numpy()
    want = np.empty(len(freqs))
    for i, (f, p) in enumerate(zip(freqs, psd)):
        f, p = np.asarray(f), np.asarray(p)
        m = (f >= lo) & (f <= hi)
        want[i] = np.trapezoid(p[m], f[m])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)
    assert (got > 0).all()


def test_polars_and_duckdb_agree_with_pandas(result):
    by_pandas = result.to_pandas().groupby("patient_id")["beta_power"].mean().sort_index()

    pl_df = pl.from_arrow(result)
    assert pl_df.height == result.num_rows
    assert pl_df.columns == result.column_names
    by_polars = pl_df.group_by("patient_id").agg(pl.col("beta_power").mean()).sort("patient_id")

    tbl = result  # DuckDB scans the Arrow table through its Python variable name
    by_duckdb = duckdb.sql(
        "SELECT patient_id, avg(beta_power) AS beta_power FROM tbl GROUP BY patient_id ORDER BY patient_id"
    ).fetchall()

    assert by_polars["patient_id"].to_list() == list(by_pandas.index)
    assert [r[0] for r in by_duckdb] == list(by_pandas.index)
    np.testing.assert_allclose(by_polars["beta_power"].to_numpy(), by_pandas.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose([r[1] for r in by_duckdb], by_pandas.to_numpy(), rtol=1e-12)
    assert len(by_pandas) > 1, "the demo has several patients"

    # A DuckDB query over the list column: mean PSD per patient at the 20 Hz bin.
    rows = duckdb.sql(
        "SELECT patient_id, count(*) FROM tbl WHERE len(psd) = len(freqs) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert sum(n for _, n in rows) == result.num_rows


def test_job_result_flight_info(client, psd_job, result):
    info = client.get_flight_info(flight.FlightDescriptor.for_path("jobs", psd_job[0]))
    assert len(info.endpoints) == 1, "jobs/<id> has one endpoint that streams the merged result"
    assert info.total_records in (-1, result.num_rows)
    assert same_types(info.schema, result.schema)
    got = client.do_get(info.endpoints[0].ticket).read_all()
    assert got.num_rows == result.num_rows


def test_list_flights_shows_finished_job(client, psd_job):
    paths = [tuple(p.decode() for p in info.descriptor.path) for info in client.list_flights()]
    assert ("jobs", psd_job[0]) in paths, paths


# ---------------------------------------------------------------------------------------------
# Job history


def test_list_jobs_oldest_first(client, psd_job):
    second = run_psd(client, {**PSD_BODY, "nperseg": 128})
    wait_job(client, second)
    ids = list_job_ids(client)
    assert psd_job[0] in ids and second in ids
    assert ids.index(psd_job[0]) < ids.index(second)
    assert ids == sorted(ids), "oldest first; job IDs sort by creation time"
    on_demo = list_job_ids(client, {"dataset": "demo"})
    assert psd_job[0] in on_demo and second in on_demo
    assert on_demo == sorted(on_demo)
    assert set(on_demo) <= set(ids)


def test_old_result_stays_addressable(client, psd_job, result):
    # A later job does not change an earlier job's result.
    again = read_result(client, psd_job[0])
    assert again.equals(result)


def test_list_actions(client):
    kinds = {a.type for a in client.list_actions()}
    assert {"psd", "job-status", "cancel-job", "list-jobs"} <= kinds, kinds


def test_raw_grpc_helpers_match_pyarrow(server, client):
    # The error tests read status codes through grpcio with hand-encoded protobuf;
    # check that path against pyarrow on a call that succeeds.
    reply = raw_do_action(server.addr, "list-jobs", {})
    assert reply.code.name == "OK", (reply.code, reply.details)
    body = decode_len_field(reply.messages[0], 1)
    assert json.loads(body) == action(client, "list-jobs", {})
