"""`llamaq bench --capacity --smoke` prints its five tables and writes JSON (shape only, never timings)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.capacity_report import AGREE_COLUMNS, LOAD_COLUMNS, MEMORY_COLUMNS, SINGLE_COLUMNS, TARGET_COLUMNS
from tests.tables import markdown_tables

pytestmark = pytest.mark.integration

COLUMNS = [LOAD_COLUMNS, SINGLE_COLUMNS, AGREE_COLUMNS, MEMORY_COLUMNS, TARGET_COLUMNS]


def test_capacity_smoke_prints_tables_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "capacity.json"
    argv = ["bench", "--capacity", "--smoke", "--out", str(out), "--logs", str(tmp_path / "logs")]
    done = subprocess.run([sys.executable, "-m", "shared.cli", *argv], capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-2000:]
    tables = markdown_tables(done.stdout)
    assert len(tables) == len(COLUMNS)
    for table, columns in zip(tables, COLUMNS, strict=True):
        assert table[0] == [title for _, title in columns]
        assert len(table) > 1
        assert all(len(row) == len(columns) for row in table[1:])
    result = json.loads(out.read_text())
    assert {"machine", "plan", "loads", "single", "agreement", "memory", "targets", "best"} <= result.keys()
    assert all(row["failed"] == 0 for row in result["loads"])
    assert result["best"].startswith("llamaq")
