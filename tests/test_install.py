"""A plain (non-editable) install runs the demo from any folder, notebooks included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project built as a wheel (from a copy of the tree) and unpacked: a plain install."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".ruff_cache", "site")  # fmt: skip
    shutil.copytree(ROOT, src / "tree", ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(src / "tree")],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = dist.glob("*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def test_wheel_ships_every_package_and_the_notebooks(installed):
    notebooks = sorted(p.name for p in (installed / "defocus_forensics/notebook_sources").iterdir())
    assert notebooks == sorted(p.name for p in (ROOT / "notebooks").iterdir()
                               if p.suffix in (".py", ".toml"))  # fmt: skip
    for pkg in ROOT.glob("*/__init__.py"):
        if pkg.parent.name != "tests":
            assert (installed / pkg.parent.name / "__init__.py").is_file(), pkg.parent.name
    for pkg in ROOT.glob("*/*/__init__.py"):
        if pkg.parts[-3] != "tests":
            rel = pkg.relative_to(ROOT)
            assert (installed / rel).is_file(), f"{rel.parent} is not in the wheel"


@pytest.mark.slow
def test_quick_demo_from_a_plain_install_with_a_relative_out(installed, tmp_path):
    """From another folder, relative --out, notebooks from the installed package data."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(installed), "DEFOCUS_TRACEBACK": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "defocus_forensics", "demo", "--quick", "--out", "out/q", "--quiet"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = work / "out" / "q"
    run = json.loads((out / "run.json").read_text())
    assert all(s["status"] in ("done", "reused") for s in run["stages"].values()), run["stages"]
    assert (out / "report.html").is_file() and (out / "notebooks" / "explorer.ipynb").is_file()
    # the code that ran was the installed copy, not the source tree
    probe = subprocess.run(
        [sys.executable, "-c", "import defocus_forensics.notebooks as n; print(n.NOTEBOOKS_DIR)"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip().startswith(str(installed))
    assert sorted(p.name for p in work.iterdir()) == ["out"]  # nothing written elsewhere
