"""prerender: the images it stores are those rendered on access, whoever renders them."""

from __future__ import annotations

import numpy as np
import pytest

from detector.data import SyntheticDoF, open_data, prerender

SIZE = 48


def _items(ds):
    return [(ds[i]["image"].numpy(), ds[i]["mask"].numpy(), ds[i]["label"]) for i in range(len(ds))]


@pytest.mark.parametrize("workers", [1, 2])
def test_prerendered_items_equal_items_rendered_on_access(workers):
    fresh = SyntheticDoF(9, size=SIZE, seed=11, cache=False)  # odd n: a last scene with a real only
    kept = SyntheticDoF(9, size=SIZE, seed=11)
    assert prerender([kept], workers=workers, chunk=2) == 9
    assert len(kept._store) == 9
    for (a, ma, la), (b, mb, lb) in zip(_items(fresh), _items(kept), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ma, mb)
        assert la == lb
    assert prerender([kept], workers=workers) == 0  # nothing left to render


def test_prerender_of_splits_renders_only_their_samples():
    spec = "synthetic:n=12,size=48,seed=5,val=2,test=4"
    test = open_data(spec, "test")
    assert prerender([test, [1, 2, 3]], workers=1) == len(test)  # non-datasets are ignored
    base = test.base
    assert sorted(base._store) == sorted(int(i) for i in test.indices)
    fresh = SyntheticDoF(base.n, size=48, seed=5, cache=False)
    for k, i in enumerate(test.indices):
        np.testing.assert_array_equal(test[k]["image"].numpy(), fresh[int(i)]["image"].numpy())


def test_prerender_skips_uncached_data_and_checks_workers():
    assert prerender([SyntheticDoF(4, size=SIZE, seed=0, cache=False)]) == 0
    with pytest.raises(ValueError, match="workers must be a positive int, got 0"):
        prerender([SyntheticDoF(4, size=SIZE, seed=0)], workers=0)
