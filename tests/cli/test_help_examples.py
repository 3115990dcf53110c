"""The example in every data command's ``--help`` runs as written (in a scratch folder)."""

from __future__ import annotations

import re
import shlex

import pytest
import torch

from defocus_forensics.cli import build_parser, main

#: In the order a user would follow them (each builds on the one before).
COMMANDS = ("prepare", "make-data", "train", "evaluate", "extract")


def _examples(command: str) -> list[str]:
    """The command lines of the first ``example`` block of ``defocus COMMAND --help``."""
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    text = sub.format_help()
    block = re.search(r"^examples?\b[^\n]*:\n((?:  .*\n?)+)", text, re.M)
    assert block, f"'defocus {command} --help' has no example"
    lines, current = [], ""
    for raw in block.group(1).splitlines():
        current += " " + raw.strip().rstrip("\\").strip()
        if not raw.rstrip().endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [line for line in lines if line.startswith("defocus ")]


def test_every_example_names_its_own_command():
    for command in COMMANDS:
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
            argv = shlex.split(line)[1:] + ["--quiet"]
            assert main(argv) == 0, (line, capsys.readouterr().err)
            done.append(line)
    assert (tmp_path / "data/ffpp-faces/index.csv").is_file()
    assert (tmp_path / "runs/syn-cache/manifest.json").is_file()
    assert (tmp_path / "runs/eval-defocus/metrics.json").is_file()
