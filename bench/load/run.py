"""Load-test bagboard under gunicorn: virtual users sign in, then drive the coverage and download-manager callbacks.

Run: .venv/bin/python bench/load/run.py [--users 20] [--duration 20] [--dataset demo|synthetic|both]
                                          [--workers N] [--threads N] [--configs 2x4,3x2,4x1] [--client-procs N]

For each dataset and gunicorn configuration: prepare a fresh data root (cached template, new users, cache and job
registry), start `gunicorn app:server` with the shipped gunicorn.conf.py on a free loopback port in production
mode, sign every virtual user in through the real form, run a warm-up and then the measured window, and report
requests, req/s, p50/p95/p99 latency and errors per callback, the server's and the client's CPU use, and the
headline against the target. Results go to bench/results/load.json. See bench/load/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench._report import emit
from bench.load import client, prepare, server

RESULTS = prepare.ROOT / "bench" / "results" / "load.json"
TARGETS = {"coverage_rps": 150.0, "coverage_p99_ms": 250.0, "errors": 0}
LIMITS = {"users": 200, "duration": 600.0, "client_procs": 16}
DEFAULT_MIX = "coverage=3,overview=1,jobs=1"
READY_TIMEOUT_S = 180.0


# -- arguments --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and bound the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help="virtual users, 1..200 (default %(default)s)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per run (max 600)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load before the window")
    parser.add_argument("--dataset", choices=("demo", "synthetic", "both"), default="demo")
    parser.add_argument("--workers", type=int, help="GUNICORN_WORKERS (default: gunicorn.conf.py's, 2)")
    parser.add_argument("--threads", type=int, help="GUNICORN_THREADS (default: gunicorn.conf.py's, 4)")
    parser.add_argument("--configs", help="several WORKERSxTHREADS runs, e.g. 2x4,3x2,4x1 (overrides the two above)")
    parser.add_argument("--client-procs", type=int, default=1, help="client processes the users are spread over")
    parser.add_argument("--mix", default=DEFAULT_MIX, help="action weights (default %(default)s)")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: total requests/s (0: closed loop)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="stop a run after this many requests")
    parser.add_argument(
        "--reconnect-every",
        type=int,
        default=0,
        help="open a new connection after this many requests (0: keep one per user; gthread pins it to a worker)",
    )
    parser.add_argument("--shared-user", action="store_true", help="all virtual users sign in as one operator")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep each run's data root and gunicorn log")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        help="before each run wait up to this many seconds for the machine to fall below 0.5 busy cores",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.users <= LIMITS["users"]:
        parser.error(f"--users must be 1..{LIMITS['users']}")
    if not 0 < args.duration <= LIMITS["duration"] or not 0 <= args.warmup <= 60:
        parser.error("--duration must be in (0, 600] s and --warmup in [0, 60] s")
    if not 1 <= args.client_procs <= min(LIMITS["client_procs"], args.users):
        parser.error(f"--client-procs must be 1..{min(LIMITS['client_procs'], args.users)}")
    try:
        args.mix = {k.strip(): float(v) for k, v in (item.split("=") for item in args.mix.split(","))}
    except ValueError:
        parser.error("--mix looks like coverage=3,overview=1,jobs=1")
    if set(args.mix) - set(client.KINDS) or not any(v > 0 for v in args.mix.values()):
        parser.error(f"--mix kinds are {', '.join(client.KINDS)} with a positive weight somewhere")
    args.mix = {k: v for k, v in args.mix.items() if v > 0}
    args.config_list = parse_configs(args, parser)
    return args


def parse_configs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[tuple[int, int]]:
    """Return the (workers, threads) pairs to run."""
    if args.configs:
        try:
            pairs = [tuple(int(n) for n in item.lower().split("x")) for item in args.configs.split(",")]
        except ValueError:
            parser.error("--configs looks like 2x4,3x2,4x1")
        if any(len(p) != 2 or not (1 <= p[0] <= 16 and 1 <= p[1] <= 64) for p in pairs):
            parser.error("--configs: workers 1..16, threads 1..64")
        return [(p[0], p[1]) for p in pairs]
    return [(args.workers or 2, args.threads or 4)]


# -- one run ----------------------------------------------------------------------------------


def wait_for_quiet(max_wait: float, threshold: float = 0.5) -> float:
    """Wait up to max_wait s for the machine to fall below threshold busy cores; return the last reading."""
    deadline, busy = time.monotonic() + max_wait, float("nan")
    while True:
        before = server.machine_cpu()[0]
        time.sleep(2.0)
        busy = (server.machine_cpu()[0] - before) / 2.0
        if busy < threshold or time.monotonic() >= deadline:
            return busy


def run_one(dataset: str, workers: int, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    """Prepare, serve, load and measure one (dataset, workers, threads) combination."""
    root = prepare.working_root(dataset, args.users, args.shared_user)
    log_path = root.path / "gunicorn.log"
    users = root.users * args.users if args.shared_user else root.users
    result: dict[str, Any] = {
        "dataset": dataset,
        "inventory": {k: root.meta.get(k) for k in ("runs", "objects", "timestamps", "leaf_paths")},
        "workers": workers,
        "threads": threads,
        "users": args.users,
        "shared_user": args.shared_user,
        "client_procs": args.client_procs,
        "mode": f"open loop {args.rate:g} req/s" if args.rate else "closed loop, no think time",
    }
    srv = None
    try:
        if args.wait_idle > 0:
            result["busy_before_cores"] = wait_for_quiet(args.wait_idle)
        result["loadavg_before"] = os.getloadavg()[0]
        t0 = time.perf_counter()
        srv = server.start(root.path, workers, threads, log_path)
        result["server_start_s"] = round(time.perf_counter() - t0, 2)
        plan = client.Plan(
            host="127.0.0.1",
            port=srv.port,
            users=users[: args.users],
            hierarchy=root.hierarchy,
            mix=args.mix,
            seed=args.seed,
            rate=args.rate,
            timeout=args.timeout,
            max_requests=max(1, args.max_requests // args.client_procs),
            reconnect_every=args.reconnect_every,
        )
        # One sign-in here first: a broken setup then costs one failed login, never one per virtual user.
        client.VirtualUser(0, *plan.users[0], plan, "pre").setup()
        result.update(drive(plan, srv, args))
        result["access"] = server.access_durations(log_path, "L")
        result["server_log_problems"] = server.log_problems(log_path)
    finally:
        if srv is not None:
            server.stop(srv)
        if args.keep:
            result["kept_root"] = str(root.path)
        else:
            result["server_log"] = keep_log(
                log_path, prepare.CACHE_DIR / "logs" / f"gunicorn-{dataset}-{workers}x{threads}.log"
            )
            prepare.remove_root(root)
    return result


def keep_log(log_path: Path, target: Path) -> str | None:
    """Copy the server log out of the data root (which is deleted); return where it went."""
    if not log_path.exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log_path, target)
    return str(target)


def drive(plan: client.Plan, srv: server.Server, args: argparse.Namespace) -> dict[str, Any]:
    """Start the client processes, run warm-up and window, sample CPU at its edges, and gather the records."""
    ctx = mp.get_context("spawn")  # a clean interpreter per client process: no inherited locks or sockets
    results, go, times = ctx.Queue(), ctx.Event(), ctx.Array("d", 3)
    chunks = [list(range(len(plan.users)))[i :: args.client_procs] for i in range(args.client_procs)]
    procs = [
        ctx.Process(target=client.run_process, args=(plan, f"L{i}", chunk, times, go, results), daemon=True)
        for i, chunk in enumerate(chunks)
    ]
    try:
        for proc in procs:
            proc.start()
        logins = []
        for _ in procs:
            kind, tag, payload = receive(results, procs, READY_TIMEOUT_S)
            if kind == "error":
                raise SystemExit(f"client {tag} could not start: {payload}")
            logins += payload
        start = time.monotonic() + 0.3
        measure_from = start + args.warmup
        end = measure_from + args.duration
        times[:] = [start, measure_from, end]
        go.set()
        time.sleep(max(0.0, measure_from - time.monotonic()))
        cpu0, machine0 = server.server_cpu(srv), server.machine_cpu()
        # Mid-window: every user is connected by then (a connection opened later shows in the CPU split only).
        time.sleep(max(0.0, measure_from + args.duration / 2 - time.monotonic()))
        connections = server.connections_per_worker(srv)
        time.sleep(max(0.0, end - time.monotonic()))
        cpu1, machine1 = server.server_cpu(srv), server.machine_cpu()
        done = []
        for _ in procs:
            kind, tag, payload = receive(results, procs, plan.timeout + 30)
            if kind != "done":
                raise SystemExit(f"client {tag} failed: {payload}")
            done.append(payload)
        for proc in procs:
            proc.join(timeout=10)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    records = [r for payload in done for r in payload["records"]]
    exhausted = any(p["budget_exhausted"] for p in done)
    window = (max((r["done"] for r in records), default=end) if exhausted else end) - measure_from
    worker_cpu = {pid: cpu1[pid] - cpu0[pid] for pid in cpu1 if pid in cpu0 and pid != srv.proc.pid}
    master_cpu = cpu1.get(srv.proc.pid, 0.0) - cpu0.get(srv.proc.pid, 0.0)
    client_cpu = sum(p["cpu_s"] for p in done)
    machine_busy = machine1[0] - machine0[0]
    return {
        "window_s": round(window, 3),
        "budget_exhausted": exhausted,
        "records": records,
        "login_ms": sorted(logins),
        "reconnects": sum(p["reconnects"] for p in done),
        "cpu": {
            "cpu_count": os.cpu_count(),
            "server_cores": (sum(worker_cpu.values()) + master_cpu) / args.duration,
            # Per worker, busiest first: (cores used, client connections held at mid-window).
            "server_workers": sorted(
                ((cpu / args.duration, connections.get(pid, 0)) for pid, cpu in worker_cpu.items()), reverse=True
            ),
            "client_cores": client_cpu / args.duration,
            "client_total_cpu_s": sum(p["cpu_total_s"] for p in done),
            "machine_busy_cores": machine_busy / args.duration,
            "workers_seen": len(worker_cpu),
        },
    }


def receive(results: Any, procs: list[Any], timeout: float) -> tuple[str, str, Any]:
    """Return the next client message, failing fast when a client process died instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return results.get(timeout=0.5)
        except queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise SystemExit(f"client process exited with {dead[0].exitcode}") from None
    raise SystemExit(f"no word from the client processes within {timeout:.0f} s")


# -- numbers ----------------------------------------------------------------------------------


def summarize(result: dict[str, Any], rate_mode: bool) -> dict[str, dict[str, Any]]:
    """Return per-kind and overall numbers from a run's records and the server's access log."""
    records, access, window = result["records"], result["access"], result["window_s"]
    stats = {}
    for kind in (*client.KINDS, "all"):
        chosen = [r for r in records if kind in ("all", r["kind"])]
        if not chosen:
            continue
        latency = sorted(r["latency_ms"] for r in chosen)
        server_ms = sorted(access[r["request_id"]][0] for r in chosen if r["request_id"] in access)
        entry = {
            "requests": len(chosen),
            "req_s": len(chosen) / window,
            "p50_ms": client.percentile(latency, 50),
            "p95_ms": client.percentile(latency, 95),
            "p99_ms": client.percentile(latency, 99),
            "max_ms": latency[-1],
            "errors": sum(not r["ok"] for r in chosen),
            "mean_kb": sum(r["nbytes"] for r in chosen) / len(chosen) / 1024,
            "server_p50_ms": client.percentile(server_ms, 50),
            "server_p99_ms": client.percentile(server_ms, 99),
            "server_logged": len(server_ms),
        }
        if rate_mode:
            entry["service_p99_ms"] = client.percentile(sorted(r["service_ms"] for r in chosen), 99)
        depths = sorted({r["depth"] for r in chosen if r.get("depth") is not None})
        if kind != "all" and depths:
            entry["by_depth"] = {}
            for depth in depths:
                times = sorted(r["latency_ms"] for r in chosen if r["depth"] == depth)
                served = sorted(
                    access[r["request_id"]][0] for r in chosen if r["depth"] == depth and r["request_id"] in access
                )
                entry["by_depth"][depth] = {
                    "requests": len(times),
                    "p50_ms": client.percentile(times, 50),
                    "p99_ms": client.percentile(times, 99),
                    "server_p50_ms": client.percentile(served, 50),
                    "mean_kb": sum(r["nbytes"] for r in chosen if r["depth"] == depth) / len(times) / 1024,
                }
        stats[kind] = entry
    return stats


def verdict(stats: dict[str, Any]) -> dict[str, Any]:
    """Compare the coverage callback (and the error count over all requests) with the target."""
    coverage = stats.get("coverage", {})
    errors = stats.get("all", {}).get("errors", 0)
    checks = {
        "coverage_rps": coverage.get("req_s", 0.0) >= TARGETS["coverage_rps"],
        "coverage_p99_ms": coverage.get("p99_ms", float("inf")) <= TARGETS["coverage_p99_ms"],
        "errors": errors <= TARGETS["errors"],
    }
    return {"checks": checks, "met": all(checks.values()), "errors": errors}


# -- output -----------------------------------------------------------------------------------


def print_run(result: dict[str, Any]) -> None:
    """Print one run's table, CPU line, errors and headline."""
    inventory = result["inventory"]
    print()
    print(
        f"== {result['dataset']} ({inventory['objects']:,} objects, {inventory['runs']:,} runs) · gunicorn "
        f"{result['workers']} workers × {result['threads']} threads · {result['users']} users"
        f"{' (one shared user)' if result['shared_user'] else ''} · {result['client_procs']} client proc(s) · "
        f"{result['mode']} · window {result['window_s']:.1f} s"
    )
    header = ("kind", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "srv p50", "srv p99", "KB")
    rows = [
        (
            kind,
            f"{s['requests']:,}",
            f"{s['req_s']:.1f}",
            f"{s['p50_ms']:.0f}",
            f"{s['p95_ms']:.0f}",
            f"{s['p99_ms']:.0f}",
            f"{s['max_ms']:.0f}",
            f"{s['errors']:,}",
            f"{s['server_p50_ms']:.0f}",
            f"{s['server_p99_ms']:.0f}",
            f"{s['mean_kb']:.1f}",
        )
        for kind, s in result["stats"].items()
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    print("  ".join(f"{h:>{w}}" if i else f"{h:<{w}}" for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    for row in rows:
        print("  ".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    for kind, entry in result["stats"].items():
        if "by_depth" in entry:
            parts = [
                f"d{d} {e['p50_ms']:.0f}/{e['p99_ms']:.0f} srv {e['server_p50_ms']:.0f}"
                f" ({e['requests']}, {e['mean_kb']:.0f} KB)"
                for d, e in entry["by_depth"].items()
            ]
            print(f"  {kind} by filter depth, p50/p99 ms, server p50 (n, KB): " + " · ".join(parts))
    cpu = result["cpu"]
    other = cpu["machine_busy_cores"] - cpu["server_cores"] - cpu["client_cores"]
    per_worker = " + ".join(f"{c:.2f}" for c, _ in cpu["server_workers"])
    connections = "/".join(str(n) for _, n in cpu["server_workers"])
    requests = result["stats"]["all"]["requests"] or 1
    print(
        f"CPU ({cpu['cpu_count']} cores): server {cpu['server_cores']:.2f} cores (workers {per_worker}),"
        f" client {cpu['client_cores']:.2f} cores ({cpu['client_cores'] * result['window_s'] * 1000 / requests:.2f} ms"
        f" per request), machine busy {cpu['machine_busy_cores']:.2f}"
        f" (other processes {max(0.0, other):.2f}); load avg before {result['loadavg_before']:.1f}"
    )
    logins = result["login_ms"]
    print(
        f"sign-in: {len(logins)} users, p50 {client.percentile(logins, 50):.0f} ms, max {max(logins):.0f} ms;"
        f" reconnects {result['reconnects']}; client connections held per worker (same order as CPU)"
        f" {connections}; server start {result['server_start_s']:.1f} s"
    )
    for reason, count in result["error_reasons"]:
        print(f"  error ×{count}: {reason}")
    for line in result["server_log_problems"]:
        print(f"  server log: {line}")
    print(headline(result))
    coverage, v = result["stats"].get("coverage", {}), result["verdict"]
    shape = f"{result['dataset']}, {result['workers']}x{result['threads']} gunicorn"
    emit(
        "load",
        f"coverage callback req/s ({shape})",
        f"{coverage.get('req_s', 0):.1f}",
        f">= {TARGETS['coverage_rps']:g}",
        v["checks"]["coverage_rps"],
    )
    emit(
        "load",
        f"coverage callback p50 / p99 ({shape})",
        f"{coverage.get('p50_ms', float('nan')):.0f} / {coverage.get('p99_ms', float('nan')):.0f} ms",
        f"p99 <= {TARGETS['coverage_p99_ms']:g} ms",
        v["checks"]["coverage_p99_ms"],
    )
    emit(
        "load",
        f"errors, all callbacks ({shape})",
        str(v["errors"]),
        "0",
        v["checks"]["errors"],
        f"{result['stats']['all']['req_s']:.1f} req/s over all callbacks",
    )


def headline(result: dict[str, Any]) -> str:
    """Return the one-line coverage verdict."""
    coverage, v = result["stats"].get("coverage", {}), result["verdict"]
    mark = {True: "ok", False: "MISS"}
    return (
        f"HEADLINE {result['dataset']} {result['workers']}x{result['threads']}: coverage callback "
        f"{coverage.get('req_s', 0):.1f} req/s (≥ {TARGETS['coverage_rps']:g} {mark[v['checks']['coverage_rps']]}), "
        f"p99 {coverage.get('p99_ms', float('nan')):.0f} ms (≤ {TARGETS['coverage_p99_ms']:g} "
        f"{mark[v['checks']['coverage_p99_ms']]}), errors {v['errors']} (= 0 {mark[v['checks']['errors']]}) → "
        f"{'TARGET MET' if v['met'] else 'TARGET MISSED'}"
    )


def print_summary(runs: list[dict[str, Any]]) -> None:
    """Print one line per run."""
    print()
    print("summary (coverage callback; CPU in cores of", os.cpu_count(), "):")
    print(
        f"{'dataset':<10} {'w×t':>5} {'cov req/s':>9} {'cov p99':>8} {'all req/s':>9} {'errors':>6} "
        f"{'server':>6} {'client':>6} {'busy':>5}  verdict"
    )
    for run in runs:
        cov, total, cpu = run["stats"].get("coverage", {}), run["stats"]["all"], run["cpu"]
        print(
            f"{run['dataset']:<10} {run['workers']}x{run['threads']:<3} {cov.get('req_s', 0):>9.1f} "
            f"{cov.get('p99_ms', float('nan')):>8.0f} {total['req_s']:>9.1f} {total['errors']:>6} "
            f"{cpu['server_cores']:>6.2f} {cpu['client_cores']:>6.2f} {cpu['machine_busy_cores']:>5.2f}  "
            f"{'met' if run['verdict']['met'] else 'missed'}"
        )


def write_results(path: Path, args: argparse.Namespace, runs: list[dict[str, Any]], complete: bool) -> None:
    """Write the runs' numbers (not the raw records) as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    slim = [rounded({k: v for k, v in run.items() if k not in ("records", "access")}) for run in runs]
    body = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "complete": complete,
        "machine": {"cpu_count": os.cpu_count(), "cpu_affinity": len(os.sched_getaffinity(0))},
        "targets": TARGETS,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": slim,
    }
    path.write_text(json.dumps(body, indent=2, default=str))


def rounded(value: Any) -> Any:
    """Return value with every float rounded to 3 decimals (ms and req/s need no more)."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


def main() -> None:
    """Run every requested (dataset, configuration), print the tables and write the JSON."""
    args = parse_args()
    # TERM (e.g. from a CI timeout) unwinds like Ctrl-C, so the finally blocks stop gunicorn and the clients.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    datasets = ["demo", "synthetic"] if args.dataset == "both" else [args.dataset]
    for dataset in datasets:
        prepare.ensure_template(dataset)
    runs: list[dict[str, Any]] = []
    complete = False
    try:
        run_all(datasets, args, runs)
        complete = True
    except KeyboardInterrupt:
        print("\ninterrupted: gunicorn and the clients were stopped", file=sys.stderr)
    finally:
        if runs:
            write_results(args.out, args, runs, complete)
            print_summary(runs)
            print(f"\nresults: {args.out}{'' if complete else ' (incomplete)'}")
    if not complete:
        sys.exit(130)
    sys.exit(0 if all(run["verdict"]["met"] for run in runs) else 1)


def run_all(datasets: list[str], args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    """Run every (dataset, configuration) in turn, appending each finished run to runs."""
    for dataset in datasets:
        for workers, threads in args.config_list:
            result = run_one(dataset, workers, threads, args)
            result["stats"] = summarize(result, bool(args.rate))
            result["verdict"] = verdict(result["stats"])
            result["error_reasons"] = client.error_summary(result["records"])
            runs.append(result)
            print_run(result)
            write_results(args.out, args, runs, complete=False)


if __name__ == "__main__":
    main()
