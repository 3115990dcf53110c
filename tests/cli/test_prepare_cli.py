"""``defocus prepare ffpp`` on the command line: one line on success, skipped videos, errors."""

from __future__ import annotations

import pytest

from defocus_forensics.cli import main

pytest.importorskip("av")
pytest.importorskip("dlib")


def test_prepare_reports_and_exits_1_when_videos_were_skipped(tmp_path, capsys):
    from detector.data.testing import make_ffpp_videos

    make_ffpp_videos(tmp_path / "src", n_videos=2, n_frames=1, masks=False)
    (tmp_path / "src/original_sequences/youtube/c23/videos/002.mp4").write_bytes(b"not a video")
    argv = ["prepare", "ffpp", "--root", str(tmp_path / "src"), "--out", str(tmp_path / "out"),
            "--frames", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out.startswith("prepared 2 of 3 real videos and 2 manipulated ones (3 worked on now")
    assert len(out.strip().splitlines()) == 1
    assert "1 videos skipped" in err and "002.mp4: Invalid data" in err
    assert main(argv) == 1  # the rerun skips the finished videos and retries the broken one
    assert "(1 worked on now, 2 done before)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--root", "/no/such/ffpp"], "FaceForensics++ root not found: '/no/such/ffpp'"),
        (["--root", ".", "--frames", "0"], "frames must be a positive integer, got 0"),
        (["--root", ".", "--scale", "0.9"], "scale must be in [1, 10], got 0.9"),
    ],
)
def test_prepare_user_errors_are_one_line(tmp_path, capsys, extra, message):
    assert main(["prepare", "ffpp", "--out", str(tmp_path / "o"), *extra, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing made before the error
