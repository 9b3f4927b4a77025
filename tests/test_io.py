"""Atomic writes: all or nothing, the usual permissions, whole-directory replacement."""

from __future__ import annotations

import json
import os
import stat

import pytest

from interp.io import atomic_dir, write_json, write_with


def test_write_json_is_complete_and_world_readable(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json(tmp_path / "sub" / "x.json", {"a": 1})
        made = atomic_dir(tmp_path / "d")
        with made as d:
            (d / "f").write_text("1")
    finally:
        os.umask(old)
    assert json.loads(path.read_text()) == {"a": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    path = write_json(tmp_path / "x.json", {"v": "old"})

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_with(path, broken)
    assert json.loads(path.read_text()) == {"v": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_atomic_dir_replaces_the_directory_as_a_whole(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as d:
        (d / "a").write_text("1")
    with atomic_dir(target) as d:
        (d / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
