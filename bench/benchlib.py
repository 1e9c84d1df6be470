"""Setup shared by the benchmarks: the flightbatch binary and a demo dataset in a temp store."""

from __future__ import annotations

import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[1]


def flightbatch_binary(tmp: pathlib.Path, given: str | None) -> pathlib.Path:
    """The binary given (--bin / $FLIGHTBATCH_BIN), or one built into tmp."""
    if given:
        return pathlib.Path(given).resolve()
    binary = tmp / "flightbatch"
    subprocess.run(["go", "build", "-o", str(binary), "./cmd/flightbatch"], cwd=REPO, check=True)
    return binary


def gen_demo(binary: pathlib.Path, store: pathlib.Path, mb: int, shards: int) -> list[pathlib.Path]:
    """Writes the demo dataset into the file store at store; returns its shard files."""
    subprocess.run([str(binary), "gen", "--store", f"file://{store}", "--mb", str(mb),
                    "--shards", str(shards)], check=True, stdout=subprocess.DEVNULL)
    return sorted((store / "datasets" / "demo").glob("part-*.arrow"))
