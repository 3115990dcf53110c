"""Claims on shards and the cache lock, so that concurrent extraction runs share the work.

Before computing a shard, an extraction run *claims* it: it creates
``<cache>/.claims/<shard>.claim`` exclusively (a temporary file hard-linked
into place, which fails when the claim exists, also on NFS). The claim holds
the process id, the host, the process start time and a random token; while
the run computes, a background thread refreshes the file's modification
time (the heartbeat). Another run that finds the claim leaves the shard to
its holder and waits for it, unless the claim is *stale*:

- its process is gone (same host: no such pid, or the pid now belongs to a
  process started at another time), or
- its heartbeat stopped for longer than ``stale_after`` seconds (any host;
  the only test possible for a claim made on another machine), or
- it was made by this very process under a token it no longer holds
  (an earlier call that died without releasing it).

A stale claim is taken over under the cache lock (``<cache>/.lock``,
``fcntl.flock``), so two runs never both take over the same claim. The
manifest is updated under the same lock. A killed run's claims are thus
stale at once for a rerun on the same host, and after ``stale_after``
seconds for a run on another host. Reading a cache needs neither.

Standard library only (no numpy, no torch).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLAIM_DIR",
    "DEFAULT_STALE_AFTER",
    "HEARTBEAT_SECONDS",
    "Claim",
    "ClaimState",
    "claim_state",
    "list_claims",
    "locked",
    "try_claim",
]

#: Folder of the claim files, inside the cache folder.
CLAIM_DIR = ".claims"
#: Seconds between two heartbeats of a held claim.
HEARTBEAT_SECONDS = 15.0
#: Seconds without a heartbeat after which any claim (e.g. of another host) is stale.
DEFAULT_STALE_AFTER = 600.0
_SUFFIX = ".claim"
_CREATING_GRACE = 60.0  # an unreadable claim younger than this is being written


@contextlib.contextmanager
def locked(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/.lock`` (POSIX ``flock``; no-op elsewhere).

    Parameters
    ----------
    folder : str or path-like
        The cache folder; created when missing.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(folder / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _host() -> str:
    return socket.gethostname()


def _proc_start(pid: int) -> str | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), or ``None``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- heartbeat

_held: dict[str, str] = {}  # claim path -> token, claims held by this process
_held_lock = threading.Lock()
_beat: dict[str, object] = {"pid": None, "thread": None}


def _heartbeat_loop() -> None:
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        with _held_lock:
            paths = list(_held)
        for path in paths:
            with contextlib.suppress(OSError):
                os.utime(path)


def _ensure_heartbeat() -> None:
    with _held_lock:
        if _beat["pid"] == os.getpid():
            return
        thread = threading.Thread(target=_heartbeat_loop, name="defocus-claims", daemon=True)
        thread.start()
        _beat.update(pid=os.getpid(), thread=thread)


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class ClaimState:
    """What a claim file says and whether it is still live.

    Attributes
    ----------
    name : str
        The shard claimed.
    path : pathlib.Path
        The claim file.
    live : bool
        Whether its holder may still be computing the shard.
    holder : str
        ``pid P on HOST`` (or ``unknown`` for an unreadable claim).
    reason : str
        Why it is live or stale, in words.
    age : float
        Seconds since its last heartbeat.
    """

    name: str
    path: Path
    live: bool
    holder: str
    reason: str
    age: float


def _claim_path(folder: Path, name: str) -> Path:
    return folder / CLAIM_DIR / f"{name}{_SUFFIX}"


def claim_state(path: str | os.PathLike, stale_after: float = DEFAULT_STALE_AFTER) -> ClaimState:
    """Read a claim file and judge whether it is live (see the module docstring).

    Parameters
    ----------
    path : str or path-like
        A ``.claims/<shard>.claim`` file.
    stale_after : float
        Seconds without a heartbeat after which the claim is stale.

    Returns
    -------
    ClaimState

    Raises
    ------
    FileNotFoundError
        If the claim file does not exist (any more).
    """
    path = Path(path)
    name = path.name.removesuffix(_SUFFIX)
    age = max(0.0, time.time() - path.stat().st_mtime)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        pid, host = int(info["pid"]), str(info["host"])
    except (ValueError, KeyError, TypeError):
        live = age < _CREATING_GRACE
        reason = "being written" if live else "unreadable and old"
        return ClaimState(name, path, live, "unknown", reason, age)
    holder = f"pid {pid} on {host}"
    if age > stale_after:
        return ClaimState(name, path, False, holder, f"no heartbeat for {age:.0f} s", age)
    if host == _host():
        if pid == os.getpid():
            with _held_lock:
                mine = _held.get(os.fspath(path)) == info.get("token")
            reason = "held by this process" if mine else "left by an earlier call of this process"
            return ClaimState(name, path, mine, holder, reason, age)
        if not _alive(pid):
            return ClaimState(name, path, False, holder, f"process {pid} is gone", age)
        started = info.get("proc_start")
        now_started = _proc_start(pid)
        if started and now_started and started != now_started:
            return ClaimState(name, path, False, holder, f"pid {pid} now is another process", age)
        return ClaimState(name, path, True, holder, "process running", age)
    return ClaimState(name, path, True, holder, f"heartbeat {age:.0f} s ago", age)


class Claim:
    """A held claim on one shard; release it with :meth:`release` or a ``with`` block.

    Attributes
    ----------
    name : str
        The shard.
    path : pathlib.Path
        The claim file.
    token : str
        Random token written in the file: only this holder releases it.
    took_over : ClaimState or None
        The stale claim this one replaced, if any.
    """

    def __init__(self, name: str, path: Path, token: str, took_over: ClaimState | None):
        self.name, self.path, self.token, self.took_over = name, path, token, took_over

    def release(self) -> None:
        """Remove the claim file if it is still this claim's (idempotent)."""
        key = os.fspath(self.path)
        with _held_lock:
            held = _held.pop(key, None)
        if held is None:
            return
        with locked(self.path.parent.parent):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                if json.loads(self.path.read_text(encoding="utf-8"))["token"] == self.token:
                    os.unlink(self.path)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _create(path: Path, content: str) -> bool:
    """Create ``path`` holding ``content`` only if it does not exist (atomic, NFS-safe)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def try_claim(
    folder: str | os.PathLike, name: str, stale_after: float = DEFAULT_STALE_AFTER
) -> Claim | None:
    """Claim shard ``name`` of the cache at ``folder``; ``None`` if a live claim holds it.

    A stale claim (see the module docstring) is taken over. Done under the
    cache lock, so two runs never both take over one claim.

    Parameters
    ----------
    folder : str or path-like
        The cache folder.
    name : str
        The shard name.
    stale_after : float
        Seconds without a heartbeat after which a claim is stale.

    Returns
    -------
    Claim or None
    """
    folder = Path(folder)
    path = _claim_path(folder, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    content = json.dumps(
        {
            "shard": name,
            "pid": os.getpid(),
            "host": _host(),
            "proc_start": _proc_start(os.getpid()),
            "started_unix": time.time(),
            "token": token,
        }
    )
    took_over = None
    with locked(folder):
        try:
            state = claim_state(path, stale_after)
        except FileNotFoundError:
            state = None
        if state is not None:
            if state.live:
                return None
            took_over = state
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if not _create(path, content):
            return None
        with _held_lock:
            _held[os.fspath(path)] = token
    _ensure_heartbeat()
    return Claim(name, path, token, took_over)


def list_claims(
    folder: str | os.PathLike, stale_after: float = DEFAULT_STALE_AFTER
) -> list[ClaimState]:
    """Return the state of every claim file of the cache at ``folder``, by shard name."""
    claim_dir = Path(folder) / CLAIM_DIR
    out = []
    if claim_dir.is_dir():
        for path in sorted(claim_dir.glob(f"*{_SUFFIX}")):
            with contextlib.suppress(FileNotFoundError):
                out.append(claim_state(path, stale_after))
    return out
