# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Do the attributions point at the manipulation?
#
# Beyond the paper: each model's `|attribution|` is scored against a
# reference region, the ground-truth manipulation mask (SyntheticDoF's
# pasted regions) and the binary defocus mask `|fake - real| > T`
# (`localisation_threshold` of the `AnalysisConfig`): relevance mass
# accuracy (share of attribution inside the region), relevance rank
# accuracy, and the pointing game, each with its chance level. Deletion
# curves need the models themselves, so from a cache alone they are marked
# unavailable (`defocus demo` draws them). From `analysis.localisation`.

# %% tags=["parameters"]
cache_path = "runs/demo/cache"
output_dir = "notebook_outputs/localisation"
dpi = 100  # resolution of the saved PNGs
groups = None  # fake groups; None means all
models = ["defocus", "rgb"]
analysis_config = {}  # AnalysisConfig settings by name (localisation_threshold, n_boot, seed)

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
if not isinstance(models, list) or not models:
    raise ValueError(f"models must be a non-empty list, got {models!r}")
for m in models:
    check_choice("models", m, ["defocus", "rgb"])
check_positive("dpi", dpi, integer=True)
if not isinstance(analysis_config, dict):
    raise ValueError(f"analysis_config must be a dict of settings, got {analysis_config!r}")
config = AnalysisConfig.from_dict(analysis_config)
output_dir = Path(output_dir)
output_dir.mkdir(parents=True, exist_ok=True)

# %%
from analysis.localisation import (
    localisation_from_cache,
    plot_deletion_curves,
    plot_localisation_bars,
)
from analysis.style import save_figure

result = localisation_from_cache(cache, models=tuple(models), groups=groups, config=config)
print("unavailable:", result.unavailable or "nothing")
display(result.summary)

# %%
fig = plot_localisation_bars(result)
save_figure(fig, output_dir / "localisation_scores_by_model", dpi=dpi)
display(fig)

# %%
fig = plot_deletion_curves(result)
display(fig)
