"""Disk GC's log expiry (files only; image GC runs on the real engine in tests/integration/test_disk_gc.py)."""

from __future__ import annotations

import os
import time

from binderlite.scheduler import diskgc
from binderlite.settings import Settings


def test_expire_logs_removes_only_old_files(tmp_path):
    s = Settings(state_dir=str(tmp_path), log_retention_days=1)
    s.ensure_dirs()
    old, new = s.build_logs_dir / "old.jsonl", s.build_logs_dir / "new.jsonl"
    old.write_text("{}\n")
    new.write_text("{}\n")
    past = time.time() - 3 * 86400
    os.utime(old, (past, past))
    expired = diskgc.expire_logs(s)
    assert old in expired and not old.exists() and new.exists()
