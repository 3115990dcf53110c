"""Defocus estimation, detector models, datasets, training and evaluation (torch).

Submodules are imported on demand, e.g. ``from detector.defocus import
estimate_defocus``. This package knows nothing of caches or analyses.
"""
