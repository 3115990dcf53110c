"""Options shared by the commands that read data: one ``--data SPEC``, one vocabulary.

Imports nothing heavy (``defocus --help`` works without torch): the spec is
parsed in the commands' ``run``, by :func:`detector.data.parse_data_spec`.
"""

from __future__ import annotations

import argparse

#: The data-spec summary every data command shows in its ``--help``.
DATA_SPECS = """\
data specs (--data; reference: docs/data-spec.md):
  synthetic:n=400,size=128,seed=0        built-in depth-of-field data
  folders:real=DIR,fake=DIR[,pair=stem]  real and fake image folders; pair=stem or
                                         pair=path gives each fake its real partner
  index:FILE.csv                         an index CSV (defocus make-data, defocus prepare)
  cifake:root=DIR                        CIFAKE (train/ and test/)
  ffpp:root=DIR[,manipulations=Deepfakes+FaceSwap,compression=c23]
                                         FaceForensicsPP face crops (defocus prepare)
  every kind takes split=train|val|test|all (the same cut on every machine)"""


class _Replaced(argparse.Action):
    """An option that no longer exists: stop with a message saying what replaced it."""

    def __init__(self, option_strings, dest, hint: str = "", **kwargs):
        kwargs.pop("nargs", None)
        super().__init__(option_strings, dest, nargs="*", help=argparse.SUPPRESS, **kwargs)
        self.hint = hint

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} was replaced: {self.hint}")


def add_replaced_option(parser, option: str, hint: str) -> None:
    """Add a hidden ``option`` that stops the command saying what replaced it."""
    if option not in parser._option_string_actions:
        parser.add_argument(option, action=_Replaced, hint=hint)


def add_data_option(parser, default: str | None = None, what: str = "the data") -> None:
    """Add ``--data SPEC`` and turn the options it replaced into clear errors."""
    parser.add_argument(
        "--data",
        metavar="SPEC",
        default=default,
        required=default is None,
        help=f"{what} (see 'data specs' below)" + (f"; default {default}" if default else ""),
    )
    hints = {
        "--dataset": "give the data as --data SPEC, e.g. --data index:runs/syn/index.csv",
        "--root": "give the root inside the spec, e.g. --data ffpp:root=DIR",
        "--real-dir": "use --data folders:real=DIR,fake=DIR",
        "--fake-dir": "use --data folders:real=DIR,fake=DIR",
        "--manipulations": "use --data ffpp:root=DIR,manipulations=Deepfakes+FaceSwap",
        "--compression": "use --data ffpp:root=DIR,compression=c23",
        "--data-seed": "use --data synthetic:n=400,seed=1",
        "--split": "put the split in the spec, e.g. --data index:FILE.csv,split=val",
    }
    for option, hint in hints.items():
        add_replaced_option(parser, option, hint)


def add_quiet_option(parser) -> None:
    """Add ``--quiet`` (no progress bars); ``--no-progress`` stays as a hidden alias."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)


def add_loader_workers_option(parser) -> None:
    """Add ``--loader-workers`` (torch DataLoader workers), distinct from ``--workers``."""
    parser.add_argument(
        "--loader-workers",
        type=int,
        default=0,
        metavar="N",
        help="torch DataLoader worker processes that read images (default 0: in this process)",
    )
    add_replaced_option(
        parser,
        "--workers",
        "here it meant data-loader workers: use --loader-workers N (--workers is the number "
        "of parallel processes of 'extract' and 'prepare')",
    )
