"""Uploads checked at DoPut, not at psd time; small uploads cut into several shards; tiny
batches joined.

Each refused table answers INVALID_ARGUMENT naming the column, stores nothing, and leaves the
name free (a good table uploads under it next); the server keeps serving.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import start_server


@pytest.fixture(scope="module")
def srv(flightbatch_bin, tmp_path_factory):
    s = start_server(flightbatch_bin, tmp_path_factory.mktemp("upload-checks"), "--workers", "2")
    yield s
    s.stop()


def put(client, desc, table: pa.Table, chunk: int | None = None) -> dict:
    writer, reader = client.do_put(desc, table.schema)
    with writer:
        writer.write_table(table, max_chunksize=chunk)
        writer.done_writing()
        return json.loads(reader.read().to_pybytes())


def path(name: str):
    return flight.FlightDescriptor.for_path("datasets", name)


def good_table(rows: int = 4, n: int = 256) -> pa.Table:
    rng = np.random.default_rng(1)
    return pa.table({
        "channel": [f"ch{i}" for i in range(rows)],
        "fs": np.full(rows, 250.0),
        "samples": pa.array(list(rng.standard_normal((rows, n))), pa.list_(pa.float64())),
    })


def stored(srv, name: str) -> list[Path]:
    d = Path(srv.store) / "datasets" / name
    return sorted(p for p in d.rglob("*") if p.is_file()) if d.exists() else []


def refused_tables() -> list[tuple[str, pa.Table, str]]:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 14, 64)).astype(np.float32)
    tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(x)
    return [
        ("list<int16>", pa.table({"samples": pa.array([[1, 2, 3]] * 2, pa.list_(pa.int16()))}), "samples"),
        ("list<float16>", pa.table({"raw": pa.array([np.ones(4, np.float16)] * 2, pa.list_(pa.float16())),
                                    "samples": pa.array([[1.0, 2.0]] * 2, pa.list_(pa.float64()))}), "raw"),
        ("fixed_shape_tensor", pa.table({"epoch": tensor, "subject": ["a", "b", "c"]}), "epoch"),
        ("nested lists", pa.table({"data": pa.array([[[1.0, 2.0], [3.0, 4.0]]], pa.list_(pa.list_(pa.float64())))}), "data"),
        ("one column per channel", pa.table({"time": np.arange(5) / 250.0, "Fz": np.ones(5), "Cz": np.zeros(5)}), "Fz"),
    ]


@pytest.mark.parametrize("case", [c[0] for c in refused_tables()])
def test_refused_uploads_leave_nothing(srv, case):
    _, table, column = next(c for c in refused_tables() if c[0] == case)
    client = srv.connect()
    name = "refused-" + case.replace(" ", "-").replace("<", "-").replace(">", "").replace("_", "-")
    with pytest.raises(pa.ArrowInvalid) as err:
        put(client, path(name), table)
    msg = str(err.value)
    assert "invalid argument" in msg.lower(), f"want INVALID_ARGUMENT: {msg}"
    assert f'"{column}"' in msg, msg
    assert "list<float64>" in msg, f"the message should say what layout is accepted: {msg}"
    assert stored(srv, name) == [], "a refused upload must store nothing"
    assert name not in [f.descriptor.path[-1].decode() for f in client.list_flights()]
    # The name is free: a good table uploads under it.
    res = put(client, path(name), good_table())
    assert res["dataset"] == name and res["rows"] == 4


def test_tensor_refusal_says_how_to_lay_it_out(srv):
    _, table, _ = next(c for c in refused_tables() if c[0] == "fixed_shape_tensor")
    with pytest.raises(pa.ArrowInvalid, match="one row per channel"):
        put(srv.connect(), path("tensor-layout"), table)


def test_misnamed_signal_column_is_reported(srv):
    t = good_table().rename_columns(["channel", "fs", "signal"])
    res = put(srv.connect(), path("misnamed"), t)
    assert res["signal_columns"] == ["signal"], res


def test_small_upload_gets_several_shards(srv):
    t = good_table(rows=928, n=256)  # about 1.9 MB
    assert 1.8e6 < t.nbytes < 2.0e6
    res = put(srv.connect(), path("small"), t, chunk=16)
    assert res["shards"] >= 4, res
    info = srv.connect().get_flight_info(path("small"))
    assert len(info.endpoints) == res["shards"]


def test_shards_and_shard_mb_options(srv):
    client = srv.connect()
    t = good_table(rows=100, n=256)
    desc = flight.FlightDescriptor.for_command(json.dumps({"path": "datasets/six", "rows": 100, "shards": 6}))
    res = put(client, desc, t, chunk=7)
    assert res["shards"] == 6, res
    parts = [client.do_get(ep.ticket).read_all().num_rows for ep in client.get_flight_info(path("six")).endpoints]
    assert parts == [17, 17, 17, 17, 17, 15], parts
    desc = flight.FlightDescriptor.for_command(json.dumps({"path": "datasets/big-shards", "shard_mb": 64}))
    assert put(client, desc, t)["shards"] == 1
    desc = flight.FlightDescriptor.for_command(json.dumps({"path": "datasets/no-rows", "shards": 3}))
    with pytest.raises(pa.ArrowInvalid, match="rows"):
        put(client, desc, t)
    assert stored(srv, "no-rows") == []


def test_tiny_batches_are_joined(srv):
    n = 20000
    t = pa.table({"channel": ["c"] * n, "samples": pa.array([[float(i), 1.0] for i in range(n)], pa.list_(pa.float64()))})
    res = put(srv.connect(), path("tiny"), t, chunk=1)
    assert res["rows"] == n
    assert res["bytes"] < 2 * t.nbytes, f"{res['bytes']} bytes stored for {t.nbytes} bytes of data"
    back = srv.connect().do_get(flight.Ticket(b"datasets/tiny")).read_all()
    assert back.column("samples").to_pylist()[::997] == t.column("samples").to_pylist()[::997]


# ---------------------------------------------------------------------------------------------
# flightbatch upload


def cli(binary, srv, *args, timeout=300):
    import subprocess
    return subprocess.run([str(binary), *args, "--addr", srv.addr], capture_output=True, text=True, timeout=timeout)


def read(srv, name):
    return srv.connect().do_get(flight.Ticket(f"datasets/{name}".encode())).read_all()


def test_cli_upload_parquet_and_arrow(flightbatch_bin, srv, tmp_path):
    import pyarrow.feather as feather
    import pyarrow.parquet as pq
    t = good_table(rows=40, n=300)
    pq.write_table(t, tmp_path / "t.parquet", row_group_size=7)
    feather.write_feather(t, tmp_path / "t.arrow", compression="uncompressed")
    for fname, name in [("t.parquet", "cli-parquet"), ("t.arrow", "cli-arrow")]:
        out = cli(flightbatch_bin, srv, "upload", str(tmp_path / fname), "--dataset", name)
        assert out.returncode == 0, out.stderr
        assert f"uploaded {name}: 40 rows" in out.stdout and "signal columns: samples" in out.stdout
        assert read(srv, name).equals(t)


def test_cli_upload_csv(flightbatch_bin, srv, tmp_path):
    rng = np.random.default_rng(3)
    fs, n = 250.0, 2000
    data = rng.standard_normal((n, 3))
    lines = ["time,Fz,Cz,Pz"] + [",".join(repr(float(v)) for v in (i / fs, *row)) for i, row in enumerate(data)]
    (tmp_path / "rec.csv").write_text("\n".join(lines) + "\n")
    out = cli(flightbatch_bin, srv, "upload", str(tmp_path / "rec.csv"), "--dataset", "cli-csv", "--epoch-s", "2",
              "--unit", "uV", "--start", "2024-03-01T10:00:00Z")
    assert out.returncode == 0, out.stderr
    rows = read(srv, "cli-csv").to_pylist()
    assert len(rows) == 4 * 3 and {r["channel"] for r in rows} == {"Fz", "Cz", "Pz"}
    for r in rows:
        ci = ["Fz", "Cz", "Pz"].index(r["channel"])
        e = r["epoch"]
        assert r["fs"] == pytest.approx(fs, rel=1e-12) and r["unit"] == "uV"
        np.testing.assert_array_equal(r["samples"], data[e * 500:(e + 1) * 500, ci])
        assert r["start_time"].timestamp() == pytest.approx(1709287200 + 2 * e)
    # --fs instead of a time column; no time column at all needs one or the other.
    (tmp_path / "plain.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    out = cli(flightbatch_bin, srv, "upload", str(tmp_path / "plain.csv"), "--dataset", "cli-csv-fs", "--fs", "100")
    assert out.returncode == 0, out.stderr
    got = {r["channel"]: r["samples"] for r in read(srv, "cli-csv-fs").to_pylist()}
    assert got == {"a": [1.0, 3.0, 5.0], "b": [2.0, 4.0, 6.0]}
    out = cli(flightbatch_bin, srv, "upload", str(tmp_path / "plain.csv"), "--dataset", "cli-csv-nofs")
    assert out.returncode != 0 and "--fs" in out.stderr
    (tmp_path / "text.csv").write_text("time,a\n0,1\n0.01,x\n")
    out = cli(flightbatch_bin, srv, "upload", str(tmp_path / "text.csv"), "--dataset", "cli-csv-text")
    assert out.returncode != 0 and '"a"' in out.stderr and "line 3" in out.stderr


def test_cli_upload_edf_cuts_rows_like_a_registration(flightbatch_bin, srv, tmp_path):
    from test_recordings import write_recordings
    files = write_recordings(tmp_path / "rec")
    for fname in ("plus.edf", "plain.bdf"):
        name = "cli-" + fname.replace(".", "-")
        out = cli(flightbatch_bin, srv, "upload", str(files[fname]), "--dataset", name, "--epoch-s", "2")
        assert out.returncode == 0, out.stderr
        key = Path(srv.store) / "raw-cli" / fname
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(files[fname].read_bytes())
        client = srv.connect()
        reg = json.loads(next(iter(client.do_action(flight.Action("register-dataset", json.dumps(
            {"name": name + "-reg", "prefix": f"raw-cli/{fname}", "epoch_s": 2}).encode())))).body.to_pybytes())
        uploaded, registered = read(srv, name), read(srv, name + "-reg")
        assert uploaded.num_rows == reg["rows"] > 0
        assert uploaded.equals(registered), "an uploaded EDF/BDF file must give the rows its registration gives"


def test_cli_upload_refused_table(flightbatch_bin, srv, tmp_path):
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"samples": pa.array([[1, 2]] * 3, pa.list_(pa.int16()))}), tmp_path / "i16.parquet")
    out = cli(flightbatch_bin, srv, "upload", str(tmp_path / "i16.parquet"), "--dataset", "cli-refused")
    assert out.returncode != 0 and '"samples"' in out.stderr and "InvalidArgument" in out.stderr, out.stderr
    assert stored(srv, "cli-refused") == []
