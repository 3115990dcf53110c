"""Concurrent extraction runs on one cache: shard claims, shared work, killed runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache import claims, open_cache, verify_cache
from cache.claims import claim_state, list_claims, try_claim

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _write_claim(folder: Path, name: str, **fields) -> Path:
    path = folder / ".claims" / f"{name}.claim"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"shard": name, "token": "t", **fields}))
    return path


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(proc.stdout)
    assert not claims._alive(pid)
    return pid


# --------------------------------------------------------------------------- claims


def test_a_claim_is_exclusive_until_released(tmp_path):
    first = try_claim(tmp_path, "00000-real")
    assert first is not None and first.took_over is None
    assert try_claim(tmp_path, "00000-real") is None  # live: held by this process
    info = json.loads(first.path.read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    (state,) = list_claims(tmp_path)
    assert state.live and state.name == "00000-real" and state.reason == "held by this process"
    with first:
        pass  # releases
    assert not first.path.exists() and list_claims(tmp_path) == []
    again = try_claim(tmp_path, "00000-real")
    assert again is not None
    again.release()


@pytest.mark.parametrize(
    ("fields", "age", "stale", "reason"),
    [
        ({"pid": "DEAD"}, 0, True, "is gone"),
        ({"pid": "PARENT", "proc_start": "1"}, 0, True, "now is another process"),
        ({"pid": "PARENT"}, 0, False, "process running"),
        ({"pid": "SELF"}, 0, True, "left by an earlier call of this process"),
        ({"pid": 12345, "host": "elsewhere"}, 0, False, "heartbeat"),
        ({"pid": 12345, "host": "elsewhere"}, 3600, True, "no heartbeat for"),
        ({"pid": "PARENT"}, 3600, True, "no heartbeat for"),
    ],
)
def test_stale_claims_are_taken_over_live_ones_are_not(tmp_path, fields, age, stale, reason):
    pid = {"DEAD": _dead_pid, "PARENT": os.getppid, "SELF": os.getpid}
    fields = dict(fields)
    if isinstance(fields["pid"], str):
        fields["pid"] = pid[fields["pid"]]()
    fields.setdefault("host", socket.gethostname())
    path = _write_claim(tmp_path, "00001-fake", **fields)
    if age:
        os.utime(path, (time.time() - age, time.time() - age))
    state = claim_state(path, stale_after=600)
    assert state.live is not stale and reason in state.reason
    got = try_claim(tmp_path, "00001-fake", stale_after=600)
    if stale:
        assert got is not None and reason in got.took_over.reason
        assert json.loads(path.read_text())["pid"] == os.getpid()
        got.release()
    else:
        assert got is None and json.loads(path.read_text())["token"] == "t"


def test_an_unreadable_claim_is_live_while_young_then_stale(tmp_path):
    path = tmp_path / ".claims" / "x.claim"
    path.parent.mkdir()
    path.write_text("")  # a claim being written
    assert try_claim(tmp_path, "x") is None
    os.utime(path, (time.time() - 120, time.time() - 120))
    got = try_claim(tmp_path, "x")
    assert got is not None and got.took_over.reason == "unreadable and old"
    got.release()


_HEARTBEAT = """
import sys, time
from cache import claims
claims.HEARTBEAT_SECONDS = 0.1
c = claims.try_claim(sys.argv[1], "s")
print("claimed", flush=True)
time.sleep(30)
"""


def test_a_held_claim_beats_and_a_killed_holder_leaves_it_stale(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _HEARTBEAT, str(tmp_path)], env=ENV,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "claimed"
        path = tmp_path / ".claims" / "s.claim"
        os.utime(path, (time.time() - 500, time.time() - 500))
        deadline = time.time() + 20
        while time.time() - path.stat().st_mtime > 60 and time.time() < deadline:
            time.sleep(0.05)
        assert time.time() - path.stat().st_mtime < 60  # the heartbeat refreshed it
        assert claim_state(path, stale_after=60).live
    finally:
        proc.kill()
        proc.wait(timeout=30)
    state = claim_state(path, stale_after=60)
    assert not state.live and "is gone" in state.reason


# --------------------------------------------------------------------------- real runs

_RUN = """
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from cache.extract import ExtractConfig, extract
from cache.testing import TinyDataset, TinyDetector

class Slow(TinyDataset):
    def __getitem__(self, i):
        time.sleep(DELAY)
        return super().__getitem__(i)

out, DELAY, ready, others = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
Path(ready).touch()  # start together: every run waits until all are ready
deadline = time.time() + 120
while not all(Path(o).exists() for o in others) and time.time() < deadline:
    time.sleep(0.01)
d, r = TinyDetector("defocus", 16, 4, seed=0).eval(), TinyDetector("rgb", 16, 4, seed=1).eval()
cfg = ExtractConfig(nsamples=4, n_background=2, shard_size=2, batch_size=2, seed=5)
res = extract(Slow(12, 16), out, d, r, cfg, progress=False)
print(json.dumps({"written": [t["name"] for t in res.tasks], "by_others": res.n_by_others}))
"""


def _reference(out):
    import torch

    from cache.extract import ExtractConfig, extract
    from cache.testing import TinyDataset, TinyDetector

    torch.set_num_threads(1)
    d, r = TinyDetector("defocus", 16, 4, seed=0).eval(), TinyDetector("rgb", 16, 4, seed=1).eval()
    cfg = ExtractConfig(nsamples=4, n_background=2, shard_size=2, batch_size=2, seed=5)
    return extract(TinyDataset(12, 16), out, d, r, cfg, progress=False)


def _shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "shards").glob("*.npz"))}


def _body(folder: Path) -> dict:
    m = json.loads((folder / "manifest.json").read_text())
    return {k: v for k, v in m.items() if k not in ("info", "integrity")}


@pytest.mark.slow
def test_two_concurrent_runs_compute_each_shard_once_and_equal_a_single_run(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_RUN)
    out = tmp_path / "shared"
    ready = [tmp_path / "a.ready", tmp_path / "b.ready"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(out), "0.25", str(ready[i]), str(ready[1 - i])],
            env=ENV,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    results = []
    for p in procs:
        stdout, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    a, b = (set(r["written"]) for r in results)
    ref = _reference(tmp_path / "single")
    planned = [p["name"] for p in ref.cache.planned]
    assert len(planned) == 7
    assert not a & b, f"shards computed twice: {sorted(a & b)}"
    assert a | b == set(planned)
    assert a and b, f"the runs did not share the work: {results}"
    assert results[0]["by_others"] >= 1 and results[1]["by_others"] >= 1
    assert _shard_bytes(out) == _shard_bytes(tmp_path / "single")
    assert _body(out) == _body(tmp_path / "single")
    assert verify_cache(out).status == "complete" and list_claims(out) == []


@pytest.mark.slow
def test_a_killed_runs_claim_does_not_block_a_rerun(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_RUN)
    out = tmp_path / "c"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), "0.5", str(tmp_path / "ready")],
        env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob(".claims/*.claim")):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (stale,) = list_claims(out)
    assert not stale.live and "is gone" in stale.reason
    report = verify_cache(out)
    assert report.status == "incomplete" and report.ok and len(report.missing) >= 6
    assert report.stale_claims and any("stale claim" in n for n in report.notes)
    before = len(open_cache(out).shards)
    t0 = time.time()
    rerun = _reference(out)
    assert time.time() - t0 < 120 and rerun.n_written == 7 - before
    ref = _reference(tmp_path / "single")
    assert _shard_bytes(out) == _shard_bytes(tmp_path / "single")
    assert verify_cache(out).status == "complete" and list_claims(out) == []
    assert rerun.cache.n_samples() == ref.cache.n_samples() == 12
