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
# extraction config and model fingerprints) and runs
# `analysis.summary.summarise_cache`, which computes every analysis in one
# table: binary masks, local variance and its KS test, Shapley alignment,
# localisation and the t-SNE embedding. The other notebooks look at each
# analysis in detail; `explorer` browses single samples.
#
# Run it on any cache with
# `defocus notebooks --cache PATH --out DIR --only overview`.

# %% tags=["parameters"]
cache_path = "runs/demo/cache"  # a cache folder (manifest.json + shards/)
output_dir = "notebook_outputs/overview"  # summary.csv / summary.md go here
perplexities = [5, 10, 20, 40]  # t-SNE perplexity sweep
n_boot = 200  # bootstrap resamples of the confidence intervals
n_permutations = 50  # draws of the alignment permutation null
seed = 0

# %%
# %matplotlib inline
# Validate the parameters (papermill may have replaced any of them).
from pathlib import Path

from IPython.display import display

from cache import open_cache
from defocus_forensics.notebooks import check_positive, find_cache

cache = open_cache(find_cache(cache_path))
if not isinstance(perplexities, list) or not perplexities:
    raise ValueError(f"perplexities must be a non-empty list, got {perplexities!r}")
for p in perplexities:
    check_positive("perplexities", p)
check_positive("n_boot", n_boot, integer=True)
check_positive("n_permutations", n_permutations, integer=True)
if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
    raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
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
config = cache.manifest.get("config", {})
print("explainer:", config.get("explainer"))
print("models:", config.get("models"))

# %% [markdown]
# ## Every analysis in one table
#
# One number per row: `analysis | group | model | metric | value | note`.
# Rows with `metric = "unavailable"` say what the cache cannot support and
# why (deletion curves, for instance, need the models themselves).

# %%
from analysis.summary import summarise_cache, write_summary

summary = summarise_cache(
    cache,
    perplexities=perplexities,
    n_boot=n_boot,
    n_permutations=n_permutations,
    seed=seed,
)
files = write_summary(summary, output_dir)
print("written:", ", ".join(str(f) for f in files.values()))
pd.DataFrame(summary)

# %% [markdown]
# ## Headline rows: alignment (mean score per model) and the KS test

# %%
frame = pd.DataFrame(summary)
frame[
    ((frame["analysis"] == "alignment") & (frame["metric"] == "mean"))
    | ((frame["analysis"] == "variance") & frame["metric"].isin(["ks_statistic", "ks_pvalue"]))
]
