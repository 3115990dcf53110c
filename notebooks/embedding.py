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
# with trustworthiness and silhouette. The perplexities, the number per
# class and the seed come from the `AnalysisConfig` (`analysis_config =
# {"seed": 42}` for the paper's seed). Set `field = "features_rgb"` for the
# RGB model, `method = "pca"` for a linear view.

# %% tags=["parameters"]
cache_path = "runs/demo/cache"
output_dir = "notebook_outputs/embedding"
dpi = 100  # resolution of the saved PNGs
field = "features_defocus"  # or "features_rgb"
method = "tsne"  # "tsne" or "pca"
analysis_config = {}  # AnalysisConfig settings by name (perplexities, n_per_class, seed)

# %%
# %matplotlib inline
from pathlib import Path

from IPython.display import display

from analysis.config import AnalysisConfig
from cache import open_cache
from defocus_forensics.notebooks import check_choice, check_positive, find_cache

cache = open_cache(find_cache(cache_path))
check_choice("field", field, [f for f in cache.fields if f.startswith("features_")])
check_choice("method", method, ["tsne", "pca"])
check_positive("dpi", dpi, integer=True)
if not isinstance(analysis_config, dict):
    raise ValueError(f"analysis_config must be a dict of settings, got {analysis_config!r}")
config = AnalysisConfig.from_dict(analysis_config)
output_dir = Path(output_dir)
output_dir.mkdir(parents=True, exist_ok=True)

# %%
from analysis.embedding import embedding_from_cache, plot_embedding_sweep
from analysis.style import save_figure

result = embedding_from_cache(
    cache,
    field,
    method=method,
    perplexities=config.perplexities,
    n_per_class=config.n_per_class,
    seed=config.seed,
)
print("unavailable:", result.unavailable or "nothing")
display(result.metrics)

# %%
fig = plot_embedding_sweep(result)
save_figure(fig, output_dir / f"embedding_{method}_perplexity_sweep_{field}", dpi=dpi)
display(fig)
