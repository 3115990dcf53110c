"""``defocus import-legacy``: convert the paper's pickled .npz files into a cache."""

from __future__ import annotations

import argparse
import sys
import warnings

HELP = "convert the paper's pickled shap_data_*.npz files into a cache (needs --trust-pickle)"

DESCRIPTION = """\
The paper's notebook saves shap_data_real.npz and shap_data_fake_<M>.npz,
whose arrays (dmaps, defocus_shaps, rgb_shaps) are Python lists pickled into
object arrays. Reading them means unpickling, and unpickling runs code
stored in the file, so this command refuses unless you pass --trust-pickle:
do that only for files you trust. The result is an ordinary cache (plain
arrays, checksums) that every analysis reads. Groups come from the file
names; fakes are paired with the real sample at the same list position, as
the paper pairs them; the RGB attributions hold channel 0 only
(field attr_rgb_c0), as the paper saved them.

example:
  defocus import-legacy shap_data_real.npz shap_data_fake_Deepfakes.npz \\
      --out runs/paper/cache --trust-pickle
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus import-legacy``."""
    parser.add_argument("files", nargs="+", help="shap_data_*.npz files")
    parser.add_argument("--out", required=True, help="cache folder to create")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow unpickling these files (runs code stored in them)",
    )
    parser.add_argument("--group", action="append", help="group name per file (with --label)")
    parser.add_argument("--label", action="append", type=int, help="0 real / 1 fake per file")


def run(args: argparse.Namespace) -> int:
    """Run ``defocus import-legacy``."""
    from cache import CacheError
    from cache.legacy import PICKLE_WARNING, import_legacy

    if not args.trust_pickle:
        print(
            "defocus import-legacy: error: these files can only be read by unpickling, and "
            f"{PICKLE_WARNING}. Rerun with --trust-pickle if you trust them.",
            file=sys.stderr,
        )
        return 2
    print(f"warning: {PICKLE_WARNING}", file=sys.stderr)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            c = import_legacy(
                args.files, args.out, trust_pickle=True, groups=args.group, labels=args.label
            )
    except (CacheError, ValueError, FileNotFoundError, OSError) as err:
        print(f"defocus import-legacy: error: {err}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{g} {c.n_samples(g)}" for g in c.groups)
    print(f"imported {c.n_samples()} samples into {c.path} ({counts})")
    return 0
