"""BAGBOARD_BATCH_CONCURRENCY: how many runs of a batch move at once."""

from __future__ import annotations

import pytest

from src.config import ConfigError, Settings


def test_batch_concurrency_defaults_to_two_and_is_validated(tmp_path):
    base = {"BAGBOARD_ENV": "test", "BAGBOARD_DATA_ROOT": str(tmp_path)}
    assert Settings.from_env(base).batch_concurrency == 2
    assert Settings.from_env({**base, "BAGBOARD_BATCH_CONCURRENCY": "6"}).batch_concurrency == 6
    for bad in ("0", "many"):
        with pytest.raises(ConfigError, match="BATCH_CONCURRENCY"):
            Settings.from_env({**base, "BAGBOARD_BATCH_CONCURRENCY": bad})
