"""Analyses of a cache: binary masks, local variance, embeddings, alignment, localisation.

numpy, scipy, scikit-learn and matplotlib only: this package never imports
torch, so a cache can be analysed on a laptop without it. Caches are read
through :func:`cache.open_cache`.
"""
