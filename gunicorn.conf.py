"""gunicorn settings for bagboard: `gunicorn app:server` picks this file up from the working directory."""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8050")
# Threads serve Dash's many small callback requests well; workers give CPU parallelism for figure building.
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
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
