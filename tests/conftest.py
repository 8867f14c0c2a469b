"""Fixtures and hooks for the whole suite: one thread per xdist worker, a synthetic GLUE folder, and
the fast loop's CPU budget. Shared helpers live in tests/helpers/ (`from helpers.records import ...`);
a test module imports neither another test module nor this file."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# helpers' asserts (a notebook that wrote under results, a cell that is not one row) report as a
# test's own do: pytest rewrites them too.
pytest.register_assert_rewrite("helpers")

from helpers.glue import WRITERS, write_synthetic_glue  # noqa: E402

# `make test` runs the suite in two pytest-xdist workers: one thread each (and in every process a
# test starts), so the two share the cores instead of oversubscribing them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture
def synthetic_glue(tmp_path_factory) -> Path:
    """A fresh folder with synthetic RTE, MRPC, CoLA and STS-B (tests may modify it)."""
    return write_synthetic_glue(tmp_path_factory.mktemp("glue"), tasks=tuple(WRITERS))


# ---------------------------------------------------------------- the fast loop's budget
# `make test-fast` runs the tests not marked `slow` with CHILDTUNING_TEST_BUDGET_S=5: an unmarked test
# whose CPU time (this process and the subprocesses it waited for, so a loaded machine does not
# count against it) exceeds the budget fails, naming the fix. `make test` (CI) sets no budget.
BUDGET_S = float(os.environ.get("CHILDTUNING_TEST_BUDGET_S") or 0)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    started = _cpu_seconds()
    yield
    item._cpu_seconds = _cpu_seconds() - started


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    spent = getattr(item, "_cpu_seconds", 0.0)
    if BUDGET_S and call.when == "call" and report.passed and item.get_closest_marker("slow") is None \
            and spent > BUDGET_S:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} took {spent:.1f} s of CPU time, over the fast loop's budget of "
                           f"{BUDGET_S:g} s: mark it @pytest.mark.slow (it still runs in `make test`), or make it cheaper")
