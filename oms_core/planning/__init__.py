"""Delivery scheduling: a vehicle routing problem with time windows, as a pure library.

``plan(problem)`` assigns a day's jobs to vehicles and times every stop (PyVRP does the
search); ``check(problem, plan, matrix)`` verifies any plan independently;
``nearest_neighbour(problem)`` is the simple baseline plans are measured against.
"""

from oms_core.planning.baseline import nearest_neighbour
from oms_core.planning.check import check
from oms_core.planning.generate import random_problem
from oms_core.planning.matrix import HaversineMatrix, MatrixProvider, OsrmMatrix
from oms_core.planning.model import Job, Plan, PlannedStop, Problem, Route, Site, Vehicle
from oms_core.planning.solver import from_position, plan, replan_remaining

__all__ = [
    "HaversineMatrix",
    "Job",
    "MatrixProvider",
    "OsrmMatrix",
    "Plan",
    "PlannedStop",
    "Problem",
    "Route",
    "Site",
    "Vehicle",
    "check",
    "from_position",
    "nearest_neighbour",
    "plan",
    "random_problem",
    "replan_remaining",
]
