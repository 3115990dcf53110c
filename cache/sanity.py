"""Model-randomisation sanity check, the torch side: re-initialise layers, attribute again.

Adebayo et al., "Sanity Checks for Saliency Maps" (NeurIPS 2018). The layers
of a model are the modules that hold parameters of their own, in the order
the model registers them (input to output for the detectors here).
Cascading randomisation re-initialises them from the top (the output layer
first) downwards, cumulatively; the last stage re-initialises every layer
(the whole model). Each layer is re-initialised with its own
``reset_parameters()`` under a seed derived from the run seed and the
layer's name, so a layer gets the same random weights at every stage that
includes it, and a rerun gives the same numbers. Attributions of every
stage use the same explainer, background, inputs and per-sample seeds as
the trained model's, so they differ only through the weights.

The numbers (Spearman rank correlations, the flag) are computed without
torch by :mod:`analysis.sanity`; ``defocus sanity`` wires the two.

>>> from cache.sanity import cascade_stages, parameter_layers, randomisation_attributions
>>> stages = cascade_stages(parameter_layers(model), max_stages=6)         # doctest: +SKIP
>>> trained, randomised = randomisation_attributions(
...     model, x, ids, bg, cfg, stages)                          # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from cache.explainers import ExplainerConfig, get_explainer
from cache.sampling import sample_seed

__all__ = [
    "cascade_stages",
    "parameter_layers",
    "randomisation_attributions",
    "reinitialise",
    "select_samples",
    "sanity_inputs",
]


def parameter_layers(model: nn.Module) -> list[str]:
    """Names of the modules holding parameters of their own, in registration order.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    list of str
        Dotted module names (``""`` for the root when it holds parameters itself).
    """
    return [
        name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))
    ]


def cascade_stages(layers: Sequence[str], max_stages: int | None = None) -> list[dict]:
    """Cascading randomisation stages from the top: stage ``k`` re-initialises the top layers.

    Parameters
    ----------
    layers : sequence of str
        From :func:`parameter_layers` (input to output).
    max_stages : int, optional
        At most this many stages (default: one per layer). The first stage is
        always the top layer alone and the last every layer; the ones between
        re-initialise evenly spaced numbers of layers.

    Returns
    -------
    list of dict
        ``name`` ("top-1", ..., "all"), ``n_layers``, ``layers`` (top first),
        ``lowest`` (the deepest re-initialised layer).
    """
    layers = list(layers)
    n = len(layers)
    if n == 0:
        raise ValueError("the model has no layer with parameters to re-initialise")
    if max_stages is not None and (isinstance(max_stages, bool) or int(max_stages) < 1):
        raise ValueError(f"max_stages must be a positive integer, got {max_stages!r}")
    if max_stages is None or n <= max_stages:
        counts = list(range(1, n + 1))
    elif max_stages == 1:
        counts = [n]
    else:
        counts = sorted({int(round(c)) for c in np.linspace(1, n, int(max_stages))})
    top_first = layers[::-1]
    stages = []
    for k in counts:
        stages.append(
            {
                "name": "all" if k == n else f"top-{k}",
                "n_layers": k,
                "layers": top_first[:k],
                "lowest": top_first[k - 1] or "<root>",
            }
        )
    return stages


def reinitialise(model: nn.Module, layers: Sequence[str], seed: int = 0) -> nn.Module:
    """Return a copy of ``model`` whose ``layers`` are re-initialised (seeded per layer name).

    A layer is re-initialised by its own ``reset_parameters()`` (PyTorch's
    default initialisation; batch norms also reset their running statistics);
    a module without one gets each of its parameters redrawn from
    ``N(0, std of that parameter)``.

    Raises
    ------
    ValueError
        When a named layer does not exist.
    """
    out = copy.deepcopy(model)
    for name in layers:
        try:
            module = out.get_submodule(name)
        except AttributeError:
            raise ValueError(f"the model has no layer {name!r}") from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(seed, f"reinitialise:{name}"))
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
            else:
                _redraw(module)
    return out


@torch.no_grad()
def _redraw(module: nn.Module) -> None:
    """Re-initialise a module without ``reset_parameters()``: N(0, std of each parameter)."""
    for p in module.parameters(recurse=False):
        std = float(p.float().std()) if p.numel() > 1 else float(p.abs().float().sum())
        p.normal_(0.0, std if std > 0 and std == std else 0.02)


def _attribute(model: nn.Module, inputs, ids, background, config: ExplainerConfig, batch: int):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    params = {k: v for k, v in config.__dict__.items() if k != "name"}
    explainer = get_explainer(config.name, model.classify, background, **params)
    out = [
        explainer.attribute(inputs[s : s + batch], ids[s : s + batch]).cpu().numpy()
        for s in range(0, len(ids), batch)
    ]
    return np.concatenate(out).astype(np.float32)


def randomisation_attributions(
    model: nn.Module,
    inputs: torch.Tensor,
    ids: Sequence[str],
    background: torch.Tensor,
    config: ExplainerConfig,
    stages: Sequence[dict],
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Attributions of the trained model and of every randomisation stage, on the same inputs.

    Parameters
    ----------
    model : torch.nn.Module
        With ``classify(x) -> (B, 1)``; not modified (stages work on copies).
    inputs : torch.Tensor of shape (N, C, H, W)
        What ``classify`` takes (defocus maps (N, 1, S, S) or images).
    ids : sequence of str, length N
        Sample ids (with ``config.seed`` they seed each sample's draws).
    background : torch.Tensor of shape (M, C, H, W)
        The explainer's reference inputs.
    config : ExplainerConfig
    stages : sequence of dict
        From :func:`cascade_stages`.
    seed : int
        Seed of the re-initialised weights.
    batch_size : int
        Samples per explainer call.
    progress : bool
        A progress bar over the stages.

    Returns
    -------
    trained : ndarray of float32, shape (N, C, H, W)
    randomised : list of ndarray, one per stage, shaped like ``trained``
    """
    ids = [str(i) for i in ids]
    trained = _attribute(model, inputs, ids, background, config, batch_size)
    randomised = []
    from tqdm.auto import tqdm

    for st in tqdm(stages, desc="randomisation stages", unit="stage", disable=not progress):
        copy_ = reinitialise(model, st["layers"], seed)
        randomised.append(_attribute(copy_, inputs, ids, background, config, batch_size))
        del copy_
    return trained, randomised


def select_samples(dataset, n: int) -> list[int]:
    """Return the first ``n`` fakes' indices in dataset order, then reals if fakes are too few."""
    from cache.extract import _records

    records = _records(dataset)
    fakes = [i for i, r in enumerate(records) if r[2] == 1]
    reals = [i for i, r in enumerate(records) if r[2] != 1]
    return (fakes + reals)[: int(n)]


def sanity_inputs(model: nn.Module, dataset, indices: Sequence[int], kind: str, device="cpu"):
    """Model inputs ``(N, C, H, W)`` and ids of the chosen samples (one sample at a time).

    Unreadable samples are skipped.
    """
    from cache.extract import _model_input, _records

    records = _records(dataset)
    xs, ids = [], []
    for i in indices:
        try:
            item = dataset[i]
        except Exception:  # noqa: BLE001 - an unreadable image is skipped, as in extract
            continue
        if not isinstance(item, dict) or not isinstance(item.get("image"), torch.Tensor):
            continue
        xs.append(_model_input(model, item["image"][None].float().to(device), kind).cpu())
        ids.append(records[i][0])
    if not xs:
        raise ValueError("none of the chosen samples could be read")
    return torch.cat(xs), ids
