"""MkDocs hooks: pages generated from the code, so that they cannot drift from it.

- ``commands.md``: every ``defocus`` subcommand's ``--help``, from the parser itself;
- ``cache-schema.md``: the fields of a cache shard, from :mod:`cache.schema`.

Registered in ``mkdocs.yml`` (``hooks:``); nothing here runs outside a docs build.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from mkdocs.structure.files import File


def _commands_page() -> str:
    import os

    from defocus_forensics.cli import COMMANDS, build_parser

    os.environ["COLUMNS"] = "90"  # argparse wraps to the terminal: the same page everywhere
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    parts = [
        "# Command reference",
        "",
        "Generated from the command-line parser at documentation build time: this is",
        "exactly what `defocus COMMAND --help` prints. Every command also takes",
        "`-v/--verbose`; commands that write a folder append their log to",
        "`OUT/defocus.log`. An error you can cause ends with one line and exit status 2.",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
        "",
    ]
    for name in COMMANDS:
        if name not in sub.choices:
            continue
        buf = io.StringIO()
        with redirect_stdout(buf):
            sub.choices[name].print_help()
        parts += [f"## `defocus {name}`", "", "```text", buf.getvalue().rstrip(), "```", ""]
    return "\n".join(parts)


def _schema_page() -> str:
    from cache.schema import FIELDS, FORMAT_VERSION

    rows = [
        "# Cache schema",
        "",
        f"Generated from `cache/schema.py` at documentation build time (format version "
        f"{FORMAT_VERSION}). Every shard of a cache is an uncompressed `.npz` of plain arrays "
        "(never object arrays); the first axis of every field is the sample. Size symbols: "
        "`R` image side, `S` map side, `D` feature width. The folder layout, the manifest "
        "and its integrity record are described in [The cache](cache.md).",
        "",
        "| field | stored dtype | per-sample shape | required | allowed values | what it holds |",
        "|---|---|---|---|---|---|",
    ]
    for spec in FIELDS.values():
        shape = "(" + ", ".join(spec.shape) + ("," if len(spec.shape) == 1 else "") + ")"
        shape = shape if spec.shape else "scalar"
        values = ", ".join(str(v) for v in spec.values) if spec.values else ""
        doc = spec.doc.replace("|", "\\|")
        rows.append(
            f"| `{spec.name}` | {spec.kind} | {shape} | {'yes' if spec.required else ''} | "
            f"{values} | {doc} |"
        )
    return "\n".join(rows) + "\n"


def on_files(files, config):
    """Add the generated pages to the site."""
    for name, text in (("commands.md", _commands_page()), ("cache-schema.md", _schema_page())):
        files.append(File.generated(config, name, content=text))
    return files
