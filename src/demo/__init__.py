"""Deterministic demo data: real ROS bags, labelled ML samples and a local ML export."""

from __future__ import annotations

from src.demo.bags import BagResult
from src.demo.files import iter_files
from src.demo.generate import DemoSummary, generate_demo
from src.demo.layout import EXPECTED_SAMPLES_PER_BAG, SIZES, Labels, RunPlan, plan_runs

__all__ = [
    "EXPECTED_SAMPLES_PER_BAG",
    "SIZES",
    "BagResult",
    "DemoSummary",
    "Labels",
    "RunPlan",
    "generate_demo",
    "iter_files",
    "plan_runs",
]
