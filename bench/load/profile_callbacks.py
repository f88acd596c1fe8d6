"""Profile the load test's callbacks in-process: per-request cost without HTTP or contention, and its hot spots.

Run: .venv/bin/python bench/load/profile_callbacks.py [--dataset demo|synthetic] [--requests 100] [--top 25]

Builds the app exactly as gunicorn's workers do (production settings on a fresh working root), signs in through
the form with Flask's test client, and sends the very request bodies the virtual users send (same generator,
same validation). It then times each kind single-threaded — the CPU one request costs, hence the most requests
per second per core — and runs cProfile over the same mix to show where that time goes. Dash adds no
Server-Timing header here (only with debug dev tools), so this is the way to see inside a request.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.load import client, prepare, server

# (label, path fragment, function name): cumulative time per request of these tells the story of one callback.
SECTIONS = (
    ("flask: whole request (wsgi_app)", "flask/app.py", "wsgi_app"),
    ("  auth wall + user loader", "src/auth/wall.py", "require_session"),
    ("  session cookie open", "flask/sessions.py", "open_session"),
    ("  session cookie save", "flask/sessions.py", "save_session"),
    ("  dash dispatch", "dash/backends/_flask.py", "_dispatch"),
    ("    update_coverage (callback body)", "pages/coverage/callbacks.py", "update_coverage"),
    ("      get_coverage_report (service)", "src/services/data_state.py", "get_coverage_report"),
    ("        inventory get_temporal_data", "src/services/inventory.py", "get_temporal_data"),
    ("        coverage.temporal_data", "src/services/coverage.py", "temporal_data"),
    ("        coverage.coverage_statistics", "src/services/coverage.py", "coverage_statistics"),
    ("        coverage.coverage_breakdown", "src/services/coverage.py", "coverage_breakdown"),
    ("      render (KPIs, figures, grid rows)", "pages/coverage/callbacks.py", "render"),
    ("        chart 01 bags vs samples", "pages/coverage/charts/_ch01_bags_vs_samples.py", "build"),
    ("        chart 02 gap over time", "pages/coverage/charts/_ch02_gap_over_time.py", "build"),
    ("        chart 03 coverage by child", "pages/coverage/charts/_ch03_coverage_by_child.py", "build"),
    ("          (in charts) base_figure", "src/components/figures.py", "base_figure"),
    ("          (in charts) make_subplots", "plotly/_subplots.py", "make_subplots"),
    ("          (in charts) copy.deepcopy", "copy.py", "deepcopy"),
    ("        under_rows (grid rows)", "pages/coverage/callbacks.py", "under_rows"),
    ("    show_overview (callback body)", "pages/download_manager/callbacks.py", "show_overview"),
    ("      get_state_summary (service)", "src/services/data_state.py", "get_state_summary"),
    ("        inventory get_runs", "src/services/inventory.py", "get_runs"),
    ("        local scan walk", "src/services/local_scan.py", "__init__"),
    ("        local counts (KPIs)", "src/services/data_state.py", "_local_counts"),
    ("        state_rows (shown rows)", "src/services/data_state.py", "state_rows"),
    ("        RunCoordinate objects", "src/models/coordinate.py", "__post_init__"),
    ("        local scan: raw downloaded", "src/services/local_scan.py", "check_raw_downloaded"),
    ("        local scan: extracted", "src/services/local_scan.py", "check_extracted"),
    ("      overview_rows (display columns)", "pages/download_manager/callbacks.py", "overview_rows"),
    ("    show_jobs (callback body)", "pages/download_manager/callbacks.py", "show_jobs"),
    ("      job registry list", "src/jobs/sqlite_registry.py", "list"),
    ("      job_row components", "pages/download_manager/callbacks.py", "job_row"),
    ("    response JSON encoding (to_json)", "dash/_utils.py", "to_json"),
    ("  structlog lines", "structlog/_base.py", "_proxy_to_logger"),
)


class TestResponse:
    """The bits of http.client.HTTPResponse the virtual user reads, over a Werkzeug test response."""

    def __init__(self, response: Any) -> None:
        self.headers = response.headers
        self.will_close = False


class WsgiConnection:
    """client.Connection's interface over Flask's test client (it keeps the cookies, Secure ones over https)."""

    def __init__(self, flask_app: Any) -> None:
        self.client = flask_app.test_client()
        self.reconnects = 0
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, TestResponse, bytes]:
        """Send one request through the WSGI app."""
        response = self.client.open(path, method=method, data=body, headers=headers, base_url="https://localhost")
        return response.status_code, TestResponse(response), response.get_data()

    def close(self) -> None:
        """Nothing to close."""


def build_user(dataset: str) -> tuple[client.VirtualUser, Any]:
    """Return a signed-in virtual user on an in-process app built from production settings, and its root."""
    root = prepare.working_root(dataset, 1, shared_user=True)
    # app.py builds its module-level app from the environment on import, the way each gunicorn worker does.
    env = server.server_env(root.path, 0, 1, 1)
    env["BAGBOARD_LOG_LEVEL"] = "WARNING"  # INFO lines would go to this terminal; the access line is gunicorn's
    os.environ.update({k: v for k, v in env.items() if k.startswith("BAGBOARD_")})
    import app as app_module

    plan = client.Plan("localhost", 0, root.users, root.hierarchy, {k: 1.0 for k in client.KINDS}, seed=11)
    user = client.VirtualUser(0, *root.users[0], plan, "P")
    user.conn = WsgiConnection(app_module.server)  # type: ignore[assignment]
    user.setup()
    return user, root


def time_kinds(user: client.VirtualUser, count: int) -> dict[str, tuple[list[float], list[float]]]:
    """Return (wall ms, CPU ms) per request for each kind, single-threaded (failing loudly on a bad answer)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for kind in client.KINDS:
        wall, cpu = [], []
        for _ in range(count):
            # Thread CPU time is what the request costs; wall time also holds other processes' turns on a busy box.
            t0, c0 = time.perf_counter(), time.thread_time()
            record = user.call(kind)
            cpu.append((time.thread_time() - c0) * 1000)
            wall.append((time.perf_counter() - t0) * 1000)
            if not record.ok:
                raise SystemExit(f"{kind} failed in-process: {record.error}")
        out[kind] = (sorted(wall), sorted(cpu))
    return out


def profile_kind(user: client.VirtualUser, kind: str, count: int) -> pstats.Stats:
    """Return cProfile stats over count requests of one kind."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        user.call(kind)
    profiler.disable()
    return pstats.Stats(profiler, stream=io.StringIO())


def sections(stats: pstats.Stats, count: int) -> list[tuple[str, float, int]]:
    """Return (label, cumulative ms per request, calls per request) of the SECTIONS found in stats."""
    found = []
    table: dict[tuple[str, int, str], tuple] = stats.stats  # type: ignore[attr-defined]
    for label, fragment, name in SECTIONS:
        cumulative, calls = 0.0, 0
        for (filename, _, function), (_, ncalls, _, cum, _) in table.items():
            if function == name and filename.replace("\\", "/").endswith(fragment):
                cumulative += cum  # cProfile counts a recursive function's time once, at its outermost call
                calls += ncalls
        if calls:
            found.append((label, cumulative * 1000 / count, round(calls / count)))
    return found


def top_self(stats: pstats.Stats, count: int, limit: int) -> list[tuple[str, float, float]]:
    """Return the functions with the most self time: (where, self ms per request, cumulative ms per request)."""
    table: dict[tuple[str, int, str], tuple] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, function), (_, _, tottime, cum, _) in table.items():
        short = filename.split("site-packages/")[-1].replace(str(prepare.ROOT) + "/", "")
        rows.append((f"{short}:{line}({function})", tottime * 1000 / count, cum * 1000 / count))
    return sorted(rows, key=lambda r: -r[1])[:limit]


def payload_parts(user: client.VirtualUser, kind: str, depth: int, top: int = 5) -> tuple[float, float, str]:
    """Return (CPU ms, total KB, the largest outputs) of one request of kind at a fixed filter depth."""
    user.fixed_depth = depth
    try:
        body, changed = getattr(user, kind)()
        if kind == "coverage" and changed == ["cov-expected.value"]:  # compare like with like: a filter change
            body, changed = getattr(user, kind)()
        c0 = time.thread_time()
        _, _, data = user.conn.request("POST", "/_dash-update-component", body, {"Content-Type": "application/json"})
        cpu = (time.thread_time() - c0) * 1000
    finally:
        user.fixed_depth = None
    answer = json.loads(data)["response"]
    sizes = [
        (f"{component}.{prop}", len(json.dumps(value, separators=(",", ":"))))
        for component, props in answer.items()
        for prop, value in props.items()
    ]
    sizes.sort(key=lambda item: -item[1])
    total = len(data)
    parts = ", ".join(f"{name} {size / 1024:,.0f} KB ({size / total:.0%})" for name, size in sizes[:top])
    return cpu, total / 1024, parts


def main() -> None:
    """Time and profile each kind; print per-request costs, the implied ceiling and the hot spots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=prepare.DATASETS, default="demo")
    parser.add_argument("--requests", type=int, default=100, help="timed (and profiled) requests per kind")
    parser.add_argument("--top", type=int, default=25, help="functions listed by self time per kind")
    args = parser.parse_args()
    user, root = build_user(args.dataset)
    try:
        for kind in client.KINDS:  # first figures import plotly templates, first queries warm caches
            for _ in range(10):
                user.call(kind)
        times = time_kinds(user, args.requests)
        cores = len(os.sched_getaffinity(0))
        print(f"\nin-process cost per request, single thread, {args.dataset} (n={args.requests} per kind):")
        for kind, (wall, cpu) in times.items():
            mean = statistics.fmean(cpu)
            print(
                f"  {kind:<9} CPU mean {mean:6.1f} ms p50 {client.percentile(cpu, 50):6.1f} p95 "
                f"{client.percentile(cpu, 95):6.1f} | wall p50 {client.percentile(wall, 50):6.1f} → at most "
                f"{1000 / mean:4.0f} req/s per core, {cores * 1000 / mean:4.0f} on {cores} cores (no HTTP, no client)"
            )
        print("\none request per filter depth (0 = no filter … 5 = one LB): CPU ms, response KB, largest outputs:")
        for kind in ("coverage", "overview"):
            for depth in range(len(client.FILTER_LEVELS) + 1):
                cpu, kb, parts = payload_parts(user, kind, depth)
                print(f"  {kind:<9} d{depth} {cpu:7.1f} ms {kb:9,.0f} KB  {parts}")
        for kind in client.KINDS:
            stats = profile_kind(user, kind, args.requests)
            print(f"\n{kind}: where one request's time goes under cProfile (ms per request; cProfile inflates):")
            for label, ms, calls in sections(stats, args.requests):
                print(f"  {label:<42} {ms:8.2f} ms  ({calls} call(s))")
            print(f"  top {args.top} by self time (self ms | cumulative ms per request):")
            for where, self_ms, cum_ms in top_self(stats, args.requests, args.top):
                print(f"    {self_ms:7.2f} | {cum_ms:7.2f}  {where}")
    finally:
        prepare.remove_root(root)


if __name__ == "__main__":
    main()
