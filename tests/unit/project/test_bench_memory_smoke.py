"""`python -m bench.memory --smoke` prints its two tables and writes matching JSON (shape only, never sizes)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.memory import PROCESS_COLUMNS, REDIS_COLUMNS, SETTINGS
from tests.tables import markdown_tables

pytestmark = pytest.mark.integration

TEXT_FIELDS = {"what", "setting"}


def _check_table(table: list[list[str]], columns: list[tuple[str, str]], rows: int) -> None:
    assert table[0] == [title for _, title in columns]
    assert len(table) - 1 == rows
    numeric = [i for i, (field, _) in enumerate(columns) if field not in TEXT_FIELDS]
    for row in table[1:]:
        assert len(row) == len(columns)
        for i in numeric:
            if row[i] != "n/a":
                float(row[i])


# Several stacks start one after the other: on a box busy with other work that takes a while.
@pytest.mark.timeout(200)
def test_smoke_prints_tables_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    command = [sys.executable, "-m", "bench.memory", "--smoke", "--out", str(out), "--logs", str(tmp_path / "logs")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as bench:
        try:
            stdout, stderr = bench.communicate(timeout=170)
        except subprocess.TimeoutExpired:
            # SIGTERM, not SIGKILL: the benchmark then stops the Redis, API and workers it started.
            bench.terminate()
            bench.communicate(timeout=15)
            raise
    assert bench.returncode == 0, stderr[-2000:]
    processes, redis = markdown_tables(stdout)
    # One row per worker setting and one for the API; Redis: the sequential jobs, then the burst's.
    _check_table(processes, PROCESS_COLUMNS, len(SETTINGS) + 1)
    _check_table(redis, REDIS_COLUMNS, 2)
    assert [row[1] for row in processes[1:-1]] == [label for label, _ in SETTINGS]
    assert processes[-1][0] == "API"
    result = json.loads(out.read_text())
    assert {"machine", "plan", "processes", "redis"} <= result.keys()
    for row in result["processes"]:
        assert {field for field, _ in PROCESS_COLUMNS} <= row.keys()
        assert row["failed"] == 0
    for row in result["redis"]:
        assert {field for field, _ in REDIS_COLUMNS} <= row.keys()
        assert row["failed"] == 0
    watched = result["redis"][0]
    assert watched["timeline"] and watched["records_left"] == 0
