"""What the frame inspector shows: one frame with its boxes, and the moments of a run worth looking at."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from src.models.coordinate import RunCoordinate

MOMENT_KINDS: dict[str, str] = {
    "latency": "High latency",
    "drop": "Frame drop",
    "detection_jump": "Detection jump",
    "track_burst": "Track burst",
    "fragmentation": "Track fragmented",
}


@dataclass(frozen=True)
class FrameBox:
    """One detection or track in image pixels: centre, size, best class and score, track id ('' for detections)."""

    cx: float
    cy: float
    w: float
    h: float
    class_id: str | None = None
    score: float | None = None
    track_id: str = ""


@dataclass(frozen=True)
class FrameView:
    """One frame of a run: its times, its image's size and the boxes published for it."""

    coordinate: RunCoordinate
    version: str  # changes whenever the extraction does: part of image URLs and ETags
    position: int  # 0-based place in time order
    count: int  # frames in the run
    frame_index: int  # the extraction's frame_index (frames.csv)
    t_s: float  # seconds since the run's first frame, the charts' time axis
    duration_s: float
    stamp_ns: int
    receive_ns: int
    width: int
    height: int
    encoding: str = ""
    topic: str = ""
    bag: str = ""
    detection_receive_ns: int | None = None
    tracking_receive_ns: int | None = None
    detections: tuple[FrameBox, ...] = ()
    tracks: tuple[FrameBox, ...] = ()
    problem: str | None = None  # why the image cannot be shown; the boxes still are

    @property
    def image_latency_ms(self) -> float:
        """Return receive − stamp of the image in ms."""
        return (self.receive_ns - self.stamp_ns) / 1e6

    @property
    def detection_latency_ms(self) -> float | None:
        """Return receive − stamp of the detections computed from this frame, in ms."""
        return None if self.detection_receive_ns is None else (self.detection_receive_ns - self.stamp_ns) / 1e6

    @property
    def tracking_latency_ms(self) -> float | None:
        """Return receive − stamp of the tracks for this frame, in ms."""
        return None if self.tracking_receive_ns is None else (self.tracking_receive_ns - self.stamp_ns) / 1e6


@dataclass(frozen=True)
class Moment:
    """A moment worth looking at: when, what kind, why (one line) and how far beyond its threshold (score)."""

    kind: str  # a MOMENT_KINDS key
    t_s: float  # seconds since the run's first frame
    reason: str
    score: float  # value / threshold: ranks moments of different kinds against each other
    frame_index: int | None = None  # the frame nearest t_s, for its thumbnail
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Return the kind as a person reads it."""
        return MOMENT_KINDS.get(self.kind, self.kind)

    def to_dict(self) -> dict[str, Any]:
        """Return plain JSON values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Moment:
        """Rebuild from to_dict's output."""
        return cls(
            kind=str(data["kind"]),
            t_s=float(data["t_s"]),
            reason=str(data["reason"]),
            score=float(data["score"]),
            frame_index=None if data.get("frame_index") is None else int(data["frame_index"]),
            extra=dict(data.get("extra") or {}),
        )
