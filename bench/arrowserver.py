#!/usr/bin/env python3
"""pyarrow's own Flight server over a flightbatch file store's Arrow IPC files: the DoGet peer.

    python bench/arrowserver.py STORE files|memory

DoGet `datasets/<name>` streams STORE/datasets/<name>/part-*.arrow and `jobs/<id>` streams
STORE/jobs/<id>/parts/part-*.arrow, in file order. Mode `files` memory-maps each file and yields its
record batches (`flight.GeneratorStream`); mode `memory` reads every dataset and job result into
tables at start and serves them (`flight.RecordBatchStream`). Prints
`pyarrow listening on grpc://127.0.0.1:PORT` when ready. It imports pyarrow only, so that it starts
quickly.
"""

from __future__ import annotations

import pathlib
import sys

import pyarrow as pa
import pyarrow.flight as flight


class ArrowFileServer(flight.FlightServerBase):
    """DoGet `datasets/<name>` and `jobs/<id>` stream the store's part-*.arrow files of that
    dataset or job result: mode "files" memory-maps each file and yields its batches; mode "memory"
    serves tables it read into memory at start."""

    def __init__(self, store: pathlib.Path, mode: str, location: str = "grpc://127.0.0.1:0"):
        super().__init__(location)
        self.store, self.mode = store, mode
        self.tables: dict[str, pa.Table] = {}
        if mode == "memory":
            for ticket in self._tickets():
                self.tables[ticket] = pa.concat_tables(
                    pa.ipc.open_file(pa.OSFile(str(p))).read_all() for p in self._files(ticket))

    def _tickets(self) -> list[str]:
        out = [f"datasets/{d.name}" for d in sorted((self.store / "datasets").iterdir()) if d.is_dir()]
        jobs = self.store / "jobs"
        if jobs.is_dir():
            out += [f"jobs/{d.name}" for d in sorted(jobs.iterdir()) if (d / "parts").is_dir()]
        return out

    def _files(self, ticket: str) -> list[pathlib.Path]:
        kind, _, name = ticket.partition("/")
        if kind == "datasets" and name:
            files = sorted((self.store / "datasets" / name).glob("part-*.arrow"))
        elif kind == "jobs" and name:
            files = sorted((self.store / "jobs" / name / "parts").glob("part-*.arrow"))
        else:
            raise flight.FlightServerError(f"bad ticket {ticket!r}")
        if not files:
            raise flight.FlightServerError(f"nothing at {ticket!r}")
        return files

    def do_get(self, context, ticket):
        key = ticket.ticket.decode()
        if self.mode == "memory":
            if key not in self.tables:
                raise flight.FlightServerError(f"nothing at {key!r}")
            return flight.RecordBatchStream(self.tables[key])
        files = self._files(key)
        schema = pa.ipc.open_file(pa.memory_map(str(files[0]))).schema

        def batches():
            for path in files:
                with pa.memory_map(str(path)) as source:
                    reader = pa.ipc.open_file(source)
                    for i in range(reader.num_record_batches):
                        yield reader.get_batch(i)

        return flight.GeneratorStream(schema, batches())


def serve_pyarrow(store: str, mode: str) -> int:
    server = ArrowFileServer(pathlib.Path(store), mode)
    print(f"pyarrow listening on grpc://127.0.0.1:{server.port}", flush=True)
    server.serve()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in ("files", "memory"):
        sys.exit(__doc__)
    sys.exit(serve_pyarrow(sys.argv[1], sys.argv[2]))
