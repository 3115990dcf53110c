"""The main job: synthetic data -> two detectors -> cache -> every analysis -> report.

:func:`run_demo` wires the stages of the toolkit on the built-in
:class:`detector.data.SyntheticDoF` data (real thin-lens renderings and
fakes that break the lens physics), so that one command shows the whole
pipeline on a laptop CPU:

1. ``data``: the train / validation / test splits of one ``synthetic:`` data spec
   (:func:`demo_data_spec`; the same cut ``--data`` gives every command), each
   image rendered once, by two processes (:func:`detector.data.prerender`);
2. ``train-defocus``, ``train-rgb``: a small timm backbone on defocus maps and on
   RGB images (:func:`detector.train.train`: one-cycle learning rate, bfloat16
   autocast where the CPU has it, channels-last), best checkpoint by validation AUC;
3. ``evaluate``: test metrics of both models (:func:`detector.train.evaluate`);
4. ``extract``: the cache of the test split with both models and shap-gradient
   attributions (:func:`cache.extract.extract`);
5. ``sanity``: the model-randomisation check of both models' attributions on a
   few test fakes (:mod:`cache.sanity`, :mod:`analysis.sanity`);
6. ``analyse``: every analysis (:func:`analysis.summary.summarise_cache`), the
   summary table, the headline numbers and every figure
   (:mod:`defocus_forensics.figures`);
7. ``notebooks``: every notebook executed on the cache, with HTML renderings; they read
   only the cache and the sanity check, so they run in a background thread beside the
   ``analyse`` stage (its stage time in ``run.json`` is its own, not the wait);
8. ``report``: ``report.html``.

The analyses, figures, notebooks and report of a run all use ONE
:class:`analysis.config.AnalysisConfig`, that of the preset
(:data:`ANALYSIS_FULL` or :data:`ANALYSIS_QUICK`, with the run's seed),
recorded in ``run.json``, ``summary.json`` and ``figures_manifest.json``:
the same run gives the same numbers everywhere.

Layout of the output folder ``OUT`` (default ``runs/demo``)::

    OUT/models/{defocus,rgb}/   best.pt, last.pt, history.csv, metrics.json, test_metrics.json
    OUT/cache/                  manifest.json + shards/*.npz
    OUT/sanity/                 sanity.json, sanity.csv (model-randomisation check)
    OUT/summary/                summary.csv, summary.md (every number of every analysis)
    OUT/summary.json            headline numbers + the summary table
    OUT/figures/                *.pdf, *.png, figures_manifest.json
    OUT/notebooks/              *.ipynb (executed), *.html, per-notebook outputs
    OUT/report.html             the self-contained report
    OUT/run.json                the demo's settings and each stage's status and time

Rerunning with the same settings reuses finished stages: training resumes
from ``last.pt``, extraction skips intact shards, and the analysis,
notebook and report stages are skipped when their inputs (cache manifest,
parameters, notebook sources) have not changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from analysis.config import AnalysisConfig
from defocus_forensics.headline import json_safe, write_summary_json
from safeio import atomic_write_json

logger = logging.getLogger(__name__)

__all__ = [
    "ANALYSIS_FULL",
    "ANALYSIS_QUICK",
    "FULL",
    "QUICK",
    "DemoAnalysis",
    "DemoConfig",
    "DemoResult",
    "format_closing_summary",
    "run_demo",
]

#: Settings of the full demo: about 4 minutes on 2 quiet CPU cores, test AUC 0.967 (defocus)
#: and 0.973 (RGB) at seed 0; docs/demo-speed.md. 96 px, batch 16 and a one-cycle rate peaking
#: at 3e-3 train a step in 0.14 s of one core (128 px, batch 32, constant 1e-3: 1.1 s for twice
#: the images); 5 defocus epochs gave 0.959, 6 give the margin for 18 s more.
FULL: dict[str, Any] = dict(
    image_size=96,
    n_train=3200,
    n_val=200,
    n_test=128,
    epochs=6,
    rgb_epochs=2,
    batch_size=16,
    lr=3e-3,
    nsamples=16,
    n_background=10,
)
#: Settings of ``--quick`` (about 30 s on 2 quiet CPU cores, most of it the analyses and the
#: notebooks, which run side by side; used by the tests). docs/demo-speed.md, "The quick demo".
QUICK: dict[str, Any] = dict(
    image_size=64,
    n_train=64,
    n_val=16,
    n_test=32,
    epochs=2,
    rgb_epochs=2,
    batch_size=16,
    lr=1e-3,
    nsamples=4,
    n_background=4,
)


@dataclass(frozen=True)
class DemoAnalysis:
    """Analysis settings of a demo run: ONE AnalysisConfig for every output, and the model checks.

    Parameters
    ----------
    config : AnalysisConfig
        Every analysis setting; figures, summary, headline, notebooks and
        report all use it (its seed is the run's).
    deletion_samples, deletion_steps : int
        Samples per group and removed fractions of the deletion curves.
    sanity_samples : int
        Test fakes attributed by the model-randomisation check.
    sanity_stages : int
        Cascading randomisation stages (the top layer alone ... every layer);
        1: every layer at once only.
    sanity_nsamples : int
        shap-gradient samples per attribution in the check. Few samples make
        the maps noisy: the check also explains the trained model with another
        explainer seed (the noise ceiling) and needs that ceiling well above
        the trained-vs-random correlation to separate them (at 4 samples it
        does not: 0.41 vs 0.36 on the quick demo; at 12: 0.70 vs 0.35).
    """

    config: AnalysisConfig = field(default_factory=AnalysisConfig)
    deletion_samples: int = 16
    deletion_steps: int = 6
    sanity_samples: int = 16
    sanity_stages: int = 4
    sanity_nsamples: int = 16

    def __post_init__(self):
        if isinstance(self.config, dict):
            object.__setattr__(self, "config", AnalysisConfig.from_dict(self.config))
        if not isinstance(self.config, AnalysisConfig):
            raise ValueError(f"config must be an AnalysisConfig, got {type(self.config).__name__}")
        minimum = {"deletion_samples": 1, "deletion_steps": 2, "sanity_samples": 0,
                   "sanity_stages": 1, "sanity_nsamples": 1}  # fmt: skip
        for key, low in minimum.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict (``config`` as a dict too)."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["config"] = self.config.to_dict()
        return out


#: Analysis settings of the full demo: the AnalysisConfig defaults (999 permutations, so a
#: p-value can reach 0.001; 1000 bootstrap resamples) with the paper's perplexity sweep.
ANALYSIS_FULL = DemoAnalysis(
    config=AnalysisConfig(perplexities=(5, 10, 20, 40)),
    deletion_samples=16,
    deletion_steps=6,
    sanity_samples=8,
    sanity_stages=3,
    sanity_nsamples=32,
)
#: Analysis settings of ``--quick``: the same statistics (999 permutations are cheap) on its
#: few samples; a smaller t-SNE sweep and deletion curves, and a randomisation check of 3 fakes
#: with the whole model re-initialised at once (12 shap-gradient samples: at 4 the explainer's
#: own noise is as large as the effect of the weights; about 10 % of the run's CPU time).
ANALYSIS_QUICK = DemoAnalysis(
    config=AnalysisConfig(perplexities=(5, 10)),
    deletion_samples=4,
    deletion_steps=5,
    sanity_samples=3,
    sanity_stages=1,
    sanity_nsamples=12,
)

#: Samples from which the data stage renders with two processes (each takes ~3 s to start).
_PARALLEL_RENDER = 512

_STAGES = (
    "data",
    "train-defocus",
    "train-rgb",
    "evaluate",
    "extract",
    "sanity",
    "analyse",
    "notebooks",
    "report",
)


@dataclass(frozen=True)
class DemoConfig:
    """Settings of :func:`run_demo`; ``None`` fields take the :data:`QUICK` or :data:`FULL` preset.

    Parameters
    ----------
    out : str or Path
        Output folder.
    quick : bool
        Use the :data:`QUICK` preset.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``.
    seed : int
        Seed of the data (one ``synthetic:`` spec cut into train, val and
        test, see :func:`demo_data_spec`), the training, the explainer and
        the analyses.
    backbone : str
        timm backbone of both detectors (random init: nothing is downloaded).
    image_size, n_train, n_val, n_test, batch_size : int, optional
    epochs, rgb_epochs : int, optional
        Training epochs of the defocus model and of the RGB model (which
        learns the synthetic fakes in fewer).
    lr : float, optional
        Peak learning rate of the one-cycle schedule (Adam).
    precision : {"auto", "bfloat16", "float32"}
        Precision of the training steps (:func:`detector.train.resolve_precision`:
        "auto" is bfloat16 autocast where the device computes it natively);
        evaluation and extraction always run in float32.
    nsamples, n_background : int, optional
        shap-gradient evaluations per sample and background images.
    analysis : DemoAnalysis or dict, optional
        Analysis settings (default :data:`ANALYSIS_QUICK` or :data:`ANALYSIS_FULL`,
        with ``seed``); a dict is read with :meth:`DemoAnalysis` keywords
        (``config`` an AnalysisConfig dict). Not part of :meth:`settings`:
        changing them reruns only the analysis stages.
    notebooks : bool
        Execute the notebooks (stage 8).
    progress : bool
        Show progress bars and stage lines on stderr.
    """

    out: str | Path = "runs/demo"
    quick: bool = False
    device: str = "auto"
    seed: int = 0
    backbone: str = "resnet10t"
    image_size: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    epochs: int | None = None
    rgb_epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    precision: str = "auto"
    nsamples: int | None = None
    n_background: int | None = None
    analysis: DemoAnalysis | dict | None = None
    notebooks: bool = True
    progress: bool = True

    def __post_init__(self):
        # absolute at once: a later change of the working folder cannot redirect the writes
        object.__setattr__(self, "out", Path(self.out).expanduser().absolute())
        preset = QUICK if self.quick else FULL
        for key, value in preset.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        analysis = self.analysis
        if analysis is None:
            preset = ANALYSIS_QUICK if self.quick else ANALYSIS_FULL
            analysis = replace(preset, config=preset.config.replace(seed=self.seed))
        elif isinstance(analysis, dict):
            analysis = DemoAnalysis(**analysis)
        elif not isinstance(analysis, DemoAnalysis):
            raise ValueError(f"analysis must be a DemoAnalysis or a dict, got {analysis!r}")
        object.__setattr__(self, "analysis", analysis)
        for key in ("n_train", "n_val", "n_test", "epochs", "rgb_epochs", "batch_size",
                    "nsamples"):  # fmt: skip
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        for key in ("n_val", "n_test"):
            if getattr(self, key) < 8:
                raise ValueError(
                    f"{key} must be at least 8 (both classes), got {getattr(self, key)}"
                )
        if not isinstance(self.image_size, int) or self.image_size < 32:
            raise ValueError(f"image_size must be an integer >= 32, got {self.image_size!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.precision not in ("auto", "bfloat16", "float32"):
            raise ValueError(
                f"precision must be 'auto', 'bfloat16' or 'float32', got {self.precision!r}"
            )

    def settings(self) -> dict[str, Any]:
        """Return what determines the results (not the folder, device or display)."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        for key in ("out", "device", "notebooks", "progress", "quick", "analysis"):
            out.pop(key)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return every setting as a JSON-ready dict."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["out"] = str(self.out)
        out["analysis"] = self.analysis.to_dict()
        return out


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    out : Path
        The output folder.
    headline : dict
        Test AUC of both models, alignment scores, KS test.
    stages : dict
        Per stage: ``status`` ("done", "reused" or "skipped") and ``seconds``.
    paths : dict
        Where everything is.
    seconds : float
        Wall time.
    """

    out: Path
    headline: dict[str, Any]
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def demo_data_spec(config: DemoConfig) -> str:
    """Return the data spec of the demo's data: its splits are the demo's train, val and test.

    ``synthetic:n=N,size=S,seed=K,val=V,test=T`` with ``N = n_train + n_val
    + n_test``: the same text given to ``--data`` of ``defocus train``,
    ``evaluate`` or ``extract`` (with ``split=test``) opens the very images
    the demo used.
    """
    n = config.n_train + config.n_val + config.n_test
    return (
        f"synthetic:n={n},size={config.image_size},seed={config.seed},"
        f"val={config.n_val},test={config.n_test}"
    )


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, json_safe(obj), default=str)


class _Stages:
    """Stage bookkeeping: numbered progress lines, timings and reuse keys in run.json."""

    def __init__(self, out: Path, config: DemoConfig, log: Callable[[str], None]):
        self.out = out
        self.log = log
        self.path = out / "run.json"
        previous = json.loads(self.path.read_text()) if self.path.is_file() else {}
        old, new = previous.get("settings") or {}, config.settings()
        # only the settings of this version count: one no longer among them (the analysis
        # settings, recorded apart since they rerun only the analysis stages) is no difference
        diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in new if old.get(k) != new[k]]
        if previous.get("settings") is not None and diffs:
            raise ValueError(
                f"{out} holds a demo run with other settings ({'; '.join(diffs)}); "
                "use another --out or delete the folder"
            )
        self.previous = previous.get("stages", {})
        self.record: dict[str, Any] = {
            "command": "defocus demo",
            "settings": config.settings(),
            "config": config.to_dict(),
            # the ONE analysis config of this run (also in summary.json and the figures manifest)
            "analysis_config": config.analysis.config.to_dict(),
            "stages": {},
        }

    def reusable(self, name: str, key: str, outputs: list[Path]) -> bool:
        prev = self.previous.get(name, {})
        return prev.get("key") == key and all(p.exists() for p in outputs)

    def run(self, name: str, fn: Callable[[], Any], key: str | None = None, reused=False):
        i = _STAGES.index(name) + 1
        self.log(f"[{i}/{len(_STAGES)}] {name} ...")
        start = time.perf_counter()
        value = None if reused else fn()
        seconds = time.perf_counter() - start
        status = "reused" if reused else "done"
        if isinstance(value, tuple) and len(value) == 2 and value[0] in ("done", "reused"):
            status, value = value
        self.record["stages"][name] = {"status": status, "seconds": round(seconds, 2)}
        if key is not None:
            self.record["stages"][name]["key"] = key
        self.log(f"[{i}/{len(_STAGES)}] {name}: {status} in {seconds:.1f} s")
        self.save()
        return value

    def start(self, name: str, fn: Callable[[], Any], key: str | None = None) -> Callable[[], Any]:
        """Start stage ``name`` in a background thread; return the call that waits for it.

        The stage's time in run.json is its own (from its start to its end in the
        thread), not the wait; the waiting call records it, logs the closing line
        and returns ``fn``'s value, or raises its exception.
        """
        import threading

        i = _STAGES.index(name) + 1
        self.log(f"[{i}/{len(_STAGES)}] {name} ... (in the background)")
        box: dict[str, Any] = {}

        def work() -> None:
            start = time.perf_counter()
            try:
                box["value"] = fn()
            except BaseException as err:  # handed to the waiting thread
                box["error"] = err
            box["seconds"] = time.perf_counter() - start

        thread = threading.Thread(target=work, name=f"demo-{name}", daemon=True)
        thread.start()

        def wait() -> Any:
            thread.join()
            if "error" in box:
                raise box["error"]
            seconds = box["seconds"]
            self.record["stages"][name] = {"status": "done", "seconds": round(seconds, 2)}
            if key is not None:
                self.record["stages"][name]["key"] = key
            self.log(f"[{i}/{len(_STAGES)}] {name}: done in {seconds:.1f} s")
            self.save()
            return box.get("value")

        return wait

    def skip(self, name: str, why: str) -> None:
        self.record["stages"][name] = {"status": "skipped", "seconds": 0.0, "why": why}
        self.log(f"[{_STAGES.index(name) + 1}/{len(_STAGES)}] {name}: skipped ({why})")
        self.save()

    def save(self) -> None:
        _write_json(self.path, self.record)


def _train_one(kind: str, config: DemoConfig, train_ds, val_ds, models_dir: Path, log):
    """Train (or resume) one detector and load its best checkpoint."""
    import shutil

    import torch

    from detector.checkpoints import read_checkpoint
    from detector.models import build_detector, load_checkpoint
    from detector.train import train

    out = models_dir / kind
    epochs = config.epochs if kind == "defocus" else config.rgb_epochs
    torch.manual_seed(config.seed)  # each model's initial weights depend on the seed alone
    model = build_detector(kind, backbone=config.backbone, image_size=config.image_size)
    last = out / "last.pt"
    if last.is_file() and read_checkpoint(last).config != json.loads(json.dumps(model.config)):
        # the code's model config changed (e.g. new estimator defaults): the old
        # checkpoints describe another model, so they cannot be resumed
        log(f"  {kind} model config differs from {last}; training from scratch")
        shutil.rmtree(out)
    metrics_path = out / "metrics.json"
    was_done = False
    if metrics_path.is_file():
        prev = json.loads(metrics_path.read_text())
        was_done = len(prev.get("history", [])) >= epochs
    result = train(
        model,
        train_ds,
        val_ds,
        out,
        epochs=epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=config.seed,
        device=config.device,
        progress=config.progress,
        schedule="onecycle",
        precision=config.precision,
        channels_last=True,
    )
    load_checkpoint(model, result.best_checkpoint)
    model.eval()
    return ("reused" if was_done else "done"), model


def _evaluate(models: dict, test_ds, config: DemoConfig, models_dir: Path) -> dict:
    from detector.train import evaluate

    out = {}
    for kind, model in models.items():
        path = models_dir / kind / "test_metrics.json"
        ckpt = models_dir / kind / "best.pt"
        if path.is_file() and path.stat().st_mtime >= ckpt.stat().st_mtime:
            metrics = json.loads(path.read_text())
        else:
            metrics = evaluate(
                model, test_ds, batch_size=config.batch_size, device=config.device,
                progress=config.progress,
            )  # fmt: skip
            metrics.pop("skipped", None)
            _write_json(path, metrics)
        out[kind] = metrics
    return out


def _predictors(models: dict, device: str) -> dict:
    """Numpy -> logits callables of the two models, for the deletion curves."""
    import numpy as np
    import torch

    from detector.device import resolve_device

    dev = resolve_device(device)

    def wrap(model, add_channel: bool):
        def predict(x: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            if add_channel:
                t = t[:, None]
            with torch.no_grad():
                return model.to(dev).classify(t.to(dev)).reshape(-1).float().cpu().numpy()

        return predict

    return {"defocus": wrap(models["defocus"], True), "rgb": wrap(models["rgb"], False)}


def _sanity_check(models: dict, test_ds, train_ds, config: DemoConfig, out_dir: Path):
    """Model-randomisation check of both models on the first test fakes; writes OUT/sanity/."""
    from analysis.sanity import rank_correlation, sanity_result, write_sanity
    from cache.explainers import ExplainerConfig
    from cache.extract import _background_inputs, _choose_background
    from cache.sanity import (
        cascade_stages,
        parameter_layers,
        randomisation_attributions,
        sanity_inputs,
        select_samples,
    )
    from detector.device import resolve_device

    settings = config.analysis
    device = resolve_device(config.device)
    ecfg = ExplainerConfig(
        name="shap-gradient", seed=config.seed, nsamples=settings.sanity_nsamples
    )
    indices = select_samples(test_ds, settings.sanity_samples)
    _, bg_images = _choose_background(train_ds, config.n_background, config.seed)
    backgrounds = _background_inputs(models, bg_images, device)
    results = []
    for kind, model in models.items():
        stages = cascade_stages(parameter_layers(model), max(2, settings.sanity_stages))
        if settings.sanity_stages == 1:  # the whole model re-initialised only
            stages = stages[-1:]
        x, ids = sanity_inputs(model, test_ds, indices, kind, device)
        trained, randomised = randomisation_attributions(
            model, x.to(device), ids, backgrounds[kind].to(device), ecfg, stages,
            seed=config.seed, batch_size=config.batch_size,
        )  # fmt: skip
        # the noise ceiling: the trained model explained again with another explainer seed.
        # Without it a low correlation could be the explainer's own sampling noise (at few
        # shap-gradient samples two runs of the SAME model correlate little).
        again, _ = randomisation_attributions(
            model, x.to(device), ids, backgrounds[kind].to(device),
            replace(ecfg, seed=config.seed + 1), [], batch_size=config.batch_size,
        )  # fmt: skip
        ceiling = rank_correlation(trained, again)
        info = {"checkpoint": str(out_dir.parent / "models" / kind / "best.pt"),
                "explainer": ecfg.to_dict(), "seed": config.seed,
                "n_background": len(backgrounds[kind]),
                "ceiling": [None if v != v else float(v) for v in ceiling],
                "ceiling_explainer_seed": config.seed + 1}  # fmt: skip
        results.append(
            sanity_result(
                kind, ids, trained, randomised, stages, settings.config.sanity_threshold, info
            )  # fmt: skip
        )
        model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_sanity(results, out_dir, extra={"command": "defocus demo", "stage": "sanity",
                                          "data_spec": demo_data_spec(config)})  # fmt: skip
    return results


def format_closing_summary(result: DemoResult) -> str:
    """Format the closing summary: what is where, and the headline numbers.

    The headline numbers are the rows of the report's headline table
    (:func:`defocus_forensics.headline.headline_rows`), with the p-values'
    resolution said once above them.

    Parameters
    ----------
    result : DemoResult

    Returns
    -------
    str
    """
    import textwrap

    from defocus_forensics.headline import SKILL_LEGEND, headline_rows

    h = result.headline
    lines = [f"demo finished in {result.seconds:.0f} s; everything is in {result.out}/", ""]
    width = max(len(k) for k in result.paths) if result.paths else 10
    lines += [f"  {k:<{width}}  {v}" for k, v in result.paths.items()]
    cfg = h.get("analysis_config") or {}
    level = "video-level" if h.get("level") == "video" else "frame-level"
    n_perm = cfg.get("n_permutations")
    perm = (
        f"; p-values from {n_perm} permutations (none below {1 / (n_perm + 1):.2g})"
        if n_perm
        else ""
    )
    lines += ["", f"headline numbers (test split; {level}{perm}):"]
    lines += textwrap.wrap(SKILL_LEGEND, 96, initial_indent="  ", subsequent_indent="    ")
    rows = headline_rows(h, compact=True)
    width = max((len(r["quantity"]) for r in rows), default=10)
    lines += [f"  {r['quantity']:<{width}}  {r['value']}" for r in rows]
    flagged = [v.get("message") for k, v in h.items() if k.startswith("sanity_")
               and isinstance(v, dict) and v.get("flagged")]  # fmt: skip
    lines += [f"  ! {m}" for m in flagged]
    return "\n".join(lines)


#: Import names the notebook stage needs (all core dependencies of the package).
NOTEBOOK_PACKAGES = ("papermill", "nbclient", "nbformat", "ipykernel", "jupytext", "nbconvert")


def missing_notebook_packages() -> list[str]:
    """Return those of :data:`NOTEBOOK_PACKAGES` that cannot be imported here."""
    from importlib.util import find_spec

    return [name for name in NOTEBOOK_PACKAGES if find_spec(name) is None]


def run_demo(config: DemoConfig | None = None, log: Callable[[str], None] | None = None):
    """Run the main job (see the module docstring for the stages and the layout).

    Parameters
    ----------
    config : DemoConfig, optional
        Default ``DemoConfig()`` (the full demo into ``runs/demo``).
    log : callable, optional
        Receives one line per stage event (default: print to stderr when
        ``config.progress``, else nothing).

    Returns
    -------
    DemoResult

    Raises
    ------
    ValueError
        If the output folder holds a run with other settings.
    """
    import torch

    from cache.extract import ExtractConfig, extract
    from defocus_forensics.figures import compute_analyses, draw_figures
    from defocus_forensics.notebooks import NOTEBOOKS_DIR, execute_all, list_notebooks
    from defocus_forensics.report import build_report
    from detector.data import open_data, prerender

    config = config or DemoConfig()
    missing = missing_notebook_packages() if config.notebooks else []
    if missing:  # say so before minutes of training, not at the end
        raise ValueError(
            f"the demo executes the notebooks, which needs {', '.join(missing)}: "
            f"pip install {' '.join(missing)} (or run with --no-notebooks)"
        )
    if log is None:
        show = config.progress

        def log(msg: str) -> None:
            logger.debug(msg)  # the run folder's defocus.log
            if show:
                print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    stages = _Stages(out, config, log)
    torch.manual_seed(config.seed)
    models_dir = out / "models"
    cache_dir = out / "cache"

    # 1. data ---------------------------------------------------------------------------
    data_spec = demo_data_spec(config)

    def make_data():
        splits = tuple(open_data(data_spec, split) for split in ("train", "val", "test"))
        # render every image once, before training: later epochs, the evaluation and the
        # extraction read the kept uint8 images; two processes when it pays for their start
        n = sum(len(ds) for ds in splits)
        prerender(splits, workers=2 if n >= _PARALLEL_RENDER else 1, progress=config.progress)
        return splits

    train_ds, val_ds, test_ds = stages.run("data", make_data)
    stages.record["data"] = {
        "spec": data_spec,
        "train": train_ds.describe(),
        "val": val_ds.describe(),
        "test": test_ds.describe(),
    }

    # 2-3. training -----------------------------------------------------------------------
    models = {
        kind: stages.run(
            f"train-{kind}",
            lambda kind=kind: _train_one(kind, config, train_ds, val_ds, models_dir, log),
        )
        for kind in ("defocus", "rgb")
    }

    # 4. evaluation -------------------------------------------------------------------------
    test_metrics = stages.run("evaluate", lambda: _evaluate(models, test_ds, config, models_dir))

    # 5. extraction -------------------------------------------------------------------------
    ecfg = ExtractConfig(
        explainer="shap-gradient",
        nsamples=config.nsamples,
        seed=config.seed,
        n_background=config.n_background,
        batch_size=config.batch_size,
        save_image=True,
    )

    def do_extract():
        import shutil

        from cache import CacheMismatchError

        def run():
            return extract(
                test_ds,
                cache_dir,
                models["defocus"],
                models["rgb"],
                ecfg,
                background=train_ds,
                device=config.device,
                progress=config.progress,
                info={"command": "defocus demo", "demo": config.to_dict()},
            )

        try:
            res = run()
        except CacheMismatchError as err:
            # the models (or settings) changed since the cache was made: it is stale
            log(f"  {cache_dir} was made with other models or settings; extracting again ({err})")
            shutil.rmtree(cache_dir)
            res = run()
        return ("reused" if res.n_written == 0 else "done"), res.cache

    cache = stages.run("extract", do_extract)

    # 6. model-randomisation check -------------------------------------------------------
    analysis = config.analysis
    cfg = analysis.config
    cache_sha = _file_sha(cache_dir / "manifest.json")
    sanity_dir = out / "sanity"
    sanity_settings = {k: v for k, v in analysis.to_dict().items() if k.startswith("sanity")}
    sanity_settings["threshold"] = cfg.sanity_threshold
    if analysis.sanity_samples > 0:
        sanity_key = _sha([cache_sha, sanity_settings, "sanity-v1"])
        stages.run(
            "sanity",
            lambda: _sanity_check(models, test_ds, train_ds, config, sanity_dir),
            key=sanity_key,
            reused=stages.reusable("sanity", sanity_key, [sanity_dir / "sanity.json"]),
        )
    else:
        stages.skip("sanity", "sanity_samples=0")
    has_sanity = (sanity_dir / "sanity.json").is_file() and analysis.sanity_samples > 0

    # 7. analyses, summary, headline, figures --------------------------------------------------
    figures_dir = out / "figures"
    sanity_sha = _file_sha(sanity_dir / "sanity.json") if has_sanity else None
    analyse_key = _sha([cache_sha, sanity_sha, analysis.to_dict(), config.settings(),
                        "analyse-v2"])  # fmt: skip
    analyse_outputs = [out / "summary.json", figures_dir / "figures_manifest.json"]

    # 8 (started here). The notebooks read the cache and the sanity check only, never what
    # the analyse stage writes: they run beside it (two kernels and the analyses share the
    # cores; --quick: 26 s one after the other, about 18 s side by side)
    nb_dir = out / "notebooks"
    nb_wait = None
    if config.notebooks:
        sources = list_notebooks(NOTEBOOKS_DIR)
        nb_params = {"analysis_config": cfg.to_dict()}
        if has_sanity:
            nb_params["sanity_path"] = str(sanity_dir)
        nb_key = _sha([cache_sha, sanity_sha, nb_params,
                       [(p.name, _file_sha(p)) for p in sources]])  # fmt: skip
        nb_outputs = [nb_dir / f"{p.stem}.html" for p in sources]
        nb_reused = stages.reusable("notebooks", nb_key, nb_outputs)

        def run_notebooks():
            return execute_all(cache_dir, nb_dir, nb_params, progress=config.progress, workers=2)

        if not nb_reused:
            nb_wait = stages.start("notebooks", run_notebooks, key=nb_key)

    def analyse():
        table, analyses = compute_analyses(
            cache,
            cfg,
            predict=_predictors(models, config.device),
            deletion_samples=analysis.deletion_samples,
            deletion_steps=analysis.deletion_steps,
            sanity=sanity_dir if has_sanity else None,
            progress=config.progress,
        )
        write_summary_json(out, table, analyses, cache=cache, config=cfg, test_metrics=test_metrics)
        draw_figures(cache, figures_dir, config=cfg, analyses=analyses, progress=config.progress)

    try:
        stages.run(
            "analyse",
            analyse,
            key=analyse_key,
            reused=stages.reusable("analyse", analyse_key, analyse_outputs),
        )
    except BaseException:
        if nb_wait is not None:  # let the notebooks finish their atomic writes, then stop
            try:
                nb_wait()
            except Exception as err:
                logger.debug("notebooks failed after the analyse stage did: %s", err)
        raise
    summary_json = json.loads((out / "summary.json").read_text())

    # 8. notebooks: the same AnalysisConfig, so they print the report's numbers ---------------
    if nb_wait is not None:
        nb_wait()
    elif config.notebooks:
        stages.run("notebooks", run_notebooks, key=nb_key, reused=True)
    else:
        stages.skip("notebooks", "--no-notebooks")

    # 9. report -------------------------------------------------------------------------------
    stages.record["headline"] = summary_json.get("headline", {})
    stages.save()
    report = stages.run("report", lambda: build_report(out))

    result = DemoResult(
        out=out,
        headline=summary_json.get("headline", {}),
        stages=stages.record["stages"],
        paths={
            "report": str(report),
            "figures": f"{figures_dir}/ (figures_manifest.json lists them)",
            "cache": f"{cache_dir}/ ({cache.n_samples()} samples; {', '.join(cache.groups)})",
            "sanity": f"{sanity_dir}/sanity.json (model-randomisation check)"
            if has_sanity
            else "(skipped)",
            "summary": f"{out / 'summary'}/summary.csv, summary.md",
            "notebooks": f"{nb_dir}/ (executed .ipynb + .html)"
            if config.notebooks
            else "(skipped)",
            "models": f"{models_dir}/{{defocus,rgb}}/best.pt",
        },
        seconds=time.perf_counter() - t0,
    )
    stages.record["seconds"] = round(result.seconds, 2)
    stages.save()
    return result
