"""Find the bags of a run folder, open them with rosbags and pick the topics to extract."""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePath

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.typesys import Stores
from rosbags.typesys.store import Typestore
from ruamel.yaml import YAML

from src.extraction.detections import fast_parser, read_boxes
from src.extraction.errors import ExtractionError
from src.extraction.stamps import has_leading_header
from src.rosmsgs import vision_typestore

IMAGE_TYPES: tuple[str, ...] = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
DETECTION_TYPES: tuple[str, ...] = ("vision_msgs/msg/Detection2DArray",)
IN_FLIGHT_SUFFIXES: tuple[str, ...] = (".active", ".tmp")
ROS1_SUFFIX = ".bag"
ROS2_SUFFIXES: dict[str, str] = {".mcap": "mcap", ".db3": "sqlite3"}
ROS2_METADATA = "metadata.yaml"
NO_DEFINITIONS = "no type definitions"  # rosbags' AnyReaderError for a bag without message definitions
DISABLED = ("", "none")  # topic override values that mean "do not extract this role"

# Sampling a Detection2DArray topic to tell detections from tracks: stop once this many detections
# (or messages) were seen; a detector's first messages are usually enough and reading stays near the start.
SAMPLE_DETECTIONS = 10
SAMPLE_MESSAGES = 50
ID_MAJORITY = 0.5  # above this share of detections with a non-empty id, a topic is tracking
KEEP_OPEN = 32  # readers kept open from survey to extraction; more bags are opened twice (file handles)

# Phrases of rosbags and sqlite errors that mean the file is cut short or damaged, e.g. an interrupted download.
DAMAGE_HINTS = ("looks damaged", "end magic", "malformed", "could not be read", "unexpected end", "invalid chunk")
_NESTED_ARGS = re.compile(r"\('((?:[^'\\]|\\.)*)',\)")

ROS1_MAGIC = b"#ROSBAG V2.0\n"
MCAP_MAGIC = b"\x89MCAP0\r\n"
SQLITE_MAGIC = b"SQLite format 3\x00"

FRAMES, DETECTIONS, TRACKING = "frames", "detections", "tracking"
ROLES: tuple[str, ...] = (FRAMES, DETECTIONS, TRACKING)


@dataclass(frozen=True)
class BagSource:
    """One unit rosbags reads: a ROS1 .bag, one ROS2 storage file, or a compressed ROS2 bag folder."""

    path: Path  # what AnyReader opens
    name: str  # posix path relative to the run folder; the `bag` column of the outputs
    fmt: str  # "ros1" or "ros2"
    storage: str  # "rosbag1", "mcap" or "sqlite3"
    files: tuple[Path, ...]  # the files read, for sizes and checksums

    @property
    def is_ros1(self) -> bool:
        """Return whether messages are ROS1-serialized (else CDR)."""
        return self.fmt == "ros1"


@dataclass
class IdSample:
    """What the first messages of a Detection2DArray topic showed about their ids."""

    messages: int = 0
    detections: int = 0
    with_ids: int = 0

    @property
    def done(self) -> bool:
        """Return whether enough was seen to decide."""
        return self.detections >= SAMPLE_DETECTIONS or self.messages >= SAMPLE_MESSAGES

    def verdict(self, topic: str) -> tuple[bool, str]:
        """Return (carries track ids, why) for the topic."""
        if self.detections:
            tracked = self.with_ids / self.detections > ID_MAJORITY
            return tracked, f"{self.with_ids}/{self.detections} sampled detections carry an id"
        # Nothing detected in the sample: fall back on the name, as a person would.
        tracked = "track" in topic.lower()
        return tracked, f"no detections in the first {self.messages} messages; decided by name"


@dataclass
class BagInfo:
    """What one bag holds, from its index."""

    source: BagSource
    start_ns: int | None
    end_ns: int | None  # receive time of the last message
    message_count: int
    topics: dict[str, tuple[str, int]]  # topic -> (msgtype, messages)
    leading_header: dict[str, bool]  # msgtype -> its first field is a std_msgs/Header
    reader: AnyReader | None = None  # still open from the survey, for the first KEEP_OPEN bags
    closer: ExitStack = field(default_factory=ExitStack)  # closes reader

    @contextmanager
    def open(self) -> Iterator[AnyReader]:
        """Yield the reader kept open by the survey (closing it afterwards) or open the bag again."""
        if self.reader is None:
            with open_bag(self.source) as reader:
                yield reader
            return
        with self.closer:
            yield self.reader
        self.reader = None

    @property
    def sort_key(self) -> tuple[int, str]:
        """Order bags by first message, then name (splits named _10 must not precede _2)."""
        return (self.start_ns if self.start_ns is not None else 2**63, self.source.name)


@dataclass(frozen=True)
class TopicChoice:
    """The topic extracted for one role, how it was chosen and what else could have been."""

    role: str
    topic: str | None
    msgtype: str | None
    count: int
    source: str  # "auto", "override", "disabled" or "none found"
    reason: str
    alternatives: tuple[dict[str, object], ...] = ()

    def to_dict(self) -> dict[str, object]:
        """Return the metadata.json form."""
        return {
            "topic": self.topic,
            "type": self.msgtype,
            "count": self.count,
            "source": self.source,
            "reason": self.reason,
            "alternatives": list(self.alternatives),
        }


@dataclass
class Survey:
    """Every bag of the run, its topics and the id samples of its Detection2DArray topics."""

    bags: list[BagInfo]
    samples: dict[str, IdSample] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def topics(self) -> dict[str, tuple[str, int]]:
        """Return topic -> (msgtype, messages) over all bags; a topic's type is its most frequent one."""
        counts: dict[str, dict[str, int]] = {}
        for bag in self.bags:
            for topic, (msgtype, count) in bag.topics.items():
                by_type = counts.setdefault(topic, {})
                by_type[msgtype] = by_type.get(msgtype, 0) + count
        merged = {}
        for topic, by_type in sorted(counts.items()):
            msgtype = min(by_type, key=lambda t: (-by_type[t], t))
            merged[topic] = (msgtype, by_type[msgtype])
        return merged

    def type_conflicts(self) -> list[str]:
        """Return a warning per topic recorded with more than one type."""
        types: dict[str, set[str]] = {}
        for bag in self.bags:
            for topic, (msgtype, _count) in bag.topics.items():
                types.setdefault(topic, set()).add(msgtype)
        return [
            f"topic {topic} has several types ({', '.join(sorted(found))}); only its most frequent one is read"
            for topic, found in sorted(types.items())
            if len(found) > 1
        ]


# -- finding bags ---------------------------------------------------------------------------------


def discover(in_path: Path) -> tuple[list[BagSource], list[str], list[str]]:
    """Return the bags under in_path, the in-flight names skipped and warnings, sorted by name."""
    root = in_path if in_path.is_dir() else in_path.parent
    if in_path.is_file():
        source = _file_source(in_path, root)
        return ([source] if source else []), [], []
    sources: list[BagSource] = []
    skipped: list[str] = []
    warnings: list[str] = []
    for dirpath, dirnames, filenames in os.walk(in_path):
        here = Path(dirpath)
        # Temp names (leading '.') are someone's unfinished write; in-flight suffixes too.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not d.endswith(IN_FLIGHT_SUFFIXES))
        names = sorted(n for n in filenames if not n.startswith("."))
        skipped += [_rel(here / n, root) for n in names if n.endswith(IN_FLIGHT_SUFFIXES)]
        names = [n for n in names if not n.endswith(IN_FLIGHT_SUFFIXES)]
        if ROS2_METADATA in names:
            dirnames[:] = []  # a ROS2 bag folder is one recording: nothing below it is separate
            folder_sources, folder_warnings = _folder_sources(here, names, root)
            sources += folder_sources
            warnings += folder_warnings
            continue
        sources += [source for n in names if (source := _file_source(here / n, root))]
    return sorted(sources, key=lambda s: s.name), skipped, warnings


def _rel(path: Path, root: Path) -> str:
    """Return path relative to root, '/'-separated."""
    return path.relative_to(root).as_posix()


def _file_source(path: Path, root: Path) -> BagSource | None:
    """Return the source for a single bag file, or None when it is not a bag."""
    suffix = path.suffix.lower()
    if suffix == ROS1_SUFFIX:
        return BagSource(path, _rel(path, root), "ros1", "rosbag1", (path,))
    if suffix in ROS2_SUFFIXES:
        return BagSource(path, _rel(path, root), "ros2", ROS2_SUFFIXES[suffix], (path,))
    return None


def _folder_sources(folder: Path, names: list[str], root: Path) -> tuple[list[BagSource], list[str]]:
    """Return one source per storage file of a ROS2 bag folder (or the folder when files need it)."""
    rel = _rel(folder, root)
    try:
        info = YAML(typ="safe").load((folder / ROS2_METADATA).read_text(encoding="utf-8"))
        meta = info["rosbag2_bagfile_information"]
        listed = [PurePath(p).name for p in meta["relative_file_paths"]]
        storage = str(meta.get("storage_identifier") or "")
        mode = str(meta.get("compression_mode") or "").lower()
    except Exception as err:  # any parse failure is the same bad input for the user
        raise ExtractionError(f"{rel}/{ROS2_METADATA}: cannot read ROS2 bag metadata ({_describe(err)})") from err
    if missing := [name for name in listed if not (folder / name).is_file()]:
        raise ExtractionError(f"{rel}: {ROS2_METADATA} lists {', '.join(missing)} but the folder lacks it")
    files = tuple(folder / name for name in listed)
    warnings = [
        f"{rel}/{name}: not listed in {ROS2_METADATA}, ignored"
        for name in names
        if Path(name).suffix.lower() in ROS2_SUFFIXES and name not in listed
    ]
    if mode in ("file", "message"):
        # Whole-file or per-message zstd only the folder reader undoes: read the folder as one unit.
        return [BagSource(folder, rel, "ros2", storage or "mcap", files)], warnings
    sources = []
    for path in files:
        kind = ROS2_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise ExtractionError(f"{rel}: unsupported storage file {path.name}")
        sources.append(BagSource(path, _rel(path, root), "ros2", kind, (path,)))
    return sources, warnings


# -- opening bags ---------------------------------------------------------------------------------


@cache
def default_typestore(fmt: str) -> Typestore:
    """Return the typestore for bags that do not embed definitions: standard types plus vision_msgs."""
    return vision_typestore(Stores.ROS1_NOETIC if fmt == "ros1" else Stores.ROS2_HUMBLE)


def check_file_format(source: BagSource) -> None:
    """Raise ExtractionError when a single-file bag is not the format its name says."""
    if source.path.is_dir():
        return
    try:
        with source.path.open("rb") as fh:
            head = fh.read(64)
    except OSError as err:
        raise ExtractionError(f"{source.name}: cannot read ({err.strerror or err})") from err
    if not head:
        raise ExtractionError(f"{source.name}: file is empty")
    if source.storage == "rosbag1":
        if head.startswith(b"#ROSBAG V") and not head.startswith(ROS1_MAGIC):
            version = head[9:12].decode("ascii", "replace")
            raise ExtractionError(f"{source.name}: ROS1 bag format V{version} is not supported, only V2.0")
        if not head.startswith(ROS1_MAGIC):
            raise ExtractionError(f"{source.name}: not a ROS1 bag (no '#ROSBAG V2.0' header)")
    elif source.storage == "mcap":
        if not head.startswith(MCAP_MAGIC):
            raise ExtractionError(f"{source.name}: not an MCAP file (bad magic)")
        profile = _mcap_profile(head)
        if profile != "ros2":
            shown = profile if profile else "empty" if profile == "" else "unreadable"
            raise ExtractionError(f"{source.name}: MCAP profile is {shown}, only ros2 is supported")
    elif source.storage == "sqlite3" and not head.startswith(SQLITE_MAGIC):
        raise ExtractionError(f"{source.name}: not an SQLite database (bad header)")


def _mcap_profile(head: bytes) -> str | None:
    """Return the profile of the MCAP header record at the start of head, or None when unreadable."""
    # magic (8) | opcode 0x01 | record length uint64 | profile: uint32 length + UTF-8 bytes
    try:
        if head[8] != 0x01:
            return None
        (length,) = struct.unpack_from("<I", head, 17)
        return head[21 : 21 + length].decode("utf-8") if 21 + length <= len(head) else None
    except (IndexError, struct.error, UnicodeDecodeError):
        return None


@contextmanager
def open_bag(source: BagSource) -> Iterator[AnyReader]:
    """Open one bag with rosbags, every failure turned into an ExtractionError naming the bag."""
    check_file_format(source)
    with bag_errors(source):
        reader = _open_reader(source)
    try:
        with bag_errors(source):
            _add_missing_types(reader, source.fmt)
        yield reader
    finally:
        reader.close()


def _open_reader(source: BagSource) -> AnyReader:
    """Return an open AnyReader; the fallback typestore is only built for a bag without definitions."""
    reader = AnyReader([source.path])
    try:
        reader.open()
    except AnyReaderError as err:
        # Building the fallback costs ~0.2 s: worth it only for the bags that need it (e.g. older .db3).
        if NO_DEFINITIONS not in str(err):
            raise
        reader = AnyReader([source.path], default_typestore=default_typestore(source.fmt))
        reader.open()
    return reader


def _add_missing_types(reader: AnyReader, fmt: str) -> None:
    """Register fallback types a bag uses but does not define, e.g. vision_msgs in a partly described bag."""
    have = reader.typestore.fielddefs
    if all(conn.msgtype in have for conn in reader.connections):
        return
    fallback = default_typestore(fmt)
    reader.typestore.register({name: defs for name, defs in fallback.fielddefs.items() if name not in have})


@contextmanager
def bag_errors(source: BagSource) -> Iterator[None]:
    """Turn any error reading source into an ExtractionError whose one line names the bag."""
    try:
        yield
    except ExtractionError:
        raise
    except Exception as err:
        raise ExtractionError(f"{source.name}: {_describe(err)}") from err


def _describe(err: Exception) -> str:
    """Return a short reason for a reader error; library errors already read well."""
    text = " ".join(str(err).split()) or type(err).__name__
    text = _NESTED_ARGS.sub(r"\1", text)  # rosbags nests an inner error's args tuple in some messages
    if isinstance(err, (UnicodeDecodeError, struct.error, EOFError, IndexError)) or any(
        hint in text.lower() for hint in DAMAGE_HINTS
    ):
        return f"truncated or damaged bag ({text})"
    if type(err).__module__.startswith("rosbags"):
        return text
    return f"{type(err).__name__}: {text}"


# -- surveying ------------------------------------------------------------------------------------


def survey(sources: list[BagSource], check_cancel: Callable[[], None], stack: ExitStack) -> Survey:
    """Open every bag: index facts, id samples of Detection2DArray topics; sort bags by time.

    The first KEEP_OPEN readers stay open (stack closes them at the latest) so the extraction does not pay
    for opening them again: an MCAP or ROS1 index and the message definitions are parsed once.
    """
    result = Survey(bags=[])
    for index, source in enumerate(sources):
        check_cancel()
        closer = stack.enter_context(ExitStack())
        reader = closer.enter_context(open_bag(source))
        with bag_errors(source):
            topics = {}
            for topic, info in reader.topics.items():
                if info.msgtype is None:  # several types within one bag: keep the most frequent
                    by_type: dict[str, int] = {}
                    for conn in info.connections:
                        by_type[conn.msgtype] = by_type.get(conn.msgtype, 0) + conn.msgcount
                    msgtype = min(by_type, key=lambda t: (-by_type[t], t))
                    topics[topic] = (msgtype, by_type[msgtype])
                else:
                    topics[topic] = (info.msgtype, info.msgcount)
            types = {msgtype for msgtype, _ in topics.values()}
            count = reader.message_count
            result.bags.append(
                BagInfo(
                    source=source,
                    start_ns=reader.start_time if count else None,
                    end_ns=reader.end_time - 1 if count else None,
                    message_count=count,
                    topics=topics,
                    leading_header={t: has_leading_header(reader.typestore, t) for t in types},
                    reader=reader if index < KEEP_OPEN else None,
                    closer=closer,
                )
            )
            _sample_ids(reader, source, topics, result.samples)
        if index >= KEEP_OPEN:
            closer.close()
    result.bags.sort(key=lambda bag: bag.sort_key)
    result.warnings += result.type_conflicts()
    return result


def _sample_ids(
    reader: AnyReader, source: BagSource, topics: dict[str, tuple[str, int]], samples: dict[str, IdSample]
) -> None:
    """Count detections with ids in the first messages of each Detection2DArray topic not yet decided."""
    for topic, (msgtype, _count) in topics.items():
        sample = samples.setdefault(topic, IdSample()) if msgtype in DETECTION_TYPES else None
        if sample is None or sample.done:
            continue
        parser = fast_parser(reader.typestore, msgtype, source.is_ros1)
        conns = [c for c in reader.connections if c.topic == topic and c.msgtype == msgtype]
        for _conn, _log_ns, raw in reader.messages(connections=conns):
            _stamp, boxes, _fell_back = read_boxes(reader, raw, msgtype, parser)
            sample.messages += 1
            sample.detections += len(boxes)
            sample.with_ids += sum(bool(box[0]) for box in boxes)
            if sample.done:
                break


# -- choosing topics ------------------------------------------------------------------------------

FRAMES_RULE = "most messages, then sensor_msgs/msg/Image before CompressedImage, then topic name"
DETECTIONS_RULE = "Detection2DArray topic whose sampled detections carry no ids; most messages, then topic name"
TRACKING_RULE = "Detection2DArray topic whose sampled detections carry ids; most messages, then topic name"


def choose_topics(found: Survey, overrides: dict[str, str | None]) -> dict[str, TopicChoice]:
    """Pick the frames, detections and tracking topics: overrides first, then the documented rules."""
    topics = found.topics()
    headers = {t: ok for bag in found.bags for t, ok in bag.leading_header.items()}
    choices: dict[str, TopicChoice] = {}
    taken: set[str] = set()
    for role in ROLES:
        wanted = overrides.get(role)
        if wanted is None:
            continue
        if wanted.strip().lower() in DISABLED:
            if role == FRAMES:
                raise ExtractionError("the frames topic cannot be disabled: frames.csv is the run's time base")
            choices[role] = TopicChoice(role, None, None, 0, "disabled", f"--{role}-topic none")
            continue
        if wanted not in topics:
            raise ExtractionError(f"{role} topic {wanted} is not in the run; {_listing(role, topics)}")
        msgtype, count = topics[wanted]
        if role == FRAMES and not headers.get(msgtype):
            raise ExtractionError(f"frames topic {wanted} ({msgtype}) has no std_msgs/Header to take stamps from")
        if role != FRAMES and msgtype not in DETECTION_TYPES:
            raise ExtractionError(f"{role} topic {wanted} is {msgtype}, expected {' or '.join(DETECTION_TYPES)}")
        choices[role] = TopicChoice(role, wanted, msgtype, count, "override", f"--{role}-topic {wanted}")
        taken.add(wanted)

    if FRAMES not in choices:
        images = sorted(
            (t for t, (mt, _n) in topics.items() if mt in IMAGE_TYPES and t not in taken),
            key=lambda t: (-topics[t][1], IMAGE_TYPES.index(topics[t][0]), t),
        )
        if not images:
            raise ExtractionError(f"no image topic ({' or '.join(IMAGE_TYPES)}) in the run; {_listing(FRAMES, topics)}")
        choices[FRAMES] = _auto(FRAMES, images, topics, FRAMES_RULE)
    taken.add(choices[FRAMES].topic or "")

    tracked: dict[str, tuple[bool, str]] = {
        t: found.samples.get(t, IdSample()).verdict(t)
        for t, (mt, _n) in topics.items()
        if mt in DETECTION_TYPES and t not in taken
    }
    for role, want_ids, rule in ((DETECTIONS, False, DETECTIONS_RULE), (TRACKING, True, TRACKING_RULE)):
        if role in choices:
            continue
        names = sorted((t for t, (ids, _why) in tracked.items() if ids == want_ids), key=lambda t: (-topics[t][1], t))
        if names:
            choices[role] = _auto(role, names, topics, f"{rule} ({tracked[names[0]][1]})")
        else:
            reason = f"no {DETECTION_TYPES[0]} topic {'with' if want_ids else 'without'} track ids"
            choices[role] = TopicChoice(role, None, None, 0, "none found", reason)
    return choices


def _auto(role: str, ranked: list[str], topics: dict[str, tuple[str, int]], rule: str) -> TopicChoice:
    """Return the first ranked topic as the automatic choice, the rest as alternatives."""
    best = ranked[0]
    alternatives = tuple({"topic": t, "type": topics[t][0], "count": topics[t][1]} for t in ranked[1:])
    return TopicChoice(role, best, topics[best][0], topics[best][1], "auto", rule, alternatives)


def _listing(role: str, topics: dict[str, tuple[str, int]], limit: int = 6) -> str:
    """Return a short 'topics: …' clause for an error line, candidates of the role first."""
    types = IMAGE_TYPES if role == FRAMES else DETECTION_TYPES
    ranked = sorted(topics, key=lambda t: (topics[t][0] not in types, t))
    if not ranked:
        return "the bags hold no topics"
    shown = ", ".join(f"{t} ({topics[t][0]})" for t in ranked[:limit])
    more = f" and {len(ranked) - limit} more" if len(ranked) > limit else ""
    return f"topics: {shown}{more}"
