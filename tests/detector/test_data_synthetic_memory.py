"""Synthetic data refuses sizes that cannot fit in memory; make-data leaves nothing half-made."""

from __future__ import annotations

import tracemalloc

import pytest

import detector.data.synthetic as synthetic
from detector.data import SyntheticDoF, write_synthetic
from detector.data.synthetic import RENDER_BYTES_PER_PIXEL, synthetic_memory
from detector.memory import InsufficientMemoryError


def test_the_render_estimate_bounds_the_measured_peak():
    """tracemalloc's peak of one scene in every group stays under the per-pixel estimate."""
    ds = SyntheticDoF(6, size=96, seed=11, cache=False)
    synthetic.photo_bank()  # loaded once per process, not part of a scene
    peaks = []
    for scene in range(3):
        tracemalloc.start()
        ds.scene(scene)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    per_pixel = max(peaks) / 96**2
    assert 0.5 * RENDER_BYTES_PER_PIXEL < per_pixel < RENDER_BYTES_PER_PIXEL


def test_sizes_that_cannot_fit_are_refused_saying_what_fits(monkeypatch):
    gib = 1024**3
    monkeypatch.setattr(synthetic, "available_memory", lambda: 8 * gib)
    import detector.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda: 8 * gib)
    with pytest.raises(InsufficientMemoryError, match=r"size=50000 needs about 1\.8 TiB") as exc:
        SyntheticDoF(4, size=50000)
    # the largest size whose estimate fits 80 % of 8 GiB, found independently
    budget = 0.8 * 8 * gib
    best = max(s for s in range(32, 5000) if synthetic_memory(4, s) <= budget)
    assert f"size={best} fits with n=4" in str(exc.value)
    with pytest.raises(InsufficientMemoryError, match=r"n=\d+ fits at size=64"):
        SyntheticDoF(10**11, size=64)


def test_the_sample_cache_is_dropped_when_it_would_not_fit(monkeypatch):
    # the cache may take CACHE_SHARE (a quarter) of the memory: here 40 images of 64 px
    monkeypatch.setattr(synthetic, "available_memory", lambda: 3 * 64 * 64 * 160)
    assert synthetic.CACHE_SHARE == 0.25
    assert SyntheticDoF(40, size=64).cache is True
    assert SyntheticDoF(42, size=64).cache is False


def test_make_data_leaves_no_folder_behind_on_error(tmp_path, monkeypatch):
    out = tmp_path / "new" / "syn"
    with pytest.raises(InsufficientMemoryError):
        write_synthetic(out, n=4, size=10**6, progress=False)
    assert not (tmp_path / "new").exists()

    def broken(self, index):
        if index == 3:
            raise OSError(28, "No space left on device")
        return original(self, index)

    original = SyntheticDoF.__getitem__
    monkeypatch.setattr(SyntheticDoF, "__getitem__", broken)
    with pytest.raises(OSError, match="No space left"):
        write_synthetic(out, n=8, size=32, progress=False)
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == []


def test_make_data_refuses_a_folder_with_files(tmp_path):
    (tmp_path / "x.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="exists and is not an empty folder"):
        write_synthetic(tmp_path, n=4, size=32, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]
