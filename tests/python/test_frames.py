"""The HTTP/2 DATA frames a pyarrow client receives from flightbatch.

gRPC-Go writes every message in 16 KiB DATA frames; on plaintext the server merges a message's
frames into frames as large as the client allows (`serve --coalesce-frames`, on by default). A
proxy between the pyarrow client and the server reads the frames on the wire both ways: with
merging on, the client gets frames larger than 16 KiB and never larger than the SETTINGS_MAX_FRAME_SIZE
it sent; every stream's data bytes are those of a server with merging off, byte for byte, and
the tables are the stored ones.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field

import pyarrow.flight as flight
import pytest

from conftest import assert_succeeded, read_dataset, run_psd, start_server, wait_job

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS = 0x0, 0x1, 0x4
END_STREAM, PADDED, ACK = 0x1, 0x8, 0x1
MAX_FRAME_SIZE = 0x5


@dataclass
class Wire:
    """What one direction of a connection carried, frame by frame."""

    preface: bool = False
    buf: bytearray = field(default_factory=bytearray)
    data_lens: list[int] = field(default_factory=list)
    data: dict[int, bytearray] = field(default_factory=dict)
    headers: dict[int, int] = field(default_factory=dict)
    max_frame: int = 16384
    largest_max_frame: int = 16384
    bad: list[str] = field(default_factory=list)

    def feed(self, chunk: bytes) -> None:
        self.buf += chunk
        if self.preface:
            if len(self.buf) < len(PREFACE):
                return
            if bytes(self.buf[: len(PREFACE)]) != PREFACE:
                self.bad.append("no client preface")
            del self.buf[: len(PREFACE)]
            self.preface = False
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                return
            typ, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self.buf[9 : 9 + n])
            del self.buf[: 9 + n]
            if typ == DATA:
                if flags & PADDED:
                    pad = payload[0]
                    payload = payload[1 : len(payload) - pad]
                self.data_lens.append(n)
                self.data.setdefault(sid, bytearray()).extend(payload)
            elif typ == HEADERS:
                self.headers[sid] = self.headers.get(sid, 0) + 1
            elif typ == SETTINGS and not flags & ACK:
                for i in range(0, len(payload), 6):
                    key, value = struct.unpack(">HI", payload[i : i + 6])
                    if key == MAX_FRAME_SIZE:
                        self.max_frame = value
                        self.largest_max_frame = max(self.largest_max_frame, value)


class Tap:
    """A TCP proxy to a server that records the frames of every connection through it."""

    def __init__(self, target: str):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.lis = socket.create_server(("127.0.0.1", 0))
        self.addr = "127.0.0.1:%d" % self.lis.getsockname()[1]
        self.to_client: list[Wire] = []
        self.to_server: list[Wire] = []
        self.threads: list[threading.Thread] = []
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.lis.accept()
            except OSError:
                return
            s = socket.create_connection(self.target)
            self.socks += [c, s]
            down, up = Wire(), Wire(preface=True)
            self.to_client.append(down)
            self.to_server.append(up)
            for src, dst, wire in ((s, c, down), (c, s, up)):
                t = threading.Thread(target=self._pipe, args=(src, dst, wire), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, wire: Wire) -> None:
        try:
            while chunk := src.recv(1 << 20):
                wire.feed(chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self.lis.close()
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(timeout=10)
        for s in self.socks:
            s.close()


def read_through(server_addr: str, ticket: bytes):
    """Reads ticket through a fresh client on a Tap; returns the table and the tap."""
    tap = Tap(server_addr)
    client = flight.connect(f"grpc://{tap.addr}")
    try:
        table = client.do_get(flight.Ticket(ticket)).read_all()
    finally:
        client.close()
        tap.close()
    return table, tap


@pytest.fixture(scope="module")
def two_servers(flightbatch_bin, tmp_path_factory):
    """A server with merging on (the default) and one with it off, on the same store with a job's
    result, both started after the job (so that both serve what the store holds)."""
    maker = start_server(flightbatch_bin, tmp_path_factory.mktemp("frames-job"))
    client = maker.connect()
    job_id = run_psd(client, {"dataset": "demo", "fs_column": "fs", "nperseg": 256})
    assert_succeeded(wait_job(client, job_id))
    client.close()
    assert maker.stop() == 0, maker.stderr_text()
    store = ("--store", f"file://{maker.store}")
    on = start_server(flightbatch_bin, tmp_path_factory.mktemp("frames-on"), *store)
    off = start_server(flightbatch_bin, tmp_path_factory.mktemp("frames-off"), *store, "--coalesce-frames=false")
    yield on, off, job_id
    for srv in (off, on):
        assert srv.stop() == 0, srv.stderr_text()


@pytest.mark.parametrize("what", ["dataset", "job result"])
def test_pyarrow_client_gets_large_frames(two_servers, what):
    on, off, job_id = two_servers
    ticket = b"datasets/demo" if what == "dataset" else f"jobs/{job_id}".encode()
    got_on, tap_on = read_through(on.addr, ticket)
    got_off, tap_off = read_through(off.addr, ticket)

    direct = on.connect()
    try:
        want = read_dataset(direct) if what == "dataset" else direct.do_get(flight.Ticket(ticket)).read_all()
    finally:
        direct.close()
    assert got_on.equals(want) and got_off.equals(want)
    assert want.nbytes > 256 << 10, "the stream is too small to tell frames apart"

    for tap in (tap_on, tap_off):
        assert [w.bad for w in tap.to_server + tap.to_client] == [[]] * (2 * len(tap.to_client))
    [down_on], [up_on] = tap_on.to_client, tap_on.to_server
    [down_off], [up_off] = tap_off.to_client, tap_off.to_server
    assert not down_on.buf and not down_off.buf, "a frame was cut short"

    # Every stream's data, byte for byte, and its HEADERS frames, as with merging off.
    assert set(down_on.data) == set(down_off.data)
    for sid in down_off.data:
        assert bytes(down_on.data[sid]) == bytes(down_off.data[sid]), f"stream {sid}'s data differ"
    assert down_on.headers == down_off.headers

    # gRPC-Go's frames with merging off; frames as large as the client allows with it on.
    assert up_on.largest_max_frame > 16384, "the pyarrow client allowed no frames larger than 16 KiB"
    assert max(down_off.data_lens) <= 16384
    assert max(down_on.data_lens) > 16384
    assert max(down_on.data_lens) <= up_on.max_frame
    assert len(down_on.data_lens) * 4 < len(down_off.data_lens), (
        f"{len(down_on.data_lens)} DATA frames with merging, {len(down_off.data_lens)} without"
    )
