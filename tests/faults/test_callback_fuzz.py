"""Fault: forged and malformed callback requests, fuzzed with hypothesis.

Every callback in app.callback_map is called as the browser would (signed in as an operator and as a
viewer), with hostile values: traversal in the filter Location's search, random coordinates in the
download manager's selected rows and the run view's URL, random export ids and dataset names, and
values of the wrong type; then with malformed bodies (not JSON, wrong shapes, missing keys).

What must hold: no response is a 500 (200, 204, 400 and 403 are fine), and nothing is written,
renamed or deleted outside DATA_ROOT — checked by a Python audit hook on every file operation of
this process and by comparing the file tree around the data root (and /tmp's top level, for names
the requests carried) before and after, once every job the fuzzing started has ended.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.models import FILTER_LEVELS, HIERARCHY_LEVELS
from tests.conftest import AuthActions
from tests.faults.helpers import app_settings, seed_demo_app
from tests.helpers import parse_id

pytestmark = pytest.mark.slow

ALLOWED_STATUSES = {200, 204, 400, 403}
VIEWS = ("coverage", "run-analysis", "download-manager", "home", "fleet", "compare")
UPDATE = "/_dash-update-component"
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # the example database would write .hypothesis/ into the project
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MALFORMED = settings(FUZZ, max_examples=100)


# -- watching every file operation of this process -------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {  # event -> indexes of the arguments that name paths it creates, changes or removes
    "os.mkdir": (0,),
    "os.rename": (0, 1),  # os.rename and os.replace
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.link": (1,),
    "os.symlink": (1,),
    "os.truncate": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.utime": (0,),
    "shutil.copyfile": (1,),
    "shutil.copytree": (1,),
    "shutil.move": (0, 1),
    "shutil.rmtree": (0,),
    "tempfile.mkstemp": (0,),
    "tempfile.mkdtemp": (0,),
    "sqlite3.connect": (0,),
}


class WriteWatch:
    """Record file operations of this process that touch paths outside the allowed roots."""

    _installed: WriteWatch | None = None

    def __init__(self) -> None:
        self.allowed: tuple[str, ...] = ()
        self.ignored_threads: frozenset[threading.Thread] = frozenset()
        self.active = False
        self.violations: list[tuple[str, str]] = []
        self._local = threading.local()

    @classmethod
    def instance(cls) -> WriteWatch:
        """Return the process-wide watcher (audit hooks cannot be removed, so install one, once)."""
        if cls._installed is None:
            cls._installed = cls()
            sys.addaudithook(cls._installed._hook)
        return cls._installed

    @contextmanager
    def watching(self, *allowed: Path, ignore: frozenset[threading.Thread] = frozenset()) -> Iterator[WriteWatch]:
        """Watch while the block runs, allowing only paths below allowed; threads in ignore are not watched."""
        self.allowed = tuple(os.path.realpath(p) + os.sep for p in allowed)
        self.ignored_threads = ignore
        self.violations = []
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def _hook(self, event: str, args: tuple) -> None:
        if not self.active or getattr(self._local, "busy", False) or threading.current_thread() in self.ignored_threads:
            return
        if event == "open":
            path, mode, flags = [*args, None, None][:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            paths = [path] if writes else []
        elif event in _PATH_EVENTS:
            paths = [args[i] for i in _PATH_EVENTS[event] if i < len(args)]
        else:
            return
        self._local.busy = True  # realpath() below must not audit itself
        try:
            for path in paths:
                resolved = self._resolve(path)
                if resolved is not None and not self._allowed(resolved):
                    self.violations.append((event, resolved))
        finally:
            self._local.busy = False

    def _resolve(self, path: Any) -> str | None:
        if isinstance(path, int) or path is None:
            return None  # an already open descriptor: its opening was checked
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        path = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(path, str) or path in ("", ":memory:") or path.startswith("file:"):
            return None if path in ("", ":memory:") else str(path)
        return os.path.realpath(path)

    def _allowed(self, path: str) -> bool:
        return path in ("/dev/null",) or any((path + os.sep).startswith(root) for root in self.allowed)


def tree(root: Path, skip: Path | None = None) -> set[str]:
    """Return every path below root (not following links), skipping the subtree skip."""
    found: set[str] = set()
    for directory, dirnames, filenames in os.walk(root):
        if skip is not None and Path(directory) == skip:
            dirnames.clear()
            continue
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            if skip is None or Path(path) != skip:
                found.add(path)
    return found


def tmp_top_level() -> set[str]:
    """Return /tmp's top-level names."""
    return set(os.listdir("/tmp"))


def segments(value: Any, found: set[str]) -> None:
    """Collect every path segment of every string in value (as sent, and URL-decoded)."""
    if isinstance(value, dict):
        for key, item in value.items():
            segments(key, found)
            segments(item, found)
    elif isinstance(value, list):
        for item in value:
            segments(item, found)
    elif isinstance(value, bytes):
        segments(value.decode("latin-1"), found)
    elif isinstance(value, str):
        for text in (value, unquote(value), unquote(unquote(value))):
            found.update(part for part in re.split(r"[/\\?&=]", text) if part)


# -- the app under fuzz ----------------------------------------------------------------------------


@dataclass
class FuzzEnv:
    """A seeded app with one signed-in client per role, and real values worth mixing in."""

    app: Any
    data_root: Path
    outside: Path  # the test's own folder around the data root: nothing may appear there
    private_tmp: Path  # tempfile's folder while fuzzing, so this process's temp files are seen
    clients: dict[str, Any]
    coordinates: list[str]
    export_ids: list[str]
    callbacks: list[tuple[str, dict]]
    # Threads of apps that other tests (and app.py's import) left running: their job heartbeats write
    # to their own data roots, which is not the fuzzed app's doing.
    other_threads: frozenset[threading.Thread]
    sent_segments: set[str] = field(default_factory=set)

    def post(self, role: str, **kwargs: Any) -> Any:
        """Send one request to the update endpoint as role, noting the path segments it carries."""
        segments(kwargs.get("json", kwargs.get("data")), self.sent_segments)
        return self.clients[role].post(UPDATE, **kwargs)

    def jobs_idle(self) -> bool:
        """Tell whether every job the fuzzing started has ended."""
        runner = self.app.server.extensions["bagboard.services"].jobs
        return not any(job.is_active for job in runner.registry.list(limit=500))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzEnv]:
    """Seed the tiny demo into a fresh data root and sign in an operator and a viewer."""
    outside = tmp_path_factory.mktemp("fuzz")
    data_root = outside / "data"
    data_root.mkdir()
    private_tmp = outside / "tmp"
    private_tmp.mkdir()
    importlib.import_module("app")  # app.py builds its import-time app (and its job threads) now, not below

    main = threading.main_thread()
    other_threads = frozenset(t for t in threading.enumerate() if t is not main)
    app = seed_demo_app(app_settings(data_root))
    services = app.server.extensions["bagboard.services"]
    runs = services.inventory.get_runs()
    coordinates = ["/".join(str(row[level]) for level in HIERARCHY_LEVELS) for _, row in runs.head(20).iterrows()]
    clients = {}
    for role in ("operator", "viewer"):
        client = app.server.test_client()
        assert AuthActions(client).login(role).status_code == 302
        clients[role] = client
    fuzz_env = FuzzEnv(
        app=app,
        data_root=data_root,
        outside=outside,
        private_tmp=private_tmp,
        clients=clients,
        coordinates=coordinates,
        export_ids=services.local_state.get_export_ids(),
        callbacks=sorted(app.callback_map.items()),
        other_threads=other_threads,
    )
    yield fuzz_env
    services.jobs.shutdown(wait=True)


@contextmanager
def nothing_written_outside(env: FuzzEnv) -> Iterator[None]:
    """Fail if anything outside DATA_ROOT is created, changed or removed while the block runs."""
    watch = WriteWatch.instance()
    before_tree, before_tmp = tree(env.outside, skip=env.data_root), tmp_top_level()
    previous_tempdir = tempfile.tempdir
    tempfile.tempdir = str(env.private_tmp)  # this process's temp files land where the tree check sees them
    try:
        # Hypothesis caches its own data (unicode tables, constants) in .hypothesis/: the test tool's own.
        hypothesis_home = Path(os.getenv("HYPOTHESIS_STORAGE_DIRECTORY") or ".hypothesis").resolve()
        with watch.watching(env.data_root, hypothesis_home, ignore=env.other_threads):
            yield
            deadline = time.monotonic() + 60
            while not env.jobs_idle() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert env.jobs_idle(), "jobs started by the fuzzing did not end"
    finally:
        tempfile.tempdir = previous_tempdir
    assert watch.violations == [], f"file operations outside DATA_ROOT: {watch.violations[:10]}"
    assert tree(env.outside, skip=env.data_root) == before_tree, "new paths beside DATA_ROOT"
    # Other sessions on a shared machine create /tmp entries at any time (pytest, browsers, benchmarks),
    # so only a new name that the requests carried counts: that is what a traversal write would make.
    # This process's own writes there are audited above, and its tempfile folder was redirected.
    new_in_tmp = tmp_top_level() - before_tmp
    assert new_in_tmp & env.sent_segments == set(), f"new entries in /tmp named by the requests: {new_in_tmp}"


# -- strategies ------------------------------------------------------------------------------------

HOSTILE = [
    "",
    " ",
    ".",
    "..",
    "...",
    "../..",
    "..%2F..",
    "%2e%2e%2f%2e%2e",
    "/etc/passwd",
    "/etc/…",
    "/tmp/bagboard-pwned",
    "a/b",
    "a\\b",
    "..\\..\\windows",
    "\x00",
    "a\x00b",
    "\n",
    "x" * 200,
    "ü",
    "\u202eevil",
    "~root",
    "$(touch /tmp/pwned)",
    "'; DROP TABLE jobs; --",
    "<script>alert(1)</script>",
    "null",
    "NaN",
    "-1",
    "1e309",
    "acme",
    "north",
    "2024-05-14T10-32-00",
]
text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=30),
    st.text(alphabet="./\\%20aA-_~:?&=#", max_size=24),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True), text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10,
)


def coordinate_strings(env: FuzzEnv) -> st.SearchStrategy[Any]:
    """Real coordinates, real ones with one part replaced, random six-part paths and junk."""
    real = st.sampled_from(env.coordinates)

    def mutate(coord: str, index: int, part: str) -> str:
        parts = coord.split("/")
        parts[index] = part
        return "/".join(parts)

    return st.one_of(
        real,
        st.builds(mutate, real, st.integers(0, 5), text),
        st.lists(text, min_size=6, max_size=6).map("/".join),
        st.lists(text, min_size=1, max_size=8).map("/".join),
        json_values,
    )


def searches(env: FuzzEnv) -> st.SearchStrategy[Any]:
    """Location.search values: encoded and raw query strings with hostile values, real ones, junk."""
    keys = st.sampled_from([*HIERARCHY_LEVELS, "expected", "threshold", "x", "", "cid[]"])
    real_values = st.sampled_from(sorted({p for c in env.coordinates for p in c.split("/")}))
    pairs = st.lists(st.tuples(keys, st.one_of(text, real_values)), max_size=7)

    def real_query(coord: str, drop: int) -> str:
        params = list(zip(HIERARCHY_LEVELS, coord.split("/"), strict=True))[: 6 - drop]
        return "?" + urlencode(params)

    return st.one_of(
        pairs.map(lambda ps: "?" + urlencode(ps)),
        pairs.map(lambda ps: "?" + "&".join(f"{k}={v}" for k, v in ps)),  # not encoded at all
        pairs.map(lambda ps: "?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in ps)),
        st.builds(real_query, st.sampled_from(env.coordinates), st.integers(0, 6)),
        st.just("?cid=..%2F..&regionid=/etc/passwd"),
        st.just("?cid=%2Fetc&regionid=%2e%2e&fieldid=..%5C..&twid=x&lbid=y&timestamp=..%2F..%2F..%2Ftmp"),
        text,
        json_values,
    )


def prop_values(env: FuzzEnv, component: str, prop: str) -> st.SearchStrategy[Any]:
    """Return a strategy for one input or state value, hostile in the ways that prop invites."""
    coords = coordinate_strings(env)
    rows = st.lists(
        st.one_of(st.fixed_dictionaries({"coordinate": coords}), st.dictionaries(st.text(max_size=12), coords)),
        max_size=4,
    )
    clicks = st.one_of(st.none(), st.integers(0, 5), json_values)
    if prop == "search":
        return searches(env)
    if prop == "selectedRows" or prop == "rowData":
        return st.one_of(rows, json_values)
    if prop in ("n_clicks", "n_intervals"):
        return clicks
    if prop == "cellClicked":
        return st.one_of(st.fixed_dictionaries({"rowId": coords, "colId": text}), json_values)
    if prop == "clickData":
        point = st.fixed_dictionaries({"customdata": st.one_of(text, coords, json_values)})
        return st.one_of(st.fixed_dictionaries({"points": st.lists(point, max_size=2)}), json_values)
    if prop == "pathname":
        return st.one_of(
            st.sampled_from(["/", "/coverage", "/run-analysis", "/download-manager", "/fleet", "/compare"]), text
        )
    if component == "dm-export":
        return st.one_of(st.sampled_from(env.export_ids or ["x"]), text, json_values)
    if component == "dm-dataset-name":
        return st.one_of(text, st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True), json_values)
    if component in ("dm-conflict", "dm-upload-conflict"):
        return st.one_of(st.sampled_from(["skip", "overwrite"]), text, json_values)
    if component == "dm-tabs":
        return st.one_of(st.sampled_from(["dm-tab-upload", "dm-tab-jobs", "dm-tab-download"]), text, json_values)
    if component in ("ra-job", "cov-refresh-job"):
        return st.one_of(st.none(), text, json_values)
    if component == "ra-timestamp":
        return st.one_of(st.none(), st.sampled_from([c.rsplit("/", 1)[1] for c in env.coordinates]), text)
    return json_values


def id_string(component: Any) -> str:
    """Return the id as the browser writes it in changedPropIds."""
    if isinstance(component, dict):
        return json.dumps(component, sort_keys=True, separators=(",", ":"))
    return str(component)


@st.composite
def callback_requests(draw: st.DrawFn, env: FuzzEnv) -> tuple[str, dict[str, Any]]:
    """Draw (role, body) for a well-formed call of any callback, with hostile values everywhere."""
    role = draw(st.sampled_from(["operator", "viewer"]))
    key, spec = draw(st.sampled_from(env.callbacks))
    match_value = draw(st.one_of(st.sampled_from(VIEWS), text))
    all_values = draw(
        st.one_of(
            st.just(list(FILTER_LEVELS)),
            st.lists(st.one_of(st.sampled_from(FILTER_LEVELS), text), max_size=6),
        )
    )

    def concrete(component: str) -> list[Any] | Any:
        """Fill MATCH with one value and ALL with several; a plain id stays as it is."""
        ident = parse_id(component)
        if not isinstance(ident, dict):
            return ident
        base = {k: (match_value if v == ["MATCH"] else v) for k, v in ident.items()}
        wild = [k for k, v in base.items() if v == ["ALL"]]
        if not wild:
            return base
        return [{**base, **dict.fromkeys(wild, value)} for value in all_values]

    outputs = []
    for part in key.strip(".").split("..."):
        component, prop = part.rsplit(".", 1)
        ident = concrete(component)
        if isinstance(ident, list):
            outputs.append([{"id": i, "property": prop} for i in ident])
        else:
            outputs.append({"id": ident, "property": prop})

    def fill(items: list[dict], changed: list[str]) -> list[Any]:
        filled: list[Any] = []
        for item in items:
            ident, prop = concrete(item["id"]), item["property"]
            values = prop_values(env, item["id"], prop)
            if isinstance(ident, list):
                group = [{"id": i, "property": prop, "value": draw(values)} for i in ident]
                # A wildcard's matches always come as a list; a forged request may send just one.
                filled.append(group[0] if group and draw(st.integers(0, 9)) == 0 else group)
                changed.extend(f"{id_string(i)}.{prop}" for i in ident)
            else:
                filled.append({"id": ident, "property": prop, "value": draw(values)})
                changed.append(f"{id_string(ident)}.{prop}")
        return filled

    changed: list[str] = []
    inputs = fill(spec["inputs"], changed)
    state = fill(spec["state"], [])  # a state value never triggers anything
    forged_ids = st.builds(
        lambda ident, prop: f"{json.dumps(ident, separators=(',', ':'))}.{prop}",
        st.dictionaries(st.sampled_from(["type", "view", "level", "job", "x"]), st.one_of(text, st.integers())),
        st.sampled_from(["value", "n_clicks", "search", "x"]),
    )
    triggered = draw(
        st.one_of(
            st.just(changed),
            st.lists(st.one_of(st.sampled_from([*changed, "x.y"]), forged_ids, text), max_size=3),
        )
    )
    body = {
        "output": key,
        "outputs": outputs if key.startswith("..") else outputs[0],
        "inputs": inputs,
        "state": state,
        "changedPropIds": triggered,
    }
    return role, body


@st.composite
def malformed_requests(draw: st.DrawFn, env: FuzzEnv) -> tuple[str, dict[str, Any]]:
    """Draw (role, request kwargs) for bodies that are not what the browser ever sends."""
    role = draw(st.sampled_from(["operator", "viewer"]))
    key, spec = draw(st.sampled_from(env.callbacks))
    kind = draw(
        st.sampled_from(["bytes", "json value", "unknown output", "bad fields", "wrong shapes", "missing keys"])
    )
    if kind == "bytes":
        data = draw(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
        content_type = draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))
        return role, {"data": data, "content_type": content_type}
    if kind == "json value":
        return role, {"json": draw(json_values)}
    if kind == "unknown output":
        return role, {"json": {"output": draw(text), "outputs": {}, "inputs": [], "changedPropIds": []}}
    good_inputs = [
        {"id": parse_id(i["id"]), "property": i["property"], "value": draw(json_values)} for i in spec["inputs"]
    ]
    body: dict[str, Any] = {
        "output": key,
        "outputs": {"id": "x", "property": "children"},
        "inputs": good_inputs,
        "state": [],
        "changedPropIds": [],
    }
    if kind == "bad fields":
        field = draw(st.sampled_from(["outputs", "inputs", "state", "changedPropIds"]))
        body[field] = draw(json_values)
    elif kind == "wrong shapes":
        body["inputs"] = draw(
            st.lists(
                st.one_of(
                    st.dictionaries(st.sampled_from(["id", "property", "value", "x"]), json_values, max_size=4),
                    st.lists(st.dictionaries(st.sampled_from(["id", "property", "value"]), json_values), max_size=3),
                ),
                max_size=len(spec["inputs"]) + 2,
            )
        )
        body["outputs"] = draw(st.one_of(json_values, st.lists(json_values, max_size=3)))
    else:
        for field in draw(st.sets(st.sampled_from(["outputs", "inputs", "state", "changedPropIds"]), min_size=1)):
            body.pop(field, None)
    return role, {"json": body}


def check(response: Any, role: str, body: Any) -> None:
    """Fail on a 500 (or any status not in the allowed set), showing what was sent."""
    shown = json.dumps(body, default=repr)[:1500] if not isinstance(body, bytes) else repr(body[:200])
    assert response.status_code in ALLOWED_STATUSES, (
        f"{response.status_code} as {role}: {response.get_data(as_text=True)[:300]}\nrequest: {shown}"
    )


# -- the tests -------------------------------------------------------------------------------------


def test_every_callback_refuses_fixed_hostile_inputs_without_a_500(env: FuzzEnv):
    """A deterministic sweep first: every callback, both roles, the classic traversal values."""
    hostile_search = "?cid=..%2F..&regionid=/etc/passwd&fieldid=a&twid=b&lbid=c&timestamp=..%2F..%2Ftmp"
    values: dict[str, Any] = {
        "search": hostile_search,
        "selectedRows": [{"coordinate": "../../../../../tmp"}, {"coordinate": "/etc/passwd"}, "x", 3, None],
        "rowData": [{"coordinate": "../../etc"}],
        "cellClicked": {"rowId": "../../etc"},
        "clickData": {"points": [{"customdata": "../.."}]},
        "value": "../../etc",
        "data": "../../etc",
        "n_clicks": 1,
        "n_intervals": 1,
        "active_tab": "dm-tab-upload",
        "pathname": "/../../etc/passwd",
    }
    sent = 0
    with nothing_written_outside(env):
        for role in ("operator", "viewer"):
            for key, spec in env.callbacks:
                body = fixed_body(key, spec, values)
                check(env.post(role, json=body), role, body)
                sent += 1
    assert sent == 2 * len(env.callbacks)
    assert {"etc", "passwd", "tmp"} <= env.sent_segments  # what the /tmp check looks for


def fixed_body(key: str, spec: dict, values: dict[str, Any]) -> dict[str, Any]:
    """Build a browser-shaped body with one hostile value per property (ALL ids: the five levels)."""

    def concrete(component: str) -> Any:
        ident = parse_id(component)
        if not isinstance(ident, dict):
            return ident
        base = {k: ("coverage" if v == ["MATCH"] else v) for k, v in ident.items()}
        wild = [k for k, v in base.items() if v == ["ALL"]]
        return [{**base, **dict.fromkeys(wild, level)} for level in FILTER_LEVELS] if wild else base

    def fill(items: list[dict]) -> list[Any]:
        filled = []
        for item in items:
            ident, prop = concrete(item["id"]), item["property"]
            value = values.get(prop)
            if isinstance(ident, list):
                filled.append([{"id": i, "property": prop, "value": value} for i in ident])
            else:
                filled.append({"id": ident, "property": prop, "value": value})
        return filled

    outputs = []
    for part in key.strip(".").split("..."):
        component, prop = part.rsplit(".", 1)
        ident = concrete(component)
        outputs.append(
            [{"id": i, "property": prop} for i in ident] if isinstance(ident, list) else {"id": ident, "property": prop}
        )
    inputs = fill(spec["inputs"])
    changed = [
        f"{id_string(entry['id'])}.{entry['property']}"
        for group in inputs
        for entry in (group if isinstance(group, list) else [group])
    ]
    return {
        "output": key,
        "outputs": outputs if key.startswith("..") else outputs[0],
        "inputs": inputs,
        "state": fill(spec["state"]),
        "changedPropIds": changed,
    }


def test_fuzzed_callback_values_never_cause_a_500_or_a_write_outside_the_data_root(env: FuzzEnv):
    @FUZZ
    @given(request=callback_requests(env))
    def call(request: tuple[str, dict[str, Any]]) -> None:
        role, body = request
        check(env.post(role, json=body), role, body)

    with nothing_written_outside(env):
        call()


def test_malformed_callback_bodies_never_cause_a_500(env: FuzzEnv):
    @MALFORMED
    @given(request=malformed_requests(env))
    def call(request: tuple[str, dict[str, Any]]) -> None:
        role, kwargs = request
        check(env.post(role, **kwargs), role, kwargs.get("json", kwargs.get("data")))

    with nothing_written_outside(env):
        call()


def test_the_watch_sees_a_write_outside_the_data_root(env: FuzzEnv, tmp_path: Path):
    """The audit hook is not vacuous: a write beside the data root is reported."""
    watch = WriteWatch.instance()
    with watch.watching(env.data_root, ignore=env.other_threads):
        (tmp_path / "outside.txt").write_text("x")
        (env.data_root / "inside.txt").write_text("x")
        (env.data_root / "inside.txt").unlink()
    assert [event for event, _ in watch.violations] == ["open"]
    assert watch.violations[0][1].endswith("outside.txt")
