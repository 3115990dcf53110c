"""The ``defocus`` command: one subcommand per stage of the pipeline.

Each subcommand lives in its own module under
:mod:`defocus_forensics.commands` and exposes three names:

``HELP``
    one line shown in ``defocus --help``;
``add_arguments(parser)``
    adds its options to an :class:`argparse.ArgumentParser`;
``run(args) -> int``
    does the work and returns the exit status.

Modules import their heavy dependencies (torch, matplotlib) inside ``run``
so that ``defocus --help`` stays fast and works without torch. Only modules
that exist are listed: there are no placeholder subcommands.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from defocus_forensics import __version__, logs

#: Subcommands in the order ``--help`` lists them (pipeline order).
COMMANDS: tuple[str, ...] = (
    "demo",
    "prepare",
    "make-data",
    "estimate",
    "import-checkpoint",
    "train",
    "evaluate",
    "extract",
    "inspect",
    "verify",
    "import-legacy",
    "sanity",
    "figures",
    "notebooks",
    "report",
)

EPILOG = """\
pipeline:  images -> detector (defocus maps, detectors) -> cache (.npz shards
           of maps, logits, features, Shapley values) -> analysis (masks,
           local variance, t-SNE, alignment) -> figures, notebooks, report

start with:  defocus demo --quick        (about two minutes on a laptop CPU)
help on one command:  defocus COMMAND --help
"""


def _load(name: str):
    """Import the module of subcommand ``name``, or return None if it does not exist."""
    module_name = "defocus_forensics.commands." + name.replace("-", "_")
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="defocus",
        description=(
            "Defocus-based deepfake forensics: defocus-blur maps, detectors trained on them, "
            "cached Shapley extraction and the analyses that explain them."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.add_argument("-v", "--verbose", action="count", default=0,
                       help="progress messages on stderr (-vv: debugging detail); "
                       "OUT/defocus.log always gets everything")  # fmt: skip
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``defocus`` command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    command = ["defocus", *(sys.argv[1:] if argv is None else argv)]
    logs.configure_console(getattr(args, "verbose", 0), command=command)
    log = logging.getLogger("defocus_forensics")
    try:
        status = int(args._run(args) or 0)
        log.debug("exit status %d", status)
        return status
    except KeyboardInterrupt:
        log.debug("interrupted", exc_info=True)
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        # the run folder's log keeps the traceback that the console shows in one line
        log.debug("failed: %s", type(err).__name__, exc_info=True)
        if not _is_user_error(err) or os.environ.get("DEFOCUS_TRACEBACK"):
            raise
        print(f"defocus {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    finally:
        logs.close_run_logs()


def _is_user_error(err: BaseException) -> bool:
    """Whether ``err`` is something a user can cause and fix (bad value, path, file, size).

    Such errors end the command with one line and exit status 2 instead of a
    traceback (set ``DEFOCUS_TRACEBACK=1`` to see it). Every typed error of
    the toolkit derives from one of these classes.
    """
    if isinstance(err, (ValueError, OSError, MemoryError)):
        return True
    errors = sys.modules.get("cache.errors")  # imported only if the command used a cache
    return errors is not None and isinstance(err, errors.CacheError)


def _one_line(err: BaseException) -> str:
    if isinstance(err, MemoryError):
        return "out of memory" + (f": {err}" if str(err) else "; try smaller sizes or batches")
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename and os.fspath(err.filename) not in text:
        text = f"{text}: {err.filename}"
    return text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
