"""``defocus verify``: check every shard of a cache against its manifest; no torch."""

from __future__ import annotations

import argparse
import sys

HELP = "check a cache: every shard present, sha256 as recorded, readable, schema-valid"

DESCRIPTION = """\
Read every shard of a cache and check it against the manifest: file present,
size and sha256 as recorded (catches a flipped byte or a truncated file),
readable without unpickling, arrays following the schema, sample ids unique.
Exit status 0 when intact, 1 when a shard is bad (each bad shard is named),
2 when the folder is not a cache.

example:
  defocus verify runs/demo/cache
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus verify``."""
    parser.add_argument("cache", help="cache folder")


def run(args: argparse.Namespace) -> int:
    """Run ``defocus verify``."""
    from cache import CacheError, open_cache

    try:
        c = open_cache(args.cache)
    except CacheError as err:
        print(f"defocus verify: error: {err}", file=sys.stderr)
        return 2
    report = c.verify()
    if report.ok:
        print(f"ok: {report.n_shards} shards, {report.n_samples} samples intact in {c.path}")
        return 0
    print(f"FAILED: {len(report.problems)} bad shards in {c.path}", file=sys.stderr)
    for p in report.problems:
        print(f"  {p}", file=sys.stderr)
    return 1
