"""``defocus inspect``: what a cache holds (groups, fields, config, failures); no torch."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

HELP = "describe a cache: groups, sample counts, fields, explainer, models, failures"

DESCRIPTION = """\
Print what a cache folder holds without loading its arrays: the groups with
their sample counts, every field with its dtype and per-sample shape, the
explainer and its parameters, the model fingerprints, and the samples that
failed with their reasons. Works without torch.

The manifest's integrity is checked first: a manifest edited after it was
written is refused (exit status 2), naming the edited values, so that no
edited value is shown as if true ('defocus verify' says what to do). A
cache written before manifests carried an integrity record is shown with
a warning that it is unprotected. Only verify re-hashes the shards.

examples:
  defocus inspect --cache runs/demo/cache
  defocus inspect runs/demo/cache                    # positional form, the same
  defocus inspect --cache runs/demo/cache --json     # the whole manifest as JSON
  defocus inspect --cache runs/demo/cache --shards   # one line per shard
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus inspect``."""
    parser.add_argument("cache_path", nargs="?", metavar="CACHE", help="cache folder (or --cache)")
    parser.add_argument("--cache", dest="cache", metavar="PATH", help="cache folder")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.add_argument("--shards", action="store_true", help="list every shard")


def _shape(spec, sizes) -> str:
    dims = ["N"] + [str(sizes.get(s, s)) if not s.isdigit() else s for s in spec.shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def run(args: argparse.Namespace) -> int:
    """Run ``defocus inspect``."""
    from cache import FIELDS, UnprotectedCacheWarning, open_cache
    from defocus_forensics.commands.verify import cache_argument

    path = cache_argument(args, "inspect")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnprotectedCacheWarning)
        c = open_cache(path)  # refuses an edited manifest, naming the edits
    for w in caught:
        if issubclass(w.category, UnprotectedCacheWarning):
            print(f"defocus inspect: warning: {w.message}", file=sys.stderr)
        else:  # pragma: no cover - other warnings as Python would show them
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if args.json:
        print(json.dumps(c.manifest, indent=1))
        return 0
    m = c.manifest
    print(f"cache      {c.path}")
    print(f"format     {m['format']} v{m['format_version']}")
    sealed = "sealed, intact" if c.protected else "none (unprotected: edits undetectable)"
    print(f"integrity  {sealed}")
    print(f"samples    {c.n_samples()} in {len(c.shards)} shards")
    if c.planned is not None:
        present = {e["name"] for e in m["shards"]}
        n_present = sum(p["name"] in present for p in c.planned)
        print(f"planned    {len(c.planned)} shards, {n_present} present (verify checks them)")
    for g in c.groups:
        print(f"  {g:<24} {c.n_samples(g):>8}")
    print("fields")
    for f in c.fields:
        spec = FIELDS[f]
        print(f"  {f:<22} {spec.kind:<8} {_shape(spec, c.sizes)}")
    cfg = c.config
    if "explainer" in cfg:
        e = cfg["explainer"]
        params = ", ".join(f"{k}={v}" for k, v in e.items() if k != "name")
        print(f"explainer  {e.get('name')} ({params})")
    for kind, model in (cfg.get("models") or {}).items():
        if model:
            conf = model.get("config") or {}
            print(
                f"model      {kind}: {conf.get('backbone', model.get('class'))} "
                f"sha256 {model['sha256'][:16]}"
            )
    if "data" in cfg:
        d = cfg["data"]
        desc = (d.get("describe") or {}).get("dataset", "")
        print(f"data       {desc} n={d['n']} sha256 {d['sha256'][:16]}")
    if "legacy_import" in cfg:
        print(f"legacy     imported from {', '.join(cfg['legacy_import']['files'])}")
    failed = c.failed
    print(f"failed     {len(failed)}")
    for f in failed[:20]:
        print(f"  {f['id']} ({f.get('group', '')}): {f['reason']}")
    if len(failed) > 20:
        print(f"  ... {len(failed) - 20} more (defocus inspect --json)")
    if args.shards:
        print("shards")
        for e in m["shards"]:
            sha = e.get("sha256", "")[:12]
            print(f"  {e['name']:<28} {e['group']:<20} {e['n_samples']:>6}  {sha}")
    return 0
