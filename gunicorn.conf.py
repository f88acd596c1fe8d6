"""gunicorn settings for bagboard: `gunicorn app:server` picks this file up from the working directory."""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8050")
# Threads serve Dash's many small callback requests well; workers give CPU parallelism for figure building.
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# A worker silent this long is killed and replaced. Long work runs as jobs, not in requests, so 120 s is only
# a backstop for a stuck request (the largest callbacks take well under a second).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
# On restart, requests in flight get this long to finish before the worker is killed.
graceful_timeout = 30
# Idle keep-alive connections are closed after 5 s, so slow or idle clients cannot hold threads.
keepalive = 5

# Request limits (bodies are limited by the app: BAGBOARD_MAX_REQUEST_MB, 413). The request line holds the
# method and URL: bagboard's URLs are a path plus a few filter parameters of at most 128 characters each, far
# below 4094 bytes, so anything longer is refused (414) before the app sees it.
limit_request_line = 4094
# Browsers send about 20 headers; 50 leaves room for proxies' X-Forwarded-* while refusing header floods.
limit_request_fields = 50
# One header line: 8190 bytes fits the session and known-device cookies with a wide margin.
limit_request_field_size = 8190
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = 50

# preload_app stays off: each worker builds its own app after the fork, so storage clients, HTTP connection
# pools and job-runner threads (none of which survive fork safely) belong to the process that uses them.
# Shared state (inventory generation, login throttling, jobs) lives in the cache and on disk, not in memory.
preload_app = False

# gunicorn 27's control socket has one default path per host, so a second master would clash with the first.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "off") != "on"

accesslog = "-"
errorlog = "-"
logger_class = "src.core.gunicorn_logging.StructlogGunicornLogger"
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
