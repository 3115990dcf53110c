"""Wall and CPU time of each stage of ``defocus demo``, and the two test AUCs.

Runs :func:`defocus_forensics.demo.run_demo` (the full preset unless
``--quick``) into a fresh folder and records, at every stage boundary, the
wall clock and the CPU time of this process plus its finished children
(the rendering workers, the notebook kernels). On a shared machine wall
times swell with the load while CPU times barely do: ``cpu / 2`` is a lower
bound of a stage's wall time on 2 quiet cores, ``cpu`` an upper one for the
single-threaded parts. The load average is printed before and after.

    .venv/bin/python benchmarks/demo_stages.py                       # full demo, /tmp folder
    .venv/bin/python benchmarks/demo_stages.py --quick --out /tmp/q  # the quick demo
    .venv/bin/python benchmarks/demo_stages.py --epochs 5            # another defocus epoch count

Writes the table as JSON to ``runs/benchmarks/demo_stages.json`` (or
``demo_stages_quick.json``; ``--json`` to change) and the demo's own
outputs (run.json etc.) into ``--out`` (default: a new temporary folder,
deleted afterwards unless ``--keep``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> dict:
    """Run the demo once and print the stage table; return it as a dict."""
    from defocus_forensics.demo import DemoConfig, run_demo
    from safeio import atomic_write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the --quick preset")
    parser.add_argument("--out", help="demo output folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--no-notebooks", action="store_true")
    parser.add_argument("--json", help="where to write the table (default: runs/benchmarks/)")
    parser.add_argument("--epochs", type=int, help="defocus model's epochs (default: preset)")
    parser.add_argument("--rgb-epochs", type=int, help="RGB model's epochs (default: preset)")
    args = parser.parse_args(argv)

    tmp = None if args.out else tempfile.mkdtemp(prefix="demo-stages-")
    out = Path(args.out or tmp)
    marks: list[tuple[str, str, float, float]] = []  # (stage, event, wall, cpu)
    pattern = re.compile(r"^\[\d+/\d+\] ([\w-]+)(:| \.\.\.)")

    def log(msg: str) -> None:
        m = pattern.match(msg)
        if m:
            marks.append((m.group(1), "end" if m.group(2) == ":" else "start",
                          time.perf_counter(), _cpu()))  # fmt: skip

    load_before = os.getloadavg()
    t0, c0 = time.perf_counter(), _cpu()
    try:
        run_demo(
            DemoConfig(out=out, quick=args.quick, notebooks=not args.no_notebooks,
                       epochs=args.epochs, rgb_epochs=args.rgb_epochs, progress=False),
            log=log,
        )  # fmt: skip
        run = json.loads((out / "run.json").read_text())
        test_auc = {k: m.get("auc") for k, m in _test_metrics(out).items()}
    finally:
        if tmp and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    load_after = os.getloadavg()
    starts = {s: (w, c) for s, e, w, c in marks if e == "start"}
    rows = []
    for stage, event, w, c in marks:
        if event == "end" and stage in starts:
            ws, cs = starts[stage]
            status = run["stages"].get(stage, {}).get("status", "")
            rows.append({"stage": stage, "status": status, "wall_s": round(w - ws, 1),
                         "cpu_s": round(c - cs, 1)})  # fmt: skip
    table = {
        "preset": "quick" if args.quick else "full",
        "stages": rows,
        "total_wall_s": round(wall, 1),
        "total_cpu_s": round(cpu, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "test_auc": test_auc,
    }
    print(f"{'stage':15s} {'status':8s} {'wall s':>8s} {'CPU s':>8s}")
    for r in rows:
        print(f"{r['stage']:15s} {r['status']:8s} {r['wall_s']:8.1f} {r['cpu_s']:8.1f}")
    print(f"{'total':15s} {'':8s} {wall:8.1f} {cpu:8.1f}")
    print(f"load average before {load_before}, after {load_after}")
    print(f"test AUC: {table['test_auc']}")
    name = "demo_stages_quick.json" if args.quick else "demo_stages.json"
    path = Path(args.json or Path("runs/benchmarks") / name).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, table, indent=2)
    print(f"wrote {path}")
    return table


def _test_metrics(out: Path) -> dict:
    found = {}
    for kind in ("defocus", "rgb"):
        path = out / "models" / kind / "test_metrics.json"
        if path.is_file():
            found[kind] = json.loads(path.read_text())
    return found


if __name__ == "__main__":
    main()
