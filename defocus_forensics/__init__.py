"""Command-line wiring of the defocus-forensics toolkit.

The toolkit's code lives in three packages with one-way dependencies:
``detector`` (torch: defocus maps, detectors, data, training), ``cache``
(the cached-inference stage and its file format) and ``analysis`` (numpy
only: masks, variance, embeddings, alignment). This package only holds the
``defocus`` console command that connects them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("defocus-forensics")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
