"""``defocus verify`` and ``defocus inspect``: statuses, exit codes, one-line errors, repair."""

from __future__ import annotations

import json
import shlex
import sys

import numpy as np
import pytest

from cache import CacheWriter
from cache.store import ids_digest
from defocus_forensics.cli import build_parser, main

LAYOUT = [
    ("00000-real", "real", ["r0", "r1", "r2"]),
    ("00001-real", "real", ["r3", "r4"]),
    ("00002-fake", "fake", ["f0", "f1", "f2"]),
]
PLAN = [
    {"name": n, "group": g, "n_samples": len(ids), "ids_sha256": ids_digest(ids)}
    for n, g, ids in LAYOUT
]
COMMAND = (
    "/venv/bin/defocus extract --data synthetic:n=8 --defocus-model d.pt --out rel/c --shard 0/2"
)


def _cache(folder, layout, seed=0):
    rng = np.random.default_rng(seed)
    w = CacheWriter(folder, config={"explainer": {"nsamples": 8}}, info={"command": COMMAND},
                    plan=PLAN)  # fmt: skip
    for name, group, ids in layout:
        n = len(ids)
        arrays = {"id": ids, "group": [group] * n, "label": np.full(n, group != "real")}
        arrays.update(pair_id=[""] * n, defocus=rng.random((n, 4, 4)))
        w.write_shard(group, arrays, name)
    return folder


def _edit(folder, change, keep_integrity=True):
    m = json.loads((folder / "manifest.json").read_text())
    if not keep_integrity:
        m.pop("integrity")
    change(m)
    (folder / "manifest.json").write_text(json.dumps(m, indent=2))


def test_help_documents_the_exit_statuses():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["verify"]
    text = sub.format_help()
    for line in ("0  COMPLETE", "1  CORRUPT", "2  error", "3  INCOMPLETE", "--repair", "--cache"):
        assert line in text


def test_complete_incomplete_corrupt_have_distinct_statuses(tmp_path, capsys):
    done = _cache(tmp_path / "done", LAYOUT)
    assert main(["verify", "--cache", str(done), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"COMPLETE: 3 of 3 planned shards, 8 samples intact in {done}"

    half = _cache(tmp_path / "half", LAYOUT[:2])
    assert main(["verify", str(half), "--quiet"]) == 3  # the positional form
    err = capsys.readouterr().err
    assert f"INCOMPLETE: 2 of 3 planned shards present, 1 missing (00002-fake) in {half}" in err
    resume = err.split("resume with: ", 1)[1].strip()
    assert shlex.split(resume) == [
        "defocus", "extract", "--data", "synthetic:n=8", "--defocus-model", "d.pt",
        "--out", str(half.resolve()),
    ]  # fmt: skip

    entry = json.loads((done / "manifest.json").read_text())["shards"][1]
    raw = bytearray((done / entry["file"]).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (done / entry["file"]).write_bytes(bytes(raw))
    assert main(["verify", "--cache", str(done), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"CORRUPT: 1 problem(s) in {done}")
    assert "00001-real" in err and "sha256" in err
    assert f"next: defocus verify --cache {done} --repair" in err


def test_unknown_files_and_leftovers(tmp_path, capsys):
    c = _cache(tmp_path / "c", LAYOUT)
    (c / "shards" / ".00002-fake.npz.abcd.tmp").write_bytes(b"half")
    assert main(["verify", "--cache", str(c), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 leftover temporary file(s)" in err and ".00002-fake.npz.abcd.tmp" in err
    (c / "shards" / "extra.npz").write_bytes(b"PK")
    assert main(["verify", "--cache", str(c), "--quiet"]) == 1
    assert "unknown file shards/extra.npz" in capsys.readouterr().err


def test_edited_manifest_is_named_and_never_shown(tmp_path, capsys):
    c = _cache(tmp_path / "c", LAYOUT)
    assert main(["inspect", "--cache", str(c)]) == 0
    out = capsys.readouterr().out
    assert "integrity  sealed, intact" in out and "planned    3 shards, 3 present" in out
    _edit(c, lambda m: m["config"]["explainer"].update(nsamples=200))
    assert main(["inspect", "--cache", str(c)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # the edited value is never displayed
    (line,) = captured.err.strip().splitlines()
    assert (
        line.startswith("defocus inspect: error: ") and "changed config.explainer.nsamples" in line
    )
    assert main(["inspect", str(c), "--json"]) == 2
    assert capsys.readouterr().out == ""
    assert main(["verify", "--cache", str(c), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "manifest.json edited: changed config.explainer.nsamples" in err
    assert "restore the edited manifest values" in err
    assert main(["verify", "--cache", str(c), "--repair", "--quiet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "cannot repair" in line and "config.explainer.nsamples" in line


def test_unprotected_cache_is_shown_with_a_warning(tmp_path, capsys):
    c = _cache(tmp_path / "c", LAYOUT)
    _edit(c, lambda m: None, keep_integrity=False)
    assert main(["inspect", "--cache", str(c)]) == 0
    captured = capsys.readouterr()
    assert "defocus inspect: warning:" in captured.err and "no integrity record" in captured.err
    assert "integrity  none (unprotected" in captured.out
    assert main(["verify", "--cache", str(c), "--quiet"]) == 0
    assert "no integrity record" in capsys.readouterr().err
    assert main(["verify", "--cache", str(c), "--repair", "--quiet"]) == 0
    assert "sealed the manifest" in capsys.readouterr().out
    assert main(["inspect", "--cache", str(c)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_repair_then_the_named_command(tmp_path, capsys):
    c = _cache(tmp_path / "c", LAYOUT)
    entry = json.loads((c / "manifest.json").read_text())["shards"][0]
    (c / entry["file"]).write_bytes((c / entry["file"]).read_bytes()[:-20])
    (c / "shards" / "stray.npz").write_bytes(b"foreign")
    assert main(["verify", "--cache", str(c), "--repair", "--quiet"]) == 3
    captured = capsys.readouterr()
    assert "repaired" in captured.out and "moved 2 file(s) to" in captured.out
    assert "dropped the entries of 00000-real" in captured.out
    assert (
        "1 missing (00000-real)" in captured.err and "resume with: defocus extract" in captured.err
    )
    assert sorted(p.name for p in (c / "quarantine").rglob("*.npz")) == [
        "00000-real.npz",
        "stray.npz",
    ]


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["verify", "--cache", "NOPE"], "no cache folder at NOPE"),
        (["inspect", "--cache", "NOPE"], "no cache folder at NOPE"),
        (["verify"], "give the cache folder: defocus verify --cache PATH"),
        (["inspect", "a", "--cache", "b"], "two cache folders given: --cache 'b' and 'a'"),
    ],
)
def test_user_errors_are_one_line_exit_2(argv, match, capsys):
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"defocus {argv[0]}: error: ") and match in line


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from detector.models import build_detector, save_checkpoint

    folder = tmp_path_factory.mktemp("ckpt")
    model = build_detector("defocus", backbone="mobilenetv3_small_050", image_size=32)
    return save_checkpoint(model, folder / "defocus.safetensors")


@pytest.mark.slow
def test_an_interrupted_cli_extraction_is_resumed_by_the_command_verify_names(
    checkpoints, tmp_path, monkeypatch, capsys
):
    import torch

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # a relative --out, as a user types it
    argv = ["extract", "--data", "synthetic:n=20,size=32,seed=0", "--defocus-model",
            str(checkpoints), "--out", "runs/c", "--nsamples", "2", "--background", "1",
            "--shard-size", "1", "--quiet", "--shard", "0/2"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["defocus", *argv])
    assert main(argv) == 0  # one slice of two: the other shards are planned, not written
    capsys.readouterr()
    assert main(["verify", "--cache", "runs/c", "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "INCOMPLETE: 2 of 4 planned shards present, 2 missing (00001-" in err
    resume = shlex.split(err.split("resume with: ", 1)[1].strip())
    assert resume[:2] == ["defocus", "extract"] and "--shard" not in resume
    assert resume[resume.index("--out") + 1] == str(tmp_path / "runs" / "c")
    monkeypatch.chdir(tmp_path.parent)  # the command works from anywhere
    assert main(resume[1:]) == 0
    assert "2 written now, 2 already done" in capsys.readouterr().out
    assert main(["verify", "--cache", str(tmp_path / "runs" / "c"), "--quiet"]) == 0
