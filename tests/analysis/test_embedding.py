import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness

from analysis.embedding import embed, embedding_from_cache, silhouette, trustworthiness


def _clusters(rng, n=90, d=20):
    centres = rng.normal(0, 6, (3, d))
    labels = np.repeat(np.arange(3), n // 3)
    return centres[labels] + rng.normal(size=(n, d)), labels


def test_trustworthiness_matches_sklearn(rng):
    x = rng.normal(size=(70, 8))
    y = x[:, :2] + 0.3 * rng.normal(size=(70, 2))
    for k in (1, 5, 12):
        assert trustworthiness(x, y, k, chunk=16) == pytest.approx(
            sk_trustworthiness(x, y, n_neighbors=k), abs=1e-12
        )


def test_pca_matches_sklearn_up_to_sign(rng):
    from sklearn.decomposition import PCA

    x = rng.normal(size=(50, 6)) * [5, 3, 1, 1, 1, 1]
    ref = PCA(2).fit_transform(x)
    got = embed(x, "pca")
    for j in range(2):
        s = np.sign(ref[0, j] * got[0, j])
        # embed works in float32 (features are cached as float32): float32 tolerance
        np.testing.assert_allclose(got[:, j], s * ref[:, j], rtol=1e-5, atol=1e-5)


def test_tsne_is_seeded_and_separates_clusters(rng):
    x, labels = _clusters(rng)
    a = embed(x, perplexity=10, seed=3)
    b = embed(x, perplexity=10, seed=3)
    assert a.shape == (90, 2)
    np.testing.assert_array_equal(a, b)
    assert silhouette(a, labels) > 0.5
    assert trustworthiness(x, a, 5) > 0.9


def test_sklearn_backend(rng):
    x, labels = _clusters(rng, n=60)
    a = embed(x, perplexity=8, seed=3, backend="sklearn")
    assert a.shape == (60, 2)
    assert silhouette(a, labels) > 0.5


def test_embed_validation(rng):
    x = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="perplexity"):
        embed(x, perplexity=10)
    with pytest.raises(ValueError, match="method"):
        embed(x, method="mds")
    with pytest.raises(ValueError, match="n_samples, n_features"):
        embed(x[0])


def test_embedding_from_cache(small_cache):
    c, arrays = small_cache
    res = embedding_from_cache(c, perplexities=(2, 5, 20), n_per_class=12, seed=0)
    assert list(res.metrics["perplexity"]) == [2, 5]
    assert "perplexity=20" in res.unavailable
    n = 10 + 12  # all 10 reals, 12 of the 16 fakes
    assert (res.coords.groupby("perplexity").size() == n).all()
    assert res.coords.query("perplexity == 5")["label"].sum() == 12
    # fakes and reals were drawn around different centres: separated
    assert res.metrics["silhouette_label"].min() > 0.3


def test_embedding_from_cache_missing_field(minimal_cache):
    c, _ = minimal_cache
    res = embedding_from_cache(c)
    assert res.coords.empty and "features_defocus" in res.unavailable["embedding"]
