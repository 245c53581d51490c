"""The results files: `latest.json` for tools and `latest.md` for people.

Both carry the machine, because a ratio is only comparable with another one measured
on similar hardware and the same PostgreSQL and Python.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import psutil

GIB = 1024**3


def machine(postgres_version: str) -> dict[str, Any]:
    # The cores this process may use, which in a container can be fewer than the host's.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": cores,
        "memory": psutil.virtual_memory().total,
        "postgres version": postgres_version,
        "python version": platform.python_version(),
    }


def number(value: float) -> str:
    """Readable at any scale: 12,345 queries/s as well as 0.42 ms."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {info['cores']} cores, {info['memory'] / GIB:.1f} GiB RAM, "
        f"PostgreSQL {info['postgres version']}, Python {info['python version']}.",
        "",
        "| Scenario | Unit | Ours: median (min to max) | Baseline: median (min to max) "
        "| Ratio | Goal | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["scenarios"]:
        cells = [
            row["name"],
            row["unit"],
            _with_spread(row["ours"], row["ours_spread"]),
            _with_spread(row["baseline"], row["baseline_spread"]),
            f"{row['ratio']:.2f}",
            f"{row['goal']:.2f}",
            "yes" if row["met"] else "**no**",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Each scenario alternates ours and baseline runs for the given rounds; the table "
        "shows medians. Ratio is ours/baseline for throughputs and baseline/ours for times, "
        "so higher is always better; a goal is met when ratio ≥ goal.",
        "",
    ]
    for row in report["scenarios"]:
        quick = " Quick (small) run: not a result to compare." if row["quick"] else ""
        lines.append(f"- **{row['name']}** ({row['rounds']} rounds): {row['description']}.{quick}")
        if row["notes"]:
            lines.append(f"  {row['notes']}")
    for row in report["scenarios"]:
        if row.get("details"):
            lines += ["", f"## {row['name']}: details"]
            for key, value in row["details"].items():
                if "\n" in value:
                    lines += ["", f"{key}:", "", "```", value, "```"]
                else:
                    lines += ["", f"{key}: {value}"]
    return "\n".join(lines) + "\n"


def _with_spread(median: float, spread: dict[str, float]) -> str:
    return f"{number(median)} ({number(spread['min'])} to {number(spread['max'])})"


def write(report: dict[str, Any], output: Path) -> list[Path]:
    """Write latest.json and latest.md into ``output``; return their paths.

    Each is written to a .tmp file first and renamed, so an interrupted run never
    leaves half a report where a committed one was.
    """
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("latest.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n"),
        ("latest.md", markdown(report)),
    ):
        path = output / name
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
        written.append(path)
    return written
