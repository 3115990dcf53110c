"""Deterministic train/val/test splits that keep a video and a fake's real partner together.

Datasets without a split of their own (real/fake folders, an index CSV
without a ``split`` column) are cut by a hash of each sample's *unit*: the
video its frame comes from, or, for a fake whose real partner is known, the
partner's unit. So the frames of one video, and a fake with the real image
it was made from, always land in the same split; otherwise a model could be
tested on a near-copy of what it was trained on, and a paired analysis of
the test split would find no partners.

The cut depends only on the unit names, ``seed`` and the fractions: a
sample stays in its split whatever else is added to or removed from the
data, on any machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from detector.data._base import ImageDataset, Sample, SampleSubset

__all__ = ["SPLITS", "check_fractions", "check_split", "hash_split", "hash_split_indices",
           "unit_keys"]  # fmt: skip

#: Splits every dataset understands; ``all`` is every sample.
SPLITS: tuple[str, ...] = ("train", "val", "test", "all")


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`, else raise naming it."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split


def check_fractions(val: float, test: float) -> tuple[float, float]:
    """Check the validation and test fractions of a hash split.

    Both must lie in ``[0, 1)`` and leave a positive training fraction.
    """
    for name, value in (("val", val), ("test", test)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
    if val + test >= 1:
        raise ValueError(f"val + test must leave a training fraction, got {val} + {test} >= 1")
    return float(val), float(test)


def unit_keys(samples: Sequence[Sample]) -> list[str]:
    """Return the split unit of every sample.

    A sample's unit is ``"video:<video>"`` when it has a video, else
    ``"id:<id>"``; a fake whose ``pair_id`` names a sample of the list takes
    its partner's unit.

    Parameters
    ----------
    samples : sequence of Sample

    Returns
    -------
    list of str, one per sample
    """
    by_id = {s.id: s for s in samples}

    def own(s: Sample) -> str:
        return f"video:{s.video}" if s.video else f"id:{s.id}"

    out = []
    for s in samples:
        partner = by_id.get(s.pair_id) if s.label == 1 and s.pair_id else None
        out.append(own(partner if partner is not None else s))
    return out


def _uniform(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{int(seed)}:{key}".encode()).hexdigest()
    return int(digest[:13], 16) / 16**13


def hash_split_indices(
    samples: Sequence[Sample], split: str, val: float = 0.1, test: float = 0.2, seed: int = 0
) -> list[int]:
    """Positions of the samples of ``split`` under the unit hash split.

    Parameters
    ----------
    samples : sequence of Sample
    split : {"train", "val", "test", "all"}
    val, test : float
        Fractions of the units (in expectation) in the validation and test
        splits; the rest is training.
    seed : int
        Another seed gives another, equally deterministic, cut.

    Returns
    -------
    list of int
        Positions in ``samples``, in their order.
    """
    check_split(split)
    val, test = check_fractions(val, test)
    if split == "all":
        return list(range(len(samples)))
    lo, hi = {"train": (0.0, 1 - val - test), "val": (1 - val - test, 1 - test),
              "test": (1 - test, 1.0)}[split]  # fmt: skip
    return [i for i, key in enumerate(unit_keys(samples)) if lo <= _uniform(seed, key) < hi]


def hash_split(
    ds,
    split: str,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
):
    """Cut a dataset into train/val/test by a hash of each sample's unit.

    Parameters
    ----------
    ds : ImageDataset or dataset with ``.samples``
    split : {"train", "val", "test", "all"}
    fractions : sequence of 3 floats summing to 1
        Train, validation and test fractions.
    seed : int

    Returns
    -------
    ImageDataset or SampleSubset
        The samples of ``split`` (same image size and masks).
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(
            f"fractions must be 3 non-negative numbers summing to 1, got {fractions!r}"
        )
    keep = hash_split_indices(ds.samples, split, fractions[1], fractions[2], seed)
    if isinstance(ds, ImageDataset):
        return ds.subset(keep)
    return SampleSubset(ds, keep)
