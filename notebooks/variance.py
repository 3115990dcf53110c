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
# Local variance `E[m^2] - E[m]^2` over a 15x15 window (zero padding that
# counts the pad, as `avg_pool2d(..., padding=7)` does) on per-sample
# normalised maps; heatmaps of real/fake pairs share one colour scale; a
# two-sample KS test compares the per-image mean local variance of reals and
# of each fake group (Holm-corrected across groups), with an effect size and
# bootstrap confidence intervals. All from `analysis.variance`.

# %% tags=["parameters"]
cache_path = "runs/demo/cache"
output_dir = "notebook_outputs/variance"
dpi = 100  # resolution of the saved PNGs
groups = None  # fake groups to test; None means all
window = 15  # local-variance window (odd)
n_heatmaps = 2  # pairs per group in the heatmaps
n_boot = 200  # bootstrap resamples
seed = 0

# %%
# %matplotlib inline
from pathlib import Path

from IPython.display import display

from cache import open_cache
from defocus_forensics.notebooks import check_choice, check_positive, find_cache

cache = open_cache(find_cache(cache_path))
if groups is not None:
    for g in groups:
        check_choice("groups", g, cache.groups)
check_positive("window", window, integer=True)
if window % 2 == 0:
    raise ValueError(f"window must be odd, got {window}")
check_positive("n_heatmaps", n_heatmaps, integer=True)
check_positive("n_boot", n_boot, integer=True)
check_positive("dpi", dpi, integer=True)
output_dir = Path(output_dir)
output_dir.mkdir(parents=True, exist_ok=True)

# %%
from analysis.style import save_figure
from analysis.variance import plot_variance_ecdf, plot_variance_heatmaps, variance_from_cache

result = variance_from_cache(
    cache, window, groups=groups, n_boot=n_boot, seed=seed, n_heatmaps=n_heatmaps
)
display(result.tests)

# %%
result.per_image.groupby(["group", "label"])["mean_local_variance"].describe()

# %%
fig = plot_variance_heatmaps(result, n=n_heatmaps)
save_figure(fig, output_dir / "variance_local_variance_pairs", dpi=dpi)
display(fig)

# %%
fig = plot_variance_ecdf(result)
save_figure(fig, output_dir / "variance_mean_local_variance_ecdf", dpi=dpi)
display(fig)
