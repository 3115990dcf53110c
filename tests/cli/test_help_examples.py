"""The examples of every command's ``--help`` run as written (in a scratch folder).

The data commands build on each other from nothing; the commands that read a
demo run (``runs/demo``) run on a copy of the quick demo. Not run here:
``demo`` (its own tests run it), ``import-checkpoint`` and ``import-legacy``
(their examples name the paper's released files, which are not on this
machine; tests/cli/test_import_checkpoint.py and the legacy tests run the
same commands on files in the paper's layouts).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import torch

from defocus_forensics.cli import build_parser, main

#: In the order a user would follow them (each builds on the one before).
COMMANDS = ("prepare", "make-data", "train", "evaluate", "extract")
#: Commands whose examples read ``runs/demo`` (in the order they build on each other).
DEMO_COMMANDS = ("inspect", "verify", "sanity", "figures", "notebooks", "report", "estimate")


def _examples(command: str) -> list[str]:
    """The command lines of the first ``example`` block of ``defocus COMMAND --help``."""
    text = _subparser(command).format_help()
    block = re.search(r"^examples?\b[^\n]*:\n((?:  .*\n?)+)", text, re.M)
    assert block, f"'defocus {command} --help' has no example"
    lines, current = [], ""
    for raw in block.group(1).splitlines():
        current += " " + raw.strip().rstrip("\\").strip()
        if not raw.rstrip().endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [line for line in lines if line.startswith("defocus ")]


def _subparser(command: str):
    return next(a for a in build_parser()._actions if a.dest == "command").choices[command]


def _argv(line: str, command: str) -> list[str]:
    """The arguments of one example line (``# comments`` dropped), quiet where it can be."""
    argv = shlex.split(line, comments=True)[1:]
    takes_quiet = any("--quiet" in a.option_strings for a in _subparser(command)._actions)
    return argv + ["--quiet"] if takes_quiet else argv


def test_every_example_names_its_own_command():
    for command in COMMANDS + DEMO_COMMANDS:
        assert any(line.startswith(f"defocus {command} ") for line in _examples(command))


@pytest.mark.slow
def test_the_examples_run_as_written(tmp_path, monkeypatch, capsys):
    pytest.importorskip("av")
    pytest.importorskip("dlib")
    from detector.data.testing import make_ffpp_videos

    monkeypatch.chdir(tmp_path)
    # what the prepare example expects on disk: a (tiny) FaceForensics++ download
    make_ffpp_videos("data/FaceForensics++", n_videos=4, n_frames=2,
                     manipulations=("Deepfakes", "FaceSwap"))  # fmt: skip
    torch.set_num_threads(1)
    done = []
    for command in COMMANDS:
        for line in _examples(command):
            if line in done:
                continue
            assert main(_argv(line, command)) == 0, (line, capsys.readouterr().err)
            done.append(line)
    assert (tmp_path / "data/ffpp-faces/index.csv").is_file()
    assert (tmp_path / "runs/syn-cache/manifest.json").is_file()
    assert (tmp_path / "runs/eval-defocus/metrics.json").is_file()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The quick demo, run once per session (other test files reuse the same folder)."""
    from defocus_forensics.demo import DemoConfig, run_demo

    out = tmp_path_factory.getbasetemp() / "demo-quick"
    return run_demo(DemoConfig(out=out, quick=True, progress=False))


@pytest.mark.slow
def test_the_examples_on_a_demo_run_run_as_written(demo_run, tmp_path, monkeypatch, capsys):
    import shutil

    from PIL import Image
    from skimage import data

    monkeypatch.chdir(tmp_path)
    shutil.copytree(demo_run.out, "runs/demo")
    # what the estimate example expects: a folder of photos and one more photo
    Path("photos").mkdir()
    Image.fromarray(data.astronaut()[::4, ::4]).save("photos/astronaut.png")
    Image.fromarray(data.coffee()[::4, ::4]).save("photos/coffee.jpg")
    Image.fromarray(data.chelsea()[::4, ::4]).save("extra.jpg")
    torch.set_num_threads(1)
    for command in DEMO_COMMANDS:
        for line in _examples(command):
            code = main(_argv(line, command))
            assert code == 0, (line, capsys.readouterr().err)
    assert Path("runs/demo/sanity/sanity.json").is_file()
    assert Path("runs/demo/figures-reflect/figures_manifest.json").is_file()
    single = json.loads(Path("runs/demo/figures-single/figures_manifest.json").read_text())
    assert (
        single["width"] == "single"
        and single["analysis_config"]
        == json.loads(Path("runs/demo/figures/figures_manifest.json").read_text())[
            "analysis_config"
        ]
    )
    assert Path("runs/demo/nb-T0.05/masks.html").is_file()
    assert Path("runs/demo/report-single.html").is_file()
    assert len(list(Path("runs/maps").glob("*"))) >= 3
