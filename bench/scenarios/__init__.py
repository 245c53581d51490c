"""The scenario contract and the list of scenarios.

A scenario measures one piece of our code ("ours") against the plainest honest way to
do the same work ("baseline") on the same server, data and machine. The report shows
the ratio rather than raw numbers because only the ratio survives a change of machine.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# Every scenario, in report order. A scenario's name is its module's name, so that
# `--only` can be checked before any server starts, and so that scenario modules (which
# may import models) are imported only once Django is set up.
NAMES: tuple[str, ...] = (
    "select_one",
    "wallet_debit_2",
    "wallet_debit_8",
    "hot_wallet_8",
    "history_pages",
    "csv_export",
    "transaction_search",
    "statement_import",
    "recharge_reaction",
)


@dataclass
class Context:
    """What each step of one scenario receives."""

    # The scratch database, also Django's default database in the benchmark process.
    database_url: str
    quick: bool
    # Whatever prepare() builds for the runs (connections, ids, sizes); one per scenario.
    state: dict[str, Any] = field(default_factory=dict)

    def size(self, *, quick: int, full: int) -> int:
        """A workload size: `--quick` is a smoke run, full runs must be long enough to trust."""
        return quick if self.quick else full


Step = Callable[[Context], None]
Measure = Callable[[Context], float]


def _nothing(_ctx: Context) -> None:
    """The default prepare and cleanup, for scenarios that need none."""


@dataclass(frozen=True)
class Scenario:
    name: str
    # One line for the report: what is compared with what.
    description: str
    unit: str
    # True for throughputs (per second), False for times (ms): decides how ratio is taken.
    higher_is_better: bool
    # The ratio (higher is better) we promise to reach.
    goal: float
    # Each run does the whole workload once and returns one measurement in `unit`.
    run_ours: Measure
    run_baseline: Measure
    # Runs once before the rounds (data, connections, warm-up) and is not measured.
    prepare: Step = _nothing
    # Runs once after the rounds, even when one failed.
    cleanup: Step = _nothing
    # Caveats a reader needs to judge the numbers.
    notes: str = ""

    def ratio(self, ours: float, baseline: float) -> float:
        """Ours relative to the baseline, oriented so that higher is always better."""
        return ours / baseline if self.higher_is_better else baseline / ours


def load(names: Iterable[str]) -> list[Scenario]:
    """Import the named scenario modules (Django must be set up) and return their SCENARIO."""
    scenarios = []
    for name in names:
        scenario = importlib.import_module(f"{__name__}.{name}").SCENARIO
        if not isinstance(scenario, Scenario) or scenario.name != name:
            raise TypeError(f"bench.scenarios.{name}.SCENARIO must be a Scenario named {name!r}")
        scenarios.append(scenario)
    return scenarios
