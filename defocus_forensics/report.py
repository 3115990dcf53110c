"""A self-contained HTML report of one run: figures, summary table, config, fingerprints.

The report is one HTML file. Figures are embedded as base64 ``data:`` URIs
by default (``inline=True``), so the file can be mailed or archived alone;
with ``inline=False`` they are linked by a path relative to the report.
Nothing here imports torch or matplotlib: the report is assembled from what
a run left on disk.

A run folder, as :mod:`defocus_forensics.demo` writes it::

    RUN/cache/manifest.json            extraction config, model fingerprints, versions
    RUN/figures/figures_manifest.json  what each figure shows and what it was drawn from
    RUN/figures/*.png                  the figures (PDF twins beside them)
    RUN/summary.json                   headline numbers and the analysis summary
    RUN/run.json                       the run's own config and stage timings (optional)
    RUN/sanity/sanity.json             the model-randomisation check (optional)
    RUN/notebooks/*.html               executed notebooks (optional, linked)

The page opens with what a reader must know first (problems with the
inputs, caveats such as a ``--quick`` run or p-values that cannot go below
0.01, a model whose attributions barely depend on its weights), then the
headline table: one row per headline number, ``quantity | value with CI |
what it measures`` (:func:`defocus_forensics.headline.headline_rows`).

Every piece is optional except the figures manifest or at least one PNG, so
the report also works on a folder made by ``defocus figures`` alone.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from safeio import atomic_write_text, check_output_file

logger = logging.getLogger(__name__)

__all__ = [
    "ReportFigure",
    "ReportInputs",
    "build_report",
    "flatten",
    "load_run",
    "render_report",
]


@dataclass(frozen=True)
class ReportFigure:
    """One figure of the report.

    Attributes
    ----------
    path : Path
        The PNG file.
    title : str
        Short heading.
    caption : str
        What it shows and what it was drawn from.
    section : str
        The analysis it belongs to (figures are grouped by section).
    """

    path: Path
    title: str
    caption: str = ""
    section: str = "figures"


@dataclass
class ReportInputs:
    """Everything a report shows, read from a run folder by :func:`load_run`."""

    title: str = "defocus-forensics run"
    figures: list[ReportFigure] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    fingerprints: dict[str, Any] = field(default_factory=dict)
    notebooks: list[Path] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    #: Problems a reader must know of (missing cache, figures of another cache), shown on top.
    warnings: list[str] = field(default_factory=list)
    #: The model-randomisation check (``SanityResult`` objects), when the run has one.
    sanity: list = field(default_factory=list)
    #: The analysis settings (AnalysisConfig as a dict) the numbers were computed with.
    analysis_config: dict[str, Any] = field(default_factory=dict)
    #: Display names of the models (with their backbones, from the figures manifest).
    model_names: dict[str, str] = field(default_factory=dict)


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


#: Manifest entries that are bookkeeping (per-shard lists, plan, integrity digests), not config.
_BOOKKEEPING = ("shards", "planned", "integrity")


def _fingerprints(manifest: dict[str, Any]) -> dict[str, Any]:
    """Pick the fingerprint-like entries of a cache manifest: hashes, versions, seeds."""
    words = ("fingerprint", "sha256", "hash", "version", "seed")
    out: dict[str, Any] = {}
    for key, value in flatten({k: v for k, v in manifest.items() if k not in _BOOKKEEPING}):
        if any(word in key.lower() for word in words):
            out[key] = value
    shards = manifest.get("shards")
    if isinstance(shards, list):
        for shard in shards:
            if isinstance(shard, dict) and shard.get("sha256"):
                name = shard.get("name") or shard.get("file") or "shard"
                out[f"shard {name}"] = shard["sha256"]
    return out


def load_run(
    run_dir: str | Path,
    *,
    figures_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> ReportInputs:
    """Read what a report shows from a run folder.

    Parameters
    ----------
    run_dir : str or Path
        The run folder (see the module docstring for its layout).
    figures_dir, cache_dir : str or Path, optional
        Override ``RUN/figures`` and ``RUN/cache``.

    Returns
    -------
    ReportInputs

    Raises
    ------
    FileNotFoundError
        If the run folder does not exist or holds no figure at all.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    if figures_dir is not None and not Path(figures_dir).is_dir():
        raise FileNotFoundError(f"figures folder not found: {figures_dir}")
    if cache_dir is not None and not (Path(cache_dir) / "manifest.json").is_file():
        raise FileNotFoundError(f"no cache at {cache_dir} (no manifest.json)")
    figures_dir = Path(figures_dir) if figures_dir is not None else run_dir / "figures"
    cache_dir = Path(cache_dir) if cache_dir is not None else run_dir / "cache"
    figures_cache_sha = None
    inputs = ReportInputs(title=f"defocus-forensics run: {run_dir.resolve().name}")

    manifest_path = figures_dir / "figures_manifest.json"
    figures_config = None
    if manifest_path.is_file():
        manifest = _read_json(manifest_path)
        figures_cache_sha = manifest.get("cache_manifest_sha256")
        figures_config = manifest.get("analysis_config")
        for entry in manifest.get("figures", []):
            png = entry.get("png") or entry.get("files", {}).get("png")
            if not png:
                continue
            inputs.figures.append(
                ReportFigure(
                    path=figures_dir / png,
                    title=entry.get("title", Path(png).stem),
                    caption=entry.get("caption", ""),
                    section=entry.get("section", "figures"),
                )
            )
    elif figures_dir.is_dir():
        for png in sorted(figures_dir.glob("*.png")):
            inputs.figures.append(ReportFigure(path=png, title=png.stem.replace("_", " ")))
    if not inputs.figures:
        raise FileNotFoundError(
            f"no figures in {figures_dir}: run 'defocus figures --cache CACHE --out {figures_dir}'"
        )

    if (run_dir / "summary.json").is_file():
        inputs.summary = _read_json(run_dir / "summary.json")
    if (run_dir / "run.json").is_file():
        inputs.run = _read_json(run_dir / "run.json")
    configs = {
        "summary.json": inputs.summary.get("analysis_config")
        if isinstance(inputs.summary, dict)
        else None,
        "run.json": inputs.run.get("analysis_config") if isinstance(inputs.run, dict) else None,
        "figures_manifest.json": figures_config,
    }
    known = {k: v for k, v in configs.items() if isinstance(v, dict)}
    if known:
        inputs.analysis_config = next(iter(known.values()))
        differ = sorted(k for k, v in known.items() if v != inputs.analysis_config)
        if differ:
            inputs.warnings.append(
                f"the analysis settings of {', '.join(differ)} differ from those of "
                f"{next(iter(known))}: the figures and the numbers below were not computed "
                "with the same AnalysisConfig"
            )
    sanity_json = run_dir / "sanity" / "sanity.json"
    if sanity_json.is_file():
        from analysis.sanity import read_sanity

        inputs.sanity = read_sanity(sanity_json)
    cache_manifest = cache_dir / "manifest.json"
    if cache_manifest.is_file():
        from cache.integrity import check

        manifest = _read_json(cache_manifest)
        edits = check(manifest)
        if edits:
            inputs.warnings.append(
                f"the cache manifest {cache_manifest} was edited after it was written "
                f"({'; '.join(edits[:5])}{'; ...' if len(edits) > 5 else ''}): its config and "
                "fingerprints below cannot be trusted ('defocus verify --cache "
                f"{cache_dir}' says more)"
            )
        elif edits is None:
            inputs.warnings.append(
                f"the cache manifest {cache_manifest} carries no integrity record (written "
                "by an older version): an edit of its values would go unnoticed"
            )
        inputs.config = {k: v for k, v in manifest.items() if k not in _BOOKKEEPING}
        inputs.fingerprints = _fingerprints(manifest)
        inputs.model_names = _model_names(manifest)
        sha = hashlib.sha256(cache_manifest.read_bytes()).hexdigest()
        if figures_cache_sha is not None and figures_cache_sha != sha:
            inputs.warnings.append(
                f"the figures in {figures_dir} were drawn from another cache than {cache_dir} "
                f"(manifest sha256 {figures_cache_sha[:12]} vs {sha[:12]}): the figures and the "
                "config/fingerprints below do not describe the same run"
            )
    else:
        inputs.warnings.append(
            f"no cache at {cache_dir}: this report has no extraction config or fingerprints "
            "(pass --cache DIR)"
        )
    notebooks_dir = run_dir / "notebooks"
    if notebooks_dir.is_dir():
        inputs.notebooks = sorted(notebooks_dir.glob("*.html"))
    return inputs


def _model_names(manifest: dict[str, Any]) -> dict[str, str]:
    """``{"defocus": "defocus model (resnet10t)", ...}`` from a cache manifest."""
    names = {"defocus": "defocus model", "rgb": "RGB model"}
    models = ((manifest.get("config") or {}).get("models")) or {}
    for kind, entry in models.items():
        backbone = ((entry or {}).get("config") or {}).get("backbone")
        if kind in names and backbone:
            names[kind] = f"{names[kind]} ({backbone})"
    return names


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Flatten nested dicts (and short lists) into ``(dotted.key, value)`` rows.

    Parameters
    ----------
    obj : Any
        A JSON-like value.
    prefix : str
        Key prefix of this level.

    Returns
    -------
    list of (str, Any)
        Leaf rows in insertion order; lists of scalars stay one row.
    """
    if isinstance(obj, dict):
        rows: list[tuple[str, Any]] = []
        for key, value in obj.items():
            rows += flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        rows = []
        for i, value in enumerate(obj):
            rows += flatten(value, f"{prefix}[{i}]")
        return rows
    return [(prefix, obj)]


def _fmt(value: Any) -> str:
    """One rounding rule for the whole report (3 decimals below 10, fewer above; tiny: 3 digits)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if value.is_integer() and abs(value) < 1e15:
            return f"{value:.0f}"
        size = abs(value)
        if size < 1e-3:
            return f"{value:.3g}"
        decimals = 3 if size < 10 else 2 if size < 100 else 1 if size < 1e4 else 0
        return f"{value:.{decimals}f}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _table(rows: list[tuple[str, Any]], css_class: str = "kv") -> str:
    body = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows
    )
    return f'<table class="{css_class}">\n{body}\n</table>'


def _records_table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c, '')))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f'<table class="records">\n<tr>{head}</tr>\n{body}\n</table>'


def _dict_tables(data: dict[str, Any], css_class: str) -> str:
    """Scalars as one key/value table; dict values as tables, one per set of keys."""
    out = []
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, dict)]
    if scalars:
        out.append(_table(scalars, css_class))
    by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            by_keys.setdefault(tuple(value), []).append({"": key, **value})
    out += [_records_table(rows) for rows in by_keys.values()]
    return "\n".join(out)


def _img_src(path: Path, report_dir: Path, inline: bool) -> str:
    if inline:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"data:image/png;base64,{data}"
    try:
        rel = path.resolve().relative_to(report_dir.resolve())
    except ValueError:
        rel = Path(_relpath(path.resolve(), report_dir.resolve()))
    return html.escape(rel.as_posix(), quote=True)


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target, start)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; font-weight: 600; }
td { font-family: ui-monospace, monospace; word-break: break-all; }
figure { margin: 1em 0 2em; } figure img { max-width: min(100%, 960px); border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
nav a { margin-right: 1em; } .muted { color: #777; font-size: .9em; }
.warning { background: #fff4e5; border-left: 4px solid #e69f00; padding: .6em .8em; }
.flagged { background: #fde8e0; border-left-color: #d55e00; }
table.headline td { word-break: normal; } table.headline td.measures {
  font-family: system-ui, sans-serif; color: #444; font-size: .9em; }
.legend { font-size: .92em; color: #333; }
details pre { background: #f8f8f8; padding: .8em; overflow-x: auto; font-size: .85em; }
"""


def _headline_table(rows: list[dict[str, str]]) -> str:
    """Render the headline table: ``quantity | value with CI | what it measures``, one row each."""
    head = "<tr><th>quantity</th><th>value with CI</th><th>what it measures</th></tr>"
    body = "\n".join(
        f"<tr><th>{html.escape(r['quantity'])}</th><td>{html.escape(r['value'])}</td>"
        f'<td class="measures">{html.escape(r["measures"])}</td></tr>'
        for r in rows
    )
    return f'<table class="headline">\n{head}\n{body}\n</table>'


def _level_line(headline: dict[str, Any], config: dict[str, Any]) -> str:
    """One line: the unit of inference and the resolution of the permutation p-values."""
    level = headline.get("level", "frame")
    cfg = config or headline.get("analysis_config") or {}
    n_perm = cfg.get("n_permutations")
    unit = (
        "video-level: whole videos are resampled and tested as units (frames of one video are "
        "near-duplicates)"
        if level == "video"
        else "frame-level: every image is a unit (the cache names no videos, or the run chose "
        "unit=frame)"
    )
    perm = (
        f" Permutation p-values use {n_perm} permutations: none can be below "
        f"1/{n_perm + 1} = {_fmt(1 / (n_perm + 1))}."
        if isinstance(n_perm, int)
        else ""
    )
    return f'<p class="legend">Intervals and tests: {html.escape(unit)}.{html.escape(perm)}</p>'


def render_report(inputs: ReportInputs, report_dir: str | Path, *, inline: bool = True) -> str:
    """Render the report's HTML.

    Parameters
    ----------
    inputs : ReportInputs
        Figures, summary, config and fingerprints.
    report_dir : str or Path
        Folder the report will be written to (for relative links).
    inline : bool
        Embed figures as base64 ``data:`` URIs (True) or link them (False).

    Returns
    -------
    str
        A complete HTML document.
    """
    report_dir = Path(report_dir)
    sections: dict[str, list[ReportFigure]] = {}
    for fig in inputs.figures:
        sections.setdefault(fig.section, []).append(fig)

    parts: list[str] = []
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<h1>{html.escape(inputs.title)}</h1>")
    parts.append(
        f'<p class="muted">generated {generated}; {len(inputs.figures)} figures; '
        "figures embedded in this file</p>"
        if inline
        else f'<p class="muted">generated {generated}; {len(inputs.figures)} figures</p>'
    )
    nav = ['<a href="#summary">summary</a>']
    nav += [f'<a href="#sec-{html.escape(s)}">{html.escape(s)}</a>' for s in sections]
    nav += ['<a href="#config">config</a>', '<a href="#fingerprints">fingerprints</a>']
    parts.append("<nav>" + " ".join(nav) + "</nav>")
    for warning in inputs.warnings:
        parts.append(f'<p class="warning"><strong>Warning:</strong> {html.escape(warning)}</p>')
    for result in inputs.sanity:
        if result.flagged:
            parts.append(
                '<p class="warning flagged"><strong>Attributions flagged:</strong> '
                f"{html.escape(result.message)} (model-randomisation check, "
                "sanity/sanity.json)</p>"
            )
    for caveat in run_caveats(inputs):
        parts.append(
            f'<p class="warning"><strong>Read with care:</strong> {html.escape(caveat)}</p>'
        )

    parts.append('<h2 id="summary">Summary</h2>')
    headline = inputs.summary.get("headline") if isinstance(inputs.summary, dict) else None
    if headline:
        from defocus_forensics.headline import SKILL_LEGEND, headline_rows, sanity_entry

        headline = dict(headline)
        for result in inputs.sanity:  # RUN/sanity/ may be newer than the summary
            headline.setdefault(f"sanity_{result.model}", sanity_entry(result))
        parts.append("<h3>Headline numbers</h3>")
        parts.append(f'<p class="legend">Alignment: {html.escape(SKILL_LEGEND)}.</p>')
        parts.append(_level_line(headline, inputs.analysis_config))
        rows = headline_rows(headline, inputs.model_names)
        if rows:
            parts.append(_headline_table(rows))
        else:
            parts.append(_dict_tables(headline, "headline"))
    table = inputs.summary.get("table") if isinstance(inputs.summary, dict) else None
    if isinstance(table, list) and table and all(isinstance(r, dict) for r in table):
        parts.append(
            f"<details><summary>Every number of every analysis ({len(table)} rows; "
            "also in summary/summary.csv)</summary>"
        )
        parts.append(_records_table(table))
        parts.append("</details>")
    rest = (
        {
            k: v
            for k, v in inputs.summary.items()
            if k not in ("headline", "table", "analysis_config", "files")
        }
        if isinstance(inputs.summary, dict)
        else {}
    )
    if rest:
        parts.append("<h3>Analysis summary</h3>")
        parts.append(_table(flatten(rest), "summary"))
    if not inputs.summary:
        parts.append('<p class="muted">no summary.json in this run</p>')
    if inputs.run.get("stages"):
        parts.append("<h3>Stages</h3>")
        stages = {
            name: {k: v for k, v in stage.items() if k != "key"}
            if isinstance(stage, dict)
            else stage
            for name, stage in inputs.run["stages"].items()
        }
        parts.append(_dict_tables(stages, "stages"))
    if inputs.notebooks:
        links = "".join(
            f'<li><a href="{_img_src(p, report_dir, False)}">{html.escape(p.stem)}</a></li>'
            for p in inputs.notebooks
        )
        parts.append(f"<h3>Executed notebooks</h3><ul>{links}</ul>")

    for section, figs in sections.items():
        parts.append(f'<h2 id="sec-{html.escape(section)}">{html.escape(section)}</h2>')
        for fig in figs:
            src = _img_src(fig.path, report_dir, inline)
            parts.append(
                "<figure>"
                f'<img src="{src}" alt="{html.escape(fig.title, quote=True)}">'
                f"<figcaption><b>{html.escape(fig.title)}</b>. "
                f"{html.escape(fig.caption)} "
                f'<span class="muted">({html.escape(fig.path.name)})</span></figcaption>'
                "</figure>"
            )

    parts.append('<h2 id="config">Run config</h2>')
    if inputs.analysis_config:
        parts.append(
            f"<details><summary>analysis settings (AnalysisConfig, "
            f"{len(inputs.analysis_config)} settings: the same for the figures, the summary "
            "and the notebooks)</summary>"
            + _table(list(inputs.analysis_config.items()), "analysis-config")
            + "</details>"
        )
    if inputs.run:
        # "settings" repeats part of "config": show each key once
        run_cfg = {
            k: v
            for k, v in inputs.run.items()
            if k not in ("stages", "settings", "headline", "analysis_config")
        }
        parts.append(
            f"<details><summary>run.json ({len(flatten(run_cfg))} settings)</summary>"
            + _table(flatten(run_cfg), "run")
            + "</details>"
        )
    if inputs.config:
        parts.append(
            "<details><summary>cache manifest: extraction config, models, software "
            "(manifest.json without the shard list)</summary><pre>"
            + html.escape(json.dumps(inputs.config, indent=2, sort_keys=True, default=str))
            + "</pre></details>"
        )
    if not inputs.run and not inputs.config:
        parts.append('<p class="muted">no run.json and no cache manifest found</p>')
    parts.append('<h2 id="fingerprints">Fingerprints</h2>')
    if inputs.fingerprints:
        parts.append(_table(flatten(inputs.fingerprints), "fingerprints"))
    else:
        parts.append('<p class="muted">no fingerprints recorded</p>')

    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(inputs.title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


#: Below these sizes a report warns that its statistics are too small to read much into.
MIN_SAMPLES_PER_GROUP = 30
MIN_PERMUTATIONS = 99


def run_caveats(inputs: ReportInputs) -> list[str]:
    """Return what a reader must know before reading the numbers of this run.

    A ``--quick`` run (tiny models on a few dozen images), statistics over
    fewer than :data:`MIN_SAMPLES_PER_GROUP` samples per group, permutation
    tests with fewer than :data:`MIN_PERMUTATIONS` permutations (whose
    p-values cannot go below ``1 / (n + 1)``), and sign-flip tests over so
    few units that no p below 0.01 can occur (``1 / 2^K`` with ``K`` units).
    """
    out = []
    config = inputs.run.get("config", {}) if isinstance(inputs.run, dict) else {}
    if config.get("quick"):
        out.append(
            "this run used --quick: tiny models trained for seconds on a few dozen images. Its "
            "numbers only show that the pipeline runs end to end (a test AUC near 0.5 is "
            "expected); run 'defocus demo' without --quick for numbers worth reading."
        )
    headline = inputs.summary.get("headline", {}) if isinstance(inputs.summary, dict) else {}
    small = sorted(
        {
            int(v["n"])
            for v in headline.values()
            if isinstance(v, dict)
            and isinstance(v.get("n"), (int, float))
            and v["n"] < MIN_SAMPLES_PER_GROUP
        }
    )
    if small:
        out.append(
            f"some headline statistics rest on only n = {', '.join(map(str, small))} samples "
            f"per group (fewer than {MIN_SAMPLES_PER_GROUP}): their confidence intervals are "
            "wide and small differences mean little."
        )
    n_perm = (inputs.analysis_config or {}).get("n_permutations", config.get("n_permutations"))
    if isinstance(n_perm, int) and n_perm < MIN_PERMUTATIONS:
        out.append(
            f"permutation tests used {n_perm} permutations, so no p-value can be smaller than "
            f"1/{n_perm + 1} = {1 / (n_perm + 1):.3f}."
        )
    floors = [
        v.get(k)
        for v in headline.values()
        if isinstance(v, dict)
        for k in ("p_floor", "paired_p_floor")
        if isinstance(v.get(k), (int, float))
    ]
    if floors and min(floors) > 0.01 and not (isinstance(n_perm, int) and n_perm < 99):
        out.append(
            "the sign-flip tests of this run cannot reach p < 0.01: with so few independent "
            f"units (fakes or videos) per group the smallest p they can give is about "
            f"{_fmt(min(floors))}, so a p-value above 0.01 here says little."
        )
    return out


def build_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    inline: bool = True,
    figures_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Write ``report.html`` for a run folder.

    Parameters
    ----------
    run_dir : str or Path
        The run folder.
    out : str or Path, optional
        The report file; default ``RUN/report.html``.
    inline : bool
        Embed figures (default) or link them.
    figures_dir, cache_dir : str or Path, optional
        Override ``RUN/figures`` and ``RUN/cache``.

    Returns
    -------
    Path
        The report written.
    """
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    out = check_output_file(out if out is not None else Path(run_dir) / "report.html")
    inputs = load_run(run_dir, figures_dir=figures_dir, cache_dir=cache_dir)
    for warning in inputs.warnings:
        logger.warning(warning)
    text = render_report(inputs, out.parent, inline=inline)
    atomic_write_text(out, text)
    return out
