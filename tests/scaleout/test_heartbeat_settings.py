"""The heartbeat knobs every process sharing a job registry reads (web app and Celery workers alike)."""

from __future__ import annotations

import pytest

from src.jobs.worker import HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT, heartbeat_settings


def test_defaults_without_the_variables() -> None:
    assert heartbeat_settings({}) == (HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT)
    assert heartbeat_settings({"BAGBOARD_JOB_HEARTBEAT_INTERVAL": " "}) == (HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT)


def test_both_set() -> None:
    env = {"BAGBOARD_JOB_HEARTBEAT_INTERVAL": "0.5", "BAGBOARD_JOB_HEARTBEAT_TIMEOUT": "4"}
    assert heartbeat_settings(env) == (0.5, 4.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BAGBOARD_JOB_HEARTBEAT_INTERVAL": "soon"}, "BAGBOARD_JOB_HEARTBEAT_INTERVAL must be a positive number"),
        ({"BAGBOARD_JOB_HEARTBEAT_TIMEOUT": "0"}, "BAGBOARD_JOB_HEARTBEAT_TIMEOUT must be a positive number"),
        ({"BAGBOARD_JOB_HEARTBEAT_TIMEOUT": "nan"}, "BAGBOARD_JOB_HEARTBEAT_TIMEOUT must be a positive number"),
        # A timeout at or below the default 5 s interval would fail live jobs between two beats.
        ({"BAGBOARD_JOB_HEARTBEAT_TIMEOUT": "5"}, "must be longer than BAGBOARD_JOB_HEARTBEAT_INTERVAL"),
    ],
)
def test_bad_values_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        heartbeat_settings(env)
