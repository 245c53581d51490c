"""The benchmark harness runs end to end and writes both reports.

The only benchmark code the test suite runs. It asserts nothing about speed: a slow or
busy machine must not fail the build, and `make bench` is where numbers are judged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from numbers import Real

import pytest

from tests.conftest import BASE_DIR

pytestmark = pytest.mark.integration


def is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def test_quick_bench_writes_json_and_markdown_reports(tmp_path):
    # The current environment: under `make test` it names the test servers, on which
    # the harness creates (and drops) its own scratch database.
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(tmp_path)],
        env=dict(os.environ),
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    report = json.loads((tmp_path / "latest.json").read_text())
    assert {"machine", "scenarios"} <= report.keys()
    assert {"cores", "memory", "postgres version", "python version"} <= report["machine"].keys()
    scenarios = {row["name"]: row for row in report["scenarios"]}
    assert "select_one" in scenarios
    for row in report["scenarios"]:
        assert {"name", "unit", "ours", "baseline", "ratio", "goal", "met"} <= row.keys()
    select_one = scenarios["select_one"]
    assert all(is_number(select_one[key]) for key in ("ours", "baseline", "ratio", "goal"))
    assert isinstance(select_one["met"], bool)

    markdown = (tmp_path / "latest.md").read_text()
    assert any(line.startswith("| select_one |") for line in markdown.splitlines())
