"""Atomic writes and output-path checks (``safeio``), the one helper every writer uses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from safeio import (
    OutputPathError,
    atomic_path,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    check_output_file,
    is_temporary,
)

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"x": 1})
    assert target.read_text() == '{\n  "x": 1\n}\n'
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]
    # usual permissions (mkstemp alone would give 0600)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target, "w") as fh:
            fh.write("half of the new")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    # not serialisable: raises before anything touches the disk
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "b.json", {"x": object()})
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_path_keeps_the_suffix_for_format_detection(tmp_path):
    target = tmp_path / "fig.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and is_temporary(tmp)
        assert tmp != target
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png" and not is_temporary(target)
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "g.pdf") as tmp:
            tmp.write_bytes(b"half")
            raise KeyError("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_temporary_names_are_unique_per_write(tmp_path):
    target = tmp_path / "x.bin"
    with atomic_write(target) as a, atomic_write(target) as b:
        assert a.name != b.name  # two writers never share a temporary file
        a.write(b"a")
        b.write(b"b")
    assert target.read_bytes() == b"a"  # the later rename wins, whole


def test_atomic_write_refuses_a_read_mode(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w', got 'r'"):
        with atomic_write(tmp_path / "x", "r"):
            pass


def test_check_output_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = check_output_dir("rel/out")
    assert made == tmp_path / "rel" / "out" and made.is_dir() and made.is_absolute()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match=r"--out 'file' is a file; give a folder"):
        check_output_dir("file")
    with pytest.raises(OutputPathError, match=r"--cache 'file/sub'.*file is a file, not a folder"):
        check_output_dir("file/sub", "--cache")
    with pytest.raises(OutputPathError, match="does not exist"):
        check_output_dir("missing", create=False)
    assert not list(made.iterdir())  # the write probe leaves nothing


def test_check_output_dir_on_a_read_only_place():
    # /proc refuses new files even to root, where chmod would not
    with pytest.raises(OutputPathError, match="/proc"):
        check_output_dir("/proc/defocus-out")


def test_check_output_file(tmp_path):
    assert check_output_file(tmp_path / "new" / "r.html") == tmp_path / "new" / "r.html"
    with pytest.raises(OutputPathError, match="is a folder; give a file name"):
        check_output_file(tmp_path)


# -- the command line: every output error is one line, exit status 2, nothing left behind --


def _run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "defocus_forensics", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["figures", "--cache", "{cache}", "--out", "{file}"],
        ["notebooks", "--cache", "{cache}", "--out", "{file}"],
        ["report", "--run", "{run}", "--out", "{run}"],
        ["report", "--run", "{run}", "--cache", "{missing}"],
        ["demo", "--quick", "--out", "{file}"],
        ["figures", "--cache", "{cache}", "--out", "/proc/defocus-figures"],
    ],
    ids=[
        "figures-out-file",
        "notebooks-out-file",
        "report-out-dir",
        "report-cache-missing",
        "demo-out-file",
        "figures-out-unwritable",
    ],  # fmt: skip
)
def test_output_errors_are_one_line(tmp_path, argv):
    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "a.png").write_bytes(b"\x89PNG")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "manifest.json").write_text("{}")
    (tmp_path / "file").write_text("keep me")
    values = {"cache": cache, "file": tmp_path / "file", "run": run, "missing": tmp_path / "nope"}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = _run_cli(*[a.format(**values) for a in argv])
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"defocus {argv[0]}"), proc.stderr
    assert re.search(r"file|folder|cache|/proc|nope", lines[0])
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "file").read_text() == "keep me"


def test_user_errors_get_one_line_and_traceback_on_request(monkeypatch, capsys):
    from defocus_forensics import cli

    def boom(args):
        raise ValueError("threshold must be in (0, 1),\n got 1.7")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["verify"].set_defaults(_run=boom)
    assert cli.main(["verify", "x"]) == 2
    assert capsys.readouterr().err == (
        "defocus verify: error: threshold must be in (0, 1), got 1.7\n"
    )
    monkeypatch.setenv("DEFOCUS_TRACEBACK", "1")
    with pytest.raises(ValueError):
        cli.main(["verify", "x"])


def test_a_bug_still_shows_its_traceback(monkeypatch):
    from defocus_forensics import cli

    def bug(args):
        raise TypeError("unsupported operand")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["verify"].set_defaults(_run=bug)
    with pytest.raises(TypeError):
        cli.main(["verify", "x"])
