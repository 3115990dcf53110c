"""The checkpoint file format: writing, reading without running code, checksums, foreign layouts.

This module knows files and state dicts, not detector architectures, so
that :mod:`detector.models` (local backbone weights, ``load_checkpoint``)
and :mod:`detector.checkpoints` (the paper's checkpoints) both build on it
without importing each other.

Our format (:func:`save_checkpoint`) holds the state dict, the model config
(``model.config``, which :func:`detector.models.build_detector` accepts
back), software versions, any extra plain values (epoch, metrics,
optimizer state) and a checksum. Two containers:

- ``*.safetensors``: tensors in safetensors; config, versions, extra and
  the checksum as JSON strings in its metadata (extra must then be
  JSON-serialisable);
- anything else: ``torch.save`` of a dict of tensors and plain containers,
  read back with ``torch.load(weights_only=True)``: a file is never
  unpickled in a way that could run code.

The checksum (format version 2) is ``"sha256:" + hex`` of a canonical walk
over everything stored except the checksum itself: the format version, the
state dict, the config, the versions and the extra values. Dicts are walked
in sorted key order; every tensor contributes its dtype, its shape and its
raw bytes; strings, numbers, booleans and None their type and value. A
tensor with one flipped bit, an edited config value or a changed optimizer
moment gives another digest, and the file is refused at load. Files of
format version 1 (written before checksums) load with a warning.

Foreign files load too: a bare state dict, with or without DataParallel's
``module.`` prefix, with or without a ``{"model_state_dict": ...}``
wrapper (the paper's training script also stores ``epoch``,
``optimizer_state_dict`` and ``best_val_acc``); :func:`adapt_state_dict`
maps the paper's key layouts onto ours.

Every way a file can be unusable gives one :class:`CheckpointError` (a
``ValueError``) whose one-line message names the file and what is wrong:
empty, a text file, truncated or corrupt, not a checkpoint at all, pickled
code, a failed checksum, weights that do not fit the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from safeio import atomic_path, atomic_write

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "adapt_state_dict",
    "checkpoint_digest",
    "load_weights",
    "read_checkpoint",
    "read_state_dict",
    "save_checkpoint",
    "strip_prefix",
]

log = logging.getLogger(__name__)

#: Marker of our checkpoint format.
FORMAT = "defocus-forensics/checkpoint"
#: 2: with a checksum; 1: without (still read, with a warning).
FORMAT_VERSION = 2

_WRAPPERS = ("model_state_dict", "state_dict", "model")
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the fault.

    Attributes
    ----------
    path : str
        The file.
    problem : str
        What is wrong with it (the message without the file name).
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"checkpoint {self.path!r} {problem}")


@dataclass
class Checkpoint:
    """What a checkpoint file holds.

    Attributes
    ----------
    state_dict : dict of str to torch.Tensor
        The weights, keys as stored (``module.`` prefixes not yet removed).
    config : dict or None
        The model config (None for files not in our format).
    versions : dict
        Software versions recorded at save time (empty for foreign files).
    extra : dict
        Everything else: our ``**extra`` values, or the other entries of a
        foreign wrapper dict (e.g. ``epoch``, ``best_val_acc``).
    layout : str
        ``"ours"``, ``"wrapped"`` (a ``{"model_state_dict": ...}`` dict) or
        ``"state_dict"`` (a bare state dict).
    path : str
        The file it was read from.
    checksum : str or None
        The stored checksum (verified when read); None for foreign files and
        our format version 1.
    """

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    layout: str = "ours"
    path: str = ""
    checksum: str | None = None


# -- checksum ---------------------------------------------------------------------------------


def _feed_bytes(h, tag: bytes, data: bytes | memoryview) -> None:
    h.update(tag)
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def _key_order(key: Any) -> tuple[str, str]:
    return (type(key).__name__, str(key))


def _feed(h, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        _feed_bytes(h, b"T", str(t.dtype).encode())
        _feed_bytes(h, b"s", json.dumps(list(t.shape)).encode())
        _feed_bytes(h, b"b", t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(obj, dict):
        h.update(b"D" + len(obj).to_bytes(8, "little"))
        for key in sorted(obj, key=_key_order):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, list | tuple):
        h.update(b"L" + len(obj).to_bytes(8, "little"))
        for item in obj:
            _feed(h, item)
    elif obj is None:
        h.update(b"N")
    elif isinstance(obj, bool):
        h.update(b"?1" if obj else b"?0")
    elif isinstance(obj, int):
        _feed_bytes(h, b"I", str(obj).encode())
    elif isinstance(obj, float):
        _feed_bytes(h, b"F", repr(obj).encode())
    elif isinstance(obj, str):
        _feed_bytes(h, b"S", obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, bytes | bytearray):
        _feed_bytes(h, b"B", bytes(obj))
    else:
        _feed_bytes(h, b"R", f"{type(obj).__module__}.{type(obj).__qualname__}:{obj!r}".encode())


def checkpoint_digest(
    state_dict: dict[str, torch.Tensor],
    config: Any = None,
    versions: Any = None,
    extra: Any = None,
    format_version: int = FORMAT_VERSION,
) -> str:
    """Checksum of a checkpoint's contents (see the module docstring).

    Parameters
    ----------
    state_dict : dict of str to torch.Tensor
    config, versions, extra : plain containers, tensors allowed anywhere
    format_version : int

    Returns
    -------
    str
        ``"sha256:"`` followed by 64 hex digits; independent of dict order,
        device and memory layout.
    """
    h = hashlib.sha256(b"defocus-forensics checkpoint\0")
    for name, part in (
        ("format_version", int(format_version)),
        ("state_dict", state_dict),
        ("config", config),
        ("versions", versions),
        ("extra", extra),
    ):
        _feed(h, name)
        _feed(h, part)
    return "sha256:" + h.hexdigest()


# -- writing ----------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import timm

    try:
        ours = version("defocus-forensics")
    except PackageNotFoundError:  # a source tree that is not installed
        ours = "0.0.0+unknown"
    return {"defocus_forensics": ours, "torch": str(torch.__version__), "timm": timm.__version__}


def _is_safetensors(path: Path) -> bool:
    return path.suffix == ".safetensors"


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **extra: Any) -> Path:
    """Write ``model``'s weights, config and a checksum to ``path`` atomically.

    Parameters
    ----------
    model : torch.nn.Module
        A detector (its ``config`` dict is stored) or any module.
    path : str or path-like
        ``*.safetensors`` for safetensors, anything else for ``torch.save``.
    **extra
        Plain values stored beside the weights (epoch, metrics, optimizer
        state for ``torch.save`` files; JSON-serialisable values only for
        safetensors).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If ``extra`` is not JSON-serialisable for a safetensors file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = dict(getattr(model, "config", {}) or {})
    versions = _versions()
    if _is_safetensors(path):
        from safetensors.torch import save_file

        try:
            texts = {name: json.dumps(v) for name, v in (("config", config), ("extra", extra))}
        except TypeError as err:
            raise ValueError(
                f"safetensors checkpoints hold JSON-serialisable extras only: {err}"
            ) from err
        texts["versions"] = json.dumps(versions)
        # the digest covers what a reader gets back: the JSON-decoded values
        decoded = {k: json.loads(v) for k, v in texts.items()}
        digest = checkpoint_digest(state, decoded["config"], decoded["versions"], decoded["extra"])
        meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "checksum": digest}
        meta.update(texts)
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata=meta)
    else:
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "state_dict": state,
            "config": config,
            "versions": versions,
            "extra": extra,
            "checksum": checkpoint_digest(state, config, versions, extra),
        }
        with atomic_write(path, "wb") as fh:
            torch.save(payload, fh)
    return path


# -- reading ----------------------------------------------------------------------------------


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character cut at the end of the sample is still text
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t\f" for ch in text)
    return printable >= 0.95 * max(len(text), 1)


def _first_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def _check_file(path: Path) -> bytes:
    """Return the first bytes of ``path`` after refusing what cannot be a checkpoint."""
    if path.is_dir():
        raise CheckpointError(path, "is a folder; give a checkpoint file")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {os.fspath(path)!r}")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head:
        raise CheckpointError(path, "is empty (0 bytes)")
    if _looks_like_text(head):
        start = head[:40].decode("utf-8", "replace").splitlines()[0] if head.strip() else ""
        raise CheckpointError(path, f"is a text file, not a checkpoint (it begins {start!r})")
    return head


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        state = {}
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            for key in fh.keys():
                state[key] = fh.get_tensor(key)
    except Exception as err:  # safetensors raises its own SafetensorError, OSError, ...
        raise CheckpointError(
            path, f"is not a readable safetensors file (truncated or corrupt): {_first_line(err)}"
        ) from None
    return state, dict(meta)


def _torch_load(path: Path, head: bytes) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        unsupported = [ln.strip() for ln in text.splitlines() if "Unsupported global" in ln]
        if unsupported:
            raise CheckpointError(
                path,
                "holds pickled objects other than tensors and plain containers; it is not "
                "loaded because unpickling could run code (re-save its state_dict with "
                f"torch.save): {unsupported[0]}",
            ) from None
        problem = "is truncated or corrupt" if head.startswith(b"\x80") else "is not a checkpoint"
        raise CheckpointError(
            path, f"{problem}: neither a torch.save file nor safetensors ({_describe(head)})"
        ) from None
    except (EOFError, RuntimeError, ValueError, OSError, KeyError, IndexError, TypeError) as err:
        if head.startswith(_ZIP_MAGIC):
            problem = "is truncated or corrupt (a zip archive torch cannot read)"
        elif head.startswith(b"\x80"):
            problem = "is truncated or corrupt (a pickle stream that ends early or is damaged)"
        else:
            raise CheckpointError(
                path,
                "is not a checkpoint: neither a torch.save file nor safetensors "
                f"({_describe(head)})",
            ) from None
        raise CheckpointError(path, f"{problem}: {_first_line(err)}") from None


def _describe(head: bytes) -> str:
    return "it begins with bytes " + head[:8].hex(" ")


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n < 100_000_000 and head[8:9] == b"{"


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _verify(ckpt: Checkpoint, stored: Any, version: int) -> None:
    if version < 2:
        log.warning(
            "checkpoint %r was written without a checksum (format version %s); its weights "
            "cannot be verified (load it and save it again to add one)",
            ckpt.path,
            version,
        )
        return
    if not isinstance(stored, str) or not stored.startswith("sha256:"):
        raise CheckpointError(ckpt.path, "has no valid checksum although its format requires one")
    actual = checkpoint_digest(ckpt.state_dict, ckpt.config, ckpt.versions, ckpt.extra, version)
    if actual != stored:
        raise CheckpointError(
            ckpt.path,
            "fails its checksum: its contents changed after it was written (damaged or "
            "edited file); it is not used",
        )
    ckpt.checksum = stored


def _format_version(value: Any, path: Path) -> int:
    try:
        version = int(value)
    except (TypeError, ValueError):
        raise CheckpointError(path, f"has an unreadable format version {value!r}") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"has format version {version}, newer than this toolkit reads ({FORMAT_VERSION}); "
            "update defocus-forensics",
        )
    return version


def _json_field(meta: dict[str, str], key: str, default: str, path: Path) -> Any:
    try:
        return json.loads(meta.get(key, default))
    except json.JSONDecodeError:
        raise CheckpointError(path, f"has unreadable {key!r} metadata (damaged file)") from None


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Checkpoint:
    """Read a checkpoint file (ours or the paper's) without unpickling code; verify its checksum.

    Parameters
    ----------
    path : str or path-like
    map_location : str or torch.device
        Where the tensors are put (after verification, which runs on the CPU).

    Returns
    -------
    Checkpoint

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CheckpointError
        If the file is empty, text, truncated, corrupt, not a checkpoint,
        holds pickled objects other than tensors and plain containers (it is
        never unpickled), or fails its checksum.
    """
    path = Path(path)
    head = _check_file(path)
    if _is_safetensors(path) or _looks_like_safetensors(head):
        state, meta = _read_safetensors(path)
        if meta.get("format") == FORMAT:
            version = _format_version(meta.get("format_version", "1"), path)
            ckpt = Checkpoint(
                state,
                _json_field(meta, "config", "null", path),
                _json_field(meta, "versions", "{}", path),
                _json_field(meta, "extra", "{}", path),
                "ours",
                os.fspath(path),
            )
            _verify(ckpt, meta.get("checksum"), version)
        else:
            ckpt = Checkpoint(state, None, {}, dict(meta), "state_dict", os.fspath(path))
    else:
        obj = _torch_load(path, head)
        if isinstance(obj, dict) and obj.get("format") == FORMAT:
            version = _format_version(obj.get("format_version", 1), path)
            state = obj.get("state_dict")
            if not isinstance(state, dict):
                raise CheckpointError(path, "has no state dict although it is in our format")
            ckpt = Checkpoint(
                dict(state),
                obj.get("config"),
                dict(obj.get("versions") or {}),
                dict(obj.get("extra") or {}),
                "ours",
                os.fspath(path),
            )
            _verify(ckpt, obj.get("checksum"), version)
        elif _is_state_dict(obj):
            ckpt = Checkpoint(dict(obj), None, {}, {}, "state_dict", os.fspath(path))
        else:
            ckpt = None
            if isinstance(obj, dict):
                for key in _WRAPPERS:
                    if _is_state_dict(obj.get(key)):
                        rest = {k: v for k, v in obj.items() if k != key}
                        where = os.fspath(path)
                        ckpt = Checkpoint(dict(obj[key]), None, {}, rest, "wrapped", where)
                        break
            if ckpt is None:
                raise CheckpointError(
                    path,
                    f"holds no state dict (expected our format, a state dict, or a dict with "
                    f"one of {list(_WRAPPERS)}); top-level type {type(obj).__name__}",
                )
    if map_location is not None and str(map_location) != "cpu":
        ckpt.state_dict = {k: v.to(map_location) for k, v in ckpt.state_dict.items()}
    return ckpt


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from every key when all keys carry it (else return ``state``)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
    """Return the state dict of a checkpoint with DataParallel ``module.`` prefixes removed."""
    return strip_prefix(read_checkpoint(path, map_location).state_dict, "module.")


# -- fitting a state dict to a model ----------------------------------------------------------


def adapt_state_dict(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map a state dict in the paper's layouts onto ``model``'s parameter names.

    Removes DataParallel's ``module.`` prefix; for single-backbone detectors
    (all parameters under ``backbone.``) renames the paper's ``DefocusNet``
    prefix ``classifier.`` to ``backbone.``, or adds ``backbone.`` to a bare
    timm model's keys (the paper's RGB detector is a bare timm model). The
    paper's ``MultiBranchDefocusNet`` keys (``rgb_backbone.``,
    ``defocus_backbone.``, ``classifier.``) are ours already.

    Parameters
    ----------
    state : dict of str to torch.Tensor
    model : torch.nn.Module

    Returns
    -------
    dict of str to torch.Tensor
        A new dict; tensors are not copied.
    """
    own = set(model.state_dict())
    state = strip_prefix(dict(state), "module.")
    if set(state) == own:
        return state
    if own and {k.split(".", 1)[0] for k in own} == {"backbone"}:
        if all(k.startswith("classifier.") for k in state):
            return {"backbone." + k[len("classifier.") :]: v for k, v in state.items()}
        if not any(k.startswith("backbone.") for k in state):
            prefixed = {"backbone." + k: v for k, v in state.items()}
            if set(prefixed) == own:
                return prefixed
    return state


def _check_fit(state: dict[str, torch.Tensor], model: nn.Module, path: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    name = type(model).__name__
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"first missing key {missing[0]!r} ({len(missing)} missing)")
        if unexpected:
            parts.append(f"first unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected)")
        raise CheckpointError(path, f"does not fit the {name}: " + "; ".join(parts))
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(
                path,
                f"does not fit the {name}: key {k!r} has shape {tuple(state[k].shape)} in the "
                f"file and {tuple(v.shape)} in the model",
            )


def load_weights(
    model: nn.Module, source: str | os.PathLike | Checkpoint, map_location: Any = "cpu"
) -> Checkpoint:
    """Load a checkpoint's weights into ``model`` (ours or the paper's layouts), strictly.

    Parameters
    ----------
    model : torch.nn.Module
    source : path or Checkpoint
        A file, or a checkpoint already read with :func:`read_checkpoint`.
    map_location : str or torch.device
        Where a file's tensors are read to.

    Returns
    -------
    Checkpoint
        What was read; ``model.checkpoint_extra`` is set to its ``extra``.

    Raises
    ------
    CheckpointError
        If the weights do not fit the model: the message names the first
        missing and first unexpected keys, or the first shape that differs.
    """
    ckpt = source if isinstance(source, Checkpoint) else read_checkpoint(source, map_location)
    state = adapt_state_dict(ckpt.state_dict, model)
    _check_fit(state, model, ckpt.path)
    model.load_state_dict(state, strict=True)
    model.checkpoint_extra = ckpt.extra
    return ckpt
