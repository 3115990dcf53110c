"""Execute the parameterized notebooks with papermill and render them to HTML.

The notebooks live in ``notebooks/`` as jupytext ``py:percent`` scripts:
the ``.py`` files are the source of truth (readable diffs, no outputs).
:func:`execute_notebook` reads one with jupytext, runs it with papermill
(parameters injected after the cell tagged ``parameters``), writes the
executed ``.ipynb`` and an HTML rendering to an output folder and never
touches the source. The helpers :func:`find_cache` and the ``check_*``
functions are what the notebooks' validation cells call.

Examples
--------
>>> from defocus_forensics.notebooks import execute_all  # doctest: +SKIP
>>> execute_all("runs/demo/cache", "runs/demo/notebooks", {"perplexities": [5, 10]})
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeio import atomic_write_text

__all__ = [
    "NOTEBOOKS_DIR",
    "ExecutedNotebook",
    "NotebookError",
    "check_choice",
    "check_fraction",
    "check_indices",
    "check_positive",
    "execute_all",
    "execute_notebook",
    "find_cache",
    "list_notebooks",
    "parameter_names",
    "parse_parameter",
    "read_notebook",
    "save_table",
]


def _notebooks_dir() -> Path:
    """Return the notebook sources: ``notebooks/`` of a checkout, else the installed copy."""
    checkout = Path(__file__).resolve().parents[1] / "notebooks"
    if (checkout / "jupytext.toml").is_file():
        return checkout
    from importlib.util import find_spec

    # a folder without __init__.py: a namespace package, whose one location is the folder
    spec = find_spec("defocus_forensics.notebook_sources")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else checkout


#: Where the source notebooks live (``notebooks/`` of the source tree, or the installed copy).
NOTEBOOKS_DIR = _notebooks_dir()

#: Execution order: the overview first, the explorer last.
ORDER = ("overview", "masks", "variance", "embedding", "alignment", "localisation", "explorer")


class NotebookError(RuntimeError):
    """A notebook failed to execute; the message names the notebook and the cell error."""


@dataclass(frozen=True)
class ExecutedNotebook:
    """Result of one notebook execution.

    Attributes
    ----------
    name : str
        Stem of the source script, e.g. ``"masks"``.
    source : Path
        The ``.py`` source (untouched).
    ipynb : Path
        The executed notebook with outputs.
    html : Path or None
        Its HTML rendering (None when rendering was switched off).
    seconds : float
        Wall time of the execution.
    """

    name: str
    source: Path
    ipynb: Path
    html: Path | None
    seconds: float


# ---------------------------------------------------------------- parameters


def parse_parameter(value: str) -> Any:
    """Parse a ``-p NAME VALUE`` value: JSON when it parses, else the raw string.

    Parameters
    ----------
    value : str
        Command-line text, e.g. ``"0.05"``, ``"[5, 10]"``, ``"true"`` or ``"runs/x"``.

    Returns
    -------
    Any
        ``0.05``, ``[5, 10]``, ``True`` or ``"runs/x"`` for those examples.
    """
    text = value.strip()
    if text in ("True", "False", "None"):  # Python spellings users type
        return {"True": True, "False": False, "None": None}[text]
    try:
        return json.loads(text)
    except ValueError:
        return value


def find_cache(path: str | Path) -> Path:
    """Resolve a cache folder given relative to the working folder or the project root.

    A notebook opened in JupyterLab from ``notebooks/`` runs there, while the
    default parameter ``runs/demo/cache`` is relative to the project root;
    this looks in the working folder and then its parents.

    Parameters
    ----------
    path : str or Path
        A cache folder (holding ``manifest.json``).

    Returns
    -------
    Path
        The absolute cache folder.

    Raises
    ------
    FileNotFoundError
        If no such cache exists; the message says how to make one.
    """
    path = Path(path).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path]
    if not path.is_absolute():
        candidates += [parent / path for parent in Path.cwd().parents]
        candidates.append(NOTEBOOKS_DIR.parent / path)
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate.resolve()
    raise FileNotFoundError(
        f"no cache at {str(path)!r} (looked in the working folder and its parents); "
        "make one with 'defocus demo --quick' or set cache_path"
    )


def check_positive(name: str, value: Any, *, integer: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive number (or integer).

    Parameters
    ----------
    name : str
        Parameter name for the message.
    value : Any
        The value to check.
    integer : bool
        Require an integer.
    """
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type) or not value > 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_fraction(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` lies in the open interval (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_indices(name: str, value: Any, n: int) -> list[int]:
    """Check a list of sample indices against ``n`` samples and return it as ints.

    Raises
    ------
    ValueError
        If ``value`` is not a list of integers in ``[0, n)``.
    """
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    bad = [i for i in value if not 0 <= i < n]
    if bad:
        raise ValueError(f"{name} must lie in [0, {n}), got {bad}")
    return [int(i) for i in value]


def save_table(table, path: str | Path) -> Path:
    """Write a table (a pandas DataFrame, or a list of dicts) as CSV, atomically.

    What the notebooks write beside their figures, so a test (or a reader)
    can compare their numbers with the report's.

    Parameters
    ----------
    table : pandas.DataFrame or list of dict
    path : str or Path
        The ``.csv`` file (parents created).

    Returns
    -------
    Path
    """
    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, pd.DataFrame(table).to_csv(index=False))
    return path


# ----------------------------------------------------------------- execution


def list_notebooks(source_dir: str | Path | None = None) -> list[Path]:
    """List the source scripts (``*.py``, jupytext ``py:percent``) in execution order.

    Parameters
    ----------
    source_dir : str or Path, optional
        Folder of the sources; default :data:`NOTEBOOKS_DIR`.

    Returns
    -------
    list of Path
    """
    source_dir = Path(source_dir) if source_dir is not None else NOTEBOOKS_DIR
    if not source_dir.is_dir():
        raise FileNotFoundError(f"notebook folder not found: {source_dir}")
    scripts = [p for p in source_dir.glob("*.py") if not p.name.startswith("_")]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(scripts, key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem))


def read_notebook(source: str | Path):
    """Read a ``py:percent`` script (or an ``.ipynb``) as an nbformat notebook.

    Parameters
    ----------
    source : str or Path

    Returns
    -------
    nbformat.NotebookNode
        With a ``python3`` kernelspec, ready for papermill.
    """
    import jupytext

    nb = jupytext.read(str(source))
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def render_html(ipynb: str | Path, html_path: str | Path) -> Path:
    """Render an executed notebook to a standalone HTML file with nbconvert.

    Parameters
    ----------
    ipynb, html_path : str or Path

    Returns
    -------
    Path
        ``html_path``.
    """
    import nbformat

    try:
        from nbconvert import HTMLExporter
    except ImportError as err:  # pragma: no cover - nbconvert comes with jupyterlab
        raise NotebookError(
            "HTML rendering needs nbconvert (pip install nbconvert, or the 'notebooks' "
            "extra); pass --no-html to skip it"
        ) from err

    nb = nbformat.read(str(ipynb), as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    html_path = Path(html_path)
    atomic_write_text(html_path, body)
    return html_path


def _cell_error(nb_path: Path) -> str:
    """Return the first error output of an executed notebook, as ``ename: evalue``."""
    import nbformat

    try:
        nb = nbformat.read(str(nb_path), as_version=4)
    except Exception:  # pragma: no cover - unreadable output
        return "unknown error"
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.get('ename')}: {output.get('evalue')}"
    return "unknown error"


class _MemoryIO:
    """A papermill I/O handler that keeps executed notebooks in memory until they are saved.

    papermill's own local-file handler wraps every save in ``os.chdir``, which changes the
    working folder of the whole process — unsafe while notebooks run in threads. Notebooks
    are written here to ``defocus-memory://`` paths and saved to disk atomically by
    :meth:`save`.
    """

    PREFIX = "defocus-memory://"
    _store: dict[str, str] = {}
    _lock = threading.Lock()
    _registered = False

    @classmethod
    def new_path(cls, name: str) -> str:
        with cls._lock:
            if not cls._registered:
                from papermill.iorw import papermill_io

                papermill_io.register(cls.PREFIX, cls)
                cls._registered = True
        return f"{cls.PREFIX}{uuid.uuid4().hex}/{name}"

    @classmethod
    def write(cls, buf: str, path: str) -> None:
        with cls._lock:
            cls._store[path] = buf

    @classmethod
    def read(cls, path: str) -> str:
        with cls._lock:
            return cls._store[path]

    @classmethod
    def listdir(cls, path: str) -> list[str]:
        return []

    @classmethod
    def pretty_path(cls, path: str) -> str:
        return path

    @classmethod
    def save(cls, path: str, target: Path) -> None:
        """Write the notebook held at ``path`` (if any) to ``target`` atomically and forget it."""
        with cls._lock:
            buf = cls._store.pop(path, None)
        if buf is not None:
            atomic_write_text(target, buf)


#: papermill engine name of :func:`_engine` (registered on first use).
ENGINE = "defocus-idle-shutdown"
_engine_lock = threading.Lock()
_engine_registered = False


def _engine() -> str:
    """Register (once) and name the papermill engine that shuts an idle kernel down.

    papermill's own client ends a run by sending ``kernel_info_request`` and
    waiting only for its *reply*; the kernel is then still inside that
    request's handler, where ipykernel lets SIGINT raise ``KeyboardInterrupt``.
    jupyter_client's ``shutdown_kernel`` begins with exactly such an interrupt,
    so when it lands in that window (often, with two kernels on two busy
    cores) the kernel logs ``[IPKernelApp] ERROR | KeyboardInterrupt caught in
    kernel.`` on shutdown. This engine's client also waits for the kernel's
    ``idle`` status of that request (published after the handler has restored
    the idle SIGINT handler, which ignores the signal) before the shutdown.
    Everything else is papermill's ``nbclient`` engine.

    Returns
    -------
    str
        The engine name to pass as ``engine_name``.
    """
    global _engine_registered
    with _engine_lock:
        if _engine_registered:
            return ENGINE
        from papermill.clientwrap import PapermillNotebookClient
        from papermill.engines import NBClientEngine, papermill_engines
        from papermill.engines import logger as papermill_logger

        class IdleShutdownClient(PapermillNotebookClient):
            """papermill's client, shutting the kernel down only once it is idle."""

            def execute(self, **kwargs):
                self.reset_execution_trackers()
                with self.setup_kernel(**kwargs):
                    self.papermill_execute_cells()
                    msg_id = self.kc.kernel_info()
                    info_msg = self.wait_for_reply(msg_id)
                    self._wait_for_idle(msg_id)
                    self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
                    self.set_widgets_metadata()
                return self.nb

            def _wait_for_idle(self, msg_id: str, timeout: float = 10.0) -> None:
                """Read iopub until the kernel reports ``idle`` after request ``msg_id``."""
                import asyncio
                from queue import Empty

                from nbclient.util import ensure_async, run_sync

                async def wait() -> None:
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + timeout
                    while (left := deadline - loop.time()) > 0:
                        try:
                            msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=left))
                        except Empty:
                            return  # a kernel that never says idle: shut it down anyway
                        if (
                            msg["parent_header"].get("msg_id") == msg_id
                            and msg["msg_type"] == "status"
                            and msg["content"].get("execution_state") == "idle"
                        ):
                            return

                run_sync(wait)()

        class IdleShutdownEngine(NBClientEngine):
            """papermill's nbclient engine with :class:`IdleShutdownClient`."""

            @classmethod
            def execute_managed_notebook(
                cls,
                nb_man,
                kernel_name,
                log_output=False,
                stdout_file=None,
                stderr_file=None,
                start_timeout=60,
                execution_timeout=None,
                **kwargs,
            ):
                for name in ("input_path", "timeout", "startup_timeout"):
                    kwargs.pop(name, None)
                return IdleShutdownClient(
                    nb_man,
                    timeout=execution_timeout,
                    startup_timeout=start_timeout,
                    kernel_name=kernel_name,
                    log=papermill_logger,
                    log_output=log_output,
                    stdout_file=stdout_file,
                    stderr_file=stderr_file,
                    **kwargs,
                ).execute()

        papermill_engines.register(ENGINE, IdleShutdownEngine)
        _engine_registered = True
        return ENGINE


def execute_notebook(
    source: str | Path,
    out_dir: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = 600,
    html: bool = True,
    kernel_name: str = "python3",
) -> ExecutedNotebook:
    """Execute one notebook with papermill and (optionally) render it to HTML.

    Parameters
    ----------
    source : str or Path
        A ``py:percent`` script or ``.ipynb``; it is read, never written.
    out_dir : str or Path
        Where ``<name>.ipynb`` and ``<name>.html`` go; also the working folder
        of the kernel, so relative outputs of the notebook land there.
    parameters : mapping, optional
        Values injected after the ``parameters`` cell. A notebook that
        defines ``live`` (the explorer) gets ``live=False`` unless given.
    timeout : float or None
        Per-cell timeout in seconds.
    html : bool
        Also write the HTML rendering.
    kernel_name : str
        Jupyter kernel to run.

    Returns
    -------
    ExecutedNotebook

    Raises
    ------
    ValueError
        If the output would overwrite the source.
    NotebookError
        If a cell raises; the message names the notebook and the error.
    """
    import papermill

    source = Path(source).resolve()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    ipynb = out_dir / f"{source.stem}.ipynb"
    html_path = out_dir / f"{source.stem}.html"
    if source in (ipynb, html_path):
        raise ValueError(f"executing {source} into {out_dir} would overwrite the source")
    nb = read_notebook(source)
    parameters = dict(parameters or {})
    if "live" in _parameter_names(nb):
        # no frontend here: widgets would only be built for nobody, and nbclient can wait
        # forever on the messages of an ipywidgets Output (seen as a hung demo)
        parameters.setdefault("live", False)
    start = time.perf_counter()
    memory_path = _MemoryIO.new_path(ipynb.name)
    try:
        papermill.execute_notebook(
            nb,
            memory_path,
            parameters=parameters,
            kernel_name=kernel_name,
            engine_name=_engine(),
            progress_bar=False,
            # never papermill's ``cwd=``: it is a process-wide os.chdir, and with notebooks
            # run in threads one of them could leave the whole process in another folder;
            # nbclient starts the kernel in this folder instead
            resources={"metadata": {"path": str(out_dir)}},
            execution_timeout=timeout,
            # ipykernel warns on every start that a local kernel's TCP link is not
            # encrypted; keep the kernel's own log to errors so progress stays readable
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except papermill.PapermillExecutionError as err:
        _MemoryIO.save(memory_path, ipynb)  # the executed copy, with its traceback
        raise NotebookError(
            f"notebook {source.name} failed in cell {err.exec_count}: {err.ename}: {err.evalue} "
            f"(executed copy with the traceback: {ipynb})"
        ) from None
    except Exception as err:  # timeouts, dead kernels
        _MemoryIO.save(memory_path, ipynb)
        raise NotebookError(
            f"notebook {source.name} failed: {type(err).__name__}: {err} ({_cell_error(ipynb)})"
        ) from err
    _MemoryIO.save(memory_path, ipynb)
    seconds = time.perf_counter() - start
    rendered = render_html(ipynb, html_path) if html else None
    return ExecutedNotebook(source.stem, source, ipynb, rendered, seconds)


def execute_all(
    cache_path: str | Path,
    out_dir: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    names: Sequence[str] | None = None,
    source_dir: str | Path | None = None,
    timeout: float | None = 600,
    html: bool = True,
    progress: bool = True,
    workers: int = 1,
) -> list[ExecutedNotebook]:
    """Execute every notebook (or those in ``names``) on one cache.

    Parameters
    ----------
    cache_path : str or Path
        The cache, passed to each notebook as ``cache_path`` (absolute).
    out_dir : str or Path
        Output folder; each notebook's own outputs go to ``out_dir/<name>/``
        through its ``output_dir`` parameter.
    parameters : mapping, optional
        Extra parameters for every notebook; a notebook receives only those
        names its parameters cell defines.
    names : sequence of str, optional
        Subset of notebook names (stems).
    source_dir : str or Path, optional
        Folder of the sources; default :data:`NOTEBOOKS_DIR`.
    timeout : float or None
        Per-cell timeout in seconds.
    html : bool
        Render HTML.
    progress : bool
        Show a tqdm bar on stderr.
    workers : int
        Notebooks executed at the same time (each in its own kernel).

    Returns
    -------
    list of ExecutedNotebook
        In execution order.

    Raises
    ------
    NotebookError
        If a notebook fails (the others still run; the first failure is raised).
    """
    from tqdm.auto import tqdm

    cache_path = Path(cache_path).resolve()
    if not (cache_path / "manifest.json").is_file():
        raise FileNotFoundError(f"no cache at {cache_path} (no manifest.json)")
    out_dir = Path(out_dir).resolve()
    sources = list_notebooks(source_dir)
    if names:
        known = {p.stem: p for p in sources}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown notebook(s) {unknown}; available: {sorted(known)}")
        sources = [known[n] for n in names]
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")

    def one(source: Path) -> ExecutedNotebook:
        accepted = parameter_names(source)
        params = {k: v for k, v in (parameters or {}).items() if k in accepted}
        params["cache_path"] = str(cache_path)
        if "output_dir" in accepted:
            params["output_dir"] = str(out_dir / source.stem)
        return execute_notebook(source, out_dir, params, timeout=timeout, html=html)

    bar = tqdm(total=len(sources), desc="notebooks", unit="nb", disable=not progress)
    results: dict[Path, ExecutedNotebook] = {}
    errors: list[NotebookError] = []
    if workers == 1:
        for source in sources:
            bar.set_postfix_str(source.stem)
            try:
                results[source] = one(source)
            except NotebookError as err:
                errors.append(err)
            bar.update()
    else:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(one, source): source for source in sources}
            for future in as_completed(futures):
                try:
                    results[futures[future]] = future.result()
                except NotebookError as err:
                    errors.append(err)
                bar.set_postfix_str(futures[future].stem)
                bar.update()
    bar.close()
    if errors:
        raise errors[0]
    return [results[s] for s in sources]


def parameter_names(source: str | Path) -> set[str]:
    """Names assigned in the cell tagged ``parameters`` of a notebook source."""
    return _parameter_names(read_notebook(source))


def _parameter_names(nb) -> set[str]:
    """Names assigned in the cell tagged ``parameters`` of a read notebook."""
    import ast

    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            names = set()
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else []
                if isinstance(node, ast.AnnAssign):
                    targets = [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
            return names
    return set()
