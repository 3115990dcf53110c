"""Folders written whole or not at all: a hidden temporary folder renamed into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from safeio import is_temporary

__all__ = ["atomic_folder", "remove_leftovers"]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once at import: ``os.umask`` can only be read by setting it, which is not thread-safe.
_DIR_MODE = 0o777 & ~_read_umask()


@contextlib.contextmanager
def atomic_folder(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; rename it to ``final`` when the block succeeds.

    The temporary folder is named like :mod:`safeio`'s temporary files
    (``.NAME.XXXX.tmp``), so readers skip it and
    :func:`remove_leftovers` can clear what a killed process left. On an
    error it is removed, and ``final`` is left as it was.

    Parameters
    ----------
    final : str or path-like
        The folder to create. It must not exist, or be empty.

    Raises
    ------
    FileExistsError
        If ``final`` exists and is not an empty folder.
    """
    final = Path(final).absolute()
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise FileExistsError(f"{os.fspath(final)!r} exists and is not an empty folder")
    made = [p for p in reversed(final.parents) if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except BaseException:
        _remove_empty(made)
        raise
    try:
        yield tmp
        os.chmod(tmp, _DIR_MODE)  # mkdtemp makes 0700; give the folder the usual permissions
        if final.is_dir():
            final.rmdir()  # empty (checked above); rename cannot replace it everywhere
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)  # no empty parent folder is left behind either
        raise


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders and files an interrupted writer left directly in ``folder``.

    Returns
    -------
    list of Path
        What was removed.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if is_temporary(p.name):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed
