"""``defocus verify``: is a cache complete, incomplete or corrupt, and what to do; no torch."""

from __future__ import annotations

import argparse
import shlex
import sys

HELP = "check a cache: complete, incomplete (resumable) or corrupt, naming every bad file or value"

#: Exit statuses of ``defocus verify`` (also listed in its ``--help``).
EXIT_COMPLETE, EXIT_CORRUPT, EXIT_ERROR, EXIT_INCOMPLETE = 0, 1, 2, 3

DESCRIPTION = """\
Check a cache folder in full and say what it is:

  COMPLETE    every planned shard is present and intact;
  INCOMPLETE  all that is present is intact, but planned shards are missing
              (an extraction was interrupted, or is still running): the
              message says planned vs present and the command that resumes;
  CORRUPT     something present is wrong: a shard whose bytes differ from the
              manifest (flipped byte, truncation, missing file), a shard that
              holds other samples than its entry says, a manifest value
              edited after it was written (named by its key path, e.g.
              config.explainer.nsamples), or an unknown file in shards/.

Each shard is re-hashed (sha256), read without unpickling and checked
against the schema; sample ids must be unique. Temporary files of
interrupted writes are reported as harmless leftovers, claims of killed
runs as stale. A cache written before manifests carried an integrity
record is reported as unprotected (its edits cannot be detected).

--repair moves corrupt shards, unknown files and leftovers to
CACHE/quarantine/<time>/ (nothing is deleted), drops their manifest entries
and removes stale claims, so that rerunning the same 'defocus extract'
recomputes exactly what was taken out; it also records the integrity of an
unprotected manifest. Values edited outside the shard entries (config, plan)
cannot be repaired: restore them, or extract into a new folder.

exit status:
  0  COMPLETE
  1  CORRUPT
  2  error: not a cache, bad arguments, or a repair that cannot proceed
  3  INCOMPLETE

examples:
  defocus verify --cache runs/demo/cache
  defocus verify runs/demo/cache                 # positional form, the same
  defocus verify --cache runs/demo/cache --repair
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus verify``."""
    parser.add_argument("cache_path", nargs="?", metavar="CACHE", help="cache folder (or --cache)")
    parser.add_argument("--cache", dest="cache", metavar="PATH", help="cache folder")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="move corrupt/unknown files to CACHE/quarantine/ and drop their entries "
        "(deletes nothing), so rerunning the extraction recomputes them",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def cache_argument(args: argparse.Namespace, command: str) -> str:
    """Return the cache folder given as ``--cache PATH`` or positionally (exactly one).

    Raises
    ------
    ValueError
        If neither or two different folders are given.
    """
    given = [p for p in (args.cache, args.cache_path) if p is not None]
    if not given:
        raise ValueError(f"give the cache folder: defocus {command} --cache PATH")
    if len(given) == 2 and given[0] != given[1]:
        raise ValueError(
            f"two cache folders given: --cache {given[0]!r} and {given[1]!r}; give one"
        )
    return given[0]


def _say(lines: list[str], stream) -> None:
    for line in lines:
        print(line, file=stream)


def _describe(report, path) -> tuple[int, list[str]]:
    """Status line and detail lines of a verify report, with the exit status."""
    from cache.verify import split_manifest_edits

    where = str(path)
    quoted = shlex.quote(where)
    if report.status == "corrupt":
        lines = [f"CORRUPT: {len(report.problems)} problem(s) in {where}"]
        lines += [f"  {p}" for p in report.problems]
        _, other = split_manifest_edits(report.manifest_edits or [])
        if other:
            lines.append(
                "  next: restore the edited manifest values as they were (the check then "
                "passes), or extract into a new folder; --repair cannot know the true values"
            )
        else:
            edited, _ = split_manifest_edits(report.manifest_edits or [])
            then = f", then: {report.resume}" if (report.bad_shards or edited) else ""
            lines.append(
                f"  next: defocus verify --cache {quoted} --repair   (moves the bad files to "
                f"{where}/quarantine/, deletes nothing){then}"
            )
        return EXIT_CORRUPT, lines
    if report.status == "incomplete":
        lines = []
        if report.missing:
            lines.append(
                f"INCOMPLETE: {report.n_present} of {report.n_planned} planned shards present, "
                f"{len(report.missing)} missing ({_names(report.missing)}) in {where}; "
                "everything present is intact"
            )
        else:
            lines.append(f"INCOMPLETE: shards are being computed in {where}")
        if report.in_progress:
            holders = sorted({s.holder for s in report.in_progress})
            lines.append(
                f"  {len(report.in_progress)} shard(s) being computed now by "
                f"{', '.join(holders)}: an extraction is running; verify again when it ends"
            )
        lines.append(f"  resume with: {report.resume}")
        return EXIT_INCOMPLETE, lines
    if report.n_planned is not None:
        head = f"{report.n_present} of {report.n_planned} planned shards"
    else:
        head = f"{report.n_shards} shards"
    return EXIT_COMPLETE, [f"COMPLETE: {head}, {report.n_samples} samples intact in {where}"]


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")


def run(args: argparse.Namespace) -> int:
    """Run ``defocus verify``."""
    from cache import Cache, repair_cache, verify_cache

    path = cache_argument(args, "verify")
    cache = Cache(path, strict=False)  # an edited manifest is reported, not refused
    if args.repair:
        result = repair_cache(cache.path, progress=not args.quiet)
        report = result.report
        done = []
        if result.moved:
            done.append(f"moved {len(result.moved)} file(s) to {result.quarantine}")
        if result.dropped:
            done.append(f"dropped the entries of {_names(result.dropped)} (to recompute)")
        if result.removed_claims:
            done.append(f"removed {len(result.removed_claims)} stale claim(s)")
        if result.sealed:
            done.append("sealed the manifest with its integrity record")
        print(f"repaired {cache.path}: " + ("; ".join(done) if done else "nothing to repair"))
    else:
        report = verify_cache(cache, progress=not args.quiet)
    status, lines = _describe(report, cache.path)
    for note in report.notes:
        print(f"defocus verify: warning: {note}", file=sys.stderr)
    _say(lines, sys.stdout if status == 0 else sys.stderr)
    return status
