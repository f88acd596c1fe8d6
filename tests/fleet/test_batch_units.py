"""Batch units: the concurrency setting, and old records pruned."""

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


def test_old_batch_records_are_pruned(tmp_path):
    import os

    from src.models.fleet import BatchRecord, BatchRun
    from src.services.batch import BatchStore

    store = BatchStore(tmp_path)
    old, new = (BatchRecord(f"{i:032x}", {}, "op", 0.0, 1, [BatchRun("a/b/c/d/e/f")]) for i in (1, 2))
    store.save(old)
    store.save(new)
    os.utime(store.path(old.batch_id), (1, 1))
    assert store.prune(3600) == 1
    assert store.ids(10) == [new.batch_id]
