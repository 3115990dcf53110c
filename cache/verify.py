"""Verifying and repairing a cache: complete, incomplete or corrupt, and what to do (no torch).

:func:`verify_cache` checks, in one pass:

- the manifest against its integrity record (:mod:`cache.integrity`):
  any edited value is named by its dotted key path;
- every shard against its manifest entry: present, size and sha256 as
  recorded, readable without unpickling, schema-valid, the group and sample
  count its entry says, sample ids unique across the cache;
- the planned shards recorded when extraction started: which are missing
  (an interrupted run), and whether each present shard holds the samples
  its plan says;
- the files of ``shards/``: files no entry names (an extra ``.npz``, or a
  shard whose entry was removed) are *unknown*; temporary files of
  interrupted atomic writes (:func:`safeio.is_temporary`) are *leftovers*;
  files of a shard a live claim is computing right now are neither;
- the claims (:mod:`cache.claims`): live ones mean an extraction is running,
  stale ones were left by a killed run.

The status is ``"corrupt"`` when anything present is wrong (edited manifest,
bad shard, unknown file), else ``"incomplete"`` when planned shards are
missing, else ``"complete"``. :func:`repair_cache` moves corrupt and
unknown files aside (never deleting them) and drops their entries, so that
rerunning the same extraction recomputes exactly those shards.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from cache.claims import CLAIM_DIR, DEFAULT_STALE_AFTER, ClaimState, list_claims, locked
from cache.errors import CacheError, CacheFormatError, CacheManifestError
from cache.integrity import INTEGRITY_KEY
from cache.schema import REQUIRED_FIELDS, validate_arrays
from cache.store import (
    MANIFEST,
    SHARD_DIR,
    Cache,
    _load_manifest_file,
    _write_manifest,
    ids_digest,
)
from safeio import is_temporary

__all__ = [
    "QUARANTINE_DIR",
    "RepairResult",
    "VerifyReport",
    "repair_cache",
    "resume_command",
    "split_manifest_edits",
    "verify_cache",
]

#: Folder (inside the cache) where :func:`repair_cache` moves the files it takes out.
QUARANTINE_DIR = "quarantine"


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_cache`.

    Attributes
    ----------
    path : pathlib.Path
        The cache folder.
    status : {"complete", "incomplete", "corrupt"}
        ``corrupt``: something present is wrong (see ``problems``);
        ``incomplete``: all present is intact but planned shards are missing
        or being computed; ``complete``: neither.
    n_shards : int
        Shard files checked.
    n_samples : int
        Samples in the intact shards.
    n_planned : int or None
        Shards the extraction planned (``None``: no plan recorded).
    n_present : int
        Planned shards present and intact.
    problems : list of str
        One line per corruption, each naming the shard, file or manifest key.
    bad_shards : list of str
        Names of the shard entries whose file is missing or wrong.
    manifest_edits : list of str or None
        Edited manifest values (``"changed config.explainer.nsamples"``);
        ``None`` when the manifest has no integrity record.
    missing : list of str
        Planned shards with no entry (never written, or dropped by a repair).
    unknown_files : list of str
        Files in ``shards/`` that no manifest entry names (paths relative to the cache).
    leftovers : list of str
        Temporary files of interrupted writes (relative paths); harmless.
    in_progress : list of ClaimState
        Live claims: shards another process is computing now.
    stale_claims : list of ClaimState
        Claims left by processes that died; the next extraction takes them over.
    notes : list of str
        Things to know that are not problems (unprotected manifest, no plan, leftovers).
    resume : str
        The command that completes the cache (rerunning the extraction).
    """

    path: Path
    status: str = "complete"
    n_shards: int = 0
    n_samples: int = 0
    n_planned: int | None = None
    n_present: int = 0
    problems: list[str] = field(default_factory=list)
    bad_shards: list[str] = field(default_factory=list)
    manifest_edits: list[str] | None = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unknown_files: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    in_progress: list[ClaimState] = field(default_factory=list)
    stale_claims: list[ClaimState] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resume: str = ""

    @property
    def ok(self) -> bool:
        """Whether nothing present is wrong (an interrupted cache is ok but not complete)."""
        return not self.problems

    @property
    def complete(self) -> bool:
        """Whether the cache is intact and holds every planned shard."""
        return self.status == "complete"

    @property
    def protected(self) -> bool:
        """Whether the manifest carries an integrity record."""
        return self.manifest_edits is not None

    def __bool__(self) -> bool:
        return self.ok

    def raise_if_bad(self) -> None:
        """Raise :class:`cache.CacheCorruptError` listing the problems, if any."""
        if self.problems:
            from cache.errors import CacheCorruptError

            raise CacheCorruptError("; ".join(self.problems))


def resume_command(cache: Cache) -> str:
    """Return the ``defocus extract`` command that completes ``cache`` (from the recorded one).

    The recorded command's ``--out`` becomes the cache's absolute path and
    ``--shard K/N`` is dropped, so that the command computes every missing
    shard whatever slice the first run had.
    """
    out = os.fspath(cache.path.resolve())
    command = cache.info.get("command")
    argv: list[str] = []
    if isinstance(command, str):
        with contextlib.suppress(ValueError):
            argv = shlex.split(command)
    if "extract" not in argv or "--merge" in argv:
        return f"defocus extract --out {shlex.quote(out)} ... (the options that built the cache)"
    rest = argv[argv.index("extract") + 1 :]
    kept: list[str] = []
    skip = False
    for arg in rest:
        if skip:
            skip = False
            continue
        if arg in ("--shard", "--out"):
            skip = True
            if arg == "--out":
                kept += ["--out", out]
            continue
        if arg.startswith("--shard="):
            continue
        if arg.startswith("--out="):
            kept += ["--out", out]
            continue
        kept.append(arg)
    if "--out" not in kept:
        kept += ["--out", out]
    return "defocus " + shlex.join(["extract", *kept])


def _shard_of_temporary(name: str) -> str | None:
    """Shard name of a temporary ``.NAME.npz.XXXX.tmp`` file, else ``None``."""
    base = name[1:] if name.startswith(".") else name
    if ".npz." in base:
        return base.split(".npz.", 1)[0]
    return None


def _plan_problem(entry: dict, plan: dict, ids: list[str] | None) -> str | None:
    """Why a shard entry does not hold what its plan says, or ``None``."""
    name = entry["name"]
    if entry.get("group") != plan.get("group"):
        want = plan.get("group")
        return f"shard {name!r} is of group {entry.get('group')!r}, the plan says {want!r}"
    failed = [f["id"] for f in entry.get("failed", [])]
    n = entry.get("n_samples", 0) + len(failed)
    if n != plan.get("n_samples"):
        return (
            f"shard {name!r} accounts for {n} samples ({len(failed)} failed), "
            f"the plan says {plan.get('n_samples')}"
        )
    if (
        ids is not None
        and plan.get("ids_sha256")
        and ids_digest(ids + failed) != plan["ids_sha256"]
    ):
        return f"shard {name!r} holds other sample ids than the plan says"
    return None


def verify_cache(
    cache: Cache | str | os.PathLike,
    progress: bool = False,
    stale_after: float = DEFAULT_STALE_AFTER,
) -> VerifyReport:
    """Check a cache in full (see the module docstring); every shard is re-hashed.

    Parameters
    ----------
    cache : Cache or path
        The cache; a path is opened without refusing an edited manifest, so
        the report can name the edits.
    progress : bool
        Show a progress bar over the shards on stderr.
    stale_after : float
        Seconds without a heartbeat after which a claim counts as stale.

    Returns
    -------
    VerifyReport
    """
    c = cache if isinstance(cache, Cache) else Cache(cache, strict=False)
    report = VerifyReport(path=c.path, manifest_edits=c.manifest_edits)
    if c.manifest_edits:
        report.problems += [f"manifest.json edited: {e}" for e in c.manifest_edits]
    elif c.manifest_edits is None:
        report.notes.append(
            "the manifest has no integrity record (written before it existed): edits of it "
            "cannot be detected; --repair records it once the shards check out"
        )
    claims = list_claims(c.path, stale_after)
    report.in_progress = [s for s in claims if s.live]
    report.stale_claims = [s for s in claims if not s.live]
    live = {s.name for s in report.in_progress}
    plan = c.planned
    plan_by_name = {p["name"]: p for p in plan} if plan is not None else None

    c._verified.clear()  # verify re-hashes every shard, whatever was read before
    seen: dict[str, str] = {}
    sizes = dict(c.sizes)
    entries = list(c.manifest["shards"])
    bar = _progress(progress, len(entries), c.path)
    try:
        for entry in entries:
            name = entry["name"]
            ids = None
            try:
                if entry.get("file"):
                    report.n_shards += 1
                    arrays = c._read_shard(entry, None)
                    if sorted(arrays) != sorted(c.fields):
                        raise CacheFormatError(
                            f"shard {name!r} holds {sorted(arrays)}, the manifest says "
                            f"{sorted(c.fields)}"
                        )
                    clean, sizes = validate_arrays(arrays, group=entry["group"], sizes=sizes)
                    ids = clean["id"].tolist()
                    for sid in ids:
                        if sid in seen:
                            raise CacheFormatError(
                                f"sample id {sid!r} is in shard {name!r} and {seen[sid]!r}"
                            )
                        seen[sid] = name
                if plan_by_name is not None:
                    if name not in plan_by_name:
                        raise CacheFormatError(f"shard {name!r} is not one of the planned shards")
                    why = _plan_problem(entry, plan_by_name[name], ids)
                    if why:
                        raise CacheFormatError(why)
                report.n_samples += len(ids or [])
                if plan_by_name is not None:
                    report.n_present += 1
            except CacheError as err:
                msg = str(err)
                if name not in msg:
                    msg = f"shard {name!r}: {msg}"
                report.problems.append(msg)
                report.bad_shards.append(name)
            bar.update(1)
    finally:
        bar.close()
    if any(e.get("file") for e in entries):
        lacking = [f for f in REQUIRED_FIELDS if f not in c.fields]
        if lacking:
            report.problems.append(f"manifest lists no required fields {lacking}")

    if plan is not None:
        present = {e["name"] for e in entries}
        report.n_planned = len(plan)
        report.missing = [p["name"] for p in plan if p["name"] not in present]
    else:
        report.notes.append(
            "no planned-shard record (a cache written before plans were recorded, or without "
            "a plan): whether shards are missing cannot be told"
        )

    _scan_files(c, report, live)
    if report.leftovers:
        report.notes.append(
            f"{len(report.leftovers)} leftover temporary file(s) of interrupted writes: "
            + ", ".join(report.leftovers[:5])
            + " (harmless; --repair moves them aside)"
        )
    if report.stale_claims:
        report.notes.append(
            f"{len(report.stale_claims)} stale claim(s) of killed runs: "
            + ", ".join(f"{s.name} ({s.holder}: {s.reason})" for s in report.stale_claims[:5])
            + " (harmless; the next extraction takes them over)"
        )
    if report.problems:
        report.status = "corrupt"
    elif report.missing or report.in_progress:
        report.status = "incomplete"
    report.resume = resume_command(c)
    return report


def _scan_files(c: Cache, report: VerifyReport, live: set[str]) -> None:
    """Name unknown files in ``shards/`` and leftover temporaries anywhere in the cache."""
    referenced = {e["file"] for e in c.manifest["shards"] if e.get("file")}
    shard_dir = c.path / SHARD_DIR
    names = sorted(os.listdir(shard_dir)) if shard_dir.is_dir() else []
    for name in names:
        rel = f"{SHARD_DIR}/{name}"
        if is_temporary(name):
            if _shard_of_temporary(name) not in live:
                report.leftovers.append(rel)
            continue
        if rel in referenced:
            continue
        if name.endswith(".npz") and name[:-4] in live:  # written, entry not yet recorded
            continue
        report.unknown_files.append(rel)
        kind = "a shard whose manifest entry was removed, or a foreign file"
        if name.endswith(".npz") and name[:-4] in {p["name"] for p in c.planned or []}:
            kind = "a planned shard whose manifest entry was removed"
        report.problems.append(f"unknown file {rel}: no manifest entry names it ({kind})")
    for folder in (c.path, c.path / CLAIM_DIR):
        if folder.is_dir():
            for name in sorted(os.listdir(folder)):
                if is_temporary(name) and (folder / name).is_file():
                    report.leftovers.append(os.fspath((folder / name).relative_to(c.path)))


def _progress(enabled: bool, total: int, path: Path):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"verify {path.name}", unit="shard", disable=not enabled)


# --------------------------------------------------------------------------- repair


@dataclass
class RepairResult:
    """What :func:`repair_cache` did.

    Attributes
    ----------
    quarantine : pathlib.Path or None
        Folder the files were moved to (``None``: nothing moved).
    moved : list of str
        Files moved there (paths relative to the cache).
    dropped : list of str
        Shard entries removed from the manifest (to be recomputed).
    removed_claims : list of str
        Stale claim files removed.
    sealed : bool
        Whether the manifest was (re)written with its integrity record.
    report : VerifyReport
        The cache as verified after the repair.
    """

    quarantine: Path | None = None
    moved: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    removed_claims: list[str] = field(default_factory=list)
    sealed: bool = False
    report: VerifyReport | None = None


def split_manifest_edits(edits: list[str]) -> tuple[set[str], list[str]]:
    """Split manifest edits into shard entries to drop and edits a repair cannot undo.

    Parameters
    ----------
    edits : list of str
        :attr:`VerifyReport.manifest_edits` (``"changed shards[x].sha256"``...).

    Returns
    -------
    shards : set of str
        Names of shard entries with an edited value (dropped by a repair).
    other : list of str
        Key paths outside the shard entries (config, plan...): not repairable.
    """
    shards, other = set(), []
    for edit in edits:
        path = edit.split(" ", 1)[1] if " " in edit else edit
        if path.startswith("shards[") and "]" in path:
            shards.add(path[len("shards[") : path.index("]")])
        elif path == "failed" or path.startswith("failed["):
            continue  # derived from the shard entries: rewritten with the manifest
        elif path == f"{INTEGRITY_KEY}.leaves":
            continue  # the record alone was edited; the values are as sealed
        else:
            other.append(path)
    return shards, other


def repair_cache(
    path: str | os.PathLike, stale_after: float = DEFAULT_STALE_AFTER, progress: bool = False
) -> RepairResult:
    """Make a cache consistent so that rerunning its extraction completes it; deletes nothing.

    Corrupt or missing shard files, files no entry names and leftover
    temporary files are moved to ``quarantine/<UTC time>/`` inside the cache;
    the entries of those shards (and of shard entries whose recorded values
    were edited) are dropped from the manifest; stale claims are removed;
    the manifest is sealed with its integrity record (also when it had none).

    Parameters
    ----------
    path : str or path-like
        The cache folder.
    stale_after : float
        Seconds without a heartbeat after which a claim counts as stale.
    progress : bool
        Show a progress bar while verifying.

    Returns
    -------
    RepairResult

    Raises
    ------
    CacheManifestError
        If values outside the shard entries were edited (config, info, plan,
        sizes...): their true values are unknown, so the message names them
        and asks to restore them or to extract into a new folder.
    """
    folder = Path(path)
    result = RepairResult()
    with locked(folder):  # no writer changes the manifest meanwhile
        c = Cache(folder, strict=False)
        report = verify_cache(c, progress=progress, stale_after=stale_after)
        edited, other = split_manifest_edits(report.manifest_edits or [])
        if other:
            shown = ", ".join(other[:8]) + (f" and {len(other) - 8} more" if len(other) > 8 else "")
            raise CacheManifestError(
                f"cannot repair {folder / MANIFEST}: values outside the shard entries were "
                f"edited ({shown}) and their recorded values are unknown; restore them as they "
                "were (the check passes again) or extract into a new folder",
                other,
            )
        live = {s.name for s in report.in_progress}
        drop = (set(report.bad_shards) | edited) - live
        entries = {e["name"]: e for e in c.manifest["shards"]}
        to_move = list(report.unknown_files) + list(report.leftovers)
        for name in sorted(drop):
            e = entries.get(name)
            if e and e.get("file") and (folder / e["file"]).exists():
                to_move.append(e["file"])
        if to_move:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            target = folder / QUARANTINE_DIR / stamp
            k = 1
            while target.exists():
                k += 1
                target = folder / QUARANTINE_DIR / f"{stamp}-{k}"
            for rel in to_move:
                dst = target / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(folder / rel, dst)
                result.moved.append(rel)
            result.quarantine = target
        for state in report.stale_claims:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(state.path)
                result.removed_claims.append(state.name)
        manifest = _load_manifest_file(folder)
        kept = [e for e in manifest["shards"] if e["name"] not in drop]
        result.dropped = sorted(e["name"] for e in manifest["shards"] if e["name"] in drop)
        if result.dropped or report.manifest_edits != []:
            manifest["shards"] = kept
            _write_manifest(folder, manifest)
            result.sealed = True
    result.report = verify_cache(folder, stale_after=stale_after)
    return result
