"""Atomic file writes: a unique temporary file in the destination folder, fsync, rename."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "is_temporary",
]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once at import: ``os.umask`` can only be read by setting it, which is not thread-safe.
_FILE_MODE = 0o666 & ~_read_umask()
_TMP_MARK = ".tmp"


def is_temporary(name: str | os.PathLike) -> bool:
    """Whether a file name is one of this module's temporary files (``.NAME.XXXX.tmp[.ext]``).

    Such files are left only by a process killed in the middle of a write;
    readers ignore them and ``defocus verify`` reports them as leftovers.
    """
    base = Path(name).name
    return base.startswith(".") and _TMP_MARK in base


def _temporary(path: Path, keep_suffix: bool) -> tuple[int, str]:
    # the temporary file keeps the destination's suffix when asked, for libraries
    # (matplotlib, PIL) that choose the format from the file name
    suffix = _TMP_MARK + (path.suffix if keep_suffix else "")
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _commit(tmp: str, path: Path) -> None:
    os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; give the file the usual permissions
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically.

    Parameters
    ----------
    path : str or PathLike
        Destination. Its folder is created when missing.
    mode : {"wb", "w"}
        Binary or text.
    encoding, newline : str, optional
        As for :func:`open` in text mode (``encoding`` defaults to UTF-8).

    Yields
    ------
    file object
        Write to it; it is flushed, fsynced and renamed over ``path`` when the
        block ends without an exception, and deleted when it raises.

    Raises
    ------
    ValueError
        If ``mode`` is not a write mode.
    OSError
        If the folder cannot be created or written (nothing is left behind).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path, keep_suffix=False)
    try:
        if mode == "w":
            fh = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
        else:
            fh = os.fdopen(fd, "wb")
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _commit(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Give a temporary path next to ``path`` (same suffix); on success it replaces ``path``.

    For libraries that write to a file name themselves (``fig.savefig``,
    ``Image.save``, ``torch.save``, ``safetensors``, ``np.save``). The
    temporary name ends with the destination's suffix, so format detection
    by extension works.

    Parameters
    ----------
    path : str or PathLike
        Destination. Its folder is created when missing.

    Yields
    ------
    pathlib.Path
        The temporary path to write. It must exist when the block ends.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path, keep_suffix=True)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _commit(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_write(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, **dumps_kwargs: Any) -> Path:
    """Write ``json.dumps(obj, indent=2, **dumps_kwargs)`` plus a newline to ``path`` atomically.

    The object is serialised before anything touches the disk, so a value
    that is not JSON-serialisable raises without leaving a file behind.
    """
    dumps_kwargs.setdefault("indent", 2)
    text = json.dumps(obj, **dumps_kwargs) + "\n"
    return atomic_write_text(path, text)
