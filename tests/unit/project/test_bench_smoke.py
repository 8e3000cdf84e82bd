"""`llamaq bench --smoke` produces well-formed tables and JSON (shape only, never timings)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import COLUMNS, FRONTDOOR_COLUMNS, TARGET_COLUMNS
from tests.tables import markdown_tables

pytestmark = pytest.mark.integration

TEXT_FIELDS = {"scenario", "vs", "status", "target", "goal", "met"}


def _check_table(table: list[list[str]], columns: list[tuple[str, str]]) -> None:
    header, rows = table[0], table[1:]
    assert header == [title for _, title in columns]
    assert rows
    numeric = [i for i, (field, _) in enumerate(columns) if field not in TEXT_FIELDS]
    for row in rows:
        assert len(row) == len(columns)
        for i in numeric:
            if row[i] != "n/a":
                float(row[i])


def test_smoke_prints_tables_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "bench", "--smoke", "--out", str(out), "--logs", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    tables = markdown_tables(done.stdout)
    assert len(tables) == 3
    for table, columns in zip(tables, [COLUMNS, FRONTDOOR_COLUMNS, TARGET_COLUMNS], strict=True):
        _check_table(table, columns)
    result = json.loads(out.read_text())
    assert {"machine", "workload", "table", "frontdoor", "targets"} <= result.keys()
    for row in result["table"]:
        assert {field for field, _ in COLUMNS} <= row.keys()
    measured = [row for row in result["table"] if row["requests"]]
    assert any(row["scenario"].startswith("raw") for row in measured)
    assert any(row["scenario"].startswith("llamaq") and row["ttft_p50_ms"] is not None for row in measured)
