# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Local variance of defocus maps, real vs fake
#
# Local variance `E[m^2] - E[m]^2` over a window (15x15 in the paper) on
# per-sample normalised maps, with the paper's zero padding that counts the
# pad (as `avg_pool2d(..., padding=7)` does) or reflection
# (`analysis_config = {"padding": "reflect"}`). Heatmaps of real/fake pairs
# share one colour scale. A two-sample KS test compares the mean local
# variance of reals and of each fake group (Holm-corrected across groups),
# with effect sizes and bootstrap intervals, and a paired test compares each
# fake with the real image it was made from. With a `video` field every
# test takes whole videos as units (video-level). All from
# `analysis.variance`; every setting from one `AnalysisConfig`.

# %% tags=["parameters"]
cache_path = "runs/demo/cache"
output_dir = "notebook_outputs/variance"
dpi = 100  # resolution of the saved PNGs
groups = None  # fake groups to test; None means all
n_heatmaps = 2  # pairs per group in the heatmaps
analysis_config = {}  # AnalysisConfig settings by name (window, padding, n_boot, unit, ...)

# %%
# %matplotlib inline
from pathlib import Path

from IPython.display import display

from analysis.config import AnalysisConfig
from cache import open_cache
from defocus_forensics.notebooks import check_choice, check_positive, find_cache

cache = open_cache(find_cache(cache_path))
if groups is not None:
    for g in groups:
        check_choice("groups", g, cache.groups)
check_positive("n_heatmaps", n_heatmaps, integer=True)
check_positive("dpi", dpi, integer=True)
if not isinstance(analysis_config, dict):
    raise ValueError(f"analysis_config must be a dict of settings, got {analysis_config!r}")
config = AnalysisConfig.from_dict(analysis_config)
output_dir = Path(output_dir)
output_dir.mkdir(parents=True, exist_ok=True)

# %%
from analysis.style import save_figure
from analysis.variance import (
    border_sentence,
    plot_variance_ecdf,
    plot_variance_heatmaps,
    variance_from_cache,
)
from defocus_forensics.notebooks import save_table

result = variance_from_cache(cache, groups=groups, n_heatmaps=n_heatmaps, config=config)
print(f"unit of inference: {result.level}-level; {border_sentence(result)}")
save_table(result.tests, output_dir / "variance_tests.csv")
display(result.tests)

# %% [markdown]
# Each fake against the real image it was made from (paired; two-sided
# sign-flip and Wilcoxon tests, Holm-corrected).

# %%
save_table(result.paired, output_dir / "variance_paired.csv")
display(result.paired)

# %%
result.per_image.groupby(["group", "label"])["mean_local_variance"].describe()

# %% [markdown]
# How much of the local-variance mass the border band holds (where the
# padding acts), per group and label.

# %%
display(result.border)

# %%
fig = plot_variance_heatmaps(result, n=n_heatmaps)
save_figure(fig, output_dir / "variance_local_variance_pairs", dpi=dpi)
display(fig)

# %%
fig = plot_variance_ecdf(result)
save_figure(fig, output_dir / "variance_mean_local_variance_ecdf", dpi=dpi)
display(fig)
