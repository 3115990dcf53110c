"""``defocus extract``: build a cache of maps, logits, features and Shapley values."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "compute defocus maps, logits, features and attributions into a sharded .npz cache"

DESCRIPTION = """\
Run a defocus detector (and optionally an RGB detector) over a dataset and
store, per sample, the map the classifier sees, logits, penultimate
features and attributions (shap-gradient by default: expected gradients,
200 samples, 10 real background images) as shards of .npz plus a manifest.

Rerunning the same command resumes: intact shards are skipped, missing or
corrupt ones are redone. A cache built with other settings, models or data
is refused, naming the difference. Unreadable images are listed in the
manifest with the reason; the rest completes.

data specs:
  synthetic:n=64,size=64,seed=0        built-in depth-of-field data
  folders:real=DIR,fake=DIR            real and fake image folders
  index:FILE.csv[,split=test]          an index CSV (defocus make-data)
  cifake:root=DIR[,split=test]         CIFAKE
  ffpp:root=DIR,manipulations=Deepfakes+FaceSwap[,split=test,compression=c0]
  (file-backed specs accept image_size=N to resize)

examples:
  defocus extract --data synthetic:n=64,size=64 --defocus-model runs/d.safetensors \\
      --rgb-model runs/r.safetensors --out runs/syn/cache
  defocus extract ... --shard 3/8            one slice of 8 (job arrays), same --out
  defocus extract ... --workers 2            Dask LocalCluster with 2 processes
  defocus extract ... --scheduler tcp://host:8786
  defocus extract --merge runs/a/cache runs/b/cache --out runs/all/cache
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus extract``."""
    parser.add_argument("--out", required=True, help="cache folder to create or resume")
    parser.add_argument("--data", help="dataset spec (see above)")
    parser.add_argument("--defocus-model", help="checkpoint of a 'defocus' detector")
    parser.add_argument("--rgb-model", help="checkpoint of an 'rgb' detector (optional)")
    parser.add_argument(
        "--explainer",
        default="shap-gradient",
        choices=[
            "shap-gradient",
            "captum-gradientshap",
            "captum-ig",
            "captum-deeplift",
            "captum-occlusion",
        ],
    )
    parser.add_argument("--nsamples", type=int, default=200, help="gradient evaluations (200)")
    parser.add_argument(
        "--sampling",
        default="shap",
        choices=["shap", "iid", "stratified"],
        help="shap-gradient sampling; 'stratified' needs ~1/3 of the evaluations for the "
        "same error",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="further explainer option, e.g. n_steps=32, baseline=mean, window=16, backend=shap",
    )
    parser.add_argument("--seed", type=int, default=0, help="run seed (0)")
    parser.add_argument("--background", type=int, default=10, help="real background images (10)")
    parser.add_argument("--background-data", help="dataset spec to draw the background from")
    parser.add_argument("--shard-size", type=int, default=64, help="samples per shard (64)")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per model call")
    parser.add_argument("--shard", metavar="K/N", help="compute only slice K of N (0 <= K < N)")
    parser.add_argument("--workers", type=int, default=0, help="Dask LocalCluster processes")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="existing Dask scheduler")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--no-image", action="store_true", help="do not store the images")
    parser.add_argument("--save-sparse", action="store_true", help="store sparse and edge maps")
    parser.add_argument("--merge", nargs="+", metavar="CACHE", help="merge these caches into --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _fail(message: str) -> int:
    print(f"defocus extract: error: {message}", file=sys.stderr)
    return 2


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_spec(spec: str) -> tuple[str, dict]:
    """Split ``kind:key=value,...`` (a bare value after ``kind:`` is ``root``/``path``)."""
    kind, _, rest = spec.partition(":")
    options: dict = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            options["path" if kind == "index" else "root"] = key
        else:
            options[key.strip()] = value.strip()
    return kind.strip(), options


def open_dataset(spec: str):
    """Build a :mod:`detector.data` dataset from a spec string (see ``--help``)."""
    from detector import data

    kind, o = parse_spec(spec)
    size = int(o.pop("image_size")) if "image_size" in o else None
    if kind == "synthetic":
        kw = {k: _value(v) for k, v in o.items()}
        if "fake_groups" in kw:
            kw["fake_groups"] = str(kw["fake_groups"]).split("+")
        return data.SyntheticDoF(**{"n": 64, **kw})
    if kind == "folders":
        if "real" not in o or "fake" not in o:
            raise ValueError("folders spec needs real=DIR,fake=DIR")
        return data.RealFakeFolders(o["real"], o["fake"], image_size=size)
    if kind == "index":
        if "path" not in o:
            raise ValueError("index spec needs the CSV path: index:FILE.csv")
        return data.RealFakeFolders.from_index(o["path"], split=o.get("split"), image_size=size)
    if kind == "cifake":
        return data.CIFake(o["root"], split=o.get("split", "test"), image_size=size)
    if kind == "ffpp":
        manip = o.get("manipulations", "Deepfakes").split("+")
        extra = {k: _value(v) for k, v in o.items() if k not in ("root", "manipulations")}
        return data.FaceForensicsPP(o["root"], manipulations=manip, image_size=size, **extra)
    raise ValueError(f"unknown data kind {kind!r}; use synthetic, folders, index, cifake or ffpp")


def run(args: argparse.Namespace) -> int:
    """Run ``defocus extract``."""
    from cache import CacheError, merge_caches

    if args.merge:
        try:
            c = merge_caches(args.out, args.merge)
        except (CacheError, ValueError, FileNotFoundError) as err:
            return _fail(str(err))
        print(f"merged {len(args.merge)} caches into {c.path}: {c.n_samples()} samples, "
              f"groups {c.groups}")  # fmt: skip
        return 0
    if not args.data or not args.defocus_model:
        return _fail("--data and --defocus-model are required (or --merge)")

    import torch  # noqa: F401 - heavy imports only when work is done

    from cache.extract import ExtractConfig, extract
    from detector.models import load_checkpoint

    try:
        options = {}
        for item in args.option:
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"--option must look like KEY=VALUE, got {item!r}")
            options[key.strip()] = _value(value.strip())
        config = ExtractConfig(
            explainer=args.explainer,
            nsamples=args.nsamples,
            sampling=args.sampling,
            seed=args.seed,
            n_background=args.background,
            shard_size=args.shard_size,
            batch_size=args.batch_size,
            save_image=not args.no_image,
            save_sparse=args.save_sparse,
            explainer_options=options,
        )
        dataset = open_dataset(args.data)
        background = open_dataset(args.background_data) if args.background_data else None
        models = []
        for path in (args.defocus_model, args.rgb_model):
            if path is None:
                models.append(None)
                continue
            if not Path(path).is_file():
                raise FileNotFoundError(f"checkpoint not found: {path}")
            models.append(load_checkpoint(path))
        result = extract(
            dataset,
            args.out,
            models[0],
            models[1],
            config=config,
            background=background,
            shard=args.shard,
            workers=args.workers,
            scheduler=args.scheduler,
            device=args.device,
            progress=not args.quiet,
            info={"command": " ".join(sys.argv), "data_spec": args.data},
        )
    except (CacheError, ValueError, FileNotFoundError) as err:
        return _fail(str(err))
    c = result.cache
    print(
        f"{c.path}: {c.n_samples()} samples in {len(c.shards)} shards "
        f"({result.n_written} written now, {result.n_skipped} already done), "
        f"groups {c.groups}, {result.seconds:.1f} s"
    )
    if result.failed:
        print(f"{len(result.failed)} samples failed (listed in the manifest):", file=sys.stderr)
        for f in result.failed[:10]:
            print(f"  {f['id']}: {f['reason']}", file=sys.stderr)
    return 0
