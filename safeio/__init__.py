"""Safe file output shared by every package: atomic writes and output-path checks.

Standard library only; imports nothing else of the project, so ``detector``,
``cache``, ``analysis`` and the command line can all use it (and analysing a
cache still needs no torch).

Every file the toolkit writes goes through :func:`atomic_write` (or one of
its wrappers): the bytes go to a temporary file with a unique name in the
destination folder, are flushed and fsynced, and replace the destination in
one rename. A crash or an error leaves either the old file or the new one,
never half of one, and the temporary file is removed on error.

Examples
--------
>>> from safeio import atomic_write_json, atomic_path
>>> atomic_write_json("runs/x/run.json", {"ok": True})      # doctest: +SKIP
>>> with atomic_path("runs/x/fig.pdf") as tmp:               # doctest: +SKIP
...     fig.savefig(tmp)                                     # any library that wants a filename
"""

from safeio._atomic import (
    atomic_path,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    is_temporary,
)
from safeio._paths import OutputPathError, check_output_dir, check_output_file

__all__ = [
    "OutputPathError",
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "is_temporary",
]
