"""``defocus extract``: build a cache of maps, logits, features and Shapley values."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from defocus_forensics.commands._options import DATA_SPECS

HELP = "compute defocus maps, logits, features and attributions into a sharded .npz cache"

DESCRIPTION = f"""\
Run a defocus detector (and optionally an RGB detector) over a split of
--data (the test split unless the spec names another) and store, per
sample, the map the classifier sees, logits, penultimate features and
attributions (shap-gradient by default: expected gradients, 200 samples, 10
real background images) as shards of .npz plus a manifest. Images are
resized to the defocus model's input size unless the spec gives image_size.

The background images come from the train split of the same --data, never
from the images being explained (nor from a fake's own real partner);
--background-data SPEC draws them from other data instead. With split=all
or split=train the background must be given that way.

Rerunning the same command resumes: intact shards are skipped, missing or
corrupt ones are redone. A cache built with other settings, models or data
is refused, naming the difference. Unreadable images are listed in the
manifest with the reason; the rest completes.

{DATA_SPECS}

example (after the example of 'defocus train --help'):
  defocus extract --data index:runs/syn/index.csv --defocus-model runs/train-defocus/best.pt \\
      --nsamples 10 --out runs/syn-cache

variants (the same command, with):
  defocus extract ... --shard 3/8            one slice of 8 (job arrays), same --out
  defocus extract ... --workers 2            Dask LocalCluster with 2 processes
  defocus extract ... --scheduler tcp://host:8786
  defocus extract --merge runs/a/cache runs/b/cache --out runs/all/cache
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus extract``."""
    parser.add_argument("--out", required=True, help="cache folder to create or resume")
    parser.add_argument(
        "--data", metavar="SPEC", help="the data (its test split unless the spec names one)"
    )
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
    parser.add_argument(
        "--background-data",
        metavar="SPEC",
        help="data to draw the real background images from (default: the train split of --data)",
    )
    parser.add_argument("--shard-size", type=int, default=64, help="samples per shard (64)")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per model call")
    parser.add_argument("--shard", metavar="K/N", help="compute only slice K of N (0 <= K < N)")
    parser.add_argument(
        "--workers", type=int, default=0, help="parallel processes (a Dask LocalCluster)"
    )
    parser.add_argument("--scheduler", metavar="ADDRESS", help="existing Dask scheduler")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--no-image", action="store_true", help="do not store the images")
    parser.add_argument("--save-sparse", action="store_true", help="store sparse and edge maps")
    parser.add_argument("--merge", nargs="+", metavar="CACHE", help="merge these caches into --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)


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
    from defocus_forensics.logs import start_run_log
    from detector.data import background_data, open_data, parse_data_spec
    from detector.models import load_checkpoint
    from safeio import check_output_dir

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
        models = []
        for path in (args.defocus_model, args.rgb_model):
            if path is None:
                models.append(None)
                continue
            if not Path(path).is_file():
                raise FileNotFoundError(f"checkpoint not found: {path}")
            models.append(load_checkpoint(path))
        size = int(models[0].config.get("image_size") or 299)
        spec = parse_data_spec(args.data)
        dataset = open_data(spec, spec.split or "test", image_size=size)
        start_run_log(check_output_dir(args.out))  # the cache folder keeps the run's log
        background = background_data(spec, dataset, args.background_data, image_size=size)
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
            info={
                "command": " ".join(sys.argv),
                "data_spec": dataset.spec,
                "background_spec": background.spec if hasattr(background, "spec") else None,
            },
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
