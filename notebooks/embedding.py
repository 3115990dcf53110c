# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # t-SNE of penultimate features
#
# The paper embeds the defocus model's globally average-pooled penultimate
# features of 1000 real + 1000 fake test images with t-SNE (perplexity 5,
# sweep 5/10/20/40, seed 42). `analysis.embedding` does the same (openTSNE),
# skips perplexities too large for the sample, and scores each embedding
# with trustworthiness and silhouette. Set `field = "features_rgb"` for the
# RGB model, `method = "pca"` for a linear view.

# %% tags=["parameters"]
cache_path = "runs/demo/cache"
output_dir = "notebook_outputs/embedding"
dpi = 100  # resolution of the saved PNGs
field = "features_defocus"  # or "features_rgb"
method = "tsne"  # "tsne" or "pca"
perplexities = [5, 10, 20, 40]
n_per_class = 1000  # reals and fakes embedded
seed = 42

# %%
# %matplotlib inline
from pathlib import Path

from IPython.display import display

from cache import open_cache
from defocus_forensics.notebooks import check_choice, check_positive, find_cache

cache = open_cache(find_cache(cache_path))
check_choice("field", field, [f for f in cache.fields if f.startswith("features_")])
check_choice("method", method, ["tsne", "pca"])
if not isinstance(perplexities, list) or not perplexities:
    raise ValueError(f"perplexities must be a non-empty list, got {perplexities!r}")
for p in perplexities:
    check_positive("perplexities", p)
check_positive("n_per_class", n_per_class, integer=True)
check_positive("dpi", dpi, integer=True)
output_dir = Path(output_dir)
output_dir.mkdir(parents=True, exist_ok=True)

# %%
from analysis.embedding import embedding_from_cache, plot_embedding_sweep
from analysis.style import save_figure

result = embedding_from_cache(
    cache, field, method=method, perplexities=perplexities, n_per_class=n_per_class, seed=seed
)
print("unavailable:", result.unavailable or "nothing")
display(result.metrics)

# %%
fig = plot_embedding_sweep(result)
save_figure(fig, output_dir / f"embedding_{method}_perplexity_sweep_{field}", dpi=dpi)
display(fig)
