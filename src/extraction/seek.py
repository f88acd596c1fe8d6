"""Read one message of a bag by its frame_index.csv position, without scanning the bag.

ROS1: seek to the chunk record, read (and decompress) that chunk only, take the record at the offset.
MCAP: the same with the chunk record and the message record inside its decompressed records.
SQLite3: one SELECT by row id. Without a position (a ROS2 folder compressed per file or per message, or an
extraction without frame_index.csv) rosbags reads the frames topic at the message's log time only: its readers
skip every chunk outside that time, so it is still no scan, only slower to open. Every message read is checked
against the frame's header stamp, so a bag that changed since the extraction is noticed, not shown wrongly.
"""

from __future__ import annotations

import bz2
import sqlite3
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import lz4.frame

from src.extraction.reader import BagSource, open_bag
from src.extraction.stamps import read_header_stamp

if sys.version_info >= (3, 14):  # pragma: no cover - rosbags' own choice of zstd binding
    from compression import zstd
else:
    from backports import zstd

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_ROS1_TIME = struct.Struct("<II")
_MCAP_CHUNK_HEAD = struct.Struct("<BQQQQI")  # opcode, length, start, end, uncompressed size, crc
_MCAP_MESSAGE_HEAD = struct.Struct("<BQHIQQ")  # opcode, length, channel, sequence, log time, publish time
MCAP_CHUNK, MCAP_MESSAGE = 0x06, 0x05
ROS1_CHUNK, ROS1_MESSAGE, ROS1_CONNECTION = 5, 2, 7
FORMATS = {"rosbag1": "ros1", "mcap": "ros2", "sqlite3": "ros2"}

DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda data: data,
    "none": lambda data: data,
    "lz4": lz4.frame.decompress,
    "bz2": bz2.decompress,
    "zstd": zstd.decompress,
}


class FrameReadError(Exception):
    """A frame's message cannot be read from its bag; str(err) is one line for the user."""


@dataclass(frozen=True)
class MessageLocation:
    """Where one frame's message is: its bag (relative to the run's raw folder) and its position there."""

    bag: str
    storage: str  # "rosbag1", "mcap" or "sqlite3"
    topic: str
    log_ns: int
    stamp_ns: int | None = None
    chunk_pos: int | None = None
    chunk_offset: int | None = None
    row_id: int | None = None

    @property
    def is_ros1(self) -> bool:
        """Return whether the message is ROS1-serialized (else CDR)."""
        return self.storage == "rosbag1"

    @property
    def seekable(self) -> bool:
        """Return whether the location holds a position (else only the log time is known)."""
        if self.storage == "sqlite3":
            return self.row_id is not None
        return self.chunk_pos is not None and self.chunk_offset is not None


def read_message(path: Path, where: MessageLocation) -> tuple[bytes, bool]:
    """Return (the serialized message at where in the bag at path, whether it was read by position)."""
    if not path.exists():
        raise FrameReadError(f"{where.bag} is not on disk any more: download the run again")
    if where.seekable:
        try:
            raw = _read_at(path, where)
        except (OSError, ValueError, struct.error, zstd.ZstdError, RuntimeError) as err:
            raw = None
            why = f"{type(err).__name__}: {err}"
        else:
            why = "its header stamp differs from the extraction's"
            if _stamp_matches(raw, where):
                return raw, True
        # A position that does not hold the frame (bag rewritten, ties in log time): ask rosbags by time.
        try:
            return _read_by_time(path, where), False
        except FrameReadError as err:
            raise FrameReadError(f"{err} (the indexed position failed too: {why})") from None
    return _read_by_time(path, where), False


def _stamp_matches(raw: bytes, where: MessageLocation) -> bool:
    """Tell whether raw's header stamp is the frame's (true when either is unknown)."""
    if where.stamp_ns is None:
        return True
    try:
        return read_header_stamp(raw, where.is_ros1) == where.stamp_ns
    except ValueError:
        return True  # an encapsulation the fast path does not read: the log time check has to do


def _read_at(path: Path, where: MessageLocation) -> bytes:
    """Read the message at its recorded position."""
    if where.storage == "sqlite3":
        return _read_sqlite_row(path, where)
    with path.open("rb") as fh:
        if where.storage == "rosbag1":
            return _read_ros1(fh, where)
        if where.storage == "mcap":
            return _read_mcap(fh, where)
    raise ValueError(f"unknown storage {where.storage!r}")


def _read_ros1(fh: BinaryIO, where: MessageLocation) -> bytes:
    """Read a message record of a ROS1 chunk: the chunk is decompressed, or read in place when it is not."""
    assert where.chunk_pos is not None and where.chunk_offset is not None
    fh.seek(where.chunk_pos)
    header = _ros1_header(_exact(fh, _U32.unpack(_exact(fh, 4))[0]))
    if header.get("op") != bytes([ROS1_CHUNK]):
        raise ValueError(f"no ROS1 chunk record at byte {where.chunk_pos}")
    compression = header.get("compression", b"none").decode()
    (size,) = _U32.unpack(_exact(fh, 4))
    if compression == "none":
        fh.seek(where.chunk_offset, 1)
        return _ros1_message(fh, where)
    if compression not in DECOMPRESS:
        raise ValueError(f"ROS1 chunk compression {compression!r} is not supported")
    records = BytesIO(DECOMPRESS[compression](_exact(fh, size)))
    records.seek(where.chunk_offset)
    return _ros1_message(records, where)


def _ros1_message(records: BinaryIO, where: MessageLocation) -> bytes:
    """Return the data of the message record at the current position, skipping connection records before it."""
    while True:
        header = _ros1_header(_exact(records, _U32.unpack(_exact(records, 4))[0]))
        (size,) = _U32.unpack(_exact(records, 4))
        op = header.get("op", b"\x00")[0]
        if op == ROS1_CONNECTION:
            records.seek(size, 1)
            continue
        if op != ROS1_MESSAGE:
            raise ValueError("the position holds no ROS1 message record")
        sec, nsec = _ROS1_TIME.unpack(header["time"])
        if sec * 1_000_000_000 + nsec != where.log_ns:
            raise ValueError("the ROS1 message at the position has another log time")
        return _exact(records, size)


def _ros1_header(raw: bytes) -> dict[str, bytes]:
    """Parse a ROS1 record header: length-prefixed name=value fields."""
    fields: dict[str, bytes] = {}
    offset = 0
    while offset < len(raw):
        (length,) = _U32.unpack_from(raw, offset)
        name, _, value = raw[offset + 4 : offset + 4 + length].partition(b"=")
        fields[name.decode("ascii", "replace")] = value
        offset += 4 + length
    return fields


def _read_mcap(fh: BinaryIO, where: MessageLocation) -> bytes:
    """Read a message record inside an MCAP chunk; an uncompressed chunk is read in place."""
    assert where.chunk_pos is not None and where.chunk_offset is not None
    fh.seek(where.chunk_pos)
    opcode, _length, _start, _end, size, _crc = _MCAP_CHUNK_HEAD.unpack(_exact(fh, _MCAP_CHUNK_HEAD.size))
    if opcode != MCAP_CHUNK:
        raise ValueError(f"no MCAP chunk record at byte {where.chunk_pos}")
    compression = _exact(fh, _U32.unpack(_exact(fh, 4))[0]).decode()
    (compressed,) = _U64.unpack(_exact(fh, 8))
    if compression == "":
        fh.seek(where.chunk_offset, 1)
        head = _exact(fh, _MCAP_MESSAGE_HEAD.size)
        return _mcap_message(head, where, lambda n: _exact(fh, n))
    if compression not in DECOMPRESS:
        raise ValueError(f"MCAP chunk compression {compression!r} is not supported")
    records = DECOMPRESS[compression](_exact(fh, compressed))
    if len(records) != size:
        raise ValueError("MCAP chunk decompressed to an unexpected size")
    start = where.chunk_offset + _MCAP_MESSAGE_HEAD.size
    head = records[where.chunk_offset : start]
    return _mcap_message(head, where, lambda n: records[start : start + n])


def _mcap_message(head: bytes, where: MessageLocation, body: Callable[[int], bytes]) -> bytes:
    """Check an MCAP message record's head and return its data."""
    opcode, length, _channel, _seq, log_ns, _publish = _MCAP_MESSAGE_HEAD.unpack(head)
    if opcode != MCAP_MESSAGE or length < 22:
        raise ValueError("the position holds no MCAP message record")
    if log_ns != where.log_ns:
        raise ValueError("the MCAP message at the position has another log time")
    data = body(length - 22)
    if len(data) != length - 22:
        raise ValueError("MCAP message record is cut short")
    return data


def _read_sqlite_row(path: Path, where: MessageLocation) -> bytes:
    """Read one row of an SQLite3 bag by id, read-only."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT timestamp, data FROM messages WHERE id = ?", (where.row_id,)).fetchone()
    finally:
        db.close()
    if row is None or int(row[0]) != where.log_ns:
        raise ValueError(f"row {where.row_id} is not the frame's message")
    return bytes(row[1])


def _read_by_time(path: Path, where: MessageLocation) -> bytes:
    """Ask rosbags for the frames topic's messages at the frame's log time only; keep the one with its stamp."""
    fmt = FORMATS.get(where.storage, "ros2")
    files = tuple(sorted(p for p in path.iterdir() if p.is_file())) if path.is_dir() else (path,)
    source = BagSource(path, where.bag, fmt, where.storage, files)
    try:
        with open_bag(source) as reader:
            conns = [c for c in reader.connections if c.topic == where.topic]
            for _conn, _log_ns, raw in reader.messages(connections=conns, start=where.log_ns, stop=where.log_ns + 1):
                if _stamp_matches(raw, where):
                    return bytes(raw)
    except FrameReadError:
        raise
    except Exception as err:  # any reader failure is the same for the user: the frame cannot be read
        raise FrameReadError(f"{where.bag}: {' '.join(str(err).split())[:200]}") from err
    raise FrameReadError(f"{where.bag} holds no {where.topic} message at that time: has the bag changed?")


def _exact(fh: BinaryIO, size: int) -> bytes:
    """Read exactly size bytes."""
    data = fh.read(size)
    if len(data) != size:
        raise ValueError("the bag ends early")
    return data
