"""Virtual users: sign in through the form, then call Dash callbacks exactly as the browser does, and time them.

Each user holds one keep-alive HTTP/1.1 connection (http.client, the cheapest Python client) and its own
cookies: production session cookies are Secure, which a standard cookie jar would refuse to send over plain
http://127.0.0.1, so the Cookie header is kept by hand. Users run as threads inside one or more client
processes (several processes when one Python process' GIL would otherwise cap the load).
"""

from __future__ import annotations

import http.client
import json
import random
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

KINDS = ("coverage", "overview", "jobs")
# The output that proves each callback answered, as 'id.property' in the callback map.
OUTPUTS = {"coverage": "cov-kpi-bags-value.children", "overview": "dm-grid.rowData", "jobs": "dm-jobs.children"}
FILTER_LEVELS = ("cid", "regionid", "fieldid", "twid", "lbid")
EXPECTED_CHOICES = (4, 5, 8, 10, 12, 17, 20, 34)  # demo and synthetic runs hold 17 samples per bag
EXPECTED_CHANGE_SHARE = 0.25  # the rest of the coverage actions are filter (URL) changes
CSRF_PATTERN = re.compile(rb'name="csrf_token" value="([^"]+)"')
RETRYABLE = (http.client.RemoteDisconnected, http.client.CannotSendRequest, ConnectionResetError, BrokenPipeError)


class LoginError(RuntimeError):
    """A virtual user could not sign in; the run stops rather than retry (retries would trip the throttle)."""


@dataclass(frozen=True)
class Plan:
    """Everything a client process needs (picklable): where, who, what to pick from, how much."""

    host: str
    port: int
    users: list[tuple[str, str]]  # (name, password) per virtual user; a shared user repeats one pair
    hierarchy: list[list[str]]
    mix: dict[str, float]
    seed: int
    rate: float = 0.0  # total requests/s across all users (open loop); 0 = closed loop, no think time
    timeout: float = 30.0
    max_requests: int = 1_000_000  # per client process
    reconnect_every: int = 0  # new connection after this many requests; 0 = one keep-alive connection throughout


@dataclass
class Record:
    """One timed request of the measured window."""

    kind: str
    done: float  # monotonic time the response was complete
    latency_ms: float  # from sending (closed loop) or from the intended start (open loop)
    service_ms: float  # from sending, always
    ok: bool
    status: int
    nbytes: int
    request_id: str
    error: str = ""
    depth: int | None = None  # filter levels chosen (coverage and overview): the main driver of their cost


@dataclass
class CallbackSpec:
    """One callback of the map the browser fetches from /_dash-dependencies."""

    key: str
    outputs: list[dict[str, Any]]
    inputs: list[dict[str, Any]]
    state: list[dict[str, Any]]
    output_id: str
    output_prop: str

    def input_named(self, prop: str) -> str:
        """Return 'id.prop' of the single input with this property (the filter Location's id has changed before)."""
        found = [f"{i['id']}.{i['property']}" for i in self.inputs if i["property"] == prop]
        if len(found) != 1:
            raise LookupError(f"callback {self.key[:80]} has {len(found)} inputs with property {prop!r}")
        return found[0]

    def body(self, values: dict[str, Any], changed: list[str]) -> bytes:
        """Return the request body the browser sends; values maps 'id.prop' to the value it holds."""

        def fill(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                {
                    "id": parse_id(i["id"]),
                    "property": i["property"],
                    "value": values.get(f"{i['id']}.{i['property']}"),
                }
                for i in items
            ]

        body = {
            "output": self.key,
            "outputs": self.outputs if self.key.startswith("..") else self.outputs[0],
            "inputs": fill(self.inputs),
            "state": fill(self.state),
            "changedPropIds": changed,
        }
        return json.dumps(body, separators=(",", ":")).encode()


def parse_id(component: str) -> str | dict:
    """Turn a pattern-matching id's JSON back into the dict the browser sends."""
    return json.loads(component) if component.startswith("{") else component


def find_callback(dependencies: list[dict[str, Any]], output: str) -> CallbackSpec:
    """Return the callback whose outputs contain output ('id.prop'), as tests.conftest.find_callback does."""
    output_id, output_prop = output.rsplit(".", 1)
    for spec in dependencies:
        key = spec["output"]
        parts = key.strip(".").split("...")
        if output not in [part.split("@")[0] for part in parts]:
            continue
        outputs = []
        for part in parts:
            component, prop = part.rsplit(".", 1)
            outputs.append({"id": parse_id(component), "property": prop})
        return CallbackSpec(key, outputs, spec["inputs"], spec.get("state", []), output_id, output_prop)
    raise LookupError(f"no callback in /_dash-dependencies outputs {output}")


def build_search(filters: list[str], extra: dict[str, str] | None = None) -> str:
    """Return '?…' for the first len(filters) levels plus extra parameters (src.components.filter_bar's format)."""
    params = list(zip(FILTER_LEVELS, filters, strict=False))
    params += [(k, v) for k, v in (extra or {}).items() if v not in (None, "")]
    return "?" + urlencode(params) if params else ""


class Connection:
    """One keep-alive HTTP/1.1 connection with hand-kept cookies."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}
        self.reconnects = 0  # stale keep-alive connections replaced
        self.sent = 0  # requests on the current connection

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPResponse, bytes]:
        """Send one request (once more on a fresh connection if the server had closed an idle one)."""
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (0, 1):
            fresh = self.conn is None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=sent)
                response = self.conn.getresponse()
                data = response.read()
            except RETRYABLE:
                self.close()
                # Only a reused connection may have been closed by keep-alive expiry; a fresh one failing is real.
                if fresh or attempt:
                    raise
                self.reconnects += 1
                continue
            except BaseException:
                self.close()
                raise
            self.keep_cookies(response)
            self.sent += 1
            if response.will_close:
                self.close()
            return response.status, response, data
        raise AssertionError("unreachable")

    def keep_cookies(self, response: http.client.HTTPResponse) -> None:
        """Apply Set-Cookie headers (value and deletion only: every cookie here is for this one host)."""
        for header in response.headers.get_all("Set-Cookie") or []:
            pair, _, attributes = header.partition(";")
            name, _, value = pair.strip().partition("=")
            lowered = attributes.lower()
            if not value or "max-age=0" in lowered or "expires=thu, 01 jan 1970" in lowered:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def close(self) -> None:
        """Close the socket (the next request opens a new one)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.sent = 0


@dataclass
class UserState:
    """What the browser of one user holds between callbacks."""

    expected: Any = None
    threshold: Any = None
    finished_jobs: Any = None
    ticks: int = 0
    depth: int | None = None  # of the request being built


@dataclass
class VirtualUser:
    """One signed-in browser tab cycling through the coverage view and the download manager."""

    index: int
    name: str
    password: str
    plan: Plan
    tag: str
    rng: random.Random = field(init=False)
    conn: Connection = field(init=False)
    specs: dict[str, CallbackSpec] = field(init=False, default_factory=dict)
    state: UserState = field(init=False, default_factory=UserState)
    seq: int = 0
    fixed_depth: int | None = None  # profile_callbacks pins the filter depth; the load test draws it

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.plan.seed}-{self.tag}-{self.index}")
        self.conn = Connection(self.plan.host, self.plan.port, self.plan.timeout)

    # -- setup ------------------------------------------------------------------------------

    def login(self) -> float:
        """Sign in through the real form (CSRF token from the page, kept in the session cookie); return ms."""
        t0 = time.perf_counter()
        status, _, page = self.conn.request("GET", "/login")
        match = CSRF_PATTERN.search(page)
        if status != 200 or match is None:
            raise LoginError(f"{self.name}: GET /login answered {status} without a CSRF token")
        form = urlencode(
            {"username": self.name, "password": self.password, "csrf_token": match.group(1).decode(), "next": "/"}
        ).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status, response, _ = self.conn.request("POST", "/login", form, headers)
        location = response.headers.get("Location", "")
        if status != 302 or "/login" in location:
            # 401 (bad password) and 429 (throttled) both mean a failure was counted against this name and
            # 127.0.0.1: stop at once so the whole run cannot lock loopback out for 15 minutes.
            raise LoginError(f"{self.name}: POST /login answered {status} (location {location!r})")
        return (time.perf_counter() - t0) * 1000

    def setup(self) -> float:
        """Sign in and load the callback map, as a browser opening the app; return the sign-in ms."""
        elapsed = self.login()
        self.load_callback_map()
        return elapsed

    def load_callback_map(self) -> None:
        """Fetch /_dash-dependencies as the browser does and pick the callbacks this user calls."""
        status, _, data = self.conn.request("GET", "/_dash-dependencies")
        if status != 200:
            raise LoginError(f"{self.name}: /_dash-dependencies answered {status}")
        dependencies = json.loads(data)
        self.specs = {kind: find_callback(dependencies, OUTPUTS[kind]) for kind in KINDS}
        for kind in ("coverage", "overview"):
            self.specs[kind].input_named("search")  # fail now, not on every request

    # -- actions ----------------------------------------------------------------------------

    def random_filters(self) -> list[str]:
        """Return a random selection from the real hierarchy at a random depth (0 = everything … 5 = one LB)."""
        path = self.rng.choice(self.plan.hierarchy)
        depth = self.fixed_depth
        self.state.depth = self.rng.randint(0, len(FILTER_LEVELS)) if depth is None else depth
        return list(path[: self.state.depth])

    def coverage(self) -> tuple[bytes, list[str]]:
        """Return a coverage filter change or expected-samples change as (body, changedPropIds)."""
        spec = self.specs["coverage"]
        search_input = spec.input_named("search")
        filters = self.random_filters()
        values = {
            "cov-expected.value": self.state.expected,
            "cov-threshold.value": self.state.threshold,
            "cov-refreshed.data": None,
        }
        if self.rng.random() < EXPECTED_CHANGE_SHARE:
            # Typing in the control: the URL still holds the previous selection, the control the new value.
            expected = self.rng.choice(EXPECTED_CHOICES)
            values[search_input] = build_search(filters, {"expected": str(expected)})
            values["cov-expected.value"] = expected
            changed = ["cov-expected.value"]
        else:
            values[search_input] = build_search(filters)
            changed = [search_input]
        return spec.body(values, changed), changed

    def overview(self) -> tuple[bytes, list[str]]:
        """Return a download-manager state table request for a random filter."""
        spec = self.specs["overview"]
        search_input = spec.input_named("search")
        values = {search_input: build_search(self.random_filters()), "dm-finished-jobs.data": self.state.finished_jobs}
        return spec.body(values, [search_input]), [search_input]

    def jobs(self) -> tuple[bytes, list[str]]:
        """Return one tick of the job list's interval."""
        self.state.ticks += 1
        values = {"dm-jobs-tick.n_intervals": self.state.ticks, "dm-finished-jobs.data": self.state.finished_jobs}
        return self.specs["jobs"].body(values, ["dm-jobs-tick.n_intervals"]), ["dm-jobs-tick.n_intervals"]

    def call(self, kind: str, intended: float | None = None) -> Record:
        """Run one action of kind and check the answer holds the callback's output."""
        self.state.depth = None
        body, _ = getattr(self, kind)()
        if self.plan.reconnect_every and self.conn.sent >= self.plan.reconnect_every:
            self.conn.close()  # the next connect may land on another gunicorn worker
        self.seq += 1
        request_id = f"{self.tag}-u{self.index}-{self.seq}-{kind}"
        headers = {"Content-Type": "application/json", "Accept": "application/json", "X-Request-ID": request_id}
        sent = time.monotonic()
        status, nbytes, error = 0, 0, ""
        try:
            status, _, data = self.conn.request("POST", "/_dash-update-component", body, headers)
            nbytes = len(data)
            error = "" if status == 200 else f"HTTP {status}"
            if status == 200:
                error = self.check(kind, data)
        except TimeoutError:
            error = "timeout"
        except (OSError, http.client.HTTPException) as exc:
            error = f"connection: {type(exc).__name__}"
        done = time.monotonic()
        start = sent if intended is None else min(sent, intended)
        latency, service = (done - start) * 1000, (done - sent) * 1000
        return Record(kind, done, latency, service, not error, status, nbytes, request_id, error, self.state.depth)

    def check(self, kind: str, data: bytes) -> str:
        """Return '' if the JSON answer holds the expected output, else why not; keep what the browser keeps."""
        try:
            answer = json.loads(data)["response"]
        except (ValueError, KeyError, TypeError):
            return "bad JSON"
        spec = self.specs[kind]
        if spec.output_prop not in (answer.get(spec.output_id) or {}):
            return f"no {spec.output_id}.{spec.output_prop} in answer"
        if kind == "coverage":
            self.state.expected = answer.get("cov-expected", {}).get("value", self.state.expected)
            self.state.threshold = answer.get("cov-threshold", {}).get("value", self.state.threshold)
        elif "dm-finished-jobs" in answer:
            self.state.finished_jobs = answer["dm-finished-jobs"].get("data")
        return ""


# -- client process ---------------------------------------------------------------------------


def pick_kind(rng: random.Random, mix: dict[str, float]) -> str:
    """Return an action kind drawn with the mix's weights."""
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def run_process(plan: Plan, tag: str, indices: list[int], times: Any, go: Any, results: Any) -> None:
    """Client process body: sign in this process' users, report ready, run the loop, send back the records.

    times holds (start, measure_from, end) as monotonic seconds, written by the parent before it sets go.
    """
    from bench.load.server import die_with_parent

    # The parent stops this process (Ctrl-C reaches the whole process group; the parent's handling is enough),
    # and the kernel does if the parent dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    users = [VirtualUser(i, *plan.users[i], plan, tag) for i in indices]
    try:
        logins = run_threads([u.setup for u in users])
    except Exception as exc:
        results.put(("error", tag, f"{type(exc).__name__}: {exc}"))
        return
    results.put(("ready", tag, logins))
    if not go.wait(timeout=600):
        results.put(("error", tag, "never told to start"))
        return
    start, measure_from, end = times[0], times[1], times[2]
    budget = Budget(plan.max_requests)
    records: list[Record] = []
    lock = threading.Lock()
    cpu: dict[str, float] = {}

    def user_loop(user: VirtualUser) -> None:
        interval = len(plan.users) / plan.rate if plan.rate > 0 else 0.0
        intended = start + (user.rng.uniform(0, interval) if interval else 0.0)
        mine = []
        while True:
            if interval:
                delay = intended - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if time.monotonic() >= end or not budget.take():
                break
            record = user.call(pick_kind(user.rng, plan.mix), intended if interval else None)
            if measure_from <= record.done <= end:
                mine.append(record)
            if interval:
                intended += user.rng.expovariate(1 / interval)  # Poisson arrivals per user
        user.conn.close()
        with lock:
            records.extend(mine)

    def cpu_probe() -> None:
        # Process CPU time (all threads) over exactly the measured window.
        time.sleep(max(0.0, measure_from - time.monotonic()))
        cpu["from"] = time.process_time()
        time.sleep(max(0.0, end - time.monotonic()))
        cpu["to"] = time.process_time()

    delay = start - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    probe = threading.Thread(target=cpu_probe, daemon=True)
    probe.start()
    threads = [threading.Thread(target=user_loop, args=(u,), name=f"user-{u.index}") for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    probe.join(timeout=max(0.0, end - time.monotonic()) + 1)
    window_cpu = cpu.get("to", time.process_time()) - cpu.get("from", time.process_time())
    results.put(
        (
            "done",
            tag,
            {
                "records": [r.__dict__ for r in records],
                "cpu_s": window_cpu,
                "cpu_total_s": time.process_time(),
                "reconnects": sum(u.conn.reconnects for u in users),
                "budget_exhausted": budget.exhausted,
                "users": len(users),
            },
        )
    )


class Budget:
    """A thread-safe request counter, so a run stops by itself after max requests."""

    def __init__(self, limit: int) -> None:
        self.left, self.exhausted = limit, False
        self.lock = threading.Lock()

    def take(self) -> bool:
        """Take one request from the budget; False once it is spent."""
        with self.lock:
            if self.left <= 0:
                self.exhausted = True
                return False
            self.left -= 1
            return True


def run_threads(tasks: list[Any]) -> list[Any]:
    """Run callables in parallel threads; return their results in order or raise the first error."""
    out: list[Any] = [None] * len(tasks)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            out[i] = tasks[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return out


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile of sorted values, interpolated linearly (numpy's default); nan when empty."""
    if not values:
        return float("nan")
    position = (len(values) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def error_summary(records: list[dict[str, Any]], limit: int = 5) -> list[tuple[str, int]]:
    """Return the commonest error reasons with their counts."""
    return Counter(f"{r['kind']}: {r['error']}" for r in records if r["error"]).most_common(limit)
