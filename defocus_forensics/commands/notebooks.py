"""``defocus notebooks``: execute every parameterized notebook on a cache, with HTML."""

from __future__ import annotations

import argparse
import logging
import sys

HELP = "execute the analysis notebooks on a cache with papermill and render them to HTML"

DESCRIPTION = """\
Execute the notebooks of notebooks/ (jupytext py:percent sources: overview,
masks, variance, embedding, alignment, localisation, explorer) on a cache
with papermill, writing OUT/<name>.ipynb (executed, with outputs) and
OUT/<name>.html. Each notebook gets cache_path and its own output_dir
(OUT/<name>/); -p NAME VALUE sets any other parameter of the notebooks'
'parameters' cell (VALUE is parsed as JSON when it can be: 0.05, [5, 10],
true, "text"). The sources are never written.

example:
  defocus notebooks --cache runs/demo/cache --out runs/demo/notebooks
  defocus notebooks --cache runs/demo/cache --out runs/demo/nb-T0.05 --only masks \\
      -p threshold 0.05
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus notebooks``."""
    parser.add_argument("--cache", required=True, metavar="PATH", help="cache folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="set a notebook parameter")  # fmt: skip
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks")
    parser.add_argument("--timeout", type=float, default=600, help="per-cell timeout (s)")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML rendering")
    parser.add_argument("--list", action="store_true", help="list notebooks and parameters")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Execute the notebooks; exit status 2 on bad input, 1 when a notebook fails."""
    from defocus_forensics.notebooks import (
        NotebookError,
        execute_all,
        list_notebooks,
        parameter_names,
        parse_parameter,
    )

    sources = list_notebooks()
    accepted = {p.stem: parameter_names(p) for p in sources}
    if args.list:
        for name, names in accepted.items():
            print(f"{name}: {', '.join(sorted(names))}")
        return 0
    known = set().union(*accepted.values()) if accepted else set()
    params = {}
    for name, value in args.parameter:
        if name in ("cache_path", "output_dir"):
            raise ValueError(f"set {name} with --cache/--out, not -p")
        if name not in known:
            raise ValueError(
                f"no notebook has a parameter {name!r}; known: {', '.join(sorted(known))}"
            )
        params[name] = parse_parameter(value)
    from defocus_forensics.logs import start_run_log
    from safeio import check_output_dir

    args.out = check_output_dir(args.out)
    start_run_log(args.out)
    try:
        results = execute_all(args.cache, args.out, params, names=args.only,
                              timeout=args.timeout, html=not args.no_html,
                              progress=not args.quiet)  # fmt: skip
    except NotebookError as err:
        logging.getLogger("defocus_forensics").debug("notebook failed", exc_info=True)
        print(f"defocus notebooks: error: {err}", file=sys.stderr)
        return 1
    for r in results:
        html = f", {r.html.name}" if r.html else ""
        print(f"  {r.name}: {r.ipynb}{html} ({r.seconds:.1f} s)")
    return 0
