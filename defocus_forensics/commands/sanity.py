"""``defocus sanity``: do the attributions depend on the model? (model randomisation check)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "model-randomisation sanity check of the attributions (trained vs re-initialised weights)"

DESCRIPTION = """\
Adebayo et al. (2018), "Sanity Checks for Saliency Maps": attribute the same
samples with the trained model and with copies whose weights are
re-initialised, cascading from the top layer down until the whole model is
random, and compare the maps by the Spearman rank correlation of
|attribution| per sample. Attributions that hardly change (median Spearman
above --threshold with every layer re-initialised) do not reflect what the
model learned: the model is FLAGGED, and alignment or localisation scores
computed from its attributions say little about it.

Writes OUT/sanity.json (per model: stages, per-sample correlations, medians,
the verdict) and OUT/sanity.csv (one row per model, stage and sample).
Samples: the first --n fakes of the data in order (then reals). The
explainer background: --background real images of --background-data
(default: of --data).

data specs: as for 'defocus extract' (e.g. synthetic:n=64,size=64,seed=0).

example:
  defocus sanity --defocus-model runs/demo/models/defocus/best.pt \\
      --data synthetic:n=32,size=64,seed=2000 --out runs/demo/sanity --n 8 --nsamples 16
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus sanity``."""
    parser.add_argument("--defocus-model", required=True, metavar="CKPT",
                        help="checkpoint of a 'defocus' detector")  # fmt: skip
    parser.add_argument("--rgb-model", metavar="CKPT", help="checkpoint of an 'rgb' detector")
    parser.add_argument("--data", required=True, metavar="SPEC", help="dataset spec")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--n", type=int, default=16, help="samples attributed (default 16)")
    parser.add_argument("--stages", type=int, default=6,
                        help="at most this many cascading stages (default 6)")  # fmt: skip
    parser.add_argument(
        "--explainer",
        default="shap-gradient",
        choices=["shap-gradient", "captum-gradientshap", "captum-ig", "captum-occlusion"],
    )
    parser.add_argument("--nsamples", type=int, default=50,
                        help="gradient evaluations per sample (default 50)")  # fmt: skip
    parser.add_argument("--background", type=int, default=10, help="real background images (10)")
    parser.add_argument("--background-data", metavar="SPEC", help="dataset spec of the background")
    parser.add_argument("--threshold", type=float, default=None,
                        help="flag when the median Spearman with every layer re-initialised "
                        "exceeds this (default 0.5, AnalysisConfig.sanity_threshold)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed (explainer and new weights)")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per explainer call")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Run the check; exit status 0 also when a model is flagged (that is a finding)."""
    import torch

    from analysis.config import AnalysisConfig
    from analysis.sanity import sanity_result, write_sanity
    from cache.explainers import ExplainerConfig
    from cache.extract import _background_inputs, _choose_background
    from cache.sanity import (
        cascade_stages,
        parameter_layers,
        randomisation_attributions,
        sanity_inputs,
        select_samples,
    )
    from defocus_forensics.logs import start_run_log
    from detector.data import background_data, open_data, parse_data_spec
    from detector.device import resolve_device
    from detector.memory import require_memory
    from detector.models import load_checkpoint
    from safeio import check_output_dir

    for name in ("n", "stages", "nsamples", "background", "batch_size"):
        _positive(getattr(args, name), "--" + name.replace("_", "-"))
    threshold = AnalysisConfig(
        sanity_threshold=AnalysisConfig.sanity_threshold
        if args.threshold is None
        else args.threshold
    ).sanity_threshold
    config = ExplainerConfig(name=args.explainer, seed=args.seed, nsamples=args.nsamples)
    device = resolve_device(args.device)
    paths = {"defocus": args.defocus_model, "rgb": args.rgb_model}
    models = {}
    for kind, path in paths.items():
        if path is None:
            continue
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        models[kind] = load_checkpoint(path).to(device).eval()
    size = int(next(iter(models.values())).config.get("image_size") or 299)
    spec = parse_data_spec(args.data)
    dataset = open_data(spec, spec.split or "test", image_size=size)
    indices = select_samples(dataset, args.n)
    if not indices:
        raise ValueError(f"the data {args.data!r} holds no sample")
    source = background_data(spec, dataset, args.background_data, image_size=size)
    _, bg_images = _choose_background(source, args.background, args.seed)
    backgrounds = _background_inputs(models, bg_images, device)
    plans = {}
    for kind, model in models.items():
        stages = cascade_stages(parameter_layers(model), args.stages)
        numel = int(backgrounds[kind][0].numel())
        # attributions of every stage plus the trained model, float32, and two model copies
        need = 4 * numel * len(indices) * (len(stages) + 1) + 2 * sum(
            p.numel() * 4 for p in model.parameters()
        )
        require_memory(need, f"--n {args.n} with {len(stages)} stages ({kind} model)",
                       hint="lower --n or --stages")  # fmt: skip
        plans[kind] = stages
    out = check_output_dir(args.out)
    start_run_log(out)
    results = []
    for kind, model in models.items():
        x, ids = sanity_inputs(model, dataset, indices, kind, device)
        trained, randomised = randomisation_attributions(
            model, x.to(device), ids, backgrounds[kind].to(device), config, plans[kind],
            seed=args.seed, batch_size=args.batch_size, progress=not args.quiet,
        )  # fmt: skip
        info = {"checkpoint": str(Path(paths[kind]).resolve()), "explainer": config.to_dict(),
                "seed": args.seed, "n_background": len(backgrounds[kind])}  # fmt: skip
        results.append(sanity_result(kind, ids, trained, randomised, plans[kind], threshold, info))
        del trained, randomised
        if device.type == "cuda":
            torch.cuda.empty_cache()
    files = write_sanity(
        results,
        out,
        extra={"command": " ".join(sys.argv), "data_spec": args.data, "threshold": threshold},
    )
    verdicts = "; ".join(r.message for r in results)
    print(f"sanity: {verdicts}. Written {files['json']} and {files['csv']}")
    return 0
