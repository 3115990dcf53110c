"""Cost of the manifest's integrity record: write + seal, open + check, naming an edit.

Builds a synthetic manifest of N shard entries and N planned shards (no
shard files: only the manifest is measured), writes it sealed as
``CacheWriter`` does after every shard, opens it as ``open_cache`` does, and
times the per-value digests that are computed only to name an edit.

Run: ``.venv/bin/python benchmarks/cache_manifest.py [--shards 100 1600] [--repeat 5]``.
Report the machine's load with the numbers (``uptime``): they are wall times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from cache import integrity
from cache.store import _new_manifest, _write_manifest, open_cache


def _manifest(n: int) -> dict:
    m = _new_manifest({"explainer": {"name": "shap-gradient", "nsamples": 200}}, {"command": "x"})

    def sha(k: int) -> str:
        return hashlib.sha256(str(k).encode()).hexdigest()

    m["planned"] = [
        {"name": f"{k:05d}-real", "group": "real", "n_samples": 64, "ids_sha256": sha(k)}
        for k in range(n)
    ]
    m["shards"] = [
        {"name": f"{k:05d}-real", "group": "real", "file": f"shards/{k:05d}-real.npz",
         "n_samples": 64, "sha256": sha(k), "bytes": 123456, "first_id": f"id{k}", "failed": []}
        for k in range(n)
    ]  # fmt: skip
    m["fields"] = ["id", "group", "label", "pair_id"]
    return m


def measure(n: int, repeat: int) -> dict:
    """Return the wall times (seconds) of writing, opening and locating an edit at ``n`` shards."""
    folder = Path(tempfile.mkdtemp(prefix="manifest-bench-"))
    (folder / "shards").mkdir()
    m = _manifest(n)
    t0 = time.perf_counter()
    for _ in range(repeat):
        if (folder / "manifest.json").exists():  # an unchanged manifest is not rewritten
            os.unlink(folder / "manifest.json")
        _write_manifest(folder, m)
    write = (time.perf_counter() - t0) / repeat
    t0 = time.perf_counter()
    for _ in range(repeat):
        open_cache(folder)
    open_s = (time.perf_counter() - t0) / repeat
    body = json.loads((folder / "manifest.json").read_text())
    body.pop(integrity.INTEGRITY_KEY)
    t0 = time.perf_counter()
    integrity.leaves(body)
    locate = time.perf_counter() - t0
    return {
        "shards": n,
        "manifest_mb": (folder / "manifest.json").stat().st_size / 1e6,
        "write_seal_s": write,
        "open_check_s": open_s,
        "name_edit_s": locate,
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    """Print one JSON line per manifest size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, nargs="+", default=[100, 1600])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for n in args.shards:
        print(json.dumps(measure(n, args.repeat)))


if __name__ == "__main__":
    main()
