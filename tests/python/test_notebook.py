"""examples/notebook.ipynb runs from top to bottom against a real server.

The notebook is executed with nbclient in an IPython kernel of this same Python (the one running
pytest, i.e. .venv's), against a server of its own with a small demo dataset; its address reaches
the notebook through FLIGHTBATCH_ADDR, as it would for a researcher. The test checks that no cell
raised and that the outputs say what they should: the job SUCCEEDED and the result has one row per
record of the dataset.
"""

from __future__ import annotations

import json
import re
import sys

import nbclient
import nbformat
import pyarrow.flight as flight
import pytest

from conftest import REPO, start_server

NOTEBOOK = REPO / "examples" / "notebook.ipynb"
CELL_TIMEOUT = 120


def _kernel_env(monkeypatch, tmp_path, addr: str) -> None:
    """Make kernel name python3 resolve to an ipykernel of sys.executable, whatever else is installed.

    JUPYTER_PATH is searched before the user's and the system's data dirs, and the first kernel
    spec of a name wins, so a spec written there overrides any other python3 kernel on the machine.
    """
    kernels = tmp_path / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (flightbatch tests)",
        "language": "python",
    }
    (kernels / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("FLIGHTBATCH_ADDR", addr)


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") in ("execute_result", "display_data"):
        return output.get("data", {}).get("text/plain", "")
    return ""


def test_notebook_runs(flightbatch_bin, tmp_path, monkeypatch):
    srv = start_server(flightbatch_bin, tmp_path / "server")
    try:
        with srv.connect() as c:
            records = c.get_flight_info(flight.FlightDescriptor.for_path("datasets", "demo")).total_records
        assert records > 0

        _kernel_env(monkeypatch, tmp_path, srv.location)
        nb = nbformat.read(NOTEBOOK, as_version=4)
        # One more cell, the test's own: which Python ran the kernel.
        nb.cells.append(nbformat.v4.new_code_cell('import sys; print("kernel python:", sys.executable)'))
        client = nbclient.NotebookClient(
            nb,
            kernel_name="python3",
            timeout=CELL_TIMEOUT,
            resources={"metadata": {"path": str(tmp_path)}},
        )
        try:
            client.execute()
        except nbclient.exceptions.CellExecutionError as e:
            pytest.fail(f"a notebook cell raised:\n{e}")

        errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
                  if o.get("output_type") == "error"]
        assert not errors, errors
        out = "\n".join(_text(o) for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)

        assert f"kernel python: {sys.executable}" in out, out
        assert f"connected to {srv.location}" in out
        assert "datasets/demo" in out
        m = re.search(r"^job (\S+) (\w+)$", out, re.M)
        assert m and m.group(2) == "SUCCEEDED", out
        assert f"result rows: {records} (dataset records: {records})" in out, out
        assert f"{records} records, " in out, out
        assert "mean_beta" in out and "beta_alpha_ratio" in out, out

        # The job the notebook ran is the server's, and its result has the bands asked for.
        with srv.connect() as c:
            status = json.loads(next(iter(c.do_action(flight.Action(
                "job-status", json.dumps({"job_id": m.group(1)}).encode())))).body.to_pybytes())
        assert status["state"] == "SUCCEEDED"
        assert status["params"]["fs_column"] == "fs"
        assert set(status["params"]["bands"]) == {"beta", "alpha"}
    finally:
        assert srv.stop() == 0, srv.stderr_text()
