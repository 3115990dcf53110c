"""Import of the paper's own pickled ``.npz`` files into a cache (numpy only).

The paper's "Shapley Save" notebook writes one file per group,
``shap_data_real.npz`` and ``shap_data_fake_<Manipulation>.npz``, each with
three object arrays built from Python lists (``np.array(list, dtype=object)``):

``dmaps``
    the normalised defocus maps, one ``(H, W)`` per image;
``defocus_shaps``
    the defocus model's Shapley values on those maps, ``(H, W)``;
``rgb_shaps``
    channel 0 only of the RGB model's Shapley values, ``(H, W)``; stored as
    ``attr_rgb_c0``, which the analyses (alignment, localisation) score as the
    RGB model's attribution when a cache has no full ``attr_rgb``, as the
    paper's own alignment notebook does.

Reading object arrays means unpickling, which can run code embedded in the
file, so :func:`import_legacy` refuses unless ``trust_pickle=True``. The
files carry no ids: samples get ``<group>/<index>`` ids, and fakes are
paired with the real sample at the same list position (the paper's own
convention), recorded as ``pair_id`` when a real file is imported alongside.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cache.errors import CacheFormatError, PickledArrayError
from cache.store import Cache, CacheWriter, ids_digest, open_cache

__all__ = ["LEGACY_KEYS", "PICKLE_WARNING", "import_legacy", "group_of_legacy_file"]

#: Keys of the paper's files and the schema fields they become.
LEGACY_KEYS = {"dmaps": "defocus", "defocus_shaps": "attr_defocus", "rgb_shaps": "attr_rgb_c0"}

PICKLE_WARNING = (
    "unpickling runs code stored in the file: import only .npz files you trust "
    "(e.g. ones you produced with the paper's notebook)"
)

_NAME = re.compile(r"^shap_data_(real|fake_(?P<manip>.+))$")


def group_of_legacy_file(path) -> tuple[str, int]:
    """Return ``(group, label)`` from a paper file name.

    ``shap_data_real.npz`` gives ``("real", 0)`` and
    ``shap_data_fake_Deepfakes.npz`` gives ``("Deepfakes", 1)``.

    Raises
    ------
    ValueError
        If the name follows neither pattern.
    """
    stem = Path(path).name.removesuffix(".npz")
    m = _NAME.match(stem)
    if not m:
        raise ValueError(
            f"cannot tell the group of {Path(path).name!r}: expected shap_data_real.npz or "
            "shap_data_fake_<Manipulation>.npz; name the group explicitly"
        )
    return ("real", 0) if m.group("manip") is None else (m.group("manip"), 1)


def _stack(obj: np.ndarray, where: str) -> np.ndarray:
    """Turn a (possibly object) array of per-image maps into ``(N, H, W)`` float64."""
    if obj.dtype != object:
        arr = np.asarray(obj, dtype=np.float64)
    else:
        items = [np.asarray(x, dtype=np.float64) for x in obj] if obj.ndim == 1 else None
        if items is None:  # np.array(list of equal arrays, dtype=object): an (N, H, W) object array
            arr = obj.astype(np.float64)
        else:
            shapes = {x.shape for x in items}
            if len(shapes) != 1:
                raise CacheFormatError(f"{where}: per-image maps of different shapes {shapes}")
            arr = np.stack(items) if items else np.zeros((0, 0, 0))
    arr = np.squeeze(arr, axis=tuple(i for i in range(1, arr.ndim) if arr.shape[i] == 1))
    if arr.ndim != 3:
        raise CacheFormatError(f"{where}: expected (N, H, W) maps, got shape {arr.shape}")
    return arr


def import_legacy(
    files: Sequence,
    out_dir,
    trust_pickle: bool = False,
    groups: Sequence[str] | None = None,
    labels: Sequence[int] | None = None,
    shard_size: int = 256,
) -> Cache:
    """Convert the paper's pickled ``.npz`` files into a cache.

    Parameters
    ----------
    files : sequence of path
        ``shap_data_*.npz`` files, one group each.
    out_dir : path
        The cache folder to create.
    trust_pickle : bool
        Must be True: reading these files unpickles them, which runs code.
    groups, labels : sequence, optional
        Group name and label (0 real, 1 fake) per file; default from the file names.
    shard_size : int
        Samples per shard.

    Returns
    -------
    Cache

    Raises
    ------
    PickledArrayError
        Without ``trust_pickle``.
    CacheFormatError
        If a file lacks the paper's keys or its maps disagree in number or shape.
    """
    files = [Path(f) for f in files]
    if not files:
        raise ValueError("give at least one .npz file to import")
    if not trust_pickle:
        raise PickledArrayError(
            "the paper's .npz files hold object arrays that only unpickling can read, and "
            f"{PICKLE_WARNING}; pass trust_pickle=True (--trust-pickle) to import them"
        )
    if int(shard_size) < 1:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
    warnings.warn(PICKLE_WARNING, UserWarning, stacklevel=2)
    if groups is None:
        named = [group_of_legacy_file(f) for f in files]
    else:
        if len(groups) != len(files) or labels is None or len(labels) != len(files):
            raise ValueError("give one group and one label per file")
        named = list(zip(groups, (int(v) for v in labels), strict=True))
    loaded = []
    for f, (group, label) in zip(files, named, strict=True):
        if not f.is_file():
            raise FileNotFoundError(f"legacy file not found: {f}")
        with np.load(f, allow_pickle=True) as npz:  # explicit opt-in above
            missing = [k for k in LEGACY_KEYS if k not in npz.files]
            if missing:
                raise CacheFormatError(
                    f"{f.name} lacks the paper's keys {missing}; it has {npz.files}"
                )
            arrays = {LEGACY_KEYS[k]: _stack(npz[k], f"{f.name}[{k}]") for k in LEGACY_KEYS}
        counts = {k: len(v) for k, v in arrays.items()}
        if len(set(counts.values())) != 1:
            raise CacheFormatError(f"{f.name}: the keys hold different sample counts {counts}")
        loaded.append((f, group, label, arrays))
    real_counts = [len(a["defocus"]) for _, g, lab, a in loaded if lab == 0]
    plan = []  # recorded before any shard is written: an interrupted import verifies incomplete
    for _, group, _, arrays in loaded:
        n = len(arrays["defocus"])
        for start in range(0, n, shard_size):
            ids = [f"{group}/{i:05d}" for i in range(start, min(n, start + shard_size))]
            name = f"{len(plan):05d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', group)}"
            plan.append({"name": name, "group": group, "n_samples": len(ids),
                         "ids_sha256": ids_digest(ids)})  # fmt: skip
    writer = CacheWriter(
        out_dir,
        config={
            "legacy_import": {
                "files": [f.name for f in files],
                "groups": [g for _, g, _, _ in loaded],
            }
        },
        info={
            "source": "paper's pickled npz files (import-legacy)",
            "pairing": "fake i paired with real i by list position (the paper's convention)",
            "attr_rgb_c0": "channel 0 only of the RGB attributions, as the paper saved them; "
            "the alignment and localisation analyses score the RGB model on it",
        },
        plan=plan,
    )
    real_group = next((g for _, g, lab, _ in loaded if lab == 0), None)
    k = 0
    for _, group, label, arrays in loaded:
        n = len(arrays["defocus"])
        ids = np.array([f"{group}/{i:05d}" for i in range(n)])
        if label == 1 and real_group is not None:
            n_real = real_counts[0]
            pairs = np.array([f"{real_group}/{i:05d}" if i < n_real else "" for i in range(n)])
        else:
            pairs = np.array([""] * n)
        dmin = float(arrays["defocus"].min()) if n else 0.0
        dmax = float(arrays["defocus"].max()) if n else 0.0
        if n and (dmin < -1e-3 or dmax > 1 + 1e-3):
            warnings.warn(
                f"{group}: defocus maps span [{dmin:.3g}, {dmax:.3g}], not [0, 1]",
                UserWarning,
                stacklevel=2,
            )
        for start in range(0, n, shard_size):
            sl = slice(start, start + shard_size)
            m = len(ids[sl])
            writer.write_shard(
                group,
                {
                    "id": ids[sl],
                    "group": np.array([group] * m),
                    "label": np.full(m, label, dtype=np.int8),
                    "pair_id": pairs[sl],
                    **{key: value[sl] for key, value in arrays.items()},
                },
                name=f"{k:05d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', group)}",
            )
            k += 1
    return open_cache(writer.path)
