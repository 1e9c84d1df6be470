"""A 2 GB EDF recording registered in place: a psd job over it keeps the server's peak RSS
under 512 MiB and runs on every worker (bench/edf_scale.py; its figures are in bench/README.md).

The file is written with numpy in about half a minute; the psd job over its 1e9 samples takes
about a minute on a quiet 2-core machine (several on a loaded one). FLIGHTBATCH_EDF_SCALE_GB
changes the size (default 2).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("edf_scale", REPO / "bench" / "edf_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_psd_over_a_2gb_edf_in_bounded_memory(flightbatch_bin, tmp_path):
    gb = float(os.environ.get("FLIGHTBATCH_EDF_SCALE_GB", "2"))
    try:
        res = _bench().run(flightbatch_bin, gb, workers=2, limit_mib=512, workdir=tmp_path)
    finally:
        shutil.rmtree(tmp_path / "store", ignore_errors=True)  # 2 GB of recording, 0.8 GB of result
    print(res)
    assert res["file_gb"] > 0.99 * gb
    assert res["shards"] >= 2 and res["rows"] > 0
    assert res["peak_rss_mib"] < 512, res
    assert res["max_children_at_once"] >= 2, f"the job did not use both workers: {res}"
