"""Saving and loading detector weights without ever unpickling code.

Our format (``save_checkpoint``) holds the state dict, the model config
(``model.config``, which :func:`detector.models.build_detector` accepts
back), software versions and any extra plain values (epoch, metrics,
optimizer state). Two containers:

- ``*.safetensors``: tensors in safetensors, config/versions/extra as JSON
  in its metadata (extra must then be JSON-serialisable);
- anything else: ``torch.save`` of a dict of tensors and plain containers,
  read back with ``torch.load(weights_only=True)``.

The paper's released files load too: a bare state dict, with or without
DataParallel's ``module.`` prefix, with or without a
``{"model_state_dict": ...}`` wrapper (its training script also stores
``epoch``, ``optimizer_state_dict`` and ``best_val_acc``), its
``DefocusNet`` keeping the timm ``legacy_xception`` under ``classifier.``
(mapped here to our ``backbone.``), its ``MultiBranchDefocusNet`` keys
(``rgb_backbone.``, ``defocus_backbone.``, ``classifier.``) as they are.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from safeio import atomic_path, atomic_write

__all__ = [
    "FORMAT",
    "Checkpoint",
    "adapt_state_dict",
    "load_checkpoint",
    "read_checkpoint",
    "read_state_dict",
    "save_checkpoint",
]

#: Marker of our checkpoint format.
FORMAT = "defocus-forensics/checkpoint"
FORMAT_VERSION = 1

_WRAPPERS = ("model_state_dict", "state_dict", "model")


@dataclass
class Checkpoint:
    """What a checkpoint file holds.

    Attributes
    ----------
    state_dict : dict of str to torch.Tensor
        The weights, keys as stored (``module.`` prefixes not yet removed).
    config : dict or None
        The model config (None for files not in our format).
    versions : dict
        Software versions recorded at save time (empty for foreign files).
    extra : dict
        Everything else: our ``**extra`` values, or the other entries of a
        foreign wrapper dict (e.g. ``epoch``, ``best_val_acc``).
    layout : str
        ``"ours"``, ``"wrapped"`` (a ``{"model_state_dict": ...}`` dict) or
        ``"state_dict"`` (a bare state dict).
    """

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    layout: str = "ours"


def _versions() -> dict[str, str]:
    import timm

    from defocus_forensics import __version__

    return {
        "defocus_forensics": str(__version__),
        "torch": str(torch.__version__),
        "timm": str(timm.__version__),
    }


def _is_safetensors(path: Path) -> bool:
    return path.suffix == ".safetensors"


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **extra: Any) -> Path:
    """Write ``model``'s weights and config to ``path`` atomically.

    Parameters
    ----------
    model : torch.nn.Module
        A detector (its ``config`` dict is stored) or any module.
    path : str or path-like
        ``*.safetensors`` for safetensors, anything else for ``torch.save``.
    **extra
        Plain values stored beside the weights (epoch, metrics, optimizer
        state for ``torch.save`` files; JSON-serialisable values only for
        safetensors).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = dict(getattr(model, "config", {}) or {})
    if _is_safetensors(path):
        from safetensors.torch import save_file

        try:
            meta = {
                "format": FORMAT,
                "format_version": str(FORMAT_VERSION),
                "config": json.dumps(config),
                "versions": json.dumps(_versions()),
                "extra": json.dumps(extra),
            }
        except TypeError as err:
            raise ValueError(
                f"safetensors checkpoints hold JSON-serialisable extras only: {err}"
            ) from err
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata=meta)
    else:
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "state_dict": state,
            "config": config,
            "versions": _versions(),
            "extra": extra,
        }
        with atomic_write(path, "wb") as fh:
            torch.save(payload, fh)
    return path


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Checkpoint:
    """Read a checkpoint file (ours or the paper's) without unpickling code.

    Parameters
    ----------
    path : str or path-like
    map_location : str or torch.device
        Where the tensors are put.

    Returns
    -------
    Checkpoint

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a checkpoint, or holds pickled objects other
        than tensors and plain containers (it is never unpickled).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {os.fspath(path)!r}")
    if _is_safetensors(path):
        from safetensors import safe_open

        state = {}
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            for key in fh.keys():
                state[key] = fh.get_tensor(key)
        if map_location is not None:
            state = {k: v.to(map_location) for k, v in state.items()}
        if meta.get("format") == FORMAT:
            return Checkpoint(
                state,
                json.loads(meta.get("config", "null")),
                json.loads(meta.get("versions", "{}")),
                json.loads(meta.get("extra", "{}")),
                "ours",
            )
        return Checkpoint(state, None, {}, dict(meta), "state_dict")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if "Unsupported global" in ln]
        raise ValueError(
            f"{os.fspath(path)!r} holds pickled objects other than tensors and plain "
            f"containers; it is not loaded because unpickling could run code "
            f"(re-save its state_dict with torch.save): {lines[0] if lines else type(err).__name__}"
        ) from err
    except RuntimeError as err:
        raise ValueError(f"{os.fspath(path)!r} is not a torch checkpoint: {err}") from err
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return Checkpoint(
            dict(obj["state_dict"]),
            obj.get("config"),
            dict(obj.get("versions") or {}),
            dict(obj.get("extra") or {}),
            "ours",
        )
    if _is_state_dict(obj):
        return Checkpoint(dict(obj), None, {}, {}, "state_dict")
    if isinstance(obj, dict):
        for key in _WRAPPERS:
            if _is_state_dict(obj.get(key)):
                rest = {k: v for k, v in obj.items() if k != key}
                return Checkpoint(dict(obj[key]), None, {}, rest, "wrapped")
    raise ValueError(
        f"{os.fspath(path)!r} holds no state dict (expected our format, a state dict, or a "
        f"dict with one of {list(_WRAPPERS)}); top-level type {type(obj).__name__}"
    )


def read_state_dict(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
    """Return the state dict of a checkpoint with DataParallel ``module.`` prefixes removed."""
    state = read_checkpoint(path, map_location).state_dict
    return _strip_prefix(state, "module.")


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def adapt_state_dict(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map a state dict in the paper's layout onto ``model``'s parameter names.

    Removes DataParallel's ``module.`` prefix and, for single-backbone
    detectors (parameters under ``backbone.``), renames the paper's
    ``DefocusNet`` prefix ``classifier.`` to ``backbone.``.

    Parameters
    ----------
    state : dict of str to torch.Tensor
    model : torch.nn.Module

    Returns
    -------
    dict of str to torch.Tensor
        A new dict; tensors are not copied.
    """
    own = model.state_dict().keys()
    state = _strip_prefix(dict(state), "module.")
    if set(state) == set(own):
        return state
    own_prefixes = {k.split(".", 1)[0] for k in own}
    if "backbone" in own_prefixes and "classifier" not in own_prefixes:
        if any(k.startswith("classifier.") for k in state) and not any(
            k.startswith("backbone.") for k in state
        ):
            state = {
                ("backbone." + k[len("classifier.") :] if k.startswith("classifier.") else k): v
                for k, v in state.items()
            }
    return state


def _check_fit(state: dict[str, torch.Tensor], model: nn.Module, source: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"first missing key {missing[0]!r} ({len(missing)} missing)")
        if unexpected:
            parts.append(f"first unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected)")
        raise ValueError(
            f"checkpoint {source} does not fit the {type(model).__name__}: " + "; ".join(parts)
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(
                f"checkpoint {source} does not fit the {type(model).__name__}: key {k!r} has "
                f"shape {tuple(state[k].shape)} in the file and {tuple(v.shape)} in the model"
            )


def load_checkpoint(
    model_or_path: nn.Module | str | os.PathLike,
    path: str | os.PathLike | None = None,
    map_location: Any = "cpu",
) -> nn.Module:
    """Load weights into a model, or build the model a checkpoint describes.

    Parameters
    ----------
    model_or_path : torch.nn.Module or path
        A model to load into (then ``path`` is the file), or the file itself
        (then the model is built from the config stored in it; only our
        format stores one).
    path : str or path-like, optional
    map_location : str or torch.device
        Where the tensors are read to.

    Returns
    -------
    torch.nn.Module
        The model, with the weights loaded; ``model.checkpoint_extra`` holds
        the file's extra values.

    Raises
    ------
    ValueError
        If the weights do not fit the model (the message names the first
        missing and first unexpected keys), or the file has no config and
        no model was given.
    """
    if isinstance(model_or_path, nn.Module):
        model = model_or_path
        if path is None:
            raise ValueError("load_checkpoint(model, path): path is missing")
        ckpt = read_checkpoint(path, map_location)
    else:
        if path is not None:
            raise ValueError("give either load_checkpoint(model, path) or load_checkpoint(path)")
        path = model_or_path
        ckpt = read_checkpoint(path, map_location)
        if not ckpt.config:
            raise ValueError(
                f"{os.fspath(path)!r} stores no model config ({ckpt.layout} layout); build the "
                f"model with build_detector(...) and call load_checkpoint(model, path)"
            )
        from detector.models import build_detector

        model = build_detector(**ckpt.config)
    state = adapt_state_dict(ckpt.state_dict, model)
    _check_fit(state, model, repr(os.fspath(path)))
    model.load_state_dict(state, strict=True)
    model.checkpoint_extra = ckpt.extra
    return model
