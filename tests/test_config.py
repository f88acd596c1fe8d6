"""Settings come from BAGBOARD_* variables and every problem is reported clearly."""

from __future__ import annotations

import pytest

from src.config import ConfigError, Settings


def test_defaults_in_development_generate_an_ephemeral_secret(tmp_path):
    settings = Settings.from_env({"BAGBOARD_DATA_ROOT": str(tmp_path)})
    assert settings.env == "development"
    assert settings.secret_key_generated and len(settings.secret_key) >= 32
    assert settings.expected_samples_per_bag == 17
    assert settings.cache_type == "FileSystemCache"
    assert settings.raw_bucket == f"file://{tmp_path.resolve()}/buckets/raw"
    assert settings.users_file == tmp_path / "users.json"


def test_production_refuses_to_start_without_a_secret_key():
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env(
            {"BAGBOARD_ENV": "production", "BAGBOARD_RAW_BUCKET": "gs://raw", "BAGBOARD_ML_BUCKET": "gs://ml"}
        )
    assert "BAGBOARD_SECRET_KEY is required in production" in str(excinfo.value)


def test_every_problem_is_listed_once():
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env(
            {
                "BAGBOARD_ENV": "staging",
                "BAGBOARD_EXPECTED_SAMPLES_PER_BAG": "seventeen",
                "BAGBOARD_RAW_BUCKET": "s3://nope",
                "BAGBOARD_CACHE_TYPE": "RedisCache",
                "BAGBOARD_LOG_FORMAT": "xml",
            }
        )
    problems = excinfo.value.problems
    assert any("BAGBOARD_ENV must be one of" in p for p in problems)
    assert any("BAGBOARD_EXPECTED_SAMPLES_PER_BAG must be an integer" in p for p in problems)
    assert any("BAGBOARD_RAW_BUCKET must be gs://" in p for p in problems)
    assert any("BAGBOARD_CACHE_REDIS_URL" in p for p in problems)
    assert any("BAGBOARD_LOG_FORMAT" in p for p in problems)
    assert len(problems) == len(set(problems)) == 5


def test_production_settings_are_strict_and_log_json():
    settings = Settings.from_env(
        {
            "BAGBOARD_ENV": "production",
            "BAGBOARD_SECRET_KEY": "k" * 40,
            "BAGBOARD_RAW_BUCKET": "gs://raw-bucket/prefix",
            "BAGBOARD_ML_BUCKET": "gs://ml-bucket",
        }
    )
    assert settings.is_production and settings.log_format == "json"
    with pytest.raises(ConfigError, match="SimpleCache is per-process"):
        Settings.from_env(
            {
                "BAGBOARD_ENV": "production",
                "BAGBOARD_SECRET_KEY": "k" * 40,
                "BAGBOARD_RAW_BUCKET": "gs://raw",
                "BAGBOARD_ML_BUCKET": "gs://ml",
                "BAGBOARD_CACHE_TYPE": "SimpleCache",
            }
        )


def test_env_example_lists_every_setting():
    from pathlib import Path

    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    import re

    source = (Path(__file__).resolve().parents[1] / "src" / "config.py").read_text()
    read = set(re.findall(r'(?:get|get_int|get_bool|get_float|choice)\("([A-Z_]+)"', source))
    documented = set(re.findall(r"^#?\s*BAGBOARD_([A-Z_]+)=", example, flags=re.M))
    assert read <= documented, f"undocumented in .env.example: {sorted(read - documented)}"


def test_gcs_retry_and_slicing_come_from_the_settings(tmp_path):
    from src.services.container import slice_policy

    settings = Settings.from_env(
        {
            "BAGBOARD_DATA_ROOT": str(tmp_path),
            "BAGBOARD_RAW_BUCKET": "gs://raw-bucket/runs",
            "BAGBOARD_GCS_RETRY_DEADLINE": "7.5",
            "BAGBOARD_GCS_RETRY_INITIAL": "0.25",
            "BAGBOARD_SLICED_DOWNLOAD_THRESHOLD_MB": "128",
            "BAGBOARD_SLICED_DOWNLOAD_WORKERS": "4",
        }
    )

    retry = settings.bucket_options(settings.raw_bucket)["retry"]
    assert retry.timeout == 7.5 and retry._initial == 0.25 and retry._maximum == 60 and retry._multiplier == 2
    assert settings.bucket_options(settings.ml_bucket) == {}  # a file:// bucket takes no GCS options
    policy = slice_policy(settings)
    assert (policy.threshold, policy.slice_size, policy.workers) == (128 << 20, 32 << 20, 4)
    assert policy.ranges(100 << 20) is None and len(policy.ranges(129 << 20) or []) == 5


def test_bad_gcs_retry_and_slicing_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env(
            {
                "BAGBOARD_DATA_ROOT": str(tmp_path),
                "BAGBOARD_GCS_RETRY_DEADLINE": "-1",
                "BAGBOARD_SLICED_DOWNLOAD_SLICE_MB": "0",
            }
        )
    problems = excinfo.value.problems
    assert any("BAGBOARD_GCS_RETRY_DEADLINE must be a positive number" in p for p in problems)
    assert any("BAGBOARD_SLICED_DOWNLOAD_SLICE_MB must be at least 1" in p for p in problems)
