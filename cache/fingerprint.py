"""Fingerprints of models, data and configs, recorded in the manifest (no torch import).

Two caches may be merged or resumed into one only when these agree; the
fingerprints go into the compared part of the manifest (``config``).
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

__all__ = ["fingerprint_state_dict", "fingerprint_model", "fingerprint_samples", "software"]


def fingerprint_state_dict(state: dict) -> str:
    """Return the sha256 of a state dict's names, dtypes, shapes and values.

    Parameters
    ----------
    state : dict of str to tensor or ndarray
        E.g. ``model.state_dict()``; tensors are read on the CPU.

    Returns
    -------
    str
        Hex digest, independent of the device and of the dict's order.
    """
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        if hasattr(value, "detach"):
            value = value.detach().cpu().contiguous().numpy()
        arr = np.ascontiguousarray(np.asarray(value))
        h.update(f"{key}|{arr.dtype.str}|{arr.shape}\n".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def fingerprint_model(model) -> dict:
    """Describe a model for the manifest: weights sha256, class and config.

    Parameters
    ----------
    model : torch.nn.Module
        Any module; ``model.config`` (a dict) is recorded when present.

    Returns
    -------
    dict
        ``{"sha256": ..., "class": ..., "config": ...}``.
    """
    config = getattr(model, "config", None)
    return {
        "sha256": fingerprint_state_dict(model.state_dict()),
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "config": json.loads(json.dumps(config, default=str)) if config else None,
    }


def fingerprint_samples(dataset) -> dict:
    """Describe a dataset's sample list: count, per-group counts and a sha256 of the records.

    Parameters
    ----------
    dataset : object
        With ``.samples`` (records with ``.id .label .group .pair_id`` and
        optionally ``.path`` and ``.mask_path``) or, failing that, ``len()``;
        ``describe()`` is recorded when present. For file-backed samples the
        file names and sizes enter the hash, not the pixels.

    Returns
    -------
    dict
        ``{"n": ..., "sha256": ..., "describe": ...}``.
    """
    h = hashlib.sha256()
    samples = getattr(dataset, "samples", None)
    n = len(samples) if samples is not None else len(dataset)
    if samples is not None:
        for s in samples:
            path = getattr(s, "path", "") or ""
            stat = ""
            if path and os.path.exists(path):
                st = os.stat(path)
                stat = str(st.st_size)
            row = [
                str(getattr(s, "id", "")),
                str(getattr(s, "label", "")),
                str(getattr(s, "group", "")),
                str(getattr(s, "pair_id", "")),
                os.path.basename(path),
                stat,
                str(getattr(s, "mask_path", "") or ""),
            ]
            h.update(("\x1f".join(row) + "\n").encode())
    describe = dataset.describe() if hasattr(dataset, "describe") else None
    if describe is not None:
        h.update(json.dumps(describe, sort_keys=True, default=str).encode())
    return {
        "n": int(n),
        "sha256": h.hexdigest(),
        "describe": json.loads(json.dumps(describe, default=str)) if describe else None,
    }


def software() -> dict:
    """Return the versions of the packages that shape a cache's content."""
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for name in ("defocus-forensics", "numpy", "torch", "timm", "shap", "captum", "dask"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out
