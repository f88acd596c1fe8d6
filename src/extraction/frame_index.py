"""Where each frame's message sits in its bag, so one frame can be read later without scanning (frame_index.csv).

The positions come from the indexes the readers already hold: a ROS1 bag's per-connection index (chunk position
and offset of every message), an MCAP file's message index records (chunk offset and offset within the
decompressed chunk), an SQLite3 bag's row ids. They are matched to the frames by log time, in index order.
"""

from __future__ import annotations

import struct
from collections import defaultdict, deque
from typing import Any

import pyarrow as pa
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

FRAME_INDEX_FILE = "frame_index.csv"
FRAME_INDEX_VERSION = 1
FRAME_INDEX_SCHEMA = pa.schema(
    [
        ("frame_index", pa.int64()),
        ("bag", pa.string()),
        ("storage", pa.string()),
        ("log_ns", pa.int64()),
        ("stamp_ns", pa.int64()),
        ("chunk_pos", pa.int64()),
        ("chunk_offset", pa.int64()),
        ("row_id", pa.int64()),
    ]
)

Position = tuple[int | None, int | None, int | None]  # chunk_pos, chunk_offset, row_id
NO_POSITION: Position = (None, None, None)
MCAP_MESSAGE_INDEX = 0x07
_MCAP_INDEX_HEAD = struct.Struct("<BQHI")  # opcode, record length, channel id, entries byte length


def message_positions(reader: AnyReader, conns: list[Any]) -> list[tuple[int, Position]]:
    """Return (log ns, position) of every message of conns in reader's single bag; [] when it has no index."""
    if len(reader.readers) != 1 or not conns:
        return []
    inner = reader.readers[0]
    if isinstance(inner, Ros1Reader):
        return sorted(
            (entry.time, (entry.chunk_pos, entry.offset, None)) for conn in conns for entry in inner.indexes[conn.id]
        )
    storage = getattr(inner, "storage", None)
    if isinstance(storage, McapReader):
        return _mcap_positions(storage, {conn.id for conn in conns})
    if isinstance(storage, Sqlite3Reader):
        ids = sorted({conn.id for conn in conns})
        marks = ",".join("?" for _ in ids)
        rows = storage.dbconn.execute(  # type: ignore[union-attr]
            f"SELECT timestamp, id FROM messages WHERE topic_id IN ({marks}) ORDER BY timestamp, id",  # noqa: S608
            ids,
        )
        return [(int(log_ns), (None, None, int(row_id))) for log_ns, row_id in rows]
    return []  # a ROS2 folder compressed per file or per message: read by log time instead


def _mcap_positions(storage: McapReader, channels: set[int]) -> list[tuple[int, Position]]:
    """Read the MCAP message index records of channels: (log time, (chunk offset, offset in chunk, None))."""
    bio = storage.bio
    if bio is None:
        return []
    found: list[tuple[int, Position]] = []
    for chunk in storage.chunks:
        for channel, where in chunk.message_index_offsets.items():
            if channel not in channels:
                continue
            bio.seek(where)
            opcode, _length, _channel, size = _MCAP_INDEX_HEAD.unpack(bio.read(_MCAP_INDEX_HEAD.size))
            if opcode != MCAP_MESSAGE_INDEX:
                return []  # an index that does not look like one: no positions rather than wrong ones
            entries = bio.read(size)
            found += [
                (log_ns, (chunk.chunk_start_offset, offset, None))
                for log_ns, offset in struct.iter_unpack("<QQ", entries)
            ]
    found.sort()
    return found


def by_log_time(positions: list[tuple[int, Position]]) -> dict[int, deque[Position]]:
    """Return the positions grouped by log time, in index order: the extraction pops one per frame it reads."""
    grouped: dict[int, deque[Position]] = defaultdict(deque)
    for log_ns, position in positions:
        grouped[log_ns].append(position)
    return grouped
