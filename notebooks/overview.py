# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Overview: what a cache holds and every number of every analysis
#
# This notebook describes a cache (groups, sample counts, fields, the
# extraction config and model fingerprints) and runs every analysis in one
# table (`defocus_forensics.figures.compute_analyses`, which calls
# `analysis.summary.summarise_cache`): binary masks, local variance and its
# tests, Shapley alignment (raw score, floor, skill, the paired comparison of
# the two models), localisation and the t-SNE embedding. The other notebooks
# look at each analysis in detail; `explorer` browses single samples.
#
# Every setting comes from ONE `analysis.config.AnalysisConfig`, given as the
# dict `analysis_config` (`{}`: the class defaults). `defocus demo` passes
# the config of its run, so this notebook prints the numbers of the run's
# report (a test checks they are identical).
#
# Run it on any cache with
# `defocus notebooks --cache PATH --out DIR --only overview`.

# %% tags=["parameters"]
cache_path = "runs/demo/cache"  # a cache folder (manifest.json + shards/)
output_dir = "notebook_outputs/overview"  # summary.csv / summary.md / headline.csv go here
analysis_config = {}  # AnalysisConfig settings by name, e.g. {"n_permutations": 999}
sanity_path = None  # folder of 'defocus sanity' (sanity.json), e.g. "runs/demo/sanity"

# %%
# %matplotlib inline
# Validate the parameters (papermill may have replaced any of them).
from pathlib import Path

from IPython.display import display

from analysis.config import AnalysisConfig
from cache import open_cache
from defocus_forensics.notebooks import find_cache

cache = open_cache(find_cache(cache_path))
if not isinstance(analysis_config, dict):
    raise ValueError(f"analysis_config must be a dict of settings, got {analysis_config!r}")
config = AnalysisConfig.from_dict(analysis_config)  # names a bad setting
if sanity_path is not None and not (Path(sanity_path) / "sanity.json").is_file():
    raise ValueError(f"sanity_path must be a folder holding sanity.json, got {sanity_path!r}")
output_dir = Path(output_dir)
output_dir.mkdir(parents=True, exist_ok=True)
display(cache)

# %% [markdown]
# ## The cache

# %%
import pandas as pd

pd.DataFrame(
    {
        "samples": [cache.n_samples(g) for g in cache.groups],
    },
    index=pd.Index(cache.groups, name="group"),
)

# %%
print("fields:", ", ".join(cache.fields))
print("sizes:", cache.sizes)
extraction = cache.manifest.get("config", {})
print("explainer:", extraction.get("explainer"))
print("models:", extraction.get("models"))
print("videos:", "yes (video-level inference)" if "video" in cache.fields else "no (frame-level)")

# %% [markdown]
# ## The analysis settings
#
# One config for every number below; `n_permutations` sets the resolution of
# every permutation p-value (none can be below `1 / (n + 1)`).

# %%
print(f"smallest reachable permutation p: {config.min_pvalue:.3g}")
pd.Series(config.to_dict(), name="value").to_frame()

# %% [markdown]
# ## Every analysis in one table
#
# One number per row: `analysis | group | model | metric | value | note`.
# `note` says what a number means where it is not obvious, the unit of
# inference (video-level or frame-level) of every interval and test, and
# the resolution of every permutation p-value. Rows with
# `metric = "unavailable"` say what the cache cannot support and why
# (deletion curves, for instance, need the models themselves).

# %%
from analysis.summary import write_summary
from defocus_forensics.figures import compute_analyses

summary, analyses = compute_analyses(cache, config, sanity=sanity_path)
files = write_summary(summary, output_dir)
print("written:", ", ".join(str(f) for f in files.values()))
pd.DataFrame(summary)

# %% [markdown]
# ## Headline numbers
#
# The rows of the report's headline table, computed from the same analyses:
# one line per number with its interval, its p-value and what it measures.

# %%
from defocus_forensics.headline import SKILL_LEGEND, headline_numbers, headline_rows
from defocus_forensics.notebooks import save_table

print("Alignment:", SKILL_LEGEND)
headline = headline_numbers(analyses, cache=cache, config=config)
rows = headline_rows(headline)
save_table(rows, output_dir / "headline.csv")
pd.set_option("display.max_colwidth", None)
pd.DataFrame(rows)
