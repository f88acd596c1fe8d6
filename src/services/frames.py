"""FrameService: one camera frame of an extracted run, read from its downloaded bag on demand, with its boxes.

Images are never extracted: the frame's message is read by the position frame_index.csv records (or by its log
time, see src/extraction/seek.py), decoded (src/imaging) and encoded for the browser. Thumbnails are cached on
disk under processed/{coord}/.thumbnails/{version}/ (a dot-folder: directory walks skip it, and a new extraction
replaces the whole run folder, cache included); full frames stay in a small in-process cache and the browser's.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from src.analytics.cache import fingerprint
from src.core.logging import get_logger
from src.extraction.frame_index import FRAME_INDEX_FILE, FRAME_INDEX_VERSION
from src.extraction.seek import FrameReadError, MessageLocation, read_message
from src.imaging.decode import FrameHeader, UndecodableFrame, decode, read_header
from src.imaging.encode import EncodedImage, encode_frame, placeholder, thumbnail
from src.models import FrameBox, FrameView, RunCoordinate
from src.services.local_state import LocalStateService

log = get_logger("bagboard.frames")

THUMBNAIL_DIR = ".thumbnails"
RUNS_KEPT = 4  # runs whose lookup tables stay in memory
RAW_KEPT = 8  # raw messages kept between the inspector's callback and the image request that follows it
IMAGES_KEPT = 32
SIZES = ("full", "thumb")
STORAGE_BY_SUFFIX = {".bag": "rosbag1", ".mcap": "mcap", ".db3": "sqlite3"}
V = TypeVar("V")


class FrameInputError(LookupError):
    """The run or frame asked for does not exist or is not extracted; str(err) is one line for the user."""


class _Lru(OrderedDict[Any, Any]):
    """A small thread-safe least-recently-used cache."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def get_or_make(self, key: Any, make: Callable[[], V]) -> V:
        """Return the cached value for key, making (and keeping) it when missing."""
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        value = make()
        with self.lock:
            self[key] = value
            while len(self) > self.size:
                self.popitem(last=False)
        return value


@dataclass
class _Boxes:
    """Detection or tracking rows grouped per message stamp, for looking up one frame's boxes."""

    stamps: np.ndarray  # per message, sorted
    receive: np.ndarray  # per message: earliest receive time
    starts: np.ndarray  # per message: first row; rows of message k are starts[k]:starts[k + 1]
    rows: dict[str, np.ndarray]  # per row, sorted by stamp

    @classmethod
    def load(cls, path: Path, with_ids: bool) -> _Boxes:
        """Read detections.csv or tracking.csv (a missing or header-only file: no boxes)."""
        names = ["stamp_ns", "receive_ns", *(["track_id"] if with_ids else []), "class_id", "score", "cx", "cy", "w"]
        names.append("h")
        types = {"stamp_ns": pa.int64(), "receive_ns": pa.int64(), "track_id": pa.string(), "class_id": pa.string()}
        try:
            table = pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    include_columns=names,
                    include_missing_columns=True,
                    column_types={**types, **{n: pa.float64() for n in ("score", "cx", "cy", "w", "h")}},
                    strings_can_be_null=True,
                ),
            )
        except (OSError, pa.ArrowInvalid):
            table = pa.table({name: pa.array([], type=types.get(name, pa.float64())) for name in names})
        table = table.filter(table["stamp_ns"].is_valid())
        stamps = table["stamp_ns"].to_numpy(zero_copy_only=False).astype(np.int64)
        order = np.argsort(stamps, kind="stable")
        stamps = stamps[order]
        columns = {name: table[name].to_numpy(zero_copy_only=False)[order] for name in names[2:]}
        receive = _ints(table["receive_ns"], -1)[order]
        if not stamps.size:
            empty = np.empty(0, dtype=np.int64)
            return cls(empty, empty, np.zeros(1, dtype=np.int64), columns)
        starts = np.flatnonzero(np.concatenate(([True], stamps[1:] != stamps[:-1])))
        first_receive = np.minimum.reduceat(np.where(receive < 0, np.iinfo(np.int64).max, receive), starts)
        return cls(stamps[starts], first_receive, np.append(starts, stamps.size), columns)

    def at(self, stamp_ns: int, tolerance_ns: int) -> tuple[int | None, tuple[FrameBox, ...]]:
        """Return (receive ns, boxes) of the message stamped stamp_ns, or the nearest within tolerance."""
        if not self.stamps.size:
            return None, ()
        k = int(np.searchsorted(self.stamps, stamp_ns))
        near = [i for i in (k - 1, k) if 0 <= i < self.stamps.size]
        best = min(near, key=lambda i: abs(int(self.stamps[i]) - stamp_ns))
        if abs(int(self.stamps[best]) - stamp_ns) > tolerance_ns:
            return None, ()
        receive = int(self.receive[best])
        rows = range(int(self.starts[best]), int(self.starts[best + 1]))
        boxes = tuple(box for row in rows if (box := self._box(row)) is not None)
        return (receive if receive != np.iinfo(np.int64).max else None), boxes

    def _box(self, row: int) -> FrameBox | None:
        """Return one row as a box, or None for a message's empty marker row or a box without a size."""
        r = self.rows
        values = [float(r[name][row]) for name in ("cx", "cy", "w", "h")]
        if not all(np.isfinite(values)):
            return None
        score = float(r["score"][row])
        track = r.get("track_id")
        return FrameBox(
            *values,
            class_id=_text(r["class_id"][row]),
            score=score if np.isfinite(score) else None,
            track_id=_text(track[row]) or "" if track is not None else "",
        )


def _ints(column: pa.ChunkedArray, missing: int) -> np.ndarray:
    """Return an integer column as int64 with missing values replaced (never through float64: ns would round)."""
    if not pa.types.is_integer(column.type):
        return np.full(len(column), missing, dtype=np.int64)
    return pc.fill_null(column, missing).to_numpy(zero_copy_only=False).astype(np.int64)


@dataclass
class RunFrames:
    """One run's frames in time order with everything needed to find, read and annotate each."""

    coordinate: RunCoordinate
    version: str
    raw_dir: Path
    thumbs_dir: Path
    topic: str
    msgtype: str
    t0_ns: int
    stamp_ns: np.ndarray  # per position (time order)
    receive_ns: np.ndarray
    frame_index: np.ndarray
    bag: np.ndarray  # object
    locations: dict[int, MessageLocation]  # by frame_index
    bag_sizes: dict[str, int]
    detections: _Boxes
    tracks: _Boxes
    tolerance_ns: int  # how far a detection's stamp may be from its frame's: half the median frame interval
    jpeg_quality: int | None = None  # the quality the run's last full frame fitted the byte budget with

    @property
    def count(self) -> int:
        """Return the number of frames."""
        return int(self.stamp_ns.size)

    @property
    def duration_s(self) -> float:
        """Return the span of the frames in seconds."""
        return float((self.stamp_ns[-1] - self.stamp_ns[0]) / 1e9) if self.count else 0.0

    def position_at(self, t_s: float) -> int:
        """Return the position of the frame nearest t_s seconds after the first frame."""
        target = self.t0_ns + round(t_s * 1e9)
        k = int(np.searchsorted(self.stamp_ns, target))
        near = [i for i in (k - 1, k) if 0 <= i < self.count]
        return min(near, key=lambda i: abs(int(self.stamp_ns[i]) - target))

    def position_of(self, frame_index: int) -> int:
        """Return the position of the extraction's frame_index; raise FrameInputError when there is none."""
        hits = np.flatnonzero(self.frame_index == frame_index)
        if not hits.size:
            raise FrameInputError(f"the run has no frame {frame_index}")
        return int(hits[0])


class FrameService:
    """Frames of extracted runs: lookups, one frame's view, and its image for the browser."""

    def __init__(self, local: LocalStateService) -> None:
        self.local = local
        self._runs = _Lru(RUNS_KEPT)
        self._raw = _Lru(RAW_KEPT)
        self._images = _Lru(IMAGES_KEPT)

    # -- lookups ----------------------------------------------------------------------------------

    def run_frames(self, coord: RunCoordinate) -> RunFrames:
        """Return the run's frame tables (cached while the extraction is unchanged)."""
        run_dir = self.local.processed_path(coord)
        if not self.local.check_extracted(coord).extracted:
            raise FrameInputError(f"run {coord} is not extracted")
        version = extraction_version(run_dir)
        return self._runs.get_or_make((coord, version), lambda: self._load(coord, run_dir, version))

    def nearest_frames(self, coord: RunCoordinate, times_s: list[float]) -> list[int | None]:
        """Return the frame_index nearest each time (None for every time when the run has no frames)."""
        run = self.run_frames(coord)
        if not run.count:
            return [None] * len(times_s)
        return [int(run.frame_index[run.position_at(t)]) for t in times_s]

    def frame_view(
        self, coord: RunCoordinate, *, t_s: float | None = None, position: int | None = None
    ) -> FrameView | None:
        """Return the frame at position (clamped) or nearest t_s (default: the first); None without frames."""
        run = self.run_frames(coord)
        if not run.count:
            return None
        if position is None:
            position = run.position_at(t_s or 0.0)
        position = min(max(int(position), 0), run.count - 1)
        frame_index = int(run.frame_index[position])
        stamp = int(run.stamp_ns[position])
        problem: str | None = None
        header = FrameHeader(0, 0, "")
        try:
            header = read_header(self._raw_message(run, frame_index), run.msgtype, self._is_ros1(run, frame_index))
        except (FrameReadError, UndecodableFrame) as err:
            problem = str(err)
        det_receive, detections = run.detections.at(stamp, run.tolerance_ns)
        trk_receive, tracks = run.tracks.at(stamp, run.tolerance_ns)
        width, height = header.width, header.height
        if width <= 0 or height <= 0:
            width, height = _extent(detections + tracks)
        return FrameView(
            coordinate=coord,
            version=run.version,
            position=position,
            count=run.count,
            frame_index=frame_index,
            t_s=(stamp - run.t0_ns) / 1e9,
            duration_s=run.duration_s,
            stamp_ns=stamp,
            receive_ns=int(run.receive_ns[position]),
            width=width,
            height=height,
            encoding=header.encoding,
            topic=run.topic,
            bag=str(run.bag[position]),
            detection_receive_ns=det_receive,
            tracking_receive_ns=trk_receive,
            detections=detections,
            tracks=tracks,
            problem=problem,
        )

    # -- images -----------------------------------------------------------------------------------

    def image(self, coord: RunCoordinate, frame_index: int, size: str = "full") -> tuple[EncodedImage, str]:
        """Return (the frame's image for the browser, the extraction version); a placeholder when undecodable."""
        if size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}")
        run = self.run_frames(coord)
        run.position_of(frame_index)  # raises for a frame that does not exist
        if size == "thumb":
            return self._thumbnail(run, frame_index), run.version
        key = (coord, run.version, frame_index)
        return self._images.get_or_make(key, lambda: self._encode_full(run, frame_index)), run.version

    def _encode_full(self, run: RunFrames, frame_index: int) -> EncodedImage:
        """Encode a full frame, starting at the JPEG quality that fitted the run's last one."""
        image = self._encode(run, frame_index, lambda frame: encode_frame(frame, first_quality=run.jpeg_quality))
        if image.quality is not None:
            run.jpeg_quality = image.quality
        return image

    def _thumbnail(self, run: RunFrames, frame_index: int) -> EncodedImage:
        """Return the cached thumbnail, making and storing it (atomically) when missing."""
        path = run.thumbs_dir / f"{frame_index}.jpg"
        try:
            return EncodedImage(path.read_bytes(), "image/jpeg" if path.suffix == ".jpg" else "image/png")
        except OSError:
            pass
        image = self._encode(run, frame_index, thumbnail, placeholder_size=(192, 144))
        if image.mimetype == "image/jpeg":  # placeholders are not cached: the bag may come back
            _write_atomic(path, image.data)
        return image

    def _encode(
        self,
        run: RunFrames,
        frame_index: int,
        encoder: Callable[[Any], EncodedImage],
        placeholder_size: tuple[int, int] | None = None,
    ) -> EncodedImage:
        """Decode and encode one frame; any failure becomes a placeholder naming the reason."""
        try:
            frame = decode(self._raw_message(run, frame_index), run.msgtype, self._is_ros1(run, frame_index))
            return encoder(frame)
        except (FrameReadError, UndecodableFrame) as err:
            reason = str(err)
        except Exception as err:  # a decoder bug must cost one frame, not the page: logged, then a placeholder
            log.exception("frame_decode_failed", coordinate=str(run.coordinate), frame=frame_index)
            reason = f"unexpected {type(err).__name__} while decoding (logged)"
        return placeholder(reason, placeholder_size or (640, 480))

    def _raw_message(self, run: RunFrames, frame_index: int) -> bytes:
        """Return the frame's serialized message (kept briefly: the view and its image read the same one)."""
        where = run.locations.get(frame_index)
        if where is None:
            raise FrameReadError(f"frame {frame_index} has no bag location")
        path = _bag_path(run.raw_dir, where.bag)
        expected = run.bag_sizes.get(where.bag)
        try:
            size = _tree_size(path)
        except OSError:
            raise FrameReadError(f"{where.bag} is not on disk any more: download the run again") from None
        if expected is not None and size != expected:
            raise FrameReadError(f"{where.bag} changed since it was extracted ({size:,} bytes, not {expected:,})")

        def read() -> bytes:
            raw, _by_position = read_message(path, where)
            return raw

        return self._raw.get_or_make((run.coordinate, run.version, frame_index), read)

    @staticmethod
    def _is_ros1(run: RunFrames, frame_index: int) -> bool:
        where = run.locations.get(frame_index)
        return where is not None and where.is_ros1

    # -- loading ----------------------------------------------------------------------------------

    def _load(self, coord: RunCoordinate, run_dir: Path, version: str) -> RunFrames:
        """Read frames.csv (and frame_index.csv when it is a version this reader knows) into lookup tables."""
        metadata = _read_json(run_dir / "metadata.json")
        chosen = ((metadata.get("chosen") or {}).get("frames") or {}) if metadata else {}
        frames = _read_frames(run_dir / "frames.csv")
        topic = str(chosen.get("topic") or "")
        if topic and "topic" in frames and (frames["topic"] != topic).any():
            keep = frames["topic"] == topic
            frames = {name: values[keep] for name, values in frames.items()}
        if not topic and frames["topic"].size:
            values, counts = np.unique(frames["topic"].astype(str), return_counts=True)
            topic = str(values[np.argmax(counts)])
        order = np.argsort(frames["stamp_ns"], kind="stable")
        frames = {name: values[order] for name, values in frames.items()}
        storage_by_bag = {
            str(bag.get("path")): str(bag.get("storage"))
            for bag in (metadata.get("bags") or [] if metadata else [])
            if isinstance(bag, dict)
        }
        locations = _locations(run_dir, metadata, frames, topic, storage_by_bag)
        stamps = frames["stamp_ns"]
        gaps = np.diff(np.unique(stamps))
        tolerance = int(np.median(gaps) // 2) if gaps.size else 0
        log.info("frame_tables_loaded", coordinate=str(coord), frames=int(stamps.size), seekable=len(locations))
        return RunFrames(
            coordinate=coord,
            version=version,
            raw_dir=self.local.raw_path(coord),
            thumbs_dir=run_dir / THUMBNAIL_DIR / version,
            topic=topic,
            msgtype=str(chosen.get("type") or "sensor_msgs/msg/Image"),
            t0_ns=int(stamps[0]) if stamps.size else 0,
            stamp_ns=stamps,
            receive_ns=frames["receive_ns"],
            frame_index=frames["frame_index"],
            bag=frames["bag"],
            locations=locations,
            bag_sizes=_bag_sizes(metadata),
            detections=_Boxes.load(run_dir / "detections.csv", with_ids=False),
            tracks=_Boxes.load(run_dir / "tracking.csv", with_ids=True),
            tolerance_ns=tolerance,
        )


def extraction_version(run_dir: Path) -> str:
    """Return a short id of the run's extraction outputs: it changes whenever any of them does."""
    prints = fingerprint(run_dir)
    try:
        st = (run_dir / FRAME_INDEX_FILE).stat()
        prints[FRAME_INDEX_FILE] = [st.st_size, st.st_mtime_ns]
    except OSError:
        prints[FRAME_INDEX_FILE] = None
    return hashlib.sha256(repr(sorted(prints.items())).encode()).hexdigest()[:16]


def _read_frames(path: Path) -> dict[str, np.ndarray]:
    """Read frames.csv: bag, topic, stamp_ns, receive_ns and frame_index (row number when it is missing)."""
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                include_columns=["bag", "topic", "stamp_ns", "receive_ns", "frame_index"],
                include_missing_columns=True,
                column_types={"bag": pa.string(), "topic": pa.string(), "stamp_ns": pa.int64()},
                strings_can_be_null=True,
            ),
        )
    except (OSError, pa.ArrowInvalid) as err:
        raise FrameInputError(f"frames.csv cannot be read ({str(err).splitlines()[0]})") from None
    table = table.filter(table["stamp_ns"].is_valid())
    index = table["frame_index"]
    complete = pa.types.is_integer(index.type) and not index.null_count
    return {
        "bag": table["bag"].to_numpy(zero_copy_only=False).astype(object),
        "topic": table["topic"].to_numpy(zero_copy_only=False).astype(object),
        "stamp_ns": _ints(table["stamp_ns"], 0),
        "receive_ns": _ints(table["receive_ns"], 0),
        "frame_index": _ints(index, 0) if complete else np.arange(table.num_rows, dtype=np.int64),
    }


def _locations(
    run_dir: Path,
    metadata: dict[str, Any] | None,
    frames: dict[str, np.ndarray],
    topic: str,
    storage_by_bag: dict[str, str],
) -> dict[int, MessageLocation]:
    """Return each frame's location: frame_index.csv's positions when present, else bag and log time."""
    index_info = (metadata or {}).get("frame_index") or {}
    path = run_dir / FRAME_INDEX_FILE
    if index_info.get("version") == FRAME_INDEX_VERSION and path.is_file():
        try:
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
            rows = table.to_pydict()
            return {
                int(index): MessageLocation(
                    bag=str(bag),
                    storage=str(storage),
                    topic=topic,
                    log_ns=int(log_ns),
                    stamp_ns=None if stamp is None else int(stamp),
                    chunk_pos=chunk_pos,
                    chunk_offset=chunk_offset,
                    row_id=row_id,
                )
                for index, bag, storage, log_ns, stamp, chunk_pos, chunk_offset, row_id in zip(
                    rows["frame_index"],
                    rows["bag"],
                    rows["storage"],
                    rows["log_ns"],
                    rows["stamp_ns"],
                    rows["chunk_pos"],
                    rows["chunk_offset"],
                    rows["row_id"],
                    strict=True,
                )
                if bag is not None and log_ns is not None
            }
        except (OSError, KeyError, TypeError, ValueError, pa.ArrowInvalid) as err:
            log.warning("frame_index_unreadable", path=str(path), error=str(err))
    # Any extractor's frames.csv: the bag and the log time are enough for rosbags to read one message.
    return {
        int(index): MessageLocation(
            bag=str(bag),
            storage=storage_by_bag.get(str(bag)) or STORAGE_BY_SUFFIX.get(PurePosixPath(str(bag)).suffix, "mcap"),
            topic=topic,
            log_ns=int(receive),
            stamp_ns=int(stamp),
        )
        for index, bag, receive, stamp in zip(
            frames["frame_index"], frames["bag"], frames["receive_ns"], frames["stamp_ns"], strict=True
        )
        if bag is not None
    }


def _bag_sizes(metadata: dict[str, Any] | None) -> dict[str, int]:
    """Return bag name -> size in bytes as metadata.json recorded them."""
    sizes = {}
    for bag in (metadata or {}).get("bags") or []:
        if isinstance(bag, dict) and isinstance(bag.get("size"), int):
            sizes[str(bag.get("path"))] = bag["size"]
    return sizes


def _bag_path(raw_dir: Path, bag: str) -> Path:
    """Return raw_dir/bag, refusing names that would leave raw_dir (frames.csv is data, not trusted code)."""
    parts = PurePosixPath(bag).parts
    if not parts or PurePosixPath(bag).is_absolute() or any(p in ("..", ".", "") or "\\" in p for p in parts):
        raise FrameReadError(f"bag name {bag!r} is not a path inside the run")
    return raw_dir.joinpath(*parts)


def _tree_size(path: Path) -> int:
    """Return a file's size, or the total of a folder's files (a ROS2 bag folder read as one)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file() and p.name != "metadata.yaml")
    return path.stat().st_size


def _extent(boxes: tuple[FrameBox, ...]) -> tuple[int, int]:
    """Return a canvas size for boxes when the image's own is unknown (at least the placeholder's)."""
    width = max([640, *(round(b.cx + b.w / 2) for b in boxes)])
    height = max([480, *(round(b.cy + b.h / 2) for b in boxes)])
    return width, height


def _text(value: object) -> str | None:
    """Return a CSV string cell, None for a missing one."""
    return None if value is None or (isinstance(value, float) and not np.isfinite(value)) else str(value)


def _read_json(path: Path) -> dict[str, Any] | None:
    """Return a JSON object file's content, or None."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _write_atomic(path: Path, data: bytes) -> None:
    """Write data through a temp name; a failure (full disk, run re-extracted meanwhile) costs only the cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as err:
        log.warning("thumbnail_not_cached", path=str(path), error=str(err))
