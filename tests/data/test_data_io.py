"""care.io: atomic folders and files."""

import json

import pytest

from care.io import atomic_dir, atomic_write_bytes, atomic_write_json, read_json
from care.errors import DatasetError


def test_atomic_dir_renames_on_success(tmp_path):
    final = tmp_path / "out"
    with atomic_dir(final) as tmp:
        assert tmp != final and tmp.parent == tmp_path
        (tmp / "a.txt").write_text("x")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "x"
    assert list(tmp_path.iterdir()) == [final]


def test_atomic_dir_removes_everything_on_failure(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_existing_needs_overwrite(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(DatasetError, match="--overwrite"):
        with atomic_dir(final):
            pass
    # a failed overwrite keeps the old folder
    with pytest.raises(RuntimeError):
        with atomic_dir(final, overwrite=True):
            raise RuntimeError
    assert (final / "old.txt").exists()
    with atomic_dir(final, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert list(tmp_path.iterdir()) == [final]


def test_atomic_write_json_and_read_errors(tmp_path):
    path = tmp_path / "m" / "x.json"
    atomic_write_json(path, {"a": [1, 2], "é": "ü"})
    assert json.loads(path.read_text()) == {"a": [1, 2], "é": "ü"}
    atomic_write_bytes(path, b"{not json")
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary left
    with pytest.raises(DatasetError, match="x.json: malformed JSON"):
        read_json(path)
    with pytest.raises(DatasetError, match="nope.json: file not found"):
        read_json(tmp_path / "nope.json")


def test_atomic_writes_give_files_the_usual_permissions(tmp_path):
    """mkstemp's temporary files are 0600; a written result must be readable like any file."""
    import os
    import stat

    from care.io import atomic_write_bytes, atomic_write_with

    mask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
        atomic_write_with(tmp_path / "b.bin", lambda p: p.write_bytes(b"x"))
    finally:
        os.umask(mask)
    for name in ("a.json", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
