# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Interactive explorer
#
# Choose a group and a sample; see the image, its defocus map, both models'
# attribution maps, the binary mask `|fake - real| > T` under the threshold
# slider, and the sample's alignment histograms (A: `|fake - real|` mass per
# defocus level; B: `|attribution|` mass; the line: a constant attribution)
# with its raw score, floor and skill (0 = no better than a constant
# attribution, 1 = attribution proportional to `|fake - real|`). The colour
# maps are the figures' (`analysis.style`). Open this notebook
# in JupyterLab (it needs a live kernel for the widgets); executed by
# papermill (`defocus notebooks`, `defocus demo`, which set `live = False`) it
# shows the parameters' sample as a static figure and builds no widgets.
# The callbacks are `defocus_forensics.explorer.Explorer` methods.

# %% tags=["parameters"]
cache_path = "runs/demo/cache"
group = None  # None means the first group holding fakes
index = 0  # sample index within the group
threshold = 0.1  # binary-mask threshold T in (0, 1)
analysis_config = {}  # AnalysisConfig settings by name (the explorer uses "bins")
live = True  # build the interactive widgets (needs a frontend; batch runs set False)

# %%
# %matplotlib inline
from analysis.config import AnalysisConfig
from cache import open_cache
from defocus_forensics.explorer import Explorer
from defocus_forensics.notebooks import check_choice, check_fraction, find_cache

cache = open_cache(find_cache(cache_path))
if not isinstance(analysis_config, dict):
    raise ValueError(f"analysis_config must be a dict of settings, got {analysis_config!r}")
config = AnalysisConfig.from_dict(analysis_config)
explorer = Explorer(cache, bins=config.bins)
if group is None:
    group = explorer.default_group()
check_choice("group", group, explorer.groups())
if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < cache.n_samples(group):
    raise ValueError(f"index must be in [0, {cache.n_samples(group)}), got {index!r}")
check_fraction("threshold", threshold)

# %% [markdown]
# ## The chosen sample (static)

# %%
view, description = explorer.on_change(group, index, threshold)
print(description)
explorer.figure(view)

# %% [markdown]
# ## Explore (needs a live kernel)

# %%
if live:
    from IPython.display import display

    display(explorer.widget(group, index, threshold))
else:
    print("Executed without a live frontend: open this notebook in JupyterLab for the widgets.")
