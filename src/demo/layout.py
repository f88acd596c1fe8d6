"""The run plan: which coordinates exist and what each run records and labels."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal, TypeVar

from src.models.coordinate import RunCoordinate

EXPECTED_SAMPLES_PER_BAG = 17
ISO_FORMAT = "%Y-%m-%dT%H-%M-%S"
COMPACT_FORMAT = "%Y%m%d_%H%M%S"
UNPARSEABLE_NAMES: tuple[str, ...] = ("run-final", "calib-run", "test-drive-b", "rerun")
FIRST_DAY = datetime(2024, 4, 2, tzinfo=UTC)

T = TypeVar("T")
BagFormat = Literal["ros1", "ros2"]
ImageKind = Literal["raw", "compressed"]


class Labels(StrEnum):
    """How a run is labelled in the ML bucket."""

    FULL = "full"  # close to EXPECTED_SAMPLES_PER_BAG per bag
    UNDER = "under"  # 20-40 % of the expected samples
    NONE = "none"  # bags but no samples at all
    SAMPLES_ONLY = "samples_only"  # samples but no raw bags (a data-quality case)
    EXPORTED = "exported"  # samples only in the local, not yet uploaded export


@dataclass(frozen=True)
class SizeSpec:
    """Shape of one demo size."""

    runs: int
    cids: tuple[str, ...]
    regions: tuple[str, ...]
    fields_per_region: int
    bags: tuple[int, int]  # min and max bags per run
    bag_seconds: tuple[float, float]
    exports: int
    unparseable: int


SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec(8, ("acme", "globex"), ("north", "south"), 1, (1, 2), (3.0, 5.0), 2, 1),
    "small": SizeSpec(96, ("acme", "globex"), ("north", "south"), 3, (1, 3), (12.0, 30.0), 3, 2),
    "medium": SizeSpec(420, ("acme", "globex", "initech"), ("north", "south", "east"), 4, (1, 3), (12.0, 30.0), 3, 3),
}


@dataclass(frozen=True)
class BagFile:
    """One storage file of a run: a ROS1 .bag or one .mcap inside a ROS2 bag folder."""

    index: int
    key: str  # relative to the run prefix, '/'-separated
    recording: str  # the .bag file or the ROS2 folder, relative to the run prefix
    start_ns: int  # receive-time window this file covers
    end_ns: int

    @property
    def stem(self) -> str:
        """Return the storage file name without its suffix."""
        return self.key.rsplit("/", 1)[-1].rsplit(".", 1)[0]


@dataclass(frozen=True)
class RunPlan:
    """Everything the generator needs to write one run deterministically."""

    coord: RunCoordinate
    seed: int
    start_ns: int  # first header stamp
    fmt: BagFormat
    image: ImageKind
    compression: str  # ros1: none/lz4/bz2, ros2: none/zstd
    rate_hz: float
    bag_seconds: tuple[float, ...]
    gaps: tuple[tuple[float, float], ...]  # (offset s, length s) from run start
    drop_prob: float
    detector_drop_prob: float
    labels: Labels
    samples_per_bag: tuple[int, ...]
    sample_layout: Literal["per_bag", "flat"]
    in_flight: Literal["", "active", "tmp"] = ""

    @property
    def duration_s(self) -> float:
        """Return the recorded duration over all bags."""
        return sum(self.bag_seconds)

    @property
    def has_bags(self) -> bool:
        """Return whether raw bags are written for this run."""
        return self.labels is not Labels.SAMPLES_ONLY

    def bag_files(self) -> list[BagFile]:
        """Return the storage files, named the way rosbag record / ros2 bag record name splits."""
        stamp = datetime.fromtimestamp(self.start_ns // 10**9, UTC)
        single = len(self.bag_seconds) == 1
        files = []
        offset_ns = self.start_ns
        for index, seconds in enumerate(self.bag_seconds):
            end_ns = offset_ns + round(seconds * 1e9)
            if self.fmt == "ros1":
                name = stamp.strftime("%Y-%m-%d-%H-%M-%S") + ("" if single else f"_{index}")
                recording = key = f"{name}.bag"
            else:
                recording = "rosbag2_" + stamp.strftime("%Y_%m_%d-%H_%M_%S")
                key = f"{recording}/{recording}_{index}.mcap"
            files.append(BagFile(index, key, recording, offset_ns, end_ns))
            offset_ns = end_ns
        return files


def parse_run_timestamp(name: str) -> datetime | None:
    """Parse a timestamp folder name in either supported form, or return None."""
    for fmt in (ISO_FORMAT, COMPACT_FORMAT):
        try:
            return datetime.strptime(name, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def derive_seed(seed: int, *parts: str) -> int:
    """Derive a stable 64-bit seed; hash() is salted per process, so use sha256."""
    digest = hashlib.sha256("/".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def plan_runs(size: str = "small", seed: int = 7) -> list[RunPlan]:
    """Return the deterministic run plan for size and seed, sorted by coordinate."""
    if size not in SIZES:
        raise ValueError(f"unknown demo size {size!r}; choose from {', '.join(SIZES)}")
    spec = SIZES[size]
    rng = random.Random(derive_seed(seed, "plan", size))  # noqa: S311 - demo data needs replay, not secrecy
    slots = _schedule(rng, spec)
    n = len(slots)
    labels = _quota(
        rng,
        n,
        [
            (Labels.SAMPLES_ONLY, 1),
            (Labels.EXPORTED, spec.exports),
            (Labels.NONE, max(1, round(0.06 * n))),
            (Labels.UNDER, max(1, round(0.12 * n))),
        ],
        Labels.FULL,
    )
    names = _quota(rng, n, [("unparseable", spec.unparseable), ("compact", max(1, round(0.08 * n)))], "iso")
    fmts = _quota(rng, n, [("ros1", n // 2)], "ros2")
    images = _quota(rng, n, [("raw", n // 2)], "compressed")
    # Gaps only matter where bags are written.
    recorded = [i for i in range(n) if labels[i] is not Labels.SAMPLES_ONLY]
    gappy_runs = set(rng.sample(recorded, max(1, round(0.15 * n))))

    runs = []
    unparseable = iter(UNPARSEABLE_NAMES)
    for i, (leaf, when) in enumerate(slots):
        if names[i] == "unparseable":
            timestamp = next(unparseable)
        else:
            timestamp = when.strftime(ISO_FORMAT if names[i] == "iso" else COMPACT_FORMAT)
        coord = RunCoordinate(*leaf, timestamp)
        runs.append(_plan_run(coord, seed, spec, when, fmts[i], images[i], labels[i], i in gappy_runs))
    _mark_in_flight(rng, runs)
    return sorted(runs, key=lambda r: r.coord)


def _schedule(rng: random.Random, spec: SizeSpec) -> list[tuple[tuple[str, ...], datetime]]:
    """Pick leaves of the hierarchy and a distinct recording time for each run on them."""
    tree = [
        (cid, region, f"field-{f:02d}", f"tw{tw:02d}", f"lb{lb}")
        for cid in spec.cids
        for r_index, region in enumerate(spec.regions)
        for f in range(r_index * spec.fields_per_region + 1, (r_index + 1) * spec.fields_per_region + 1)
        for tw in range(1, 3)
        for lb in range(1, 3)
    ]
    # About 2.5 runs per leaf, but every cid keeps at least one leaf.
    target = max(len(spec.cids), min(len(tree), round(spec.runs / 2.5)))
    leaves = [next(leaf for leaf in tree if leaf[0] == cid) for cid in spec.cids]
    rest = [leaf for leaf in tree if leaf not in leaves]
    leaves += rng.sample(rest, target - len(leaves))
    counts = dict.fromkeys(leaves, 1)
    for leaf in rng.choices(leaves, k=spec.runs - len(leaves)):
        counts[leaf] += 1
    slots = []
    for leaf in sorted(counts):
        day = FIRST_DAY + timedelta(days=rng.randrange(60))
        when = _at(rng, day, 7, 12)
        for _ in range(counts[leaf]):
            slots.append((leaf, when))
            if rng.random() < 0.3 and when.hour < 15:  # another run later the same day
                when += timedelta(hours=rng.randrange(1, 3), minutes=rng.randrange(60))
            else:
                day += timedelta(days=rng.randrange(1, 8))
                when = _at(rng, day, 7, 17)
    return slots


def _at(rng: random.Random, day: datetime, first_hour: int, last_hour: int) -> datetime:
    """Return a random second of day between first_hour and last_hour (exclusive)."""
    hour = rng.randrange(first_hour, last_hour)
    return day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))


def _quota(rng: random.Random, n: int, quotas: list[tuple[T, int]], rest: T) -> list[T]:
    """Return n values holding each quota exactly, the remainder as rest, in random order."""
    values = [value for value, count in quotas for _ in range(count)][:n]
    values += [rest] * (n - len(values))
    rng.shuffle(values)
    return values


def _plan_run(
    coord: RunCoordinate,
    seed: int,
    spec: SizeSpec,
    when: datetime,
    fmt: BagFormat,
    image: ImageKind,
    labels: Labels,
    gappy: bool,
) -> RunPlan:
    """Draw one run's recording and labelling parameters from its own seed."""
    rng = random.Random(derive_seed(seed, "run", str(coord)))  # noqa: S311 - as in plan_runs
    n_bags = rng.randint(*spec.bags)
    lo, hi = spec.bag_seconds
    if gappy:
        # Gaps need room: at least two bags of 8 s or more.
        n_bags, lo, hi = max(n_bags, 2), max(lo, 8.0), max(hi, 10.0)
    bag_seconds = tuple(round(rng.uniform(lo, hi), 3) for _ in range(n_bags))
    return RunPlan(
        coord=coord,
        seed=derive_seed(seed, "sim", str(coord)),
        # The recorder starts a fraction of a second after the folder's time.
        start_ns=int(when.timestamp()) * 10**9 + rng.randrange(50_000_000, 900_000_000),
        fmt=fmt,
        image=image,
        compression=rng.choice(["lz4", "lz4", "none", "bz2"] if fmt == "ros1" else ["zstd"] * 3 + ["none"]),
        rate_hz=round(rng.choice([10, 12, 15, 20, 25, 30]) * rng.uniform(0.998, 1.002), 4),
        bag_seconds=bag_seconds,
        gaps=_gaps(rng, sum(bag_seconds)) if gappy else (),
        drop_prob=round(rng.uniform(0.002, 0.02), 4),
        detector_drop_prob=round(rng.uniform(0.002, 0.01), 4) if rng.random() < 0.4 else 0.0,
        labels=labels,
        samples_per_bag=_samples_per_bag(rng, labels, n_bags),
        sample_layout="per_bag" if rng.random() < 0.75 else "flat",
    )


def _gaps(rng: random.Random, duration: float) -> tuple[tuple[float, float], ...]:
    """Place 1-3 multi-second gaps, each in its own slice of the run so none overlap."""
    count = rng.randint(1, 2 if duration < 40 else 3)
    width = duration / count
    gaps = []
    for k in range(count):
        length = rng.uniform(2.0, min(5.0, width / 2))
        offset = k * width + rng.uniform(0.5, width - length - 0.5)
        gaps.append((round(offset, 3), round(length, 3)))
    return tuple(gaps)


def _samples_per_bag(rng: random.Random, labels: Labels, n_bags: int) -> tuple[int, ...]:
    """Return how many labelled samples each bag gets."""
    if labels is Labels.NONE:
        return (0,) * n_bags
    if labels is Labels.UNDER:
        counts = [0] * n_bags
        total = max(1, round(EXPECTED_SAMPLES_PER_BAG * n_bags * rng.uniform(0.2, 0.4)))
        for index in rng.choices(range(n_bags), k=total):
            counts[index] += 1
        return tuple(counts)
    near = [EXPECTED_SAMPLES_PER_BAG, EXPECTED_SAMPLES_PER_BAG - 1, EXPECTED_SAMPLES_PER_BAG - 2]
    return tuple(rng.choices([*near, EXPECTED_SAMPLES_PER_BAG + 1], weights=[70, 15, 8, 7], k=n_bags))


def _mark_in_flight(rng: random.Random, runs: list[RunPlan]) -> None:
    """Give one ROS1 run a .bag.active and one ROS2 run a .tmp object still being written."""
    for fmt, kind in (("ros1", "active"), ("ros2", "tmp")):
        candidates = [i for i, run in enumerate(runs) if run.fmt == fmt and run.has_bags]
        if candidates:
            index = rng.choice(candidates)
            runs[index] = replace(runs[index], in_flight=kind)
