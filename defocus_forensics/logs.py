"""Logging of the ``defocus`` command: warnings on the console, a full log file in the run folder.

The toolkit's packages log through :mod:`logging` under their own names
(``detector``, ``cache``, ``analysis``, ``defocus_forensics``). The command
line shows warnings and errors on stderr (``--verbose`` adds progress
messages, ``-vv`` debugging detail) and, once a command knows its output
folder, appends everything at debug level to ``OUT/defocus.log``: the
command line, the version, each message with its time, and the full
traceback of an error that the console reports in one line.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from pathlib import Path

__all__ = ["LOG_NAME", "PACKAGES", "close_run_logs", "configure_console", "start_run_log"]

#: File name of the log written into every run folder.
LOG_NAME = "defocus.log"
#: Loggers configured by the command line.
PACKAGES = ("analysis", "cache", "defocus_forensics", "detector", "safeio")

_console: logging.Handler | None = None
_command: list[str] | None = None
_files: list[logging.FileHandler] = []


class _StderrHandler(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is at the time of each record."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; sys.stderr is always used
        pass


class _ConsoleFormatter(logging.Formatter):
    """``defocus: warning: message`` (level in lower case; info lines without a level)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno == logging.INFO:
            return f"defocus: {message}"
        return f"defocus: {record.levelname.lower()}: {message}"


def configure_console(verbosity: int = 0, command: list[str] | None = None) -> None:
    """Send the toolkit's log records to stderr.

    Parameters
    ----------
    verbosity : int
        0: warnings and errors; 1 (``--verbose``): also progress messages;
        2 or more (``-vv``): also debugging detail.
    command : list of str, optional
        The command line (``["defocus", "figures", ...]``) that run logs record.
    """
    global _console, _command
    if command is not None:
        _command = list(command)
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    if _console is None:
        _console = _StderrHandler()
        _console.setFormatter(_ConsoleFormatter())
    _console.setLevel(level)
    for name in PACKAGES:
        log = logging.getLogger(name)
        if _console not in log.handlers:
            log.addHandler(_console)
        log.setLevel(logging.DEBUG)  # the handlers choose what they show


def start_run_log(folder: str | os.PathLike, argv: list[str] | None = None) -> Path:
    """Append this command's log to ``folder/defocus.log`` (created when missing).

    Parameters
    ----------
    folder : str or PathLike
        The run's output folder (already checked by the command).
    argv : list of str, optional
        The command line to record (default: the one given to
        :func:`configure_console`, else ``sys.argv``).

    Returns
    -------
    pathlib.Path
        The log file.
    """
    from defocus_forensics import __version__

    path = Path(folder) / LOG_NAME
    if any(Path(h.baseFilename) == path.absolute() for h in _files):
        return path
    handler = logging.FileHandler(path, mode="a", encoding="utf-8", delay=False)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    _files.append(handler)
    for name in PACKAGES:
        log = logging.getLogger(name)
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
    if argv is None:
        argv = _command if _command is not None else ["defocus", *sys.argv[1:]]
    command = " ".join(shlex.quote(str(a)) for a in argv)
    logging.getLogger("defocus_forensics").debug(
        "%s (defocus-forensics %s, Python %s, pid %d, cwd %s, started %s)",
        command,
        __version__,
        sys.version.split()[0],
        os.getpid(),
        os.getcwd(),
        time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    return path


def close_run_logs() -> None:
    """Detach and close the log files opened by :func:`start_run_log`."""
    while _files:
        handler = _files.pop()
        for name in PACKAGES:
            logging.getLogger(name).removeHandler(handler)
        handler.close()
