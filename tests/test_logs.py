"""Logging: one line on the console for a user error, the whole story in OUT/defocus.log."""

from __future__ import annotations

import logging

from defocus_forensics.cli import main
from defocus_forensics.logs import LOG_NAME


def test_run_folder_log_keeps_the_traceback_the_console_hides(tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "manifest.json").write_text("{not json")
    out = tmp_path / "figs"
    assert main(["figures", "--cache", str(cache), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("defocus figures: error:")
    log = (out / LOG_NAME).read_text()
    assert f"defocus figures --cache {cache} --out {out} --quiet (defocus-forensics" in log
    assert "Traceback (most recent call last)" in log and "exit status" not in log
    # a second run appends, never truncates
    main(["figures", "--cache", str(cache), "--out", str(out), "--quiet"])
    assert (out / LOG_NAME).read_text().count("failed: CacheCorruptError") == 2
    # the file handler is closed and detached after each command
    assert not any(isinstance(h, logging.FileHandler)
                   for h in logging.getLogger("cache").handlers)  # fmt: skip


def test_verbose_shows_progress_messages(tmp_path, capsys):
    log = logging.getLogger("analysis")
    from defocus_forensics import logs

    logs.configure_console(0)
    log.info("step one")
    assert "step one" not in capsys.readouterr().err
    logs.configure_console(1)
    log.info("step two")
    log.warning("careful")
    err = capsys.readouterr().err
    assert "defocus: step two" in err and "defocus: warning: careful" in err
    logs.configure_console(0)
