"""A transaction that met a concurrent change runs again, a bounded number of times."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from oms_core.retry import on_conflict


def flaky(conflicts: int, error: type[Exception]) -> tuple[list[int], Callable[[], str]]:
    runs: list[int] = []

    def fn() -> str:
        runs.append(len(runs) + 1)
        if len(runs) <= conflicts:
            raise error("rolled back")
        return "done"

    return runs, fn


def test_a_deadlock_runs_the_work_again_until_it_commits() -> None:
    runs, fn = flaky(2, psycopg.errors.DeadlockDetected)
    retried: list[None] = []
    assert on_conflict(fn, attempts=3, retried=lambda: retried.append(None)) == "done"
    assert runs == [1, 2, 3] and len(retried) == 2


def test_the_last_conflict_is_raised_and_other_errors_at_once() -> None:
    runs, fn = flaky(3, psycopg.errors.SerializationFailure)
    with pytest.raises(psycopg.errors.SerializationFailure):
        on_conflict(fn, attempts=3, retried=lambda: None)
    assert runs == [1, 2, 3]
    runs, fn = flaky(1, ValueError)
    with pytest.raises(ValueError):
        on_conflict(fn, attempts=3, retried=lambda: None)
    assert runs == [1]
