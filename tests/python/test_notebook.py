"""examples/notebook.ipynb runs from top to bottom against a real server.

The notebook is executed with nbclient in an IPython kernel of this same Python (the one running
pytest, i.e. .venv's), against a server of its own with a small demo dataset; its address reaches
the notebook through FLIGHTBATCH_ADDR, as it would for a researcher. The test checks that no cell
raised and that the outputs say what they should: the job SUCCEEDED and the result has one row per
record of the dataset, and every plot cell (tagged "plot") drew a non-blank PNG figure.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys

import nbclient
import nbformat
import numpy as np
import pyarrow.flight as flight
import pytest
from PIL import Image

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


def _png_is_a_figure(png_b64: str) -> tuple[bool, str]:
    """Whether a PNG holds a drawn figure: sizeable, and neither blank nor one flat colour."""
    img = Image.open(io.BytesIO(base64.b64decode(png_b64))).convert("L")
    px = np.asarray(img, dtype=np.float64)
    ink = float(np.mean(px < 200))  # share of pixels darker than a light grey
    levels = len(np.unique(px))
    ok = img.width >= 200 and img.height >= 150 and px.std() > 5 and 0.005 < ink < 0.6 and levels > 16
    return ok, f"{img.width}x{img.height}, std {px.std():.1f}, ink {ink:.3f}, {levels} grey levels"


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
        assert "<flightbatch.Dataset 'demo'" in out
        m = re.search(r"^job (\S+) (\w+)$", out, re.M)
        assert m and m.group(2) == "SUCCEEDED", out
        assert f"result rows: {records} (dataset records: {records})" in out, out
        assert f"{records} records, " in out, out
        assert "mean_beta" in out and "beta_alpha_ratio" in out, out
        assert "'psd': 'uV²/Hz'" in out, out  # the uploaded recording's unit reached its result

        # The progress bar of shards was shown (as text: the kernel has no widgets installed).
        stderr = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                         for o in cell.outputs if o.get("name") == "stderr")
        assert f"job {m.group(1)}" in stderr and "shard" in stderr, stderr

        plots = [cell for cell in nb.cells if "plot" in cell.get("metadata", {}).get("tags", [])]
        assert len(plots) >= 3, "the notebook lost its plot cells"
        for cell in plots:
            pngs = [o["data"]["image/png"] for o in cell.outputs
                    if o.get("output_type") in ("display_data", "execute_result") and "image/png" in o.get("data", {})]
            assert pngs, f"plot cell drew no PNG:\n{cell.source}"
            for png in pngs:
                ok, why = _png_is_a_figure(png)
                assert ok, f"plot cell's PNG looks blank ({why}):\n{cell.source}"

        # The job the notebook ran is the server's, and its result has the bands asked for.
        with srv.connect() as c:
            status = json.loads(next(iter(c.do_action(flight.Action(
                "job-status", json.dumps({"job_id": m.group(1)}).encode())))).body.to_pybytes())
        assert status["state"] == "SUCCEEDED"
        assert status["params"]["fs_column"] == "fs"
        assert set(status["params"]["bands"]) == {"beta", "alpha"}
    finally:
        assert srv.stop() == 0, srv.stderr_text()
