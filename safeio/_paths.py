"""Checks of output paths made once at the command-line boundary, before any work starts."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["OutputPathError", "check_output_dir", "check_output_file"]


class OutputPathError(ValueError):
    """An output path that cannot be used: an existing file where a folder is needed, etc."""


def _probe_writable(folder: Path, what: str, value: str | os.PathLike) -> None:
    # os.access says yes to root on a read-only mount; only a real write tells
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise OutputPathError(
            f"{what} {os.fspath(value)!r}: cannot write into {folder}: {err.strerror or err}"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def check_output_dir(path: str | os.PathLike, what: str = "--out", *, create: bool = True) -> Path:
    """Return ``path`` made absolute after checking it can be used as an output folder.

    Parameters
    ----------
    path : str or PathLike
        The folder asked for.
    what : str
        How the user gave it (an option name), used in the message.
    create : bool
        Create the folder (and its parents) when missing.

    Returns
    -------
    pathlib.Path
        The absolute folder. Later writes do not depend on the working directory.

    Raises
    ------
    OutputPathError
        If ``path`` is an existing file, cannot be created or is not writable.
    """
    folder = Path(path).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{what} {os.fspath(path)!r} is a file; give a folder")
    if not folder.exists():
        if not create:
            raise OutputPathError(f"{what} {os.fspath(path)!r} does not exist")
        blocking = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise OutputPathError(f"{what} {os.fspath(path)!r}: {blocking} is a file, not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputPathError(
                f"{what} {os.fspath(path)!r}: cannot create it: {err.strerror or err}"
            ) from None
    _probe_writable(folder, what, path)
    return folder


def check_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Return ``path`` made absolute after checking a file can be written there.

    The parent folder is created when missing. An existing file is allowed
    (it will be replaced atomically); an existing folder is not.

    Raises
    ------
    OutputPathError
        If ``path`` is an existing folder or its folder cannot be written.
    """
    file = Path(path).expanduser().absolute()
    if file.is_dir():
        raise OutputPathError(f"{what} {os.fspath(path)!r} is a folder; give a file name")
    check_output_dir(file.parent, what=f"{what} {os.fspath(path)!r}: folder")
    return file
