"""Project-level guarantees: packaging, layout, CLI, the torch-free analysis path."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """Normalised distribution name of a requirement string (PEP 503)."""
    name = re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject_requirements() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs += extra
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment_pip_requirements() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    out = {}
    in_pip = False
    for line in lines:
        stripped = line.split("#", 1)[0].rstrip()
        if stripped.strip() == "- pip:":
            in_pip = True
            continue
        if in_pip and stripped.strip().startswith("- "):
            item = stripped.strip()[2:].strip()
            if item.startswith("-"):  # pip options such as --no-deps, -e .
                continue
            out[_name(item)] = item.replace(" ", "")
    return out


def test_environment_yml_matches_pyproject():
    py = _pyproject_requirements()
    env = _environment_pip_requirements()
    assert py, "pyproject.toml declares no dependencies"
    only_py = sorted(set(py) - set(env))
    only_env = sorted(set(env) - set(py))
    assert not only_py and not only_env, (
        f"pyproject.toml and environment.yml disagree: only in pyproject {only_py}, "
        f"only in environment.yml {only_env}"
    )
    different = {k: (py[k], env[k]) for k in py if py[k] != env[k]}
    assert not different, f"version specifiers differ (pyproject, environment.yml): {different}"


def test_environment_yml_pins_python_311():
    assert re.search(r"^\s*-\s*python=3\.11\s*$", (ROOT / "environment.yml").read_text(), re.M)


@pytest.mark.parametrize(
    "path",
    [
        "detector",
        "cache",
        "analysis",
        "notebooks",
        "tests",
        "benchmarks",
        "environment.yml",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        ".gitignore",
        ".ci/run",
    ],
)
def test_layout(path):
    assert (ROOT / path).exists(), f"{path} is missing from the project layout"


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert blocks, "README.md has no command block"
    first = blocks[0]
    assert "make demo" in first and "make test" in first, first
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_cache_and_analysis_import_without_torch():
    """``sys.modules['torch'] = None`` makes any ``import torch`` raise ImportError."""
    code = """
import sys, pkgutil, importlib
sys.modules["torch"] = None
import cache
from cache import open_cache
import analysis
names = [m.name for m in pkgutil.walk_packages(analysis.__path__, "analysis.")]
for name in names:
    importlib.import_module(name)
assert "torch" not in [k for k, v in sys.modules.items() if v is not None]
print("ok", len(names))
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_analysis_never_imports_torch_in_source():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "analysis").rglob("*.py")
        if re.search(r"^\s*(import torch|from torch)", p.read_text(), re.M)
    ]
    assert not offenders, f"analysis/ must not import torch: {offenders}"


def test_detector_knows_nothing_of_caches():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "detector").rglob("*.py")
        if re.search(r"^\s*(import|from) (cache|analysis)\b", p.read_text(), re.M)
    ]
    assert not offenders, f"detector/ must not import cache or analysis: {offenders}"


def test_cli_help_and_version():
    from defocus_forensics import __version__
    from defocus_forensics.cli import build_parser

    proc = subprocess.run(
        [sys.executable, "-m", "defocus_forensics", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout
    help_text = build_parser().format_help()
    assert "defocus demo --quick" in help_text


def test_cli_help_works_without_torch():
    proc = _run(
        'import sys; sys.modules["torch"] = None\n'
        "from defocus_forensics.cli import build_parser\n"
        "print(build_parser().format_help())"
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: defocus" in proc.stdout


def test_every_subcommand_has_help():
    from defocus_forensics.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        text = p.format_help()
        assert len(text) > 80, f"'defocus {name} --help' teaches nothing:\n{text}"
