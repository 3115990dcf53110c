"""The parameterized notebooks: structure, thin torch-free presentations, executed on the demo."""

from __future__ import annotations

import ast
import hashlib
import json

import pytest

from defocus_forensics.cli import main
from defocus_forensics.notebooks import (
    NOTEBOOKS_DIR,
    check_choice,
    check_fraction,
    check_indices,
    check_positive,
    find_cache,
    list_notebooks,
    parameter_names,
    parse_parameter,
    read_notebook,
)

EXPECTED = ["overview", "masks", "variance", "embedding", "alignment", "localisation", "explorer"]


def _sources_digest() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in NOTEBOOKS_DIR.iterdir()}


# ------------------------------------------------------------------- structure


def test_one_notebook_per_analysis_in_order():
    assert [p.stem for p in list_notebooks()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_structure(name):
    source = NOTEBOOKS_DIR / f"{name}.py"
    text = source.read_text()
    assert text.startswith("# ---\n# jupyter:\n#   kernelspec:"), "a header with the kernelspec"
    assert text.split("# ---\n\n", 1)[1].startswith("# %% [markdown]"), "then a markdown cell"
    nb = read_notebook(source)
    # JupyterLab opens it without asking for a kernel (the metadata filter keeps this)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    # the first code cell is tagged "parameters", holds only assignments, has cache_path
    assert code[0].metadata.get("tags") == ["parameters"]
    tree = ast.parse(code[0].source)
    assert all(isinstance(node, ast.Assign) for node in tree.body)
    assert "cache_path" in parameter_names(source)
    assert 'cache_path = "runs/demo/cache"' in code[0].source
    # the next cell validates them
    assert "find_cache(cache_path)" in code[1].source
    assert "check_" in code[1].source or "raise ValueError" in code[1].source
    # thin presentation: no functions, classes or lambdas of its own, torch-free
    lines = "\n".join(c.source for c in code).splitlines()
    full = ast.parse("\n".join(ln for ln in lines if not ln.startswith("%")))  # magics
    defs = [n for n in ast.walk(full) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))]
    assert not defs, f"{name} defines logic of its own: {defs}"
    modules = {
        (n.module or "").split(".")[0] for n in ast.walk(full) if isinstance(n, ast.ImportFrom)
    } | {a.name.split(".")[0] for n in ast.walk(full) if isinstance(n, ast.Import) for a in n.names}
    assert modules <= {"analysis", "cache", "defocus_forensics", "pathlib", "pandas", "IPython"}


def test_parse_parameter():
    assert parse_parameter("0.05") == 0.05
    assert parse_parameter("[5, 10]") == [5, 10]
    assert parse_parameter("true") is True and parse_parameter("False") is False
    assert parse_parameter("None") is None and parse_parameter("null") is None
    assert parse_parameter("runs/x") == "runs/x"
    assert parse_parameter('"42"') == "42"


def test_validation_helpers(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\), got 1.7"):
        check_fraction("threshold", 1.7)
    with pytest.raises(ValueError, match="n_boot must be a positive integer, got 2.5"):
        check_positive("n_boot", 2.5, integer=True)
    with pytest.raises(ValueError, match="bins must be a positive number, got True"):
        check_positive("bins", True)
    with pytest.raises(ValueError, match=r"method must be one of \['tsne', 'pca'\], got 'x'"):
        check_choice("method", "x", ["tsne", "pca"])
    assert check_indices("indices", [0, 2], 3) == [0, 2]
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\), got \[3\]"):
        check_indices("indices", [0, 3], 3)
    with pytest.raises(FileNotFoundError, match="make one with 'defocus demo --quick'"):
        find_cache(tmp_path / "missing")
    # a relative path is found from a sub-folder (JupyterLab runs notebooks in notebooks/)
    (tmp_path / "runs" / "c").mkdir(parents=True)
    (tmp_path / "runs" / "c" / "manifest.json").write_text("{}")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert find_cache("runs/c") == (tmp_path / "runs" / "c").resolve()


def test_notebooks_cli_rejects_unknown_parameters(tmp_path, capsys):
    assert main(["notebooks", "--cache", str(tmp_path), "--out", str(tmp_path),
                 "-p", "no_such_parameter", "1"]) == 2  # fmt: skip
    assert "no notebook has a parameter 'no_such_parameter'" in capsys.readouterr().err
    assert main(["notebooks", "--cache", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "no cache at" in capsys.readouterr().err
    assert main(["notebooks", "--cache", str(tmp_path), "--out", str(tmp_path), "--list"]) == 0
    assert "masks: " in capsys.readouterr().out


# --------------------------------------------------------- executed on the demo


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The quick demo, run once per session (reruns reuse the finished stages)."""
    from defocus_forensics.demo import DemoConfig, run_demo

    out = tmp_path_factory.getbasetemp() / "demo-quick"
    return run_demo(DemoConfig(out=out, quick=True, progress=False))


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_demo_executed_every_notebook(demo_run, name):
    """The demo ran every notebook with papermill on its cache: outputs, no errors, HTML."""
    out = demo_run.out / "notebooks"
    nb = json.loads((out / f"{name}.ipynb").read_text())
    assert nb["metadata"]["papermill"]["exception"] in (None, False)
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and str((demo_run.out / "cache").resolve()) in "".join(injected[0]["source"])
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "every code cell ran"
    errors = [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    if name not in ("overview",):
        assert images, f"{name} shows no figure"
    html = (out / f"{name}.html").read_text()
    assert "<html" in html and len(html) > 10_000
    if name == "explorer":  # batch runs build no widgets (nbclient can hang on them)
        assert "live = False" in "".join(injected[0]["source"])
        texts = ["".join(o.get("text", "")) for c in code for o in c.get("outputs", [])]
        assert any("without a live frontend" in t for t in texts)


@pytest.mark.slow
def test_notebooks_cli_with_parameters_never_touches_sources(demo_run, tmp_path, capsys):
    before = _sources_digest()
    out = tmp_path / "nb"
    code = main(["notebooks", "--cache", str(demo_run.out / "cache"), "--out", str(out),
                 "--only", "masks", "-p", "threshold", "0.05", "-p", "n_gallery", "1",
                 "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert _sources_digest() == before
    assert (out / "masks.ipynb").is_file() and (out / "masks.html").is_file()
    assert (out / "masks" / "masks_binary_gallery_T0.05.png").is_file()
    nb = json.loads((out / "masks.ipynb").read_text())
    injected = next(
        c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
    )
    assert "threshold = 0.05" in "".join(injected["source"])
    # a bad value is caught by the validation cell, and the error names it
    code = main(["notebooks", "--cache", str(demo_run.out / "cache"), "--out", str(out),
                 "--only", "masks", "-p", "threshold", "1.5", "--quiet", "--no-html"])  # fmt: skip
    assert code == 1
    assert "threshold must be in (0, 1), got 1.5" in capsys.readouterr().err
    assert _sources_digest() == before


@pytest.mark.slow
def test_notebooks_in_threads_never_change_the_working_folder(demo_run, tmp_path, monkeypatch):
    """papermill's ``cwd=`` is a process-wide os.chdir: with two notebooks in threads one
    could leave the whole process in OUT/notebooks, and the demo's next relative write
    failed (seen as FileNotFoundError 'runs/demo/run.json.tmp')."""
    import os
    import threading

    from defocus_forensics.notebooks import execute_all

    monkeypatch.chdir(tmp_path)
    calls = []
    real_chdir = os.chdir

    def spy(path):
        calls.append((threading.current_thread().name, os.fspath(path)))
        real_chdir(path)

    monkeypatch.setattr(os, "chdir", spy)
    results = execute_all(demo_run.out / "cache", "rel/nb", names=["overview", "masks"],
                          workers=2, html=False, progress=False)  # fmt: skip
    assert calls == [] and os.getcwd() == str(tmp_path)
    assert [r.ipynb for r in results] == [tmp_path / "rel/nb/overview.ipynb",
                                          tmp_path / "rel/nb/masks.ipynb"]  # fmt: skip
    assert all(r.ipynb.is_file() for r in results)
    # the kernel still runs in the output folder (what cwd= was for): a relative
    # output_dir of the notebook lands there
    from defocus_forensics.notebooks import NOTEBOOKS_DIR, execute_notebook

    params = {"cache_path": str(demo_run.out / "cache"), "output_dir": "inner"}
    execute_notebook(NOTEBOOKS_DIR / "overview.py", "rel/one", params, html=False)
    assert (tmp_path / "rel/one/inner/summary.csv").is_file() and calls == []


def _number(value):
    """A summary value as a float (None/NaN/empty as NaN), or the text itself."""
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _needs_the_models(row) -> bool:
    """Summary rows only the demo can make: the deletion curves run the models themselves."""
    text = f"{row['model']} {row['metric']} {row.get('note', '')}"
    return "deletion" in text or "predict" in text


@pytest.mark.slow
def test_notebooks_give_the_report_s_numbers(demo_run):
    """Issue 13: the executed notebooks and the report of one run print IDENTICAL numbers."""
    import math

    import pandas as pd

    from defocus_forensics.headline import headline_rows

    out = demo_run.out
    report = json.loads((out / "summary.json").read_text())
    key = ["analysis", "group", "model", "metric"]

    def rows(records):
        got = {}
        for r in records:
            r = {k: ("" if r[k] is None or r[k] != r[k] else str(r[k])) for k in key} | {
                "value": r["value"], "note": r.get("note", "")}  # fmt: skip
            if not _needs_the_models(r):
                got.setdefault(tuple(r[k] for k in key), []).append(_number(r["value"]))
        return got

    from_report = rows(report["table"])
    notebook = pd.read_csv(out / "notebooks" / "overview" / "summary.csv", keep_default_na=False,
                           dtype=str)  # fmt: skip
    from_notebook = rows(notebook.to_dict("records"))
    assert set(from_report) == set(from_notebook)
    assert len(from_report) > 300  # every analysis, not a few rows
    differ = []
    for k, values in from_report.items():
        other = from_notebook[k]
        same = len(values) == len(other) and all(
            (isinstance(a, float) and isinstance(b, float) and (a == b or (math.isnan(a)
             and math.isnan(b)))) or a == b
            for a, b in zip(values, other, strict=True)
        )  # fmt: skip
        if not same:
            differ.append((k, values, other))
    assert not differ, differ[:5]
    # the headline table the notebook shows is the report's (test AUC: from the same cache)
    shown = pd.read_csv(out / "notebooks" / "overview" / "headline.csv", dtype=str)
    expected = headline_rows(report["headline"])
    strip = [{**r, "value": r["value"].split(" (evaluation")[0]} for r in expected]
    assert shown.to_dict("records") == strip
    # and the alignment notebook's own table agrees with the report's rows
    table = pd.DataFrame(report["table"])
    align = pd.read_csv(out / "notebooks" / "alignment" / "alignment_summary.csv", dtype=str,
                        keep_default_na=False)  # fmt: skip
    assert len(align) == 6
    for r in align.to_dict("records"):
        sel = table[(table.analysis == "alignment") & (table.group == r["group"])
                    & (table.model == r["model"])].set_index("metric")["value"]  # fmt: skip
        for metric in ("mean", "ci_low", "ci_high", "floor_mean", "skill_mean", "skill_ci_low",
                       "skill_ci_high", "skill_p_signflip", "p_value"):  # fmt: skip
            a, b = _number(sel[metric]), _number(r[metric])
            assert a == b or (a != a and b != b), (r["group"], r["model"], metric, a, b)


# ------------------------------------------------------------ kernel shutdown

#: A last cell that keeps the kernel inside its next kernel_info_request handler for a second
#: after replying: the window in which papermill's stock client shuts the kernel down (its
#: interrupt then raises KeyboardInterrupt in the handler). Without it the window is a race
#: (seen with two kernels on two busy cores); with it the line appears every time.
_SLOW_KERNEL_INFO = """\
import inspect
import time

kernel = get_ipython().kernel
reply = kernel.shell_handlers["kernel_info_request"]


async def slow_kernel_info(*args, **kwargs):
    result = reply(*args, **kwargs)
    if inspect.isawaitable(result):
        await result
    time.sleep(1.0)  # replied, still in the handler: SIGINT raises KeyboardInterrupt here


kernel.shell_handlers["kernel_info_request"] = slow_kernel_info
"""


def _slow_shutdown_notebook(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(_SLOW_KERNEL_INFO),
        nbformat.v4.new_code_cell("print(x)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    path = tmp_path / "slow_shutdown.ipynb"
    nbformat.write(nb, str(path))
    return path


@pytest.mark.slow
def test_kernel_shutdown_interrupts_no_handler(tmp_path, capfd):
    """No ``KeyboardInterrupt caught in kernel`` on the kernel's stderr at shutdown.

    The kernel inherits the test's stderr, so ``capfd`` sees its log. The stock
    papermill engine on the same notebook shows the line (the cause); ours waits
    for the kernel's idle status before shutting it down.
    """
    import papermill

    from defocus_forensics.notebooks import execute_notebook

    source = _slow_shutdown_notebook(tmp_path)
    papermill.execute_notebook(
        str(source), str(tmp_path / "stock.ipynb"), parameters={"x": 2}, kernel_name="python3",
        progress_bar=False, extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )  # fmt: skip
    stock = capfd.readouterr().err
    executed = execute_notebook(source, tmp_path / "out", {"x": 3}, html=False)
    ours = capfd.readouterr().err
    assert "KeyboardInterrupt caught in kernel" in stock  # the window the test opens is real
    assert "KeyboardInterrupt" not in ours, ours
    outputs = json.loads(executed.ipynb.read_text())["cells"][-1]["outputs"]
    assert "".join(outputs[0]["text"]) == "3\n"
