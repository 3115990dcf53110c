"""Import of the paper's pickled npz files (written here exactly as its notebook writes them)."""

from __future__ import annotations

import numpy as np
import pytest

from cache import CacheFormatError, PickledArrayError, open_cache
from cache.legacy import group_of_legacy_file, import_legacy
from cache.store import read_npz_bytes


def _paper_file(path, rng, n, size=8):
    """As the paper's "Shapley Save" notebook: lists of (H, W) arrays as object arrays."""
    dmaps = [rng.random((size, size)).astype(np.float32) for _ in range(n)]
    defocus_shaps = [rng.standard_normal((size, size)) * 1e-3 for _ in range(n)]
    rgb_shaps = [rng.standard_normal((size, size)) * 1e-3 for _ in range(n)]
    np.savez(
        path,
        dmaps=np.array(dmaps, dtype=object),
        defocus_shaps=np.array(defocus_shaps, dtype=object),
        rgb_shaps=np.array(rgb_shaps, dtype=object),
    )
    return dmaps, defocus_shaps, rgb_shaps


def test_import_paper_files(tmp_path, rng):
    real = _paper_file(tmp_path / "shap_data_real.npz", rng, 5)
    fake = _paper_file(tmp_path / "shap_data_fake_Deepfakes.npz", rng, 4)
    files = [tmp_path / "shap_data_real.npz", tmp_path / "shap_data_fake_Deepfakes.npz"]
    with pytest.raises(PickledArrayError, match="unpickling runs code"):
        import_legacy(files, tmp_path / "c")
    with pytest.warns(UserWarning, match="unpickling runs code"):
        c = import_legacy(files, tmp_path / "c", trust_pickle=True, shard_size=3)
    c = open_cache(tmp_path / "c")
    assert c.groups == ["real", "Deepfakes"] and c.n_samples("real") == 5 and c.verify().ok
    assert c.fields == ["id", "group", "label", "pair_id", "defocus", "attr_defocus", "attr_rgb_c0"]
    np.testing.assert_array_equal(c.load("defocus", "real"), np.stack(real[0]).astype(np.float16))
    np.testing.assert_array_equal(
        c.load("attr_defocus", "Deepfakes"), np.stack(fake[1]).astype(np.float32)
    )
    np.testing.assert_array_equal(c.load("attr_rgb_c0", "real"), np.stack(real[2]).astype("f4"))
    assert c.load("label").tolist() == [0] * 5 + [1] * 4
    assert c.load("pair_id", "Deepfakes").tolist() == [f"real/{i:05d}" for i in range(4)]
    assert "list position" in c.info["pairing"]
    # the plain reader refuses the same file and points to the import
    with pytest.raises(PickledArrayError, match="import-legacy --trust-pickle"):
        read_npz_bytes(files[0].read_bytes(), files[0].name)


def test_ragged_object_arrays_and_errors(tmp_path, rng):
    maps = np.empty(2, dtype=object)
    maps[0], maps[1] = rng.random((6, 6)), rng.random((6, 6))
    np.savez(tmp_path / "x.npz", dmaps=maps, defocus_shaps=maps, rgb_shaps=maps)
    c = import_legacy(
        [tmp_path / "x.npz"], tmp_path / "c", trust_pickle=True, groups=["mine"], labels=[1]
    )
    assert c.load("defocus").shape == (2, 6, 6) and c.load("pair_id").tolist() == ["", ""]
    with pytest.raises(ValueError, match="cannot tell the group"):
        group_of_legacy_file("x.npz")
    assert group_of_legacy_file("shap_data_fake_Face2Face.npz") == ("Face2Face", 1)
    bad = np.empty(2, dtype=object)
    bad[0], bad[1] = np.zeros((6, 6)), np.zeros((5, 5))
    np.savez(tmp_path / "bad.npz", dmaps=bad, defocus_shaps=bad, rgb_shaps=bad)
    with pytest.raises(CacheFormatError, match="different shapes"):
        import_legacy([tmp_path / "bad.npz"], tmp_path / "d", True, ["g"], [0])
    np.savez(tmp_path / "nokey.npz", dmaps=maps)
    with pytest.raises(CacheFormatError, match="lacks the paper's keys"):
        import_legacy([tmp_path / "nokey.npz"], tmp_path / "e", True, ["g"], [0])
