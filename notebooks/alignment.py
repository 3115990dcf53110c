# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Shapley attributions and their alignment with defocus differences
#
# First the attributions themselves: image, defocus map and each model's
# `|attribution|` over the image. Then the paper's alignment score, per
# fake sample: 20 bins over the fake map's values; histogram A weighted by
# `|fake - real|`, histogram B by `|attribution|`; score = `sum(min(A, B))`
# (1 = the model's attribution mass sits at the defocus levels where real
# and fake differ), plus `KL(B || A)`. We add a permutation null (the same
# score with attributions paired to the wrong samples). From
# `analysis.overlays` and `analysis.alignment`.

# %% tags=["parameters"]
cache_path = "runs/demo/cache"
output_dir = "notebook_outputs/alignment"
dpi = 100  # resolution of the saved PNGs
groups = None  # fake groups; None means all
bins = 20  # histogram bins on [0, 1]
n_overlay = 2  # samples per group in the attribution overlays
n_permutations = 50  # permutation-null draws
n_boot = 200  # bootstrap resamples of the mean's CI
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
for name, value in [("bins", bins), ("n_overlay", n_overlay),
                    ("n_permutations", n_permutations), ("n_boot", n_boot)]:  # fmt: skip
    check_positive(name, value, integer=True)
check_positive("dpi", dpi, integer=True)
output_dir = Path(output_dir)
output_dir.mkdir(parents=True, exist_ok=True)

# %%
from analysis.overlays import overlays_from_cache, plot_attribution_overlays
from analysis.style import save_figure

fig = plot_attribution_overlays(overlays_from_cache(cache, n=n_overlay, groups=groups))
save_figure(fig, output_dir / "overlays_rgb_vs_defocus_attributions", dpi=dpi)
display(fig)

# %%
from analysis.alignment import (
    alignment_from_cache,
    plot_alignment_histograms,
    plot_permutation_null,
)

result = alignment_from_cache(
    cache, bins=bins, groups=groups, n_permutations=n_permutations, n_boot=n_boot, seed=seed
)
print("unavailable:", result.unavailable or "nothing")
display(result.summary)

# %%
fig = plot_alignment_histograms(result, bins=bins)
save_figure(fig, output_dir / "alignment_histograms_by_model", dpi=dpi)
display(fig)

# %%
fig = plot_permutation_null(result)
save_figure(fig, output_dir / "alignment_permutation_null", dpi=dpi)
display(fig)
