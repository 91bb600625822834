"""Generic file helpers every stage uses: atomic writes and JSON.

Writing files so that a failure never leaves a half-written result behind.

`atomic_dir` is how every dataset is produced (`care collect`, `care import-videos`): the
work goes into a temporary sibling folder that is renamed onto the final path only when the
body finished without an exception. `atomic_write_bytes` / `atomic_write_json` do the same
for single files (temporary file in the same folder, then `os.replace`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from care.errors import DatasetError  # a malformed JSON file is bad input data


def _umask_mode() -> int:
    """0o666 less the process umask: the mode `open()` would have given (mkstemp gives 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_dir(final: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `final`; rename it to `final` if the body succeeds.

    On any exception (KeyboardInterrupt included) the temporary folder is removed and the
    exception propagates, so `final` is either absent, untouched, or complete.
    An existing `final` is an error unless `overwrite`, checked before any work is done.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise DatasetError(f"{final}: already exists; pass --overwrite to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    # same parent folder: the final rename stays on one file system, hence atomic
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # overwrite: move the old one aside first, delete it after the swap
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, old / final.name)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, then rename."""
    atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_with(path: Path, write: Callable[[Path], Any]) -> None:
    """`write(tmp)` fills a temporary file beside `path` (a library that wants a file name:
    safetensors, PyAV, matplotlib), which is then renamed onto `path`; nothing is left on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any, indent: int = 4) -> None:
    """`json.dump` through `atomic_write_bytes` (UTF-8, non-ASCII kept as is)."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=_json_default)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def _json_default(o: Any) -> Any:
    """numpy scalars/arrays and paths in metadata serialise as plain JSON."""
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def read_json(path: Path) -> Any:
    """Read a JSON file; a missing or malformed file is a DatasetError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: malformed JSON ({e})") from e


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Lay out a matplotlib figure, save it as PNG atomically, and close it (every report's PNGs)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    try:
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)
    return path
