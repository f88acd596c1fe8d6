"""Settings read from BAGBOARD_* environment variables and validated at start."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PREFIX = "BAGBOARD_"
ENVIRONMENTS = ("development", "production", "test")
CACHE_TYPES = ("FileSystemCache", "RedisCache", "SimpleCache")
LOG_FORMATS = ("json", "console")
MIN_SECRET_LENGTH = 32


class ConfigError(Exception):
    """One or more settings are invalid; each problem is one line of the message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Settings:
    """Hold every setting the app reads; build it with from_env()."""

    env: str = "development"
    secret_key: str = ""
    secret_key_generated: bool = False
    data_root: Path = Path("data")
    raw_bucket: str = ""
    ml_bucket: str = ""
    users_file: Path = Path("data/users.json")
    cache_type: str = "FileSystemCache"
    cache_redis_url: str = ""
    cache_default_timeout: int = 300
    expected_samples_per_bag: int = 17
    log_format: str = "console"
    log_level: str = "INFO"
    url_base_pathname: str = "/"
    celery_broker_url: str = ""
    extractor_image: str = "bagboard:latest"
    extractor_runner: str = "local"
    extractor_memory: str = "2g"
    extractor_cpus: float = 1.0
    extractor_timeout: int = 3600
    proxy_hops: int = 0
    # Sessions (src/auth/sessions.py): signed out after this long without a request, and this long after sign-in.
    session_idle_hours: float = 8.0
    session_lifetime_hours: float = 12.0
    # Largest request body (callbacks; the login form has its own small limit), in MiB.
    max_request_mb: int = 8
    inventory_refresh_on_start: bool = True
    gcs_retry_deadline: float = 120.0
    gcs_retry_initial: float = 1.0
    gcs_retry_maximum: float = 60.0
    gcs_retry_multiplier: float = 2.0
    sliced_download_threshold_mb: int = 64
    sliced_download_slice_mb: int = 32
    sliced_download_workers: int = 8
    batch_concurrency: int = 2
    # Moments of a run (src/analytics/moments.py): what makes a latency, a jump, a burst, a fragmented track.
    moment_per_kind: int = 10
    moment_latency_ms: int = 0  # 0: the run's p99
    moment_separation_s: float = 1.0
    moment_detection_jump: int = 5
    moment_burst_window_s: float = 1.0
    moment_burst_tracks: int = 4
    moment_fragment_gap_s: float = 1.0
    moment_fragment_distance_px: float = 40.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        """Tell whether this is a production deployment."""
        return self.env == "production"

    @property
    def cache_dir(self) -> Path:
        """Return the FileSystemCache directory (shared by workers on one host)."""
        return self.data_root / "cache"

    @property
    def snapshot_path(self) -> Path:
        """Return the pointer file naming the current inventory snapshot."""
        return self.data_root / "inventory" / "snapshot.json"

    def bucket_options(self, url: str) -> dict[str, Any]:
        """Return the keyword arguments open_bucket needs for url (GCS: the retry deadline and backoff)."""
        if not url.startswith("gs://"):
            return {}
        from src.storage.gcs import make_retry

        retry = make_retry(
            self.gcs_retry_deadline, self.gcs_retry_initial, self.gcs_retry_maximum, self.gcs_retry_multiplier
        )
        return {"retry": retry}

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with some fields replaced (tests use this)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate settings, raising ConfigError listing every problem."""
        env = dict(os.environ if environ is None else environ)
        problems: list[str] = []

        def get(name: str, default: str = "") -> str:
            return env.get(PREFIX + name, default).strip()

        def get_int(name: str, default: int, minimum: int = 1) -> int:
            raw = get(name, str(default))
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{PREFIX}{name} must be an integer, got {raw!r}")
                return default
            if value < minimum:
                problems.append(f"{PREFIX}{name} must be at least {minimum}, got {value}")
                return default
            return value

        def get_float(name: str, default: float) -> float:
            raw = get(name, str(default))
            try:
                value = float(raw)
            except ValueError:
                value = -1.0
            if value <= 0:
                problems.append(f"{PREFIX}{name} must be a positive number, got {raw!r}")
                return default
            return value

        def get_bool(name: str, default: bool) -> bool:
            raw = get(name, "true" if default else "false").lower()
            if raw not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                problems.append(f"{PREFIX}{name} must be true or false, got {raw!r}")
                return default
            return raw in ("1", "true", "yes", "on")

        def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
            value = get(name, default)
            if value not in allowed:
                problems.append(f"{PREFIX}{name} must be one of {', '.join(allowed)}, got {value!r}")
                return default
            return value

        app_env = choice("ENV", "development", ENVIRONMENTS)
        production = app_env == "production"

        secret_key = get("SECRET_KEY")
        generated = False
        if not secret_key:
            if production:
                problems.append(
                    f"{PREFIX}SECRET_KEY is required in production "
                    '(generate one with: python -c "import secrets; print(secrets.token_hex(32))")'
                )
            else:
                secret_key, generated = secrets.token_hex(32), True
        elif production and len(secret_key) < MIN_SECRET_LENGTH:
            problems.append(f"{PREFIX}SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters in production")

        data_root = Path(get("DATA_ROOT", "data")).expanduser()
        raw_bucket = get("RAW_BUCKET") or f"file://{(data_root / 'buckets' / 'raw').resolve()}"
        ml_bucket = get("ML_BUCKET") or f"file://{(data_root / 'buckets' / 'ml').resolve()}"
        for name, url in (("RAW_BUCKET", raw_bucket), ("ML_BUCKET", ml_bucket)):
            problem = _bucket_url_problem(url)
            if problem:
                problems.append(f"{PREFIX}{name} {problem}")
        if production and not (get("RAW_BUCKET") and get("ML_BUCKET")):
            problems.append(f"{PREFIX}RAW_BUCKET and {PREFIX}ML_BUCKET must be set in production")

        cache_type = choice("CACHE_TYPE", "FileSystemCache", CACHE_TYPES)
        redis_url = get("CACHE_REDIS_URL")
        if cache_type == "RedisCache" and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append(f"{PREFIX}CACHE_REDIS_URL must be a redis:// URL when {PREFIX}CACHE_TYPE=RedisCache")
        if cache_type == "SimpleCache" and production:
            problems.append(
                f"{PREFIX}CACHE_TYPE=SimpleCache is per-process; use FileSystemCache or RedisCache in production"
            )

        url_base = get("URL_BASE_PATHNAME", "/")
        if not (url_base.startswith("/") and url_base.endswith("/")):
            problems.append(f"{PREFIX}URL_BASE_PATHNAME must start and end with '/', got {url_base!r}")
            url_base = "/"

        default_format = "json" if production else "console"
        settings = cls(
            env=app_env,
            secret_key=secret_key,
            secret_key_generated=generated,
            data_root=data_root,
            raw_bucket=raw_bucket,
            ml_bucket=ml_bucket,
            users_file=Path(get("USERS_FILE") or str(data_root / "users.json")).expanduser(),
            cache_type=cache_type,
            cache_redis_url=redis_url,
            cache_default_timeout=get_int("CACHE_DEFAULT_TIMEOUT", 300),
            expected_samples_per_bag=get_int("EXPECTED_SAMPLES_PER_BAG", 17),
            log_format=choice("LOG_FORMAT", default_format, LOG_FORMATS),
            log_level=choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            url_base_pathname=url_base,
            celery_broker_url=get("CELERY_BROKER_URL"),
            extractor_image=get("EXTRACTOR_IMAGE", "bagboard:latest"),
            extractor_runner=choice("EXTRACTOR_RUNNER", "local", ("local", "docker")),
            extractor_memory=get("EXTRACTOR_MEMORY", "2g"),
            extractor_cpus=get_float("EXTRACTOR_CPUS", 1.0),
            extractor_timeout=get_int("EXTRACTOR_TIMEOUT", 3600),
            proxy_hops=get_int("PROXY_HOPS", 0, minimum=0),
            session_idle_hours=get_float("SESSION_IDLE_HOURS", 8.0),
            session_lifetime_hours=get_float("SESSION_LIFETIME_HOURS", 12.0),
            max_request_mb=get_int("MAX_REQUEST_MB", 8),
            inventory_refresh_on_start=get_bool("INVENTORY_REFRESH_ON_START", True),
            gcs_retry_deadline=get_float("GCS_RETRY_DEADLINE", 120.0),
            gcs_retry_initial=get_float("GCS_RETRY_INITIAL", 1.0),
            gcs_retry_maximum=get_float("GCS_RETRY_MAXIMUM", 60.0),
            gcs_retry_multiplier=get_float("GCS_RETRY_MULTIPLIER", 2.0),
            sliced_download_threshold_mb=get_int("SLICED_DOWNLOAD_THRESHOLD_MB", 64),
            sliced_download_slice_mb=get_int("SLICED_DOWNLOAD_SLICE_MB", 32),
            sliced_download_workers=get_int("SLICED_DOWNLOAD_WORKERS", 8),
            batch_concurrency=get_int("BATCH_CONCURRENCY", 2),
            moment_per_kind=get_int("MOMENT_PER_KIND", 10),
            moment_latency_ms=get_int("MOMENT_LATENCY_MS", 0, minimum=0),
            moment_separation_s=get_float("MOMENT_SEPARATION_S", 1.0),
            moment_detection_jump=get_int("MOMENT_DETECTION_JUMP", 5),
            moment_burst_window_s=get_float("MOMENT_BURST_WINDOW_S", 1.0),
            moment_burst_tracks=get_int("MOMENT_BURST_TRACKS", 4),
            moment_fragment_gap_s=get_float("MOMENT_FRAGMENT_GAP_S", 1.0),
            moment_fragment_distance_px=get_float("MOMENT_FRAGMENT_DISTANCE_PX", 40.0),
        )
        if problems:
            raise ConfigError(problems)
        return settings


def _bucket_url_problem(url: str) -> str | None:
    """Describe what is wrong with a bucket URL, or return None."""
    if url.startswith("gs://"):
        bucket = url[len("gs://") :].split("/", 1)[0]
        return None if bucket else "must name a bucket: gs://bucket[/prefix]"
    if url.startswith("file://"):
        path = url[len("file://") :]
        return None if path.startswith("/") else "must be an absolute path: file:///path"
    return f"must be gs://bucket[/prefix] or file:///path, got {url!r}"
