"""Pairing fakes with the real images they were made from, and saying when none are.

The paired analyses (binary masks, local-variance pairs, alignment scores)
compare a fake with its own real image. A fake's partner is the sample whose
id is its ``pair_id``. Folders of images get partners by name
(:func:`match_names`): ``pair=stem`` matches a fake with the real image of
the same file stem, ``pair=path`` with the real image of the same relative
path (extension aside; a fake inside a generator sub-folder such as
``fake/gan/a/b.png`` may also match ``real/a/b.jpg``). An index CSV gives
partners in its ``pair_id`` column. :func:`report_pairing` warns, once per
dataset, when fakes have no partner, naming how to give them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import PurePosixPath

from detector.data._base import Sample

__all__ = ["PAIR_MODES", "PAIRING_HINT", "match_names", "report_pairing"]

#: How :func:`match_names` may pair files.
PAIR_MODES: tuple[str, ...] = ("none", "stem", "path")

#: What a user can do when fakes have no partner.
PAIRING_HINT = (
    "give pairs with pair=stem (same file name) or pair=path (same relative path) in a "
    "folders: spec, or a pair_id column (the real's id) in an index CSV"
)

log = logging.getLogger("detector.data")
_warned: set[str] = set()


def _keys(rel: str, how: str, is_fake_in_group: bool) -> list[str]:
    p = PurePosixPath(rel)
    if how == "stem":
        return [p.stem]
    no_ext = p.with_suffix("").as_posix()
    keys = [no_ext]
    if is_fake_in_group and len(p.parts) > 1:
        keys.append(PurePosixPath(*p.parts[1:]).with_suffix("").as_posix())
    return keys


def match_names(
    real: Sequence[tuple[str, str]], fake: Sequence[str], how: str, fake_in_group: bool = True
) -> list[str]:
    """Return the partner id of each fake ("" when none), matching file names.

    Parameters
    ----------
    real : sequence of (relative path, id)
        The real images, paths relative to the real folder (``/``-separated).
    fake : sequence of str
        Relative paths of the fakes under the fake folder.
    how : {"none", "stem", "path"}
        ``stem``: same file name without extension; ``path``: same relative
        path without extension (for a fake in a sub-folder, also without its
        first folder, the generator's).
    fake_in_group : bool
        Whether the first folder of a fake's path names its group.

    Returns
    -------
    list of str, one per fake

    Raises
    ------
    ValueError
        If ``how`` is unknown, or two real images share a key (which one a
        fake was made from would be a guess).
    """
    if how not in PAIR_MODES:
        raise ValueError(f"pair must be one of {', '.join(PAIR_MODES)}; got {how!r}")
    if how == "none":
        return [""] * len(fake)
    lookup: dict[str, str] = {}
    for rel, sid in real:
        key = _keys(rel, how, False)[0]
        if key in lookup:
            other = next(r for r, i in real if i == lookup[key])
            hint = "; use pair=path" if how == "stem" else ""
            raise ValueError(
                f"pair={how}: real images {other!r} and {rel!r} share the key {key!r}, so a "
                f"fake's partner would be a guess{hint}"
            )
        lookup[key] = sid
    out = []
    for rel in fake:
        found = ""
        for key in _keys(rel, how, fake_in_group):
            if key in lookup:
                found = lookup[key]
                break
        out.append(found)
    return out


def report_pairing(
    samples: Sequence[Sample],
    source: str,
    *,
    real_ids: set[str] | None = None,
    warn: bool = True,
) -> dict:
    """Count the fakes with and without a real partner; warn (once per source) if some lack one.

    Parameters
    ----------
    samples : sequence of Sample
        All samples of a dataset (every split: partners may sit anywhere).
    source : str
        What the data is (a spec or a path), for the message.
    real_ids : set of str, optional
        Ids a partner may have (default: the real samples of ``samples``).
    warn : bool
        Log the warning (logger ``detector.data``).

    Returns
    -------
    dict
        ``n_fake``, ``n_paired`` (fakes whose ``pair_id`` names a real
        sample of ``samples``) and ``unpaired`` (the first few unpaired ids).
    """
    if real_ids is None:
        real_ids = {s.id for s in samples if s.label == 0}
    fakes = [s for s in samples if s.label == 1]
    unpaired = [s.id for s in fakes if s.pair_id not in real_ids]
    out = {"n_fake": len(fakes), "n_paired": len(fakes) - len(unpaired), "unpaired": unpaired[:5]}
    if not warn or not unpaired:
        return out
    if len(unpaired) == len(fakes):
        msg = (
            f"{source}: no fake has a real partner, so the paired analyses (binary masks, "
            f"local-variance pairs, alignment) will be unavailable; {PAIRING_HINT}"
        )
    else:
        msg = (
            f"{source}: {len(unpaired)} of {len(fakes)} fakes have no real partner "
            f"(e.g. {unpaired[0]!r}); the paired analyses leave them out"
        )
    if msg not in _warned:
        _warned.add(msg)
        log.warning(msg)
    return out
