"""The extraction job: dataset + detectors -> a sharded, resumable cache (torch).

>>> from cache.extract import ExtractConfig, extract
>>> result = extract(dataset, "runs/x/cache", defocus_model, rgb_model,
...                  config=ExtractConfig(nsamples=200, seed=0))      # doctest: +SKIP
>>> result.cache.groups, result.n_written, result.failed              # doctest: +SKIP

How the work is cut: the samples of each group (groups in order of first
appearance, samples in dataset order) are cut into shards of
``shard_size``; shard ``k`` of that plan is named ``<k>-<group>``. A shard
is the unit of work, of resume and of distribution: ``shard=(K, N)`` keeps
the shards with ``k % N == K`` (job arrays), ``workers=N`` runs shards on a
Dask ``LocalCluster`` of ``N`` one-thread processes, ``scheduler=ADDRESS``
on an existing cluster whose workers see the output folder. Shards already
written and intact are skipped; missing or corrupt ones are redone.

The plan (every shard's name, group, sample count and a digest of its ids)
is recorded in the manifest before any shard is computed, so that
``defocus verify`` tells an interrupted cache from a complete one. Each
shard is *claimed* (:mod:`cache.claims`) before it is computed, so runs
that share a cache folder at the same time (two identical commands, job
arrays, Dask workers) compute every shard once: a run leaves shards that
another live run claimed to it and waits for them, and takes over the
claims of runs that died.

Every sample's model inputs are computed one sample at a time (the
reference defocus estimator normalises by a batch-wide edge maximum) and
its attributions are seeded by ``(seed, id)``, so the cache does not
depend on batch size, shard layout or worker count.

Models: any ``torch.nn.Module`` with ``classify(x) -> (B, 1)`` and either
``model_input(images)`` or ``defocus_input(images)`` (defocus model), and
``features_from_input(x)`` or ``features(images)``, as the detectors of
:mod:`detector.models` (and :class:`cache.testing.TinyDetector`) have.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cache.claims import CLAIM_DIR, DEFAULT_STALE_AFTER, claim_state, try_claim
from cache.explainers import EXPLAINERS, ExplainerConfig, completeness_reference, get_explainer
from cache.explainers import fold_batchnorm as _fold_batchnorm
from cache.fingerprint import fingerprint_model, fingerprint_samples, software
from cache.store import Cache, CacheWriter, ids_digest, open_cache, shard_name

__all__ = [
    "ExtractConfig",
    "ExtractResult",
    "ShardTask",
    "extract",
    "parse_shard",
    "plan_shards",
]


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of an extraction run; :meth:`to_dict` is compared on resume and merge.

    Parameters
    ----------
    explainer : str
        One of :data:`cache.explainers.EXPLAINERS`.
    nsamples : int
        Gradient evaluations per sample and model (``shap-gradient``,
        ``captum-gradientshap``); the paper uses 200.
    sampling : {"shap", "iid", "stratified"}
        Sampling scheme of ``shap-gradient``.
    seed : int
        Run seed: background choice and every sample's draws derive from it.
    n_background : int
        Real images drawn (seeded) as the explainers' background; the paper uses 10.
    shard_size : int
        Samples per shard (of one group).
    batch_size : int
        Samples per model call. Does not change the results, so it is not
        compared on resume.
    save_image : bool
        Store the image as the models saw it (``image``, uint8).
    save_sparse : bool
        Also store the sparse defocus estimate and the edge map (needs a
        model with ``defocus_config`` and :mod:`detector.defocus`).
    explainer_options : tuple of (str, value) pairs
        Further :class:`cache.explainers.ExplainerConfig` fields
        (``n_steps``, ``baseline``, ``window``, ``backend``...).
    """

    explainer: str = "shap-gradient"
    nsamples: int = 200
    sampling: str = "shap"
    seed: int = 0
    n_background: int = 10
    shard_size: int = 64
    batch_size: int = 16
    save_image: bool = True
    save_sparse: bool = False
    explainer_options: tuple = ()

    def __post_init__(self):
        if self.explainer not in EXPLAINERS:
            raise ValueError(f"explainer must be one of {EXPLAINERS}, got {self.explainer!r}")
        for key in ("n_background", "shard_size", "batch_size", "nsamples"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if isinstance(self.explainer_options, dict):
            object.__setattr__(
                self, "explainer_options", tuple(sorted(self.explainer_options.items()))
            )
        self.explainer_config()  # validates the explainer settings

    def explainer_config(self) -> ExplainerConfig:
        """Return the :class:`ExplainerConfig` these settings describe."""
        options = dict(self.explainer_options)
        for key in ("name", "seed", "nsamples", "sampling"):
            if key in options:
                raise ValueError(f"set {key!r} through ExtractConfig, not explainer_options")
        unknown = sorted(set(options) - set(ExplainerConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown explainer options {unknown}")
        return ExplainerConfig(
            name=self.explainer,
            seed=self.seed,
            nsamples=self.nsamples,
            sampling=self.sampling,
            **options,
        )

    def to_dict(self) -> dict:
        """Return the settings that determine the cache content (not ``batch_size``)."""
        out = asdict(self)
        out.pop("batch_size")
        out["explainer_options"] = dict(self.explainer_options)
        return out


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: the dataset indices of one shard.

    Attributes
    ----------
    name : str
        ``<k>-<group>`` (file ``shards/<name>.npz``).
    group : str
    indices : tuple of int
        Dataset indices, in dataset order.
    """

    name: str
    group: str
    indices: tuple[int, ...]


@dataclass
class ExtractResult:
    """What :func:`extract` did.

    Attributes
    ----------
    cache : Cache
        The cache, opened for reading.
    n_planned, n_written, n_skipped : int
        Shards in this run's slice, written now by this run, and not written
        by it (already present and intact, or computed by another run meanwhile).
    n_by_others : int
        Of ``n_skipped``, the shards another run computed while this one ran.
    failed : list of dict
        Samples that could not be processed (``id``, ``group``, ``reason``), whole cache.
    seconds : float
        Wall time.
    tasks : list of dict
        Per shard written now: name, counts, wall and CPU seconds, process id.
    """

    cache: Cache
    n_planned: int
    n_written: int
    n_skipped: int
    failed: list = field(default_factory=list)
    seconds: float = 0.0
    tasks: list = field(default_factory=list)
    n_by_others: int = 0


def _records(dataset) -> list[tuple[str, str, int, str]]:
    """(id, group, label, pair_id) of every sample, from ``.samples`` (no image read)."""
    samples = getattr(dataset, "samples", None)
    if samples is None:
        raise ValueError(
            "the dataset needs a .samples list of records (.id, .group, .label, .pair_id), "
            "as detector.data datasets have"
        )
    if len(samples) != len(dataset):
        raise ValueError(f"dataset has {len(dataset)} items but {len(samples)} sample records")
    out = []
    for s in samples:
        out.append((str(s.id), str(s.group), int(s.label), str(getattr(s, "pair_id", "") or "")))
    ids = [r[0] for r in out]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"sample ids must be unique, duplicated: {dup}")
    return out


def plan_shards(dataset, shard_size: int) -> list[ShardTask]:
    """Cut the dataset into shards of one group each (see the module docstring).

    Parameters
    ----------
    dataset : object
        With ``.samples`` records.
    shard_size : int
        Samples per shard.

    Returns
    -------
    list of ShardTask
        In plan order; the name of shard ``k`` starts with ``k`` (5 digits).
    """
    records = _records(dataset)
    by_group: dict[str, list[int]] = {}
    for i, (_, group, _, _) in enumerate(records):
        by_group.setdefault(group, []).append(i)
    tasks = []
    for group, indices in by_group.items():
        for start in range(0, len(indices), shard_size):
            k = len(tasks)
            name = f"{k:05d}-{shard_name(group)}"
            tasks.append(ShardTask(name, group, tuple(indices[start : start + shard_size])))
    return tasks


# --------------------------------------------------------------------------- models


def _model_input(model, images: torch.Tensor, kind: str) -> torch.Tensor:
    with torch.no_grad():
        if kind == "defocus" and not hasattr(model, "model_input"):
            return model.defocus_input(images)
        return model.model_input(images)


def _features(model, x: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        if hasattr(model, "features_from_input"):
            return model.features_from_input(x)
        return model.features(images)


def _logits_and_features(model, x: torch.Tensor, images: torch.Tensor):
    """Return ``(logits (B,), features (B, D))``, from one pass when the model offers it."""
    with torch.no_grad():
        if hasattr(model, "classify_with_features"):
            logits, feats = model.classify_with_features(x)
        else:
            logits, feats = model.classify(x), _features(model, x, images)
    return logits.reshape(len(x)), feats.reshape(len(x), -1)


def _check_model(model, kind: str) -> None:
    if model is None:
        return
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "classify"):
        raise ValueError(f"the {kind} model must be a torch.nn.Module with .classify(x)")
    model_kind = getattr(model, "kind", None) or (getattr(model, "config", None) or {}).get("kind")
    if model_kind is not None and model_kind != kind:
        raise ValueError(f"the {kind} model must be a {kind!r} detector, got kind {model_kind!r}")
    if kind == "defocus" and not (hasattr(model, "model_input") or hasattr(model, "defocus_input")):
        raise ValueError("the defocus model needs .model_input(images) or .defocus_input(images)")
    if kind == "rgb" and not hasattr(model, "model_input"):
        raise ValueError("the rgb model needs .model_input(images)")


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return np.clip(np.rint(x.detach().cpu().double().numpy() * 255.0), 0, 255).astype(np.uint8)


def _resize_square(x: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=(size, size), mode="nearest")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------- the job


class _Job:
    """Everything a worker needs to compute and write shards (pickled to Dask workers)."""

    def __init__(
        self,
        dataset,
        out_dir: Path,
        defocus_model,
        rgb_model,
        config: ExtractConfig,
        background_inputs: dict[str, torch.Tensor],
        fields: list[str],
        device: str,
        threads: int | None,
        channels_last: bool = True,
        fold_batchnorm: bool = True,
    ):
        self.dataset = dataset
        self.out_dir = Path(out_dir)
        self.models = {"defocus": defocus_model, "rgb": rgb_model}
        self.config = config
        self.background_inputs = background_inputs
        self.fields = fields
        self.device = device
        self.threads = threads
        self.channels_last = channels_last
        self.fold_batchnorm = fold_batchnorm
        self.records = _records(dataset)
        self.videos = _videos(dataset)
        self._explainers: dict[str, Any] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_explainers"] = {}
        state["models"] = {k: (m.cpu() if m is not None else None) for k, m in self.models.items()}
        state["background_inputs"] = {k: v.cpu() for k, v in self.background_inputs.items()}
        return state

    def _device(self) -> torch.device:
        from detector.device import resolve_device

        return resolve_device(self.device)

    def prepare(self) -> None:
        """Move models to the device and build the explainers (once per process)."""
        if self._explainers:
            return
        if self.threads:
            torch.set_num_threads(self.threads)
        dev = self._device()
        cfg = self.config.explainer_config()
        for kind, model in self.models.items():
            if model is None:
                continue
            model.to(dev).eval()
            if self.channels_last:
                model.to(memory_format=torch.channels_last)
            for p in model.parameters():
                p.requires_grad_(False)
            bg = self.background_inputs[kind].to(dev)
            target = model
            if self.fold_batchnorm and cfg.name != "captum-deeplift":
                # a copy with batch norms folded into the convolutions: the same function
                # up to float rounding, fewer operations per gradient evaluation
                target, _ = _fold_batchnorm(model, bg)
            explainer = get_explainer(cfg.name, target.classify, bg, **_params(cfg))
            explainer.channels_last = self.channels_last
            self._explainers[kind] = explainer

    def compute(self, task: ShardTask) -> tuple[dict | None, list[tuple[str, str]]]:
        """Compute the arrays of one shard; samples that fail are listed with the reason."""
        self.prepare()
        dev = self._device()
        failed: list[tuple[str, str]] = []
        rows: list[dict] = []
        for i in task.indices:
            sid = self.records[i][0]
            try:
                rows.append(self._prepare_sample(i, dev))
            except Exception as err:  # noqa: BLE001 - a bad sample must not stop the run
                failed.append((sid, _reason(err)))
        if not rows:
            return None, failed
        out: dict[str, list] = {f: [] for f in self.fields}
        bs = self.config.batch_size
        for start in range(0, len(rows), bs):
            chunk = rows[start : start + bs]
            self._compute_chunk(chunk, out)
        arrays = {f: np.concatenate(v, axis=0) for f, v in out.items()}
        return arrays, failed

    def _prepare_sample(self, index: int, dev: torch.device) -> dict:
        sid, group, label, pair_id = self.records[index]
        item = self.dataset[index]
        if not isinstance(item, dict):
            raise _SampleFailure(getattr(item, "reason", None) or f"unreadable item {item!r}")
        image = item.get("image")
        if not isinstance(image, torch.Tensor):
            image = torch.as_tensor(np.asarray(image))
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image must have shape (3, H, W), got {tuple(image.shape)}")
        image = image.float()
        if not torch.isfinite(image).all():
            raise ValueError("image holds NaN or inf values")
        lo, hi = float(image.min()), float(image.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(f"image values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]")
        if str(item.get("id", sid)) != sid:
            raise ValueError(f"item id {item.get('id')!r} differs from its record id {sid!r}")
        images = image[None].to(dev)
        row = {"id": sid, "group": group, "label": label, "pair_id": pair_id, "images": images}
        row["video"] = self.videos[index]
        row["x_defocus"] = _model_input(self.models["defocus"], images, "defocus")
        if self.models["rgb"] is not None:
            row["x_rgb"] = _model_input(self.models["rgb"], images, "rgb")
        size = row["x_defocus"].shape[-1]
        if "mask" in self.fields:
            mask = item.get("mask")
            if mask is None:
                mask = torch.zeros((1, *image.shape[-2:]))
            mask = torch.as_tensor(mask).float().reshape(1, 1, *image.shape[-2:])
            row["mask"] = (_resize_square(mask, size, "nearest") > 0.5).to(torch.uint8)
        if "sparse" in self.fields:
            from detector.defocus import estimate_defocus

            maps = estimate_defocus(images, self.models["defocus"].defocus_config)
            row["sparse"] = _resize_square(maps.sparse.float(), size)
            row["edges"] = (_resize_square(maps.edges.float(), size) >= 0.5).to(torch.uint8)
        return row

    def _compute_chunk(self, chunk: list[dict], out: dict[str, list]) -> None:
        n = len(chunk)
        ids = [r["id"] for r in chunk]
        out["id"].append(np.array(ids))
        out["group"].append(np.array([r["group"] for r in chunk]))
        out["label"].append(np.array([r["label"] for r in chunk], dtype=np.int8))
        out["pair_id"].append(np.array([r["pair_id"] for r in chunk]))
        if "video" in out:
            out["video"].append(np.array([r["video"] for r in chunk]))
        for kind in ("defocus", "rgb"):
            model = self.models[kind]
            if model is None:
                continue
            x = torch.cat([r[f"x_{kind}"] for r in chunk])
            # one sample per call: results independent of the batch composition
            pairs = [_logits_and_features(model, r[f"x_{kind}"], r["images"]) for r in chunk]
            logits = torch.cat([p[0] for p in pairs])
            feats = torch.cat([p[1] for p in pairs])
            attr, comp = self._explainers[kind].attribute(x, ids, return_completeness=True)
            out[f"logit_{kind}"].append(logits.float().cpu().numpy())
            out[f"features_{kind}"].append(feats.reshape(n, -1).float().cpu().numpy())
            out[f"completeness_{kind}"].append(comp.cpu().numpy())
            if kind == "defocus":
                out["defocus"].append(x[:, 0].float().cpu().numpy().astype(np.float16))
                out["attr_defocus"].append(attr[:, 0].cpu().numpy())
            else:
                out["attr_rgb"].append(attr.cpu().numpy())
        if "image" in self.fields:
            if self.models["rgb"] is not None:
                seen = torch.cat([r["x_rgb"] for r in chunk])
            else:
                size = chunk[0]["x_defocus"].shape[-1]
                seen = torch.cat([_resize_square(r["images"], size) for r in chunk])
            out["image"].append(_to_uint8(seen))
        if "mask" in self.fields:
            out["mask"].append(torch.cat([r["mask"][:, 0] for r in chunk]).cpu().numpy())
        if "sparse" in self.fields:
            sparse = torch.cat([r["sparse"][:, 0] for r in chunk]).cpu().numpy()
            out["sparse"].append(sparse.astype(np.float16))
            out["edges"].append(torch.cat([r["edges"][:, 0] for r in chunk]).cpu().numpy())

    #: Seconds without a heartbeat after which another run's claim is taken over.
    stale_after: float = DEFAULT_STALE_AFTER

    def run(self, task: ShardTask) -> dict:
        """Claim, compute and write one shard; return a summary.

        Returns
        -------
        dict
            ``status`` is ``"written"`` (with counts, wall and CPU seconds,
            process id), ``"claimed"`` (another live run holds the shard) or
            ``"done"`` (found intact once claimed: another run wrote it).
        """
        t0, c0 = time.perf_counter(), time.process_time()
        claim = try_claim(self.out_dir, task.name, self.stale_after)
        if claim is None:
            return {"name": task.name, "status": "claimed", "pid": os.getpid()}
        with claim:
            writer = CacheWriter(self.out_dir)
            if writer.has_valid_shard(task.name):
                return {"name": task.name, "status": "done", "pid": os.getpid()}
            if self.threads:
                torch.set_num_threads(self.threads)
            arrays, failed = self.compute(task)
            entry = writer.write_shard(task.group, arrays, name=task.name, failed=failed)
        return {
            "name": task.name,
            "status": "written",
            "n_samples": entry["n_samples"],
            "n_failed": len(failed),
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "pid": os.getpid(),
            "torch_threads": torch.get_num_threads(),
        }


class _SampleFailure(Exception):
    """A dataset item that is a read failure (its reason is reported as is)."""


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, _SampleFailure):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _params(cfg: ExplainerConfig) -> dict:
    d = asdict(cfg)
    d.pop("name")
    return d


def _run_task(job: _Job, task: ShardTask) -> dict:
    """Dask task: run one shard on a worker."""
    return job.run(task)


# --------------------------------------------------------------------------- background


def _choose_background(source, n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    """Pick ``n`` real samples of ``source`` (seeded, by sorted id) and load their images."""
    if isinstance(source, torch.Tensor):
        if source.ndim != 4 or source.shape[1] != 3:
            raise ValueError(
                f"a background tensor must have shape (M, 3, H, W), got {tuple(source.shape)}"
            )
        digest = hashlib.sha256(source.detach().cpu().float().numpy().tobytes()).hexdigest()
        return [f"tensor:{digest[:16]}:{i}" for i in range(len(source))], source.float()
    records = _records(source)
    reals = sorted((r[0], i) for i, r in enumerate(records) if r[2] == 0)
    if not reals:
        raise ValueError("the background data holds no real (label 0) samples")
    rng = np.random.default_rng([int(seed), 0xB6])
    order = rng.permutation(len(reals))
    ids, images = [], []
    for k in order:
        if len(images) == n:
            break
        sid, i = reals[k]
        try:
            item = source[i]
        except Exception:  # noqa: BLE001 - an unreadable background image is skipped
            continue
        if isinstance(item, dict) and isinstance(item.get("image"), torch.Tensor):
            ids.append(sid)
            images.append(item["image"].float())
    if not images:
        raise ValueError("no readable real sample for the background")
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        side = max(s[-1] for s in shapes)
        images = [_resize_square(im[None], side)[0] for im in images]
    return ids, torch.stack(images)


def _background_inputs(models: dict, images: torch.Tensor, device: torch.device) -> dict:
    out = {}
    for kind, model in models.items():
        if model is None:
            continue
        model.to(device).eval()
        out[kind] = torch.cat(
            [_model_input(model, images[i : i + 1].to(device), kind) for i in range(len(images))]
        ).cpu()
    return out


# --------------------------------------------------------------------------- entry point


def _videos(dataset) -> list[str]:
    """Return the ``video`` of every sample ("" for none), from ``.samples``."""
    return [str(getattr(s, "video", "") or "") for s in dataset.samples]


def _fields(dataset, rgb: bool, config: ExtractConfig) -> list[str]:
    fields = ["id", "group", "label", "pair_id"]
    if any(_videos(dataset)):
        fields.append("video")  # only for data from videos: absent otherwise
    if config.save_image:
        fields.append("image")
    fields += ["defocus", "attr_defocus"]
    if rgb:
        fields.append("attr_rgb")
    fields.append("logit_defocus")
    if rgb:
        fields.append("logit_rgb")
    fields.append("features_defocus")
    if rgb:
        fields.append("features_rgb")
    has_masks = getattr(dataset, "has_masks", None)
    if has_masks is None:
        has_masks = any(getattr(s, "mask_path", "") for s in dataset.samples)
    if has_masks:
        fields.append("mask")
    if config.save_sparse:
        fields += ["sparse", "edges"]
    fields.append("completeness_defocus")
    if rgb:
        fields.append("completeness_rgb")
    return fields


def parse_shard(spec) -> tuple[int, int] | None:
    """Parse ``"K/N"`` (0 <= K < N) into ``(K, N)``; ``None`` passes through."""
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            k, n = (int(p) for p in spec.split("/"))
        except ValueError:
            raise ValueError(
                f"shard must look like K/N with integers, e.g. 0/4, got {spec!r}"
            ) from None
    else:
        k, n = spec
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard K/N needs 0 <= K < N, got {k}/{n}")
    return int(k), int(n)


def extract(
    dataset,
    out_dir,
    defocus_model,
    rgb_model=None,
    config: ExtractConfig | None = None,
    background=None,
    *,
    shard=None,
    workers: int = 0,
    scheduler: str | None = None,
    device: str = "auto",
    progress: bool = True,
    info: dict | None = None,
    channels_last: bool = True,
    fold_batchnorm: bool = True,
    claim_timeout: float = DEFAULT_STALE_AFTER,
    poll_seconds: float = 0.5,
) -> ExtractResult:
    """Compute a cache of defocus maps, logits, features and attributions.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Items as :mod:`detector.data` gives them (``image`` ``(3, H, W)`` in
        [0, 1], optional ``mask``), with ``.samples`` records.
    out_dir : str or path-like
        The cache folder; created, or resumed when it holds the same config.
    defocus_model : torch.nn.Module
        A ``"defocus"`` detector (``model_input``/``defocus_input``, ``classify``).
    rgb_model : torch.nn.Module, optional
        An ``"rgb"`` detector; adds ``attr_rgb``, ``logit_rgb``, ``features_rgb``.
    config : ExtractConfig, optional
        Settings (default ``ExtractConfig()``: shap-gradient, 200 samples).
    background : dataset or torch.Tensor of shape (M, 3, H, W), optional
        Where the ``n_background`` real images come from (default: ``dataset``).
    shard : str or (int, int), optional
        ``"K/N"``: compute only the shards ``k`` with ``k % N == K``.
    workers : int
        0 runs in this process; ``N >= 1`` on a Dask LocalCluster of ``N``
        single-thread worker processes.
    scheduler : str, optional
        Address of an existing Dask scheduler (its workers must see ``out_dir``).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``.
    progress : bool
        Show a progress bar on stderr.
    info : dict, optional
        Descriptive entries for the manifest (command line, data spec).
    channels_last : bool
        Run the models in channels-last memory layout (about 20 % faster CPU
        convolutions here; changes results only at float rounding).
    fold_batchnorm : bool
        Attribute through a copy of each model with its eval-mode batch norms
        folded into the preceding convolutions
        (:func:`cache.explainers.fold_batchnorm`; not for ``captum-deeplift``).
        Changes attributions and completeness only at float rounding; logits
        and features come from the models as given.
    claim_timeout : float
        Seconds without a heartbeat after which another run's claim on a
        shard counts as stale and is taken over (claims of dead processes
        on this host are taken over at once; see :mod:`cache.claims`).
    poll_seconds : float
        How often to look whether shards claimed by another run are done.

    Notes
    -----
    Runs that share ``out_dir`` at the same time share the work: each shard
    is computed once, by the run that claims it first; a run whose
    remaining shards are all claimed by other live runs waits for them.

    The models are moved to ``device`` (and to the channels-last layout);
    their train/eval mode and ``requires_grad`` flags are restored on return.

    Returns
    -------
    ExtractResult

    Raises
    ------
    CacheMismatchError
        If ``out_dir`` holds a cache built with other settings, models or
        data (the message names the differences).
    """
    t0 = time.perf_counter()
    config = config or ExtractConfig()
    shard = parse_shard(shard)
    if workers and scheduler:
        raise ValueError("give either workers (a local cluster) or scheduler, not both")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
    _check_model(defocus_model, "defocus")
    if defocus_model is None:
        raise ValueError("a defocus model is required")
    _check_model(rgb_model, "rgb")
    if config.save_sparse and not hasattr(defocus_model, "defocus_config"):
        raise ValueError("save_sparse needs a defocus model with a defocus_config")
    from detector.device import resolve_device

    dev = resolve_device(device)
    tasks = plan_shards(dataset, config.shard_size)
    job_records = _records(dataset)
    models = {"defocus": defocus_model, "rgb": rgb_model}
    # the job puts the models in eval mode without parameter gradients; restored at the end
    saved = {
        m: (m.training, [p.requires_grad for p in m.parameters()])
        for m in models.values()
        if m is not None
    }
    bg_ids, bg_images = _choose_background(
        dataset if background is None else background, config.n_background, config.seed
    )
    bg_inputs = _background_inputs(models, bg_images, dev)
    fields = _fields(dataset, rgb_model is not None, config)
    ecfg = config.explainer_config()
    manifest_config = {
        "extraction": config.to_dict(),
        "explainer": ecfg.to_dict() | {"completeness_reference": completeness_reference(ecfg)},
        "models": {k: (fingerprint_model(m) if m is not None else None) for k, m in models.items()},
        "defocus": _defocus_config(defocus_model),
        "data": fingerprint_samples(dataset),
        "background": {
            "ids": bg_ids,
            "sha256": hashlib.sha256(bg_images.numpy().tobytes()).hexdigest(),
        },
        "fields": fields,
        "n_shards_planned": len(tasks),
    }
    run_info = {
        "software": software(),
        "batch_size": config.batch_size,
        "device": str(dev),
        # layout and batch-norm folding change attributions only at float rounding: recorded
        # here, not in the config, so a resumed run with other settings is not refused
        "channels_last": bool(channels_last),
        "fold_batchnorm": bool(fold_batchnorm),
        "created_unix": time.time(),
        **(info or {}),
    }
    plan = [
        {
            "name": t.name,
            "group": t.group,
            "n_samples": len(t.indices),
            "ids_sha256": ids_digest(job_records[i][0] for i in t.indices),
        }
        for t in tasks
    ]
    writer = CacheWriter(out_dir, config=manifest_config, info=run_info, plan=plan)
    mine = [t for k, t in enumerate(tasks) if shard is None or k % shard[1] == shard[0]]
    on_disk = writer.manifest()
    pending = [t for t in mine if not writer.has_valid_shard(t.name, on_disk)]
    threads = 1 if (workers or scheduler) else None
    job = _Job(dataset, writer.path, defocus_model, rgb_model, config, bg_inputs, fields,
               device, threads, channels_last, fold_batchnorm)  # fmt: skip
    job.stale_after = float(claim_timeout)
    bar = _progress(progress, sum(len(t.indices) for t in pending), writer.path)
    tasks_done: list[dict] = []
    n_by_others = 0

    def done(task, res):
        nonlocal n_by_others
        if res["status"] == "claimed":
            return
        if res["status"] == "written":
            tasks_done.append(res)
            bar.set_postfix_str(f"{res['name']} failed={res['n_failed']}", refresh=False)
        else:
            n_by_others += 1
        bar.update(len(task.indices))

    try:
        while pending:
            if workers or scheduler:
                from cache.distributed import run_on_dask

                results = run_on_dask(
                    _run_task, job, pending, workers=workers, scheduler=scheduler, on_done=done
                )
            else:
                results = []
                for task in pending:
                    results.append(job.run(task))
                    done(task, results[-1])
            claimed = {r["name"] for r in results if r["status"] == "claimed"}
            waiting = [t for t in pending if t.name in claimed]
            pending, finished = _wait_for_claims(
                writer, waiting, job.stale_after, poll_seconds, bar
            )
            for task in finished:
                n_by_others += 1
                bar.update(len(task.indices))
    finally:
        bar.close()
        for model, (training, flags) in saved.items():
            model.train(training)
            for p, flag in zip(model.parameters(), flags, strict=True):
                p.requires_grad_(flag)
    cache = open_cache(writer.path)
    return ExtractResult(
        cache=cache,
        n_planned=len(mine),
        n_written=len(tasks_done),
        n_skipped=len(mine) - len(tasks_done),
        failed=cache.failed,
        seconds=time.perf_counter() - t0,
        tasks=tasks_done,
        n_by_others=n_by_others,
    )


def _wait_for_claims(
    writer: CacheWriter, waiting: list[ShardTask], stale_after: float, poll: float, bar
) -> tuple[list[ShardTask], list[ShardTask]]:
    """Wait while other runs hold claims on ``waiting``.

    Returns ``(to_compute, finished)``: the shards whose claim ended or went
    stale without an intact shard (to compute now), and those another run
    finished. Returns as soon as one shard is to compute, or none is left.
    """
    to_compute: list[ShardTask] = []
    finished: list[ShardTask] = []
    claim_dir = writer.path / CLAIM_DIR
    while waiting and not to_compute:
        still = []
        for task in waiting:
            try:
                state = claim_state(claim_dir / f"{task.name}.claim", stale_after)
            except FileNotFoundError:
                state = None
            if state is not None and state.live:
                still.append(task)
            elif writer.has_valid_shard(task.name):
                finished.append(task)
            else:
                to_compute.append(task)
        waiting = still
        if waiting and not to_compute:
            bar.set_postfix_str(f"waiting for {len(waiting)} shards of another run", refresh=True)
            time.sleep(poll)
    return to_compute + waiting, finished


def _defocus_config(model) -> dict | None:
    try:
        cfg = model.defocus_config
    except (AttributeError, ImportError):
        return None
    if cfg is None:
        return None
    return cfg.to_dict() if hasattr(cfg, "to_dict") else json.loads(json.dumps(cfg, default=str))


def _progress(enabled: bool, total: int, path: Path):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=f"extract -> {path.name}",
        unit="img",
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
    )
