"""EDF/EDF+/BDF/BDF+ recordings registered in place (register-dataset), checked against MNE.

Files are written at test time by edfio (a real EDF/BDF writer from PyPI) with several signals
at different sampling rates, EDF+/BDF+ annotations including BAD spans, then registered in place
in a file store and in the S3 test server (when FLIGHTBATCH_TEST_S3_BUCKET is set; required when
FLIGHTBATCH_REQUIRE_S3=1). The reference is MNE: every row's samples equal what
`mne.io.read_raw_edf` / `read_raw_bdf` reads (physical units) to 1e-9 relative, and psd over the
dataset equals `epochs.compute_psd(method="welch")` of MNE's own fixed-length epochs.

MNE resamples the signals of a file to its highest rate when they differ; flightbatch keeps each
signal at its own rate (`fs` per row). So the reference reads each group of signals of one rate
on its own (`include=`), which MNE reads without resampling.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path

import grpc
import mne
import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.fs as pafs
import pytest
from edfio import Bdf, BdfSignal, Edf, EdfAnnotation, EdfSignal, Patient, Recording

from conftest import raw_do_action

mne.set_log_level("ERROR")

REPO = Path(__file__).resolve().parents[2]
LISTEN_RE = re.compile(r"^flightbatch listening on grpc://(\S+)$")
DURATION = 60  # seconds per file
RATES = {"Fz": 256, "Cz": 256, "EMG": 128}
EPOCH_S = 2.0
BAD_SPANS = {
    "plus.edf": [(12.3, 4.0, "BAD_motion"), (40.0, 0.0, "bad_blink")],
    "plus.bdf": [(5.0, 1.0, "Bad eye"), (33.2, 2.5, "BAD")],
}
OTHER_ANNOTATIONS = [(30.0, None, "stim"), (44.0, 1.0, "badge not bad")]


@pytest.fixture(scope="module")
def fb_bin() -> Path:
    env_bin = os.environ.get("FLIGHTBATCH_BIN")
    if env_bin:
        return Path(env_bin)
    out = REPO / "bin" / "flightbatch"
    subprocess.run(["go", "build", "-o", str(out), "./cmd/flightbatch"], cwd=REPO, check=True)
    return out


def _signals(cls, drange, rng, scale):
    return [
        cls(rng.normal(0, scale, DURATION * fs), fs, label=label, physical_dimension="uV",
            physical_range=(-8 * scale, 8 * scale), digital_range=drange,
            transducer_type="AgAgCl electrode", prefiltering="HP:0.1Hz LP:70Hz")
        for label, fs in RATES.items()
    ]


def write_recordings(root: Path) -> dict[str, Path]:
    """EDF, EDF+C (with BAD spans and a sub-second start), BDF and BDF+C files."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12)
    edf16, bdf24 = (-32768, 32767), (-8388608, 8388607)
    patient = Patient(code="P-07", sex="F", birthdate=datetime.date(1971, 4, 2), name="Doe_Jane")
    recording = Recording(startdate=datetime.date(2024, 3, 1), hospital_administration_code="ADM1",
                          investigator_technician_code="TECH", equipment_code="AMP-3")

    def annotations(name):
        spans = BAD_SPANS[name] + OTHER_ANNOTATIONS
        return [EdfAnnotation(o, d, t) for o, d, t in spans]

    files = {
        "plain.edf": Edf(_signals(EdfSignal, edf16, rng, 40.0), patient=patient, recording=recording,
                         starttime=datetime.time(10, 20, 30)),
        "plus.edf": Edf(_signals(EdfSignal, edf16, rng, 25.0), patient=patient, recording=recording,
                        starttime=datetime.time(22, 1, 2, 250000), annotations=annotations("plus.edf")),
        "plain.bdf": Bdf(_signals(BdfSignal, bdf24, rng, 60.0), starttime=datetime.time(8, 0, 0)),
        "plus.bdf": Bdf(_signals(BdfSignal, bdf24, rng, 15.0), recording=recording,
                        starttime=datetime.time(9, 30, 0), annotations=annotations("plus.bdf")),
    }
    out = {}
    for name, f in files.items():
        f.write(root / name)
        out[name] = root / name
    return out


def read_mne(path: Path, channels: list[str]):
    reader = mne.io.read_raw_bdf if path.suffix == ".bdf" else mne.io.read_raw_edf
    return reader(path, include=channels, preload=True)


def rate_groups() -> list[list[str]]:
    groups: dict[int, list[str]] = {}
    for ch, fs in RATES.items():
        groups.setdefault(fs, []).append(ch)
    return list(groups.values())


# ---------------------------------------------------------------------------------------------
# Stores and servers


class Store:
    """A file store or a fresh prefix of the S3 test server, with direct access to its objects."""

    def __init__(self, kind: str, tmp: Path):
        self.kind = kind
        if kind == "s3":
            bucket = os.environ["FLIGHTBATCH_TEST_S3_BUCKET"]
            prefix = f"pytest-recordings-{uuid.uuid4().hex[:12]}"
            self.url = f"s3://{bucket}/{prefix}"
            scheme, host = os.environ["AWS_ENDPOINT_URL_S3"].split("://", 1)
            self.fs = pafs.S3FileSystem(
                access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                region=os.environ.get("AWS_REGION", "us-east-1"), endpoint_override=host, scheme=scheme)
            self.root = f"{bucket}/{prefix}"
        else:
            self.url = f"file://{tmp}"
            self.fs = pafs.LocalFileSystem()
            self.root = str(tmp)

    def put(self, key: str, data: bytes):
        if self.kind == "file":
            Path(self.root, key).parent.mkdir(parents=True, exist_ok=True)
        with self.fs.open_output_stream(f"{self.root}/{key}") as out:
            out.write(data)

    def keys(self, prefix: str) -> list[str]:
        sel = pafs.FileSelector(f"{self.root}/{prefix}", recursive=True, allow_not_found=True)
        return sorted(i.path[len(self.root) + 1:] for i in self.fs.get_file_info(sel)
                      if i.type == pafs.FileType.File)


class Server:
    def __init__(self, fb_bin: Path, store: Store):
        self.store = store
        self.proc = subprocess.Popen(
            [str(fb_bin), "serve", "--addr", "127.0.0.1:0", "--store", store.url, "--workers", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        m = LISTEN_RE.match(line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.addr = m.group(1)
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        self.client = flight.connect(f"grpc://{self.addr}")

    def action(self, kind: str, body: dict):
        res = list(self.client.do_action(flight.Action(kind, json.dumps(body).encode())))
        return json.loads(res[0].body.to_pybytes())

    def read(self, ticket: str) -> pa.Table:
        return self.client.do_get(flight.Ticket(ticket.encode())).read_all()

    def psd(self, body: dict) -> pa.Table:
        job = self.action("psd", body)["job_id"]
        deadline = time.monotonic() + 120
        while (st := self.action("job-status", {"job_id": job}))["state"] in ("SUBMITTED", "RUNNING"):
            assert time.monotonic() < deadline, st
            time.sleep(0.1)
        assert st["state"] == "SUCCEEDED", st
        return self.read(f"jobs/{job}")

    def stop(self):
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _backends():
    out = ["file"]
    if os.environ.get("FLIGHTBATCH_TEST_S3_BUCKET"):
        out.append("s3")
    elif os.environ.get("FLIGHTBATCH_REQUIRE_S3") == "1":
        pytest.fail("FLIGHTBATCH_REQUIRE_S3=1 but FLIGHTBATCH_TEST_S3_BUCKET is not set")
    return out


@pytest.fixture(scope="module")
def local_files(tmp_path_factory) -> dict[str, Path]:
    return write_recordings(tmp_path_factory.mktemp("recordings"))


@pytest.fixture(scope="module", params=_backends())
def env(request, fb_bin, tmp_path_factory, local_files):
    store = Store(request.param, tmp_path_factory.mktemp(f"store-{request.param}"))
    for name, path in local_files.items():
        store.put(f"raw/{name}", path.read_bytes())
    srv = Server(fb_bin, store)
    yield srv, local_files
    srv.stop()


def by_key(table: pa.Table) -> dict[tuple, dict]:
    return {(r["file"], r["channel"], r["epoch"]): r for r in table.to_pylist()}


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("bad_spans", ["drop", "nan", "keep"])
def test_samples_equal_mne(env, bad_spans):
    srv, files = env
    name = f"rec-{bad_spans}"
    res = srv.action("register-dataset", {"name": name, "prefix": "raw/", "epoch_s": EPOCH_S,
                                          "bad_spans": bad_spans, "shard_mb": 0.05})
    assert res["files"] == 4 and not res["bids"], res
    assert res["shards"] > 4, f"files should be split into several shards each: {res}"
    table = srv.read(f"datasets/{name}")
    assert table.num_rows == res["rows"]
    assert table.schema.field("samples").type == pa.list_(pa.float64())
    assert table.schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    rows = by_key(table)
    n_epochs = int(DURATION / EPOCH_S)
    for fname, path in files.items():
        for group in rate_groups():
            raw = read_mne(path, group)
            fs = raw.info["sfreq"]
            m = int(EPOCH_S * fs)
            data = raw.get_data(units="uV", reject_by_annotation="NaN" if bad_spans == "nan" else None)
            epochs = mne.make_fixed_length_epochs(raw, duration=EPOCH_S, preload=True)
            kept = set(range(n_epochs)) if bad_spans != "drop" else set(int(i) for i in epochs.selection)
            if fname.startswith("plus") and bad_spans == "drop":
                assert len(kept) < n_epochs, "the BAD spans must drop some epochs"
            for ci, ch in enumerate(raw.ch_names):
                got_epochs = {e for (f, c, e) in rows if f == fname and c == ch}
                assert got_epochs == kept, (fname, ch, sorted(set(range(n_epochs)) ^ got_epochs))
                for e in kept:
                    r = rows[(fname, ch, e)]
                    assert r["fs"] == fs and r["unit"] == "uV"
                    ours = np.asarray(r["samples"], dtype=float)
                    ref = data[ci, e * m:(e + 1) * m]
                    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"{fname} {ch} {e}")
                    ok = ~np.isnan(ref)
                    if ok.any():
                        np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-9, atol=1e-9 * np.abs(ref[ok]).max())
            if bad_spans == "nan" and fname.startswith("plus"):
                assert np.isnan(data).any()


def test_metadata_columns(env):
    srv, files = env
    srv.action("register-dataset", {"name": "meta", "prefix": "raw/", "epoch_s": EPOCH_S})
    rows = srv.read("datasets/meta").to_pylist()
    plus = [r for r in rows if r["file"] == "plus.edf"]
    r = next(r for r in plus if r["channel"] == "EMG" and r["epoch"] == 3)
    assert r["file_format"] == "EDF+C"
    assert r["patient_code"] == "P-07" and r["patient_sex"] == "F" and r["patient_name"] == "Doe_Jane"
    assert r["patient_birthdate"] == "02-APR-1971"
    assert r["admin_code"] == "ADM1" and r["technician"] == "TECH" and r["equipment"] == "AMP-3"
    assert r["transducer"] == "AgAgCl electrode" and r["prefilter"] == "HP:0.1Hz LP:70Hz"
    assert r["digital_min"] == -32768 and r["digital_max"] == 32767
    # EDF+ puts the sub-second part of the start in the first record's time-keeping annotation.
    assert r["start_time"] == datetime.datetime(2024, 3, 1, 22, 1, 2, 250000, tzinfo=datetime.timezone.utc) \
        + datetime.timedelta(seconds=3 * EPOCH_S)
    bdf = next(r for r in rows if r["file"] == "plain.bdf")
    assert bdf["file_format"] == "BDF" and bdf["digital_max"] == 8388607 and bdf["patient_code"] is None
    for r in rows:
        assert r["channel"] in RATES and r["fs"] == RATES[r["channel"]]
        assert len(r["samples"]) == EPOCH_S * r["fs"]


def test_whole_recording_is_the_default_epoch(env):
    srv, files = env
    srv.action("register-dataset", {"name": "whole", "prefix": "raw/plain.edf"})
    rows = srv.read("datasets/whole").to_pylist()
    assert sorted(r["channel"] for r in rows) == sorted(RATES)
    for r in rows:
        assert r["epoch"] == 0 and r["file"] == "plain.edf"
        ref = read_mne(files["plain.edf"], [r["channel"]]).get_data(units="uV")[0]
        np.testing.assert_allclose(r["samples"], ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def test_psd_equals_mne_welch(env):
    srv, files = env
    srv.action("register-dataset", {"name": "for-psd", "prefix": "raw/", "epoch_s": EPOCH_S, "shard_mb": 0.05})
    params = dict(n_fft=256, n_per_seg=128, n_overlap=64, window="hamming")
    res = srv.psd({"dataset": "for-psd", "fs_column": "fs", "nperseg": 128, "noverlap": 64, "nfft": 256,
                   "window": "hamming", "detrend": "constant"})
    rows = by_key(res)
    compared = 0
    for fname, path in files.items():
        for group in rate_groups():
            raw = read_mne(path, group)
            epochs = mne.make_fixed_length_epochs(raw, duration=EPOCH_S, preload=True)
            spec = epochs.compute_psd(method="welch", **params)
            ref = spec.get_data() * 1e12  # MNE works in V, the files in uV
            for i, e in enumerate(epochs.selection):
                for ci, ch in enumerate(epochs.ch_names):
                    r = rows[(fname, ch, int(e))]
                    np.testing.assert_allclose(r["freqs"], spec.freqs, rtol=1e-12)
                    np.testing.assert_allclose(r["psd"], ref[i, ci], rtol=1e-9, atol=0)
                    compared += 1
    assert compared == res.num_rows, (compared, res.num_rows)


def test_bids_tree(env, local_files):
    srv, _ = env
    st = srv.store
    data = local_files["plus.edf"].read_bytes()
    st.put("bids/participants.tsv", b"participant_id\tage\tsex\tGroup Name\nsub-01\t34\tF\tcontrol\nsub-02\tn/a\tM\tpatient\n")
    st.put("bids/dataset_description.json", b'{"Name": "t", "BIDSVersion": "1.8.0"}')
    st.put("bids/sub-01/ses-1/eeg/sub-01_ses-1_task-rest_run-1_eeg.edf", data)
    st.put("bids/sub-01/ses-1/eeg/sub-01_ses-1_task-rest_run-1_channels.tsv",
           b"name\ttype\tunits\tstatus\nFz\tEEG\tuV\tgood\nCz\tEEG\tuV\tbad\nEMG\tEMG\tuV\tgood\n")
    st.put("bids/sub-02/eeg/sub-02_task-sleep_eeg.edf", data)
    res = srv.action("register-dataset", {"name": "bids", "prefix": "bids/", "epoch_s": 10, "bad_spans": "keep"})
    assert res["bids"] and res["files"] == 2, res
    table = srv.read("datasets/bids")
    for col, typ in [("subject", pa.string()), ("session", pa.string()), ("task", pa.string()),
                     ("run", pa.string()), ("age", pa.float64()), ("sex", pa.string()),
                     ("group_name", pa.string()), ("bad_channel", pa.bool_())]:
        assert table.schema.field(col).type == typ, col
    rows = table.to_pylist()
    s1 = [r for r in rows if r["subject"] == "01"]
    s2 = [r for r in rows if r["subject"] == "02"]
    assert len(s1) == len(s2) == 3 * 6
    assert {(r["session"], r["task"], r["run"], r["age"], r["sex"], r["group_name"]) for r in s1} == \
        {("1", "rest", "1", 34.0, "F", "control")}
    assert {(r["session"], r["task"], r["run"], r["age"], r["sex"]) for r in s2} == {(None, "sleep", None, None, "M")}
    assert {r["channel"] for r in s1 if r["bad_channel"]} == {"Cz"}
    assert not any(r["bad_channel"] for r in s2)
    assert s1[0]["file"] == "sub-01/ses-1/eeg/sub-01_ses-1_task-rest_run-1_eeg.edf"


def _malformed(good: bytes) -> dict[str, bytes]:
    ns = int(good[252:256])
    label_at = 256
    non_ascii = bytearray(good)
    non_ascii[label_at:label_at + 3] = "Fµ".encode("latin-1") + b"z"
    wrong_count = bytearray(good)
    wrong_count[236:244] = b"99      "
    zero = bytearray(good)
    zero[244:252] = b"0       "
    assert ns >= 1
    return {
        "truncated.edf": good[: len(good) - 1000],
        "wrongcount.edf": bytes(wrong_count),
        "nonascii.edf": bytes(non_ascii),
        "zeroduration.edf": bytes(zero),
        "short.edf": good[:100],
    }


def test_malformed_headers_name_the_file(env, local_files):
    srv, _ = env
    good = local_files["plain.edf"].read_bytes()
    for fname, data in _malformed(good).items():
        key = f"bad-{fname}/{fname}"
        srv.store.put(key, data)
        reply = raw_do_action(srv.addr, "register-dataset", {"name": "broken", "prefix": f"bad-{fname}/"})
        assert reply.code == grpc.StatusCode.INVALID_ARGUMENT, (fname, reply)
        assert key in reply.details, (fname, reply.details)
        assert srv.store.keys("datasets/broken") == [], "a failed registration must store nothing"
    # The name stays free and the server keeps serving.
    res = srv.action("register-dataset", {"name": "broken", "prefix": "raw/plain.edf"})
    assert res["rows"] == 3


def test_register_refusals(env):
    srv, _ = env
    cases = [
        ({"name": "x", "prefix": "raw/", "epoch_s": 0.003}, grpc.StatusCode.INVALID_ARGUMENT, "whole number of samples"),
        ({"name": "x", "prefix": "raw/", "bad_spans": "zero"}, grpc.StatusCode.INVALID_ARGUMENT, "bad_spans"),
        ({"name": "x", "prefix": "../etc"}, grpc.StatusCode.INVALID_ARGUMENT, "prefix"),
        ({"name": "x", "prefix": "nothing-here/"}, grpc.StatusCode.NOT_FOUND, "no .edf or .bdf"),
        ({"name": "Bad Name", "prefix": "raw/"}, grpc.StatusCode.INVALID_ARGUMENT, "name"),
        ({"name": "x", "prefix": "raw/", "unknown": 1}, grpc.StatusCode.INVALID_ARGUMENT, "unknown"),
    ]
    for body, code, words in cases:
        reply = raw_do_action(srv.addr, "register-dataset", body)
        assert reply.code == code and words in reply.details, (body, reply)
    srv.action("register-dataset", {"name": "taken", "prefix": "raw/plain.bdf"})
    reply = raw_do_action(srv.addr, "register-dataset", {"name": "taken", "prefix": "raw/"})
    assert reply.code == grpc.StatusCode.ALREADY_EXISTS, reply


def test_flight_info_and_shards(env):
    srv, _ = env
    res = srv.action("register-dataset", {"name": "info", "prefix": "raw/", "epoch_s": EPOCH_S, "shard_mb": 0.05})
    info = srv.client.get_flight_info(flight.FlightDescriptor.for_path("datasets", "info"))
    assert len(info.endpoints) == res["shards"] and info.total_records == res["rows"]
    whole = srv.read("datasets/info")
    parts = [srv.client.do_get(ep.ticket).read_all() for ep in info.endpoints]
    assert sum(p.num_rows for p in parts) == whole.num_rows
    assert pa.concat_tables(parts).equals(whole)


def test_cli_register(env, fb_bin):
    srv, _ = env
    out = subprocess.run([str(fb_bin), "register", "--addr", srv.addr, "--dataset", "cli-reg", "--epoch-s", "4", "raw/"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "registered cli-reg: 4 files" in out.stdout
    names = [f.descriptor.path[-1].decode() for f in srv.client.list_flights()]
    assert "cli-reg" in names
