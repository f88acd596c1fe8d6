"""Simulate one run: camera frames, a detector and a tracker, all in receive-time order."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from src.demo.layout import RunPlan

# class -> (width, height) as a fraction of the frame, spawn weight, detection probability
CLASSES: dict[str, tuple[float, float, float, float]] = {
    "car": (0.22, 0.16, 5.0, 0.95),
    "pedestrian": (0.06, 0.22, 3.0, 0.85),
    "cyclist": (0.09, 0.2, 1.5, 0.88),
    "truck": (0.32, 0.26, 1.0, 0.96),
}
LATENCY_MS = (20.0, 150.0)
CONFIRM_S = 0.3  # a tracker only publishes tracks after a few associated frames


@dataclass(frozen=True)
class Box:
    """One object in frame-relative coordinates (0..1), center plus size."""

    cls: str
    cx: float
    cy: float
    w: float
    h: float
    score: float
    track_id: int  # 0 for false positives


@dataclass(frozen=True)
class Frame:
    """One camera frame and the perception output that answered it."""

    seq: int
    stamp_ns: int  # header stamp of the image, the detections and the tracks
    image_log_ns: int
    truth: tuple[Box, ...]
    detections: tuple[Box, ...] | None  # None when the detector dropped the frame
    det_log_ns: int
    tracks: tuple[Box, ...] | None
    track_log_ns: int


@dataclass(frozen=True)
class _Track:
    tid: int
    cls: str
    born: float
    dies: float
    x0: float
    y0: float
    vx: float
    vy: float
    w: float
    h: float
    conf: float

    def box_at(self, t: float) -> Box | None:
        """Return the visible part of the object at t seconds, or None when it is out of view."""
        cx = self.x0 + self.vx * (t - self.born)
        cy = self.y0 + self.vy * (t - self.born)
        x1, x2 = max(0.0, cx - self.w / 2), min(1.0, cx + self.w / 2)
        y1, y2 = max(0.0, cy - self.h / 2), min(1.0, cy + self.h / 2)
        # Mostly outside the frame: a detector would not report it.
        if x2 - x1 < 0.3 * self.w or y2 - y1 < 0.3 * self.h:
            return None
        return Box(self.cls, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 1.0, self.tid)


def simulate(run: RunPlan) -> list[Frame]:
    """Return every frame of the run in stamp order."""
    rng = random.Random(run.seed)  # noqa: S311 - demo data needs replay, not secrecy
    tracks = _spawn_tracks(rng, run.duration_s)
    by_id = {track.tid: track for track in tracks}
    base_ms = rng.uniform(30.0, 70.0)
    fp_rate = rng.uniform(0.02, 0.1)
    frames = []
    for seq, t in enumerate(_frame_times(rng, run)):
        stamp_ns = run.start_ns + round(t * 1e9)
        truth = tuple(box for track in tracks if track.born <= t < track.dies if (box := track.box_at(t)))
        det_ms = _latency_ms(rng, base_ms)
        track_ms = min(LATENCY_MS[1], det_ms + rng.uniform(3.0, 12.0))
        dropped = rng.random() < run.detector_drop_prob
        frames.append(
            Frame(
                seq=seq,
                stamp_ns=stamp_ns,
                image_log_ns=stamp_ns + rng.randrange(1_000_000, 6_000_000),
                truth=truth,
                detections=None if dropped else _detect(rng, truth, fp_rate),
                det_log_ns=stamp_ns + round(det_ms * 1e6),
                tracks=None if dropped else _track(rng, truth, by_id, t),
                track_log_ns=stamp_ns + round(track_ms * 1e6),
            )
        )
    return frames


def _frame_times(rng: random.Random, run: RunPlan) -> list[float]:
    """Return frame times in seconds from run start: jittered, with drops and gaps."""
    period = 1.0 / run.rate_hz
    times = []
    for k in range(math.floor(run.duration_s * run.rate_hz)):
        # Jitter stays below half a period, so stamps stay strictly increasing.
        t = k * period + max(-0.25, min(0.25, rng.gauss(0.0, 0.05))) * period
        if rng.random() < run.drop_prob:
            continue
        if any(start <= t < start + length for start, length in run.gaps):
            continue
        times.append(max(0.0, t))
    return times


def _spawn_tracks(rng: random.Random, duration: float) -> list[_Track]:
    """Draw objects that enter, live for seconds and leave; some already present at start."""
    names = list(CLASSES)
    weights = [CLASSES[name][2] for name in names]
    birth_rate = rng.uniform(0.2, 0.6)  # births per second
    next_id = rng.randrange(1, 900)
    tracks = []
    t = -rng.uniform(0.0, 6.0)  # negative birth times: objects already in view at start
    while t < duration:
        cls = rng.choices(names, weights)[0]
        w, h = CLASSES[cls][0], CLASSES[cls][1]
        speed = rng.uniform(0.01, 0.04) if cls == "pedestrian" else rng.uniform(0.03, 0.12)
        tracks.append(
            _Track(
                tid=next_id,
                cls=cls,
                born=t,
                dies=t + rng.uniform(2.0, 12.0),
                x0=rng.uniform(0.1, 0.9),
                y0=rng.uniform(0.45, 0.8),  # road and pavement sit in the lower part of the view
                vx=speed * rng.choice((-1, 1)),
                vy=rng.uniform(-0.005, 0.005),
                w=w * rng.uniform(0.8, 1.25),
                h=h * rng.uniform(0.8, 1.25),
                conf=rng.uniform(0.6, 0.95),
            )
        )
        next_id += 1
        t += rng.expovariate(birth_rate)
    return tracks


def _latency_ms(rng: random.Random, base_ms: float) -> float:
    """Return a detector latency: a run-specific base, a long tail and rare spikes."""
    ms = base_ms + rng.expovariate(1 / 12.0)
    if rng.random() < 0.01:
        ms += rng.uniform(30.0, 80.0)
    return max(LATENCY_MS[0], min(LATENCY_MS[1] - 15.0, ms))


def _detect(rng: random.Random, truth: tuple[Box, ...], fp_rate: float) -> tuple[Box, ...]:
    """Return noisy detections with misses and false positives, best score first."""
    found = []
    for box in truth:
        if rng.random() > CLASSES[box.cls][3]:
            continue
        score = max(0.3, min(0.99, rng.gauss(0.8, 0.08)))
        found.append(_jitter(rng, box, 0.03, score, track_id=0))
    if rng.random() < fp_rate:
        cls = rng.choice(list(CLASSES))
        w, h = CLASSES[cls][0] * 0.6, CLASSES[cls][1] * 0.6
        cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
        found.append(Box(cls, cx, cy, w, h, rng.uniform(0.3, 0.5), 0))
    return tuple(sorted(found, key=lambda b: -b.score))


def _track(rng: random.Random, truth: tuple[Box, ...], by_id: dict[int, _Track], t: float) -> tuple[Box, ...]:
    """Return confirmed tracks: smoother than detections and carrying their id."""
    return tuple(
        _jitter(rng, box, 0.01, by_id[box.track_id].conf, box.track_id)
        for box in truth
        if t - by_id[box.track_id].born >= CONFIRM_S
    )


def _jitter(rng: random.Random, box: Box, sigma: float, score: float, track_id: int) -> Box:
    """Return box with Gaussian noise proportional to its size, kept inside the frame."""
    w = max(0.02, box.w * (1 + rng.gauss(0.0, sigma)))
    h = max(0.02, box.h * (1 + rng.gauss(0.0, sigma)))
    cx = min(1 - w / 2, max(w / 2, box.cx + rng.gauss(0.0, sigma) * box.w))
    cy = min(1 - h / 2, max(h / 2, box.cy + rng.gauss(0.0, sigma) * box.h))
    return Box(box.cls, cx, cy, min(w, 1.0), min(h, 1.0), round(score, 4), track_id)
