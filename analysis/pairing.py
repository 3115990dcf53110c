"""Pair every fake with the real image it was made from, streaming a cache shard by shard.

Pairs are matched by id: a fake's ``pair_id`` is the ``id`` of its source real
sample. Matching by position (the i-th fake of a group with the i-th real of
the cache, which is what the paper's code does with its lists) is available
only with ``by_position=True`` and warns, because any missing or reordered
sample silently pairs unrelated images.

The join never holds a whole cache in memory: a first pass reads only the
small per-sample fields (``id``, ``pair_id``, ``label``), a second pass over
the real shards collects the rows the fakes need, keeping them in memory up to
``memory_budget`` bytes and spilling the rest to a temporary folder, and a last
pass over the fake shards yields aligned blocks. Peak memory is about one real
shard, one fake shard and the budget.
"""

from __future__ import annotations

import tempfile
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "NO_PAIRS",
    "PAIRING_HINT",
    "PairPlan",
    "PairedBlock",
    "fake_groups",
    "iter_group",
    "iter_paired_blocks",
    "match_by_id",
    "match_by_position",
    "plan_pairs",
    "run_paired",
]

_META_FIELDS = ("id", "pair_id", "label")

#: How to give pairs (the same words as ``detector.data.pairing.PAIRING_HINT``, which
#: this torch-free package cannot import; a test keeps the two equal).
PAIRING_HINT = (
    "give pairs with pair=stem (same file name) or pair=path (same relative path) in a "
    "folders: spec, or a pair_id column (the real's id) in an index CSV"
)
#: Why a paired analysis (masks, local-variance pairs, alignment) is not available.
NO_PAIRS = f"no fake has a real partner (pair ids empty or unknown): {PAIRING_HINT}"


def match_by_id(pair_ids: Sequence[str], real_ids: Sequence[str]) -> np.ndarray:
    """Index into ``real_ids`` of each fake's source, -1 when unknown.

    Parameters
    ----------
    pair_ids : sequence of str, length n_fake
        ``pair_id`` of every fake ("" when unknown).
    real_ids : sequence of str, length n_real
        ``id`` of every real sample (unique).

    Returns
    -------
    ndarray of int64, shape (n_fake,)
        Row of the matching real sample, or -1.
    """
    lookup = {str(r): i for i, r in enumerate(real_ids)}
    if len(lookup) != len(real_ids):
        raise ValueError("real_ids must be unique")
    return np.array([lookup.get(str(p), -1) if p != "" else -1 for p in pair_ids], np.int64)


def match_by_position(n_fake: int, n_real: int) -> np.ndarray:
    """Pair the i-th fake with the i-th real (the paper's list order); warns every time.

    Returns
    -------
    ndarray of int64, shape (n_fake,)
        ``i`` for fakes with a real at the same position, -1 beyond ``n_real``.
    """
    warnings.warn(
        "pairing fakes with reals by position: only valid when both lists were written "
        "in the same order with no sample missing; prefer pair ids",
        UserWarning,
        stacklevel=2,
    )
    idx = np.arange(n_fake, dtype=np.int64)
    idx[idx >= n_real] = -1
    return idx


def iter_group(cache, group: str, fields: Iterable[str]) -> Iterator[dict[str, np.ndarray]]:
    """Yield, per shard of ``group`` in cache order, a dict holding only ``fields``.

    Uses ``cache.iter_shards(group, fields=...)`` when the reader supports
    reading a subset of fields, and ``cache.iter_shards(group)`` otherwise.
    """
    fields = list(dict.fromkeys(fields))
    try:
        it = cache.iter_shards(group, fields=fields)
    except TypeError:
        it = cache.iter_shards(group)
    for shard in it:
        yield {f: np.asarray(shard[f]) for f in fields if f in shard}


@dataclass
class _ShardMeta:
    ids: np.ndarray
    pair_ids: np.ndarray
    labels: np.ndarray


@dataclass
class PairPlan:
    """Where every fake's real partner lives, computed from the small fields only.

    Attributes
    ----------
    meta : dict of str to list
        Per group, per shard (cache order): ids, pair ids and labels.
    partner : dict of (str, int) to ndarray of shape (n_rows, 3)
        For fake group and shard index, per row: (real group index into
        ``real_groups``, real shard index, real row), or -1 when unpaired or
        not a fake.
    real_groups : list of str
        Groups that hold real samples.
    fake_groups : list of str
        Groups analysed as fakes.
    n_unpaired : dict of str to int
        Fakes per group without a real partner.
    by_position : bool
        Whether pairs were matched by position.
    """

    meta: dict[str, list[_ShardMeta]]
    partner: dict[tuple[str, int], np.ndarray]
    real_groups: list[str]
    fake_groups: list[str]
    n_unpaired: dict[str, int] = field(default_factory=dict)
    by_position: bool = False

    def n_pairs(self, group: str) -> int:
        """Return the number of fakes of ``group`` with a real partner."""
        return int(
            sum(np.sum(self.partner[(group, k)][:, 0] >= 0) for k in range(len(self.meta[group])))
        )


def fake_groups(cache, groups: Sequence[str] | None = None, plan: PairPlan | None = None):
    """Return the groups holding fakes (label 1), optionally restricted to ``groups``."""
    if plan is not None:
        names = plan.fake_groups
    else:
        names = [g for g in cache.groups if np.any(cache.load("label", g) == 1)]
    return [g for g in names if groups is None or g in groups]


def plan_pairs(
    cache,
    groups: Sequence[str] | None = None,
    by_position: bool = False,
    real_group: str | None = None,
) -> PairPlan:
    """Match fakes with reals from the ids alone (reads ``id``, ``pair_id``, ``label``).

    Parameters
    ----------
    cache : cache reader
        An object from :func:`cache.open_cache`.
    groups : sequence of str, optional
        Fake groups to plan for (default: every group holding fakes).
    by_position : bool
        Match the i-th fake of each group with the i-th real sample instead of
        by id (warns).
    real_group : str, optional
        Take partners only from this group (default: any group's reals).

    Returns
    -------
    PairPlan
    """
    if groups is not None:
        unknown = [g for g in groups if g not in cache.groups]
        if unknown:
            raise ValueError(f"groups {unknown} are not in the cache; it has {cache.groups}")
    if real_group is not None and real_group not in cache.groups:
        raise ValueError(f"real_group {real_group!r} is not in the cache; it has {cache.groups}")
    meta: dict[str, list[_ShardMeta]] = {}
    for g in cache.groups:
        meta[g] = [
            _ShardMeta(s["id"].astype(str), s["pair_id"].astype(str), s["label"].astype(np.int8))
            for s in iter_group(cache, g, _META_FIELDS)
        ]
    real_groups = [
        g
        for g in cache.groups
        if (real_group is None or g == real_group) and any(np.any(m.labels == 0) for m in meta[g])
    ]
    fakes = [
        g
        for g in cache.groups
        if any(np.any(m.labels == 1) for m in meta[g]) and (groups is None or g in groups)
    ]
    # location of every real sample, in cache order
    real_loc = []
    real_ids = []
    for gi, g in enumerate(real_groups):
        for k, m in enumerate(meta[g]):
            rows = np.flatnonzero(m.labels == 0)
            real_loc.append(np.stack([np.full(rows.size, gi), np.full(rows.size, k), rows], 1))
            real_ids.extend(m.ids[rows].tolist())
    real_loc = np.concatenate(real_loc) if real_loc else np.zeros((0, 3), np.int64)
    partner: dict[tuple[str, int], np.ndarray] = {}
    n_unpaired: dict[str, int] = {}
    warned = False
    for g in fakes:
        fake_rows = [np.flatnonzero(m.labels == 1) for m in meta[g]]
        all_pair_ids = np.concatenate(
            [m.pair_ids[r] for m, r in zip(meta[g], fake_rows, strict=True)]
        )
        if by_position:
            with warnings.catch_warnings():
                if warned:
                    warnings.simplefilter("ignore")
                idx = match_by_position(len(all_pair_ids), len(real_ids))
            warned = True
        else:
            idx = match_by_id(all_pair_ids, real_ids)
        n_unpaired[g] = int(np.sum(idx < 0))
        start = 0
        for k, (m, rows) in enumerate(zip(meta[g], fake_rows, strict=False)):
            loc = np.full((m.ids.size, 3), -1, np.int64)
            sel = idx[start : start + rows.size]
            ok = sel >= 0
            loc[rows[ok]] = real_loc[sel[ok]]
            partner[(g, k)] = loc
            start += rows.size
    return PairPlan(meta, partner, real_groups, fakes, n_unpaired, by_position)


@dataclass
class PairedBlock:
    """Aligned arrays of the paired fakes of one fake shard and their real partners.

    Attributes
    ----------
    group : str
        The fakes' group.
    shard : int
        Index of the fake shard within its group.
    fake : dict of str to ndarray
        Requested fake fields, rows = paired fakes of the shard.
    real : dict of str to ndarray
        Requested real fields, row ``i`` = partner of fake row ``i``.
    """

    group: str
    shard: int
    fake: dict[str, np.ndarray]
    real: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(len(self.fake["id"]))


class _Store:
    """Rows waiting for their fake shard: in memory up to a budget, then on disk."""

    def __init__(self, budget: int):
        self.budget = int(budget)
        self.used = 0
        self.items: dict[tuple[str, int], list] = defaultdict(list)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._n = 0

    def put(self, key, rows: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        size = sum(a.nbytes for a in arrays.values())
        if self.used + size <= self.budget:
            self.items[key].append((rows, arrays))
            self.used += size
            return
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="analysis-pairs-")
        path = Path(self._tmp.name) / f"chunk{self._n}.npz"
        self._n += 1
        np.savez(path, __rows__=rows, **arrays)
        self.items[key].append(path)

    def take(self, key) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
        out = []
        for item in self.items.pop(key, []):
            if isinstance(item, Path):
                with np.load(item, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files if k != "__rows__"}
                    out.append((z["__rows__"], arrays))
                item.unlink()
            else:
                self.used -= sum(a.nbytes for a in item[1].values())
                out.append(item)
        return out

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def iter_paired_blocks(
    cache,
    fake_fields: Iterable[str],
    real_fields: Iterable[str] = (),
    plan: PairPlan | None = None,
    groups: Sequence[str] | None = None,
    by_position: bool = False,
    memory_budget: int = 256 * 2**20,
) -> Iterator[PairedBlock]:
    """Yield, per fake shard, the paired fakes' fields and their real partners' fields.

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`.
    fake_fields, real_fields : iterable of str
        Fields to read for the fakes and for their real partners (``id`` and
        ``pair_id`` are always included for the fakes, ``id`` for the reals).
    plan : PairPlan, optional
        A plan from :func:`plan_pairs` (built here when omitted, from
        ``groups`` and ``by_position``).
    groups : sequence of str, optional
        Fake groups (ignored when ``plan`` is given).
    by_position : bool
        Pair by position instead of by id (warns; ignored when ``plan`` is given).
    memory_budget : int
        Bytes of partner rows kept in memory before spilling to a temporary folder.

    Yields
    ------
    PairedBlock
        Blocks with at least one pair, in cache order.
    """
    if plan is None:
        plan = plan_pairs(cache, groups=groups, by_position=by_position)
    wanted = [g for g in plan.fake_groups if groups is None or g in groups]
    fake_fields = list(dict.fromkeys(["id", "pair_id", *fake_fields]))
    real_fields = list(dict.fromkeys(["id", *real_fields]))
    store = _Store(memory_budget)
    try:
        # requests: real (group index, shard) -> list of (fake key, fake rows, real rows)
        requests: dict[tuple[int, int], list] = defaultdict(list)
        for g in wanted:
            for k in range(len(plan.meta[g])):
                loc = plan.partner[(g, k)]
                rows = np.flatnonzero(loc[:, 0] >= 0)
                if rows.size == 0:
                    continue
                for key in {(int(a), int(b)) for a, b in loc[rows, :2]}:
                    sel = rows[(loc[rows, 0] == key[0]) & (loc[rows, 1] == key[1])]
                    requests[key].append(((g, k), sel, loc[sel, 2]))
        for gi, rg in enumerate(plan.real_groups):
            if not any(key[0] == gi for key in requests):
                continue
            for k, shard in enumerate(iter_group(cache, rg, real_fields)):
                for fake_key, fake_rows, real_rows in requests.get((gi, k), []):
                    store.put(fake_key, fake_rows, {f: shard[f][real_rows] for f in shard})
                del shard
        for g in wanted:
            for k, shard in enumerate(iter_group(cache, g, fake_fields)):
                loc = plan.partner[(g, k)]
                rows = np.flatnonzero(loc[:, 0] >= 0)
                if rows.size == 0:
                    continue
                chunks = store.take((g, k))
                real: dict[str, np.ndarray] = {}
                pos = {int(r): i for i, r in enumerate(rows)}
                for fake_rows, arrays in chunks:
                    at = np.array([pos[int(r)] for r in fake_rows], np.int64)
                    for f, a in arrays.items():
                        if f not in real:
                            real[f] = np.empty((rows.size, *a.shape[1:]), a.dtype)
                        real[f][at] = a
                fake = {f: a[rows] for f, a in shard.items()}
                if not plan.by_position:
                    bad = fake["pair_id"] != real["id"]
                    if np.any(bad):  # pragma: no cover - guards the join itself
                        raise RuntimeError(f"pairing mismatch in group {g!r} shard {k}")
                yield PairedBlock(g, k, fake, real)
    finally:
        store.close()


def run_paired(
    cache,
    accumulators: Sequence,
    groups: Sequence[str] | None = None,
    by_position: bool = False,
    plan: PairPlan | None = None,
    progress: bool = False,
    chunk: int = 32,
) -> PairPlan:
    """Feed every paired block of the cache to each accumulator, in one streaming pass.

    An accumulator has ``fake_fields`` and ``real_fields`` (iterables of
    field names it needs; absent fields are skipped) and ``update(block)``,
    called with blocks of at most ``chunk`` pairs.

    Returns
    -------
    PairPlan
        The plan used (it holds the counts of unpaired fakes).
    """
    if plan is None:
        plan = plan_pairs(cache, groups=groups, by_position=by_position)
    have = set(cache.fields)
    fake_fields = [f for a in accumulators for f in a.fake_fields if f in have]
    real_fields = [f for a in accumulators for f in a.real_fields if f in have]
    blocks = iter_paired_blocks(cache, fake_fields, real_fields, plan=plan, groups=groups)
    if progress:
        from tqdm.auto import tqdm

        total = sum(plan.n_pairs(g) for g in plan.fake_groups if groups is None or g in groups)
        bar = tqdm(total=total, desc="pairs", unit="pair", leave=False)
    for block in blocks:
        # sub-blocks bound the float64 temporaries of the per-pixel work
        for start in range(0, len(block), chunk):
            sub = PairedBlock(
                block.group,
                block.shard,
                {f: a[start : start + chunk] for f, a in block.fake.items()},
                {f: a[start : start + chunk] for f, a in block.real.items()},
            )
            for acc in accumulators:
                acc.update(sub)
            if progress:
                bar.update(len(sub))
    if progress:
        bar.close()
    return plan
