"""Two-dimensional embeddings of penultimate features: t-SNE, PCA, UMAP, with quality scores.

``embed(features, method="tsne")`` uses openTSNE by default with a schedule
tuned for speed at a small cost in quality (trustworthiness within 0.003 of
scikit-learn's in the benchmark): features are first reduced to 50
principal components (the neighbour search then runs on 50 dimensions
instead of hundreds or thousands), the initialisation is the (rescaled) PCA
of the data, neighbours are exact on those 50 dimensions, and the
optimisation runs 100 early-exaggeration iterations and 250 normal ones with
FFT-accelerated gradients and ``learning_rate = N / exaggeration`` (Belkina
et al. 2019) instead of scikit-learn's 250 + 750 Barnes-Hut iterations. The
embedding's spread, and with it the FFT grid, grows with the iterations, so
the late iterations are the expensive ones; the FFT interpolation grid is
also coarser than openTSNE's default (2 units per interval), and every BLAS
and OpenMP pool is capped at ``n_jobs``. See ``benchmarks/analysis_bench.py``
for the measured speed-up over scikit-learn's TSNE.
``backend="sklearn"`` runs :class:`sklearn.manifold.TSNE`
instead. Quality is reported by :func:`trustworthiness` (the fraction of
embedding neighbours that are true neighbours, penalised by rank; computed in
row chunks so 10,000+ points fit in memory) and silhouette scores by label
and by group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis._validation import check_choice, check_positive_int

__all__ = [
    "EmbeddingAnalysis",
    "embed",
    "embedding_from_cache",
    "perplexity_sweep",
    "plot_embedding_sweep",
    "silhouette",
    "trustworthiness",
]

_METHODS = ("tsne", "pca", "umap")
_BACKENDS = ("opentsne", "sklearn")


def _as_features(features) -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (n_samples, n_features), got {x.shape}")
    if x.shape[0] < 3:
        raise ValueError(f"need at least 3 samples to embed, got {x.shape[0]}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError("features hold non-finite values")
    return x


def _pca(x: np.ndarray, n_components: int, seed: int, exact: bool = True) -> np.ndarray:
    from sklearn.decomposition import PCA

    k = min(n_components, x.shape[0], x.shape[1])
    if exact or min(x.shape) <= 500:
        # scikit-learn's "auto": exact on small data, randomized on large data
        return PCA(n_components=k, svd_solver="auto", random_state=seed).fit_transform(x)
    # a pre-reduction for t-SNE: 4 power iterations are plenty (Halko et al. 2011)
    return PCA(
        n_components=k, svd_solver="randomized", iterated_power=4, random_state=seed
    ).fit_transform(x)


def embed(
    features,
    method: str = "tsne",
    perplexity: float = 30,
    seed: int = 0,
    backend: str = "opentsne",
    pca_components: int | None = 50,
    n_jobs: int = 1,
    n_iter: int = 250,
    early_exaggeration_iter: int = 100,
) -> np.ndarray:
    """Embed features in two dimensions.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
        E.g. penultimate pooled features of the defocus model.
    method : {"tsne", "pca", "umap"}
        ``"umap"`` needs the ``umap-learn`` package (raises ImportError naming it).
    perplexity : float
        t-SNE perplexity (ignored by PCA); must be below ``n_samples``.
    seed : int
        Seed of every random choice.
    backend : {"opentsne", "sklearn"}
        t-SNE implementation.
    pca_components : int or None
        Reduce to this many principal components before t-SNE/UMAP (None: no
        reduction). Applies to both backends.
    n_jobs : int
        Threads for the neighbour search and the gradients (both backends).
    n_iter, early_exaggeration_iter : int
        openTSNE schedule (normal and early-exaggeration iterations).

    Returns
    -------
    ndarray of float64, shape (n_samples, 2)
    """
    check_choice(method, _METHODS, "method")
    check_choice(backend, _BACKENDS, "backend")
    n_jobs = check_positive_int(n_jobs, "n_jobs")
    from threadpoolctl import threadpool_limits

    # BLAS/OpenMP pools capped at n_jobs: on a shared machine oversubscribed threads
    # make PCA or scikit-learn's Barnes-Hut gradient several times slower
    with threadpool_limits(limits=n_jobs):
        return _embed(
            features,
            method,
            perplexity,
            seed,
            backend,
            pca_components,
            n_jobs,
            n_iter,
            early_exaggeration_iter,
        )


def _embed(
    features,
    method,
    perplexity,
    seed,
    backend,
    pca_components,
    n_jobs,
    n_iter,
    early_exaggeration_iter,
) -> np.ndarray:
    x = _as_features(features)
    n = x.shape[0]
    if method == "pca":
        out = _pca(x, 2, seed)
        if out.shape[1] < 2:
            out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
        return out.astype(np.float64)
    if not 0 < perplexity < n:
        raise ValueError(f"perplexity must be in (0, n_samples={n}), got {perplexity}")
    if pca_components is not None:
        check_positive_int(pca_components, "pca_components", minimum=2)
        if x.shape[1] > pca_components:
            x = _pca(x, pca_components, seed, exact=False).astype(np.float32)
    if method == "umap":
        try:
            import umap
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("method='umap' needs the umap-learn package") from err
        reducer = umap.UMAP(n_neighbors=max(2, int(perplexity)), random_state=seed)
        return np.asarray(reducer.fit_transform(x), dtype=np.float64)
    if backend == "sklearn":
        from sklearn.manifold import TSNE

        out = TSNE(
            n_components=2, perplexity=perplexity, random_state=seed, init="pca", n_jobs=n_jobs
        ).fit_transform(x)
        return np.asarray(out, dtype=np.float64)
    import openTSNE

    check_positive_int(n_iter, "n_iter")
    check_positive_int(early_exaggeration_iter, "early_exaggeration_iter", minimum=0)
    tsne = openTSNE.TSNE(
        n_components=2,
        perplexity=perplexity,
        learning_rate="auto",
        early_exaggeration_iter=early_exaggeration_iter,
        n_iter=n_iter,
        initialization="pca",
        negative_gradient_method="fft" if n > 2000 else "bh",
        # a coarser FFT interpolation grid (2 units per interval instead of 1): about
        # 30% faster for a trustworthiness change below 0.001
        ints_in_interval=2,
        # exact neighbours are cheaper than Annoy's index on <= 50 PCA dimensions
        neighbors="exact" if (x.shape[1] <= 64 and n <= 20000) else "annoy",
        n_jobs=n_jobs,
        random_state=seed,
        verbose=False,
    )
    return np.asarray(tsne.fit(x), dtype=np.float64)


def trustworthiness(features, embedding, n_neighbors: int = 5, chunk: int = 512) -> float:
    """Trustworthiness of an embedding (Venna & Kaski 2006), as scikit-learn defines it.

    ``T = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in U_k(i)} (r(i, j) - k)``
    with ``U_k(i)`` the embedding's k nearest neighbours of ``i`` that are not
    among its k nearest in feature space and ``r(i, j)`` the rank of ``j``
    among ``i``'s feature-space neighbours. Computed in chunks of rows, so
    memory is ``O(chunk * n)`` instead of scikit-learn's ``O(n**2)``.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    embedding : ndarray of shape (n_samples, n_components)
    n_neighbors : int
        ``k``; must be below ``n_samples / 2``.
    chunk : int
        Rows per block.

    Returns
    -------
    float
        In [0, 1]; 1 = every embedding neighbour is a true neighbour.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(embedding, dtype=np.float64)
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"features and embedding disagree on n_samples: {n} vs {y.shape[0]}")
    k = check_positive_int(n_neighbors, "n_neighbors")
    if k >= n / 2:
        raise ValueError(f"n_neighbors must be < n_samples / 2 = {n / 2}, got {k}")
    sq_x = np.einsum("ij,ij->i", x, x)
    sq_y = np.einsum("ij,ij->i", y, y)
    total = 0.0
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        rows = np.arange(start, stop)
        dx = sq_x[rows, None] - 2.0 * x[rows] @ x.T + sq_x[None, :]
        dy = sq_y[rows, None] - 2.0 * y[rows] @ y.T + sq_y[None, :]
        dx[np.arange(rows.size), rows] = np.inf  # exclude the point itself
        dy[np.arange(rows.size), rows] = np.inf
        # rank (1-based) of every j in i's feature-space ordering
        order = np.argsort(dx, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, n + 1)[None, :], axis=1)
        nn_y = np.argpartition(dy, k, axis=1)[:, :k]
        r = np.take_along_axis(ranks, nn_y, axis=1) - k
        total += float(np.sum(r[r > 0]))
    return float(1.0 - total * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))))


def silhouette(embedding, labels, seed: int = 0, sample_size: int | None = 5000) -> float:
    """Silhouette score of ``labels`` in the embedding (NaN with fewer than 2 labels).

    Parameters
    ----------
    embedding : ndarray of shape (n_samples, 2)
    labels : ndarray of shape (n_samples,)
    seed : int
        Seed of the subsample.
    sample_size : int or None
        Subsample size above which the score is estimated on a seeded subsample.
    """
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= len(labels):
        return float("nan")
    size = sample_size if sample_size is not None and len(labels) > sample_size else None
    return float(silhouette_score(embedding, labels, sample_size=size, random_state=seed))


def perplexity_sweep(
    features,
    perplexities: Sequence[float] = (5, 10, 20, 40),
    seed: int = 42,
    **kwargs,
) -> dict[float, np.ndarray]:
    """t-SNE embeddings at several perplexities, ``{perplexity: ndarray of shape (n, 2)}``."""
    return {p: embed(features, "tsne", perplexity=p, seed=seed, **kwargs) for p in perplexities}


# --------------------------------------------------------------------------- over a cache


@dataclass
class EmbeddingAnalysis:
    """Embeddings of cached features.

    Attributes
    ----------
    coords : pandas.DataFrame
        ``group, id, label, perplexity, x, y`` (perplexity NaN for PCA/UMAP).
    metrics : pandas.DataFrame
        Per perplexity: ``trustworthiness`` (k = 5), ``silhouette_label`` and
        ``silhouette_group``, ``n``, ``seconds``.
    field : str
        The feature field embedded.
    method : str
    unavailable : dict of str to str
    """

    coords: pd.DataFrame
    metrics: pd.DataFrame
    field: str
    method: str
    unavailable: dict[str, str] = field(default_factory=dict)


def embedding_from_cache(
    cache,
    field: str = "features_defocus",
    method: str = "tsne",
    perplexities: Sequence[float] = (5, 10, 20, 40),
    n_per_class: int = 1000,
    groups: Sequence[str] | None = None,
    seed: int = 42,
    backend: str = "opentsne",
    n_jobs: int = 1,
) -> EmbeddingAnalysis:
    """Embed a seeded sample of cached features (the paper: 1000 real + 1000 fake, seed 42).

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`.
    field : str
        ``"features_defocus"`` or ``"features_rgb"``.
    method : {"tsne", "pca", "umap"}
    perplexities : sequence of float
        t-SNE perplexity sweep; values needing more samples than available
        (``3 * perplexity >= n``) are skipped and listed as unavailable.
    n_per_class : int
        Reals and fakes drawn (each without replacement, seeded; all when fewer).
    groups : sequence of str, optional
        Groups to include (default: all).
    seed : int
    backend : {"opentsne", "sklearn"}
    n_jobs : int

    Returns
    -------
    EmbeddingAnalysis
    """
    import time

    from analysis.pairing import iter_group

    check_choice(method, _METHODS, "method")
    empty = pd.DataFrame(columns=["group", "id", "label", "perplexity", "x", "y"])
    if field not in cache.fields:
        return EmbeddingAnalysis(
            empty, pd.DataFrame(), field, method, {"embedding": f"the cache has no {field!r} field"}
        )
    parts = []
    for g in cache.groups:
        if groups is not None and g not in groups:
            continue
        for shard in iter_group(cache, g, ("id", "label", field)):
            shard["group"] = np.full(len(shard["id"]), g)
            parts.append(shard)
    ids = np.concatenate([p["id"] for p in parts])
    labels = np.concatenate([p["label"] for p in parts]).astype(int)
    feats = np.concatenate([p[field] for p in parts])
    grp = np.concatenate([p["group"] for p in parts])
    rng = np.random.default_rng(seed)
    keep = []
    for lab in (0, 1):
        idx = np.flatnonzero(labels == lab)
        if idx.size > n_per_class:
            idx = np.sort(rng.choice(idx, n_per_class, replace=False))
        keep.append(idx)
    keep = np.concatenate(keep)
    x, ids, labels, grp = feats[keep], ids[keep], labels[keep], grp[keep]
    unavailable: dict[str, str] = {}
    if len(x) < 4:
        return EmbeddingAnalysis(
            empty, pd.DataFrame(), field, method, {"embedding": f"only {len(x)} samples"}
        )
    settings = list(perplexities) if method == "tsne" else [float("nan")]
    # reduce once for the whole sweep (embed would redo the same PCA per perplexity)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_jobs):
        reduced = _pca(x, 50, seed, exact=False).astype(np.float32) if x.shape[1] > 50 else x
    coords, metrics = [], []
    k = min(5, max(1, (len(x) - 1) // 2 - 1))
    for p in settings:
        if method == "tsne" and 3 * p >= len(x) - 1:
            unavailable[f"perplexity={p:g}"] = (
                f"needs more than {int(3 * p) + 1} samples, got {len(x)}"
            )
            continue
        t0 = time.perf_counter()
        y = embed(
            reduced if method != "pca" else x,
            method,
            perplexity=p if method == "tsne" else 30,
            seed=seed,
            backend=backend,
            n_jobs=n_jobs,
            pca_components=None,
        )
        secs = time.perf_counter() - t0
        coords.append(
            pd.DataFrame(
                {
                    "group": grp,
                    "id": ids,
                    "label": labels,
                    "perplexity": p,
                    "x": y[:, 0],
                    "y": y[:, 1],
                }
            )
        )
        metrics.append(
            {
                "perplexity": p,
                "n": len(x),
                "trustworthiness": trustworthiness(x, y, n_neighbors=k),
                "silhouette_label": silhouette(y, labels, seed),
                "silhouette_group": silhouette(y, grp, seed),
                "seconds": secs,
            }
        )
    return EmbeddingAnalysis(
        pd.concat(coords, ignore_index=True) if coords else empty,
        pd.DataFrame(metrics),
        field,
        method,
        unavailable,
    )


def _model_of_field(field_name: str) -> str:
    """``"features_defocus"`` -> ``"defocus"``."""
    return field_name.removeprefix("features_")


def plot_embedding_sweep(
    analysis: EmbeddingAnalysis,
    point_size: float | None = None,
    *,
    width="double",
    model_names: dict | None = None,
):
    """Scatter of the embedding, one panel per perplexity, naming the model whose features it shows.

    Reals are blue circles, each manipulation its own colour and marker
    (opaque, drawn above the reals). Each panel's title gives its
    trustworthiness ("trust.", k = 5 neighbours) and the silhouette of real
    vs fake ("silh.").

    Parameters
    ----------
    analysis : EmbeddingAnalysis
    point_size : float, optional
        Marker area in pt² (default: from the number of points).
    width : {"single", "double"}
        Paper width: two panels per row (single) or four (double).
    model_names : dict of str to str, optional
        Display names of the models (``"defocus"``, ``"rgb"``).

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from analysis.style import (
        column_width,
        figure,
        group_colors,
        group_markers,
        model_name,
        publication_style,
        set_caption,
        unavailable_figure,
    )

    column_width(width)
    model = model_name(_model_of_field(analysis.field), model_names)
    if analysis.coords.empty:
        reason = "; ".join(f"{k}: {v}" for k, v in analysis.unavailable.items()) or "no samples"
        return unavailable_figure(reason, f"embedding of the {model}'s features", width)
    df = analysis.coords
    perp = df["perplexity"].to_numpy(dtype=np.float64)
    settings = sorted(set(perp[~np.isnan(perp)].tolist())) + (
        [float("nan")] if np.isnan(perp).any() else []
    )
    groups = list(dict.fromkeys(["real", *df["group"].unique()]))
    groups = [g for g in groups if g in set(df["group"])]
    colors = group_colors(["real", *groups])
    markers = group_markers(["real", *groups])
    metrics = analysis.metrics.set_index("perplexity") if not analysis.metrics.empty else None
    n_points = int(len(df) / max(1, len(settings)))
    size = point_size if point_size is not None else float(np.clip(900.0 / n_points, 3.0, 18.0))
    per_row = min(len(settings), 2 if width == "single" else 4)
    n_rows = -(-len(settings) // per_row)
    panel = min((column_width(width) - 0.1) / per_row, 1.9)
    method = analysis.method.upper() if analysis.method != "tsne" else "t-SNE"
    with publication_style():
        fig = figure(width, n_rows * (panel + 0.3) + 0.55)
        axes = fig.subplots(n_rows, per_row, squeeze=False).ravel()
        for ax in axes[len(settings) :]:
            ax.set_axis_off()
        handles = {}
        for ax, p in zip(axes, settings, strict=False):
            sub = df[df["perplexity"].isna()] if p != p else df[df["perplexity"] == p]
            for z, g in enumerate(groups):
                gs = sub[sub["group"] == g]
                if gs.empty:
                    continue
                handles[g] = ax.scatter(
                    gs["x"], gs["y"], s=size, color=colors[g], marker=markers[g],
                    edgecolors="white" if g == "real" else "black", linewidths=0.25,
                    zorder=2 + z, label=f"{g} (n={len(gs)})",
                )  # fmt: skip
            title = method if p != p else f"perplexity {p:g}"
            if metrics is not None:
                row = metrics.loc[p] if p == p else metrics.iloc[0]
                title += (
                    f"\ntrust. {row['trustworthiness']:.2f} · silh. {row['silhouette_label']:+.2f}"
                )
            ax.set_title(title, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal", adjustable="datalim")
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_linewidth(0.4)
        fig.suptitle(f"{method} of penultimate features: {model}", fontsize=8)
        fig.legend(
            handles=list(handles.values()), loc="outside lower center",
            ncols=min(len(handles), 2 if width == "single" else 4), markerscale=1.3,
        )  # fmt: skip
    shown = [f"{p:g}" for p in settings if p == p]
    what = ("perplexity " + ", ".join(shown)) if shown else "one embedding"
    k = min(5, max(1, (n_points - 1) // 2 - 1))  # as embedding_from_cache chooses it
    skipped = [k for k in analysis.unavailable if k.startswith("perplexity")]
    set_caption(
        fig,
        f"{method} of the {model}'s penultimate features for {n_points} images "
        f"({', '.join(f'{g}' for g in groups)}), one panel per setting ({what}); reals are "
        "circles, each manipulation its own colour and marker. "
        + (
            "Axes: the first two principal components. "
            if analysis.method == "pca"
            else "Axes have no units. "
        )
        + f"trust.: trustworthiness of the embedding (k = {k} neighbours; 1 = every embedding "
        "neighbour is a true neighbour); silh.: silhouette of real vs fake in the embedding "
        "(-1 to 1; near 0: the two classes are mixed)."
        + (
            f" Not drawn: {'; '.join(f'{k}: {analysis.unavailable[k]}' for k in skipped)}."
            if skipped
            else ""
        ),
    )
    return fig
