"""Fixtures for the extractor tests: the tiny demo (real bags with known content) and the real test bags."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.demo import BagResult, DemoSummary, RunPlan, generate_demo, plan_runs

REPO = Path(__file__).resolve().parents[2]
REAL_BAGS = REPO / ".." / "shared" / "testdata" / "real-bags"
SEED = 7


@dataclass(frozen=True)
class DemoRun:
    """One generated run: its plan, its folder and what the generator wrote per storage file."""

    plan: RunPlan
    path: Path
    bags: tuple[BagResult, ...]

    def count(self, topic: str) -> int:
        """Return the messages of topic over all the run's bags."""
        return sum(bag.counts.get(topic, 0) for bag in self.bags)

    def bag_name(self, bag: BagResult) -> str:
        """Return the bag's path relative to the run folder, as the outputs name it."""
        return bag.key.removeprefix(self.plan.coord.to_path_str() + "/")


@dataclass(frozen=True)
class Demo:
    """The generated tiny demo."""

    raw: Path
    summary: DemoSummary
    runs: tuple[DemoRun, ...]

    def run(self, *, fmt: str | None = None, splits: int = 1, image: str | None = None) -> DemoRun:
        """Return the first run matching fmt, at least splits bags and image kind."""
        for run in self.runs:
            matches = (fmt is None or run.plan.fmt == fmt) and (image is None or run.plan.image == image)
            if matches and len(run.bags) >= splits:
                return run
        raise LookupError(f"no demo run with fmt={fmt} splits>={splits} image={image}")


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """Generate the tiny demo once per session (a few seconds) and index its runs."""
    root = tmp_path_factory.mktemp("demo")
    summary = generate_demo(root / "raw", root / "ml", root / "data", size="tiny", seed=SEED)
    by_run: dict[str, list[BagResult]] = defaultdict(list)
    for bag in summary.bag_results:
        by_run[bag.key.rsplit("/", 1)[0] if bag.fmt == "ros1" else bag.key.rsplit("/", 2)[0]].append(bag)
    runs = tuple(
        DemoRun(plan, root / "raw" / plan.coord.to_path_str(), tuple(by_run[plan.coord.to_path_str()]))
        for plan in plan_runs("tiny", SEED)
        if plan.has_bags
    )
    return Demo(root / "raw", summary, runs)


@pytest.fixture(scope="session")
def real_bags() -> Path | None:
    """Return the real test bags folder, or None where it is not checked out."""
    return REAL_BAGS.resolve() if (REAL_BAGS / "tiny.bag").is_file() else None


def run_cli(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run python -m src.extraction with args from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "src.extraction", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
