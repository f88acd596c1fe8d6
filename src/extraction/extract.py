"""Extract one run folder's bags into frames, detections and tracking files (docs/extraction-contract.md)."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader

from src.extraction.checksums import Checksums
from src.extraction.detections import Box, Parser, fast_parser, read_boxes
from src.extraction.errors import ExtractionCancelled, ExtractionError
from src.extraction.frame_index import (
    FRAME_INDEX_FILE,
    FRAME_INDEX_SCHEMA,
    FRAME_INDEX_VERSION,
    NO_POSITION,
    by_log_time,
    message_positions,
)
from src.extraction.reader import (
    DETECTIONS,
    FRAMES,
    IMAGE_TYPES,
    ROLES,
    TRACKING,
    BagInfo,
    BagSource,
    Survey,
    TopicChoice,
    bag_errors,
    choose_topics,
    discover,
    survey,
)
from src.extraction.stamps import NS_PER_S, read_header_stamp
from src.extraction.writer import (
    CHUNK_ROWS,
    DETECTION_ITEM,
    DETECTION_ITEM_R,
    DETECTIONS_SCHEMA,
    FRAMES_SCHEMA,
    MESSAGE,
    TRACK_ITEM,
    TRACK_ITEM_R,
    TRACKING_SCHEMA,
    CsvStream,
    JsonMessagesStream,
    atomic_output_dir,
    number,
    quote,
    write_json,
)

EXTRACTOR_NAME = "bagboard-extractor"
EXTRACTOR_VERSION = "1.1.0"
CONTRACT_VERSION = 1
OUTPUT_FILES: tuple[str, ...] = (
    "frames.csv",
    "detections.csv",
    "tracking.csv",
    "detections.json",
    "tracking.json",
    "metadata.json",
)
# Written by bagboard's extractor beside the contract files; a team's extractor may leave them out.
OPTIONAL_OUTPUT_FILES: tuple[str, ...] = (FRAME_INDEX_FILE,)
CHECK_EVERY = 32  # messages between cancel checks: ~30 MB of 640x480 rgb8 frames, a few ms of work
PROGRESS_INTERVAL_S = 0.5

ProgressCallback = Callable[[dict[str, int]], None]


@dataclass(frozen=True)
class ExtractionSummary:
    """What extract_run wrote."""

    out_dir: Path
    bags: int
    frames: int
    detection_messages: int
    detections: int
    tracking_messages: int
    tracks: int  # tracked objects over all tracking messages
    frames_topic: str
    detections_topic: str | None
    tracking_topic: str | None
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "out_dir": str(self.out_dir),
            "bags": self.bags,
            "frames": self.frames,
            "detection_messages": self.detection_messages,
            "detections": self.detections,
            "tracking_messages": self.tracking_messages,
            "tracks": self.tracks,
            "frames_topic": self.frames_topic,
            "detections_topic": self.detections_topic,
            "tracking_topic": self.tracking_topic,
            "warnings": list(self.warnings),
            "seconds": self.seconds,
        }


class _Progress:
    """Report progress at most every PROGRESS_INTERVAL_S and honour should_cancel."""

    def __init__(
        self, callback: ProgressCallback | None, should_cancel: Callable[[], bool] | None, bags_total: int
    ) -> None:
        self.callback = callback
        self.should_cancel = should_cancel
        self.bags_total = bags_total
        self.bags_done = 0
        self._last = 0.0

    def check_cancel(self) -> None:
        """Raise ExtractionCancelled when the caller asked to stop."""
        if self.should_cancel is not None and self.should_cancel():
            raise ExtractionCancelled()

    def tick(self, frames: int) -> None:
        """Check for cancellation and report when the interval has passed."""
        self.check_cancel()
        if self.callback is not None and time.monotonic() - self._last >= PROGRESS_INTERVAL_S:
            self.report(frames)

    def report(self, frames: int) -> None:
        """Report now."""
        if self.callback is not None:
            self._last = time.monotonic()
            self.callback({"bags_done": self.bags_done, "bags_total": self.bags_total, "frames": frames})


@dataclass
class _BagCounts:
    """Per-bag figures for metadata.json."""

    frames: int = 0
    detection_messages: int = 0
    tracking_messages: int = 0
    stamps_backwards: int = 0
    zero_stamps: int = 0
    stamp_fallbacks: int = 0
    parse_fallbacks: int = 0
    parsers: dict[str, str] = field(default_factory=dict)  # role -> "direct" or "rosbags"


class _PerceptionOutput:
    """The CSV and JSON files of one Detection2DArray role (detections or tracking)."""

    def __init__(self, out: Path, role: str, choice: TopicChoice) -> None:
        self.role = role
        self.tracking = role == TRACKING
        self.item_key = "tracks" if self.tracking else "detections"
        self.csv = CsvStream(out / f"{role}.csv", TRACKING_SCHEMA if self.tracking else DETECTIONS_SCHEMA)
        head = {"contract_version": CONTRACT_VERSION, "topic": choice.topic, "type": choice.msgtype}
        self.json = JsonMessagesStream(out / f"{role}.json", head)
        self.messages = 0
        self.objects = 0
        self.track_ids: set[str] = set()
        # A message without objects still gets one row, all object fields empty: every message is in the CSV,
        # so rates and latencies can be computed from it alone (the JSON is the bulky form).
        self._empty_row = (None,) * (7 if self.tracking else 6)

    def add(self, bag: str, receive_ns: int, stamp_ns: int, boxes: list[Box]) -> None:
        """Add one Detection2DArray message: a JSON entry and one CSV row per object (or one empty row)."""
        index = self.messages
        pending = self.csv.pending
        q, num = quote, number
        if not boxes:
            pending.append((bag, index, stamp_ns, receive_ns, *self._empty_row))
            items: list[str] = []
        elif self.tracking:
            self.track_ids.update(box[0] for box in boxes)
            pending += [(bag, index, stamp_ns, receive_ns, *box) for box in boxes]
            items = [
                TRACK_ITEM_R % (q(t), q(c), s, x, y, w, h)
                if None not in box[2:]
                else TRACK_ITEM % (q(t), q(c), num(s), num(x), num(y), num(w), num(h))
                for box in boxes
                for t, c, s, x, y, w, h in (box,)
            ]
        else:
            pending += [(bag, index, stamp_ns, receive_ns, *box[1:]) for box in boxes]
            items = [
                DETECTION_ITEM_R % (q(c), s, x, y, w, h)
                if None not in box[2:]
                else DETECTION_ITEM % (q(c), num(s), num(x), num(y), num(w), num(h))
                for box in boxes
                for _, c, s, x, y, w, h in (box,)
            ]
        self.json.add_text(MESSAGE % (q(bag), index, stamp_ns, receive_ns, self.item_key, ", ".join(items)))
        self.messages += 1
        self.objects += len(boxes)
        if len(pending) >= CHUNK_ROWS:
            self.csv.flush()

    def close(self) -> None:
        """Finish both files."""
        self.csv.close()
        self.json.close({"message_count": self.messages, "object_count": self.objects})

    def abort(self) -> None:
        """Close both files after a failure (the temp folder is removed anyway)."""
        self.csv.abort()
        self.json.abort()


def extract_run(
    in_dir: Path | str,
    out_dir: Path | str,
    *,
    frames_topic: str | None = None,
    detections_topic: str | None = None,
    tracking_topic: str | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> ExtractionSummary:
    """Extract every bag of in_dir into out_dir (replaced atomically); raise ExtractionError on bad input."""
    started = time.perf_counter()
    created_at = datetime.now(UTC)
    in_path, out_path = Path(in_dir), Path(out_dir)
    if not in_path.exists():
        raise ExtractionError(f"{in_path}: no such file or folder")
    in_full, out_full = in_path.resolve(), out_path.resolve()
    if out_full == in_full or out_full in in_full.parents:
        # Replacing OUT_DIR deletes the old one: it must never hold the bags being read.
        raise ExtractionError(f"{out_path}: the output folder would replace the input {in_path}")
    sources, skipped, warnings = discover(in_path)
    if not sources:
        extra = f" ({len(skipped)} in-flight file(s) skipped)" if skipped else ""
        raise ExtractionError(f"{in_path}: no bags found (.bag, .mcap, .db3 or ROS2 bag folders){extra}")
    warnings += [f"{name}: still being written, skipped" for name in skipped]
    overrides = {FRAMES: frames_topic, DETECTIONS: detections_topic, TRACKING: tracking_topic}
    ticker = _Progress(progress, should_cancel, len(sources))
    with ExitStack() as readers:  # closes whatever bag the survey left open if anything fails
        found = survey(sources, ticker.check_cancel, readers)
        choices = choose_topics(found, overrides)
        warnings += found.warnings + _choice_warnings(choices)
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ExtractionError(f"{out_path}: cannot create its parent folder ({err.strerror or err})") from err
        ticker.report(0)
        files = [path for info in found.bags for path in info.source.files]
        with Checksums(files) as checksums, atomic_output_dir(out_path) as tmp:
            run = _RunWriter(tmp, choices, ticker)
            try:
                for info in found.bags:
                    run.extract_bag(info)
                    ticker.bags_done += 1
                    ticker.report(run.frame_index)
                run.close()
            except BaseException:
                run.abort()
                raise
            crcs = checksums.results()
            run.checksums = {_file_key(p, info.source): crcs[p] for info in found.bags for p in info.source.files}
            warnings += run.warnings
            seconds = round(time.perf_counter() - started, 3)
            inputs = {"path": in_path, "skipped": skipped, "created_at": created_at, "seconds": seconds}
            write_json(tmp / "metadata.json", _metadata(inputs, found, choices, run, warnings))
    return ExtractionSummary(
        out_dir=out_path,
        bags=len(found.bags),
        frames=run.frame_index,
        detection_messages=run.outputs[DETECTIONS].messages,
        detections=run.outputs[DETECTIONS].objects,
        tracking_messages=run.outputs[TRACKING].messages,
        tracks=run.outputs[TRACKING].objects,
        frames_topic=choices[FRAMES].topic or "",
        detections_topic=choices[DETECTIONS].topic,
        tracking_topic=choices[TRACKING].topic,
        warnings=tuple(warnings),
        seconds=seconds,
    )


def _choice_warnings(choices: dict[str, TopicChoice]) -> list[str]:
    """Return the warnings the topic choice calls for: an unusual frames type, roles left empty."""
    warnings = []
    frames = choices[FRAMES]
    if frames.msgtype not in IMAGE_TYPES:
        warnings.append(f"frames topic {frames.topic} is {frames.msgtype}, not an image type")
    for role in (DETECTIONS, TRACKING):
        if choices[role].topic is None:
            warnings.append(f"no {role} topic ({choices[role].reason}): {role}.csv and {role}.json are empty")
    return warnings


class _RunWriter:
    """Stream every bag's chosen topics into the output files."""

    def __init__(self, out: Path, choices: dict[str, TopicChoice], ticker: _Progress) -> None:
        self.choices = choices
        self.ticker = ticker
        self.frame_index = 0
        self.counts: dict[str, _BagCounts] = {}
        self.checksums: dict[str, str] = {}
        self.warnings: list[str] = []
        self.stamp_range: list[int] = []  # [min, max] header stamp of the frames
        self.frames = CsvStream(out / "frames.csv", FRAMES_SCHEMA)
        self.positions = CsvStream(out / FRAME_INDEX_FILE, FRAME_INDEX_SCHEMA)
        self.seekable = 0  # frames of frame_index.csv with a position in their bag
        self.outputs = {role: _PerceptionOutput(out, role, choices[role]) for role in (DETECTIONS, TRACKING)}
        self.roles = {choice.topic: role for role, choice in choices.items() if choice.topic}
        self.types = {choice.topic: choice.msgtype for choice in choices.values() if choice.topic}

    def extract_bag(self, info: BagInfo) -> None:
        """Read one bag's chosen topics; image payloads are only sliced for their stamp, never kept."""
        source = info.source
        counts = self.counts[source.name] = _BagCounts()
        with info.open() as reader, bag_errors(source):
            conns = [c for c in reader.connections if self.types.get(c.topic) == c.msgtype]
            if conns:
                self._read(reader, conns, source, counts)
        if counts.stamps_backwards:
            self.warnings.append(f"{source.name}: {counts.stamps_backwards} frame stamps earlier than the frame before")
        if counts.zero_stamps:
            self.warnings.append(f"{source.name}: {counts.zero_stamps} frames with a zero header stamp")
        if counts.stamp_fallbacks:
            self.warnings.append(f"{source.name}: {counts.stamp_fallbacks} frames needed full deserialisation")
        if counts.parse_fallbacks:
            self.warnings.append(
                f"{source.name}: {counts.parse_fallbacks} Detection2DArray messages needed full deserialisation"
            )

    def _read(self, reader: AnyReader, conns: list[Any], source: BagSource, counts: _BagCounts) -> None:
        """Run the message loop of one bag; kept lean because it runs once per message."""
        bag, is_ros1, storage = source.name, source.is_ros1, source.storage
        roles = self.roles
        frames = self.frames.pending
        index_rows = self.positions.pending
        # Each frame's position in the bag, from the reader's own index (the same order it reads them in).
        positions = by_log_time(message_positions(reader, [c for c in conns if roles[c.topic] == FRAMES]))
        seekable = 0
        perception = self.outputs
        ticker = self.ticker
        parsers: dict[str, Parser | None] = {
            role: fast_parser(reader.typestore, choice.msgtype, is_ros1)
            for role, choice in self.choices.items()
            if role != FRAMES and choice.msgtype
        }
        counts.parsers = {role: "rosbags" if parser is None else "direct" for role, parser in parsers.items()}
        previous = None
        low, high = self.stamp_range or (2**63, -(2**63))
        for n, (conn, log_ns, raw) in enumerate(reader.messages(connections=conns), 1):
            role = roles[conn.topic]
            if role == FRAMES:
                try:
                    stamp = read_header_stamp(raw, is_ros1)
                except ValueError:
                    msg = reader.deserialize(raw, conn.msgtype)
                    stamp = msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec  # type: ignore[attr-defined]
                    counts.stamp_fallbacks += 1
                if previous is not None and stamp < previous:
                    counts.stamps_backwards += 1
                if stamp < low:
                    low = stamp
                if stamp > high:
                    high = stamp
                if not stamp:
                    counts.zero_stamps += 1
                previous = stamp
                frames.append((bag, conn.topic, stamp, log_ns, self.frame_index))
                queue = positions.get(log_ns)
                chunk_pos, chunk_offset, row_id = queue.popleft() if queue else NO_POSITION
                seekable += queue is not None and (chunk_pos is not None or row_id is not None)
                index_rows.append((self.frame_index, bag, storage, log_ns, stamp, chunk_pos, chunk_offset, row_id))
                self.frame_index += 1
                counts.frames += 1
            else:
                stamp_ns, boxes, fell_back = read_boxes(reader, raw, conn.msgtype, parsers[role])
                counts.parse_fallbacks += fell_back
                perception[role].add(bag, log_ns, stamp_ns, boxes)
                if role == DETECTIONS:
                    counts.detection_messages += 1
                else:
                    counts.tracking_messages += 1
            if not n % CHECK_EVERY:
                if len(frames) >= CHUNK_ROWS:
                    self.frames.flush()
                    frames = self.frames.pending
                    self.positions.flush()
                    index_rows = self.positions.pending
                ticker.tick(self.frame_index)
        if counts.frames:
            self.stamp_range = [low, high]
        self.seekable += seekable

    def close(self) -> None:
        """Finish every output file but metadata.json."""
        self.frames.close()
        self.positions.close()
        for output in self.outputs.values():
            output.close()

    def abort(self) -> None:
        """Close every output file after a failure."""
        self.frames.abort()
        self.positions.abort()
        for output in self.outputs.values():
            output.abort()


def _file_key(path: Path, source: BagSource) -> str:
    """Return the name a bag file goes by in metadata.json."""
    if path == source.path:
        return source.name
    return f"{source.name}/{path.name}"


def _iso(ns: int | None) -> str | None:
    """Return ns since the epoch as an ISO 8601 UTC string."""
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / NS_PER_S, UTC).isoformat().replace("+00:00", "Z")


def _topics(found: Survey) -> list[dict[str, Any]]:
    """Return every topic of the run with its type, count and the span of the bags holding it."""
    topics = []
    for topic, (msgtype, count) in found.topics().items():
        holding = [bag for bag in found.bags if topic in bag.topics and bag.start_ns is not None]
        span = (max(b.end_ns or 0 for b in holding) - min(b.start_ns or 0 for b in holding)) if holding else 0
        # The span of whole bags, not of the topic's own messages: an index does not say when a topic starts.
        topics.append({"topic": topic, "type": msgtype, "count": count, "duration_s": span / NS_PER_S})
    return topics


def _metadata(
    inputs: dict[str, Any], found: Survey, choices: dict[str, TopicChoice], run: _RunWriter, warnings: list[str]
) -> dict[str, Any]:
    """Build metadata.json; inputs holds path, skipped, created_at and seconds."""
    bags = []
    for info in found.bags:
        source = info.source
        counts = run.counts[source.name]
        keys = [(path, _file_key(path, source)) for path in source.files]
        files = [{"path": key, "size": path.stat().st_size, "crc32c": run.checksums[key]} for path, key in keys]
        single = len(files) == 1 and source.files[0] == source.path
        bags.append(
            {
                "path": source.name,
                "format": source.fmt,
                "storage": source.storage,
                "size": sum(f["size"] for f in files),
                "crc32c": files[0]["crc32c"] if single else None,
                "files": files,
                "start_ns": info.start_ns,
                "end_ns": info.end_ns,
                "message_count": info.message_count,
                "frames": counts.frames,
                "detection_messages": counts.detection_messages,
                "tracking_messages": counts.tracking_messages,
                "parsers": counts.parsers,
                "topics": [{"topic": t, "type": mt, "count": n} for t, (mt, n) in sorted(info.topics.items())],
            }
        )
    starts = [info.start_ns for info in found.bags if info.start_ns is not None]
    ends = [info.end_ns for info in found.bags if info.end_ns is not None]
    start_ns, end_ns = (min(starts), max(ends)) if starts else (None, None)
    det, trk = run.outputs[DETECTIONS], run.outputs[TRACKING]
    return {
        "contract_version": CONTRACT_VERSION,
        "extractor": {
            "name": EXTRACTOR_NAME,
            "version": EXTRACTOR_VERSION,
            "rosbags": importlib_metadata.version("rosbags"),
            "python": platform.python_version(),
        },
        "created_at": inputs["created_at"].isoformat(timespec="seconds").replace("+00:00", "Z"),
        "extraction_duration_s": inputs["seconds"],
        "input": {
            "path": str(Path(inputs["path"]).resolve()),
            "bag_count": len(bags),
            "total_size": sum(bag["size"] for bag in bags),
            "skipped": inputs["skipped"],
        },
        "start_ns": start_ns,
        "end_ns": end_ns,
        "start": _iso(start_ns),
        "end": _iso(end_ns),
        "recording_duration_s": (end_ns - start_ns) / NS_PER_S if starts else None,
        "source_bags": [bag["path"] for bag in bags],
        "bags": bags,
        "topics": _topics(found),
        "chosen": {role: choices[role].to_dict() for role in ROLES},
        "counts": {
            "frames": run.frame_index,
            "frame_stamp_min_ns": run.stamp_range[0] if run.stamp_range else None,
            "frame_stamp_max_ns": run.stamp_range[1] if run.stamp_range else None,
            "detection_messages": det.messages,
            "detections": det.objects,
            "tracking_messages": trk.messages,
            "tracks": trk.objects,
            "track_ids": len(trk.track_ids),
        },
        "frame_index": {"version": FRAME_INDEX_VERSION, "file": FRAME_INDEX_FILE, "seekable": run.seekable},
        "outputs": {
            "frames.csv": {"rows": run.frames.rows},
            FRAME_INDEX_FILE: {"rows": run.positions.rows},
            "detections.csv": {"rows": det.csv.rows},
            "tracking.csv": {"rows": trk.csv.rows},
            "detections.json": {"messages": det.messages},
            "tracking.json": {"messages": trk.messages},
        },
        "warnings": warnings,
    }
