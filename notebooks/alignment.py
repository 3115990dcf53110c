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
# signed attribution. Then the paper's alignment score, per fake sample: 20
# bins over the fake map's values; histogram A weighted by `|fake - real|`,
# histogram B by `|attribution|`; score = `sum(min(A, B))` (1 = the model's
# attribution mass sits at the defocus levels where real and fake differ),
# plus `KL(B || A)`.
#
# The raw score has a floor: a constant attribution already scores
# `sum(min(A, counts))`, often 0.7-0.9. So each fake also gets its
# **floor** and its **skill** `(score - floor) / (1 - floor)`: 0 = no better
# than a constant attribution, 1 = attribution proportional to
# `|fake - real|`. The two models are compared on the same fakes, paired.
# The shuffled-attribution null asks another question: is an attribution
# specific to its sample? From `analysis.overlays`, `analysis.alignment` and
# `analysis.comparison`; every setting from one `AnalysisConfig`.

# %% tags=["parameters"]
cache_path = "runs/demo/cache"
output_dir = "notebook_outputs/alignment"
dpi = 100  # resolution of the saved PNGs
groups = None  # fake groups; None means all
n_overlay = 2  # samples per group in the attribution overlays
analysis_config = {}  # AnalysisConfig settings by name (bins, n_boot, n_permutations, unit, ...)

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
check_positive("n_overlay", n_overlay, integer=True)
check_positive("dpi", dpi, integer=True)
if not isinstance(analysis_config, dict):
    raise ValueError(f"analysis_config must be a dict of settings, got {analysis_config!r}")
config = AnalysisConfig.from_dict(analysis_config)
output_dir = Path(output_dir)
output_dir.mkdir(parents=True, exist_ok=True)

# %%
from analysis.overlays import overlays_from_cache, plot_attribution_overlays
from analysis.style import save_figure

fig = plot_attribution_overlays(overlays_from_cache(cache, n=n_overlay, groups=groups))
save_figure(fig, output_dir / "overlays_rgb_vs_defocus_attributions", dpi=dpi)
display(fig)

# %%
from analysis.alignment import alignment_from_cache
from defocus_forensics.headline import SKILL_LEGEND
from defocus_forensics.notebooks import save_table

result = alignment_from_cache(cache, groups=groups, config=config)
print("unavailable:", result.unavailable or "nothing")
print("Alignment:", SKILL_LEGEND)
print(f"unit of inference: {result.level}-level; permutations: {config.n_permutations}")
save_table(result.summary, output_dir / "alignment_summary.csv")
cols = ["group", "model", "level", "n", "mean", "ci_low", "ci_high", "floor_mean", "skill_mean",
        "skill_ci_low", "skill_ci_high", "skill_p_signflip", "n_permutations", "p_min"]  # fmt: skip
display(result.summary[[c for c in cols if c in result.summary.columns]])

# %% [markdown]
# ## Raw score, floor and skill

# %%
from analysis.alignment import plot_alignment_histograms, plot_alignment_skill

fig = plot_alignment_skill(result)
save_figure(fig, output_dir / "alignment_skill_by_model", dpi=dpi)
display(fig)

# %%
fig = plot_alignment_histograms(result, bins=result.bins)
save_figure(fig, output_dir / "alignment_histograms_by_model", dpi=dpi)
display(fig)

# %% [markdown]
# ## The two models on the same fakes (paired)
#
# Per fake, the defocus model's skill (and raw score) minus the RGB
# model's; the mean difference with its interval and a two-sided sign-flip
# test (one flip per video when the cache has videos).

# %%
from analysis.comparison import plot_model_comparison

save_table(result.comparison, output_dir / "alignment_comparison.csv")
display(result.comparison if not result.comparison.empty else "needs both models' attributions")
fig = plot_model_comparison(result)
save_figure(fig, output_dir / "alignment_paired_difference", dpi=dpi)
display(fig)

# %% [markdown]
# ## The shuffled-attribution null

# %%
from analysis.alignment import plot_permutation_null

fig = plot_permutation_null(result)
save_figure(fig, output_dir / "alignment_permutation_null", dpi=dpi)
display(fig)
