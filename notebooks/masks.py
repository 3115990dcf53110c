# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Binary masks: where a fake's defocus map departs from its source's
#
# The paper's mask is `|fake_map - real_map| > T` on paired, per-sample
# min-max normalised defocus maps. Per manipulation it reports the mean,
# max, min and median count of activated pixels, and sweeps `T` over
# 1e-1 ... 1e-4 (`thresholds` of the `AnalysisConfig`). Where the cache
# holds ground-truth manipulation masks (SyntheticDoF's pasted regions), the
# defocus mask is scored against them. All numbers come from
# `analysis.masks`.

# %% tags=["parameters"]
cache_path = "runs/demo/cache"  # a cache folder
output_dir = "notebook_outputs/masks"  # figures are saved here (PDF + PNG)
dpi = 100  # resolution of the saved PNGs
groups = None  # fake groups to analyse, e.g. ["pasted_region"]; None means all
threshold = 0.1  # T of the gallery
n_gallery = 2  # pairs shown per group
analysis_config = {}  # AnalysisConfig settings by name, e.g. {"thresholds": [0.1, 0.01]}

# %%
# %matplotlib inline
from pathlib import Path

from IPython.display import display

from analysis.config import AnalysisConfig
from cache import open_cache
from defocus_forensics.notebooks import check_choice, check_fraction, check_positive, find_cache

cache = open_cache(find_cache(cache_path))
if groups is not None:
    for g in groups:
        check_choice("groups", g, cache.groups)
check_fraction("threshold", threshold)
check_positive("n_gallery", n_gallery, integer=True)
check_positive("dpi", dpi, integer=True)
if not isinstance(analysis_config, dict):
    raise ValueError(f"analysis_config must be a dict of settings, got {analysis_config!r}")
config = AnalysisConfig.from_dict(analysis_config)
output_dir = Path(output_dir)
output_dir.mkdir(parents=True, exist_ok=True)

# %%
from analysis.masks import masks_from_cache, plot_mask_gallery, plot_threshold_sweep
from analysis.style import save_figure
from defocus_forensics.notebooks import save_table

result = masks_from_cache(cache, groups=groups, n_gallery=n_gallery, config=config)
save_table(result.stats, output_dir / "masks_stats.csv")
display(result.stats)

# %% [markdown]
# Agreement of the defocus mask with the ground-truth mask (IoU, precision,
# recall), where the cache has one.

# %%
display(result.agreement if result.agreement is not None else "no ground-truth masks in this cache")

# %%
fig = plot_mask_gallery(result, threshold=threshold, n=n_gallery)
save_figure(fig, output_dir / f"masks_binary_gallery_T{threshold:g}", dpi=dpi)
display(fig)

# %%
fig = plot_threshold_sweep(result)
save_figure(fig, output_dir / "masks_threshold_sweep", dpi=dpi)
display(fig)
