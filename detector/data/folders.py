"""Any real and fake image folders, and CSV indexes such as ``defocus make-data`` writes."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from detector.data._base import ImageDataset, Sample, list_images
from detector.data.pairing import PAIR_MODES, match_names, report_pairing
from safeio import atomic_write

__all__ = ["INDEX_COLUMNS", "RealFakeFolders", "write_index"]

#: Columns of an index CSV; paths are relative to the CSV's folder (or absolute).
INDEX_COLUMNS: tuple[str, ...] = (
    "id",
    "path",
    "label",
    "group",
    "pair_id",
    "mask_path",
    "video",
    "frame",
    "split",
)


def write_index(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write an index CSV (columns :data:`INDEX_COLUMNS`; missing values empty)."""
    path = Path(path)
    with atomic_write(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=INDEX_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k, "") for k in INDEX_COLUMNS})
    return path


class RealFakeFolders(ImageDataset):
    """Real images from one folder, fakes from another, optionally paired by name.

    Parameters
    ----------
    real_dir, fake_dir : str or path-like
        Scanned for image files (``*.png``, ``*.jpg``, ...).
    recursive : bool, default=True
        Also scan sub-folders. A fake in ``fake_dir/<name>/...`` gets group
        ``<name>`` (e.g. one folder per generator); a fake directly in
        ``fake_dir`` gets group ``"fake"``.
    pair : {"none", "stem", "path"}, default="none"
        Give each fake the real image it was made from as partner
        (``pair_id``): ``"stem"``, the real of the same file name without
        extension; ``"path"``, the real of the same relative path without
        extension (a fake in a generator sub-folder ``fake_dir/<name>/`` may
        also match without that folder). See :mod:`detector.data.pairing`.
    image_size : int, optional
        Resize to this square size (needed when image sizes differ).

    Notes
    -----
    Ids are ``real/<relative path>`` and ``fake/<relative path>``. No masks
    or videos; use :meth:`from_index` for data that has them. A warning
    (logger ``detector.data``) says when fakes have no partner.
    """

    def __init__(
        self,
        real_dir: str | os.PathLike,
        fake_dir: str | os.PathLike,
        recursive: bool = True,
        image_size: int | None = None,
        pair: str = "none",
    ) -> None:
        if pair not in PAIR_MODES:
            raise ValueError(f"pair must be one of {', '.join(PAIR_MODES)}; got {pair!r}")
        listed: list[tuple[Path, list[Path]]] = []
        for folder in (Path(real_dir), Path(fake_dir)):
            files = list_images(folder, recursive=recursive)
            if not files:
                raise FileNotFoundError(f"no images in {os.fspath(folder)!r}")
            listed.append((folder, files))
        (real_root, real_files), (fake_root, fake_files) = listed
        real_rel = [f.relative_to(real_root).as_posix() for f in real_files]
        real = [(rel, f"real/{rel}") for rel in real_rel]
        fake_rel = [f.relative_to(fake_root).as_posix() for f in fake_files]
        partners = match_names(real, fake_rel, pair)
        samples = [
            Sample(os.fspath(f), 0, sid, "real")
            for f, (_r, sid) in zip(real_files, real, strict=True)
        ]
        for f, rel, partner in zip(fake_files, fake_rel, partners, strict=True):
            group = rel.split("/")[0] if "/" in rel else "fake"
            samples.append(Sample(os.fspath(f), 1, f"fake/{rel}", group, partner))
        super().__init__(samples, image_size=image_size)
        self.pair = pair
        self.pairing = report_pairing(
            samples, f"folders real={os.fspath(real_dir)} fake={os.fspath(fake_dir)} pair={pair}"
        )

    @classmethod
    def from_index(
        cls,
        index_csv: str | os.PathLike,
        split: str | None = None,
        image_size: int | None = None,
    ) -> ImageDataset:
        """Load the samples an index CSV lists (``defocus make-data`` or ``prepare`` output).

        Parameters
        ----------
        index_csv : str or path-like
            CSV with the columns :data:`INDEX_COLUMNS` (``id``, ``path`` and
            ``label`` required; others optional); relative paths are taken
            from its folder.
        split : str, optional
            Keep only rows whose ``split`` column equals this.
        image_size : int, optional

        Returns
        -------
        ImageDataset
            With ``.samples`` as listed (``pair_id``, ``mask_path`` and
            ``video`` from their columns); items carry masks (zeros where a
            row has none) when any row of the index, in any split, has a
            ``mask_path``. ``.has_split_column`` says whether the CSV has a
            ``split`` column, ``.row_splits`` holds each kept row's split.
        """
        index_csv = Path(index_csv)
        if not index_csv.is_file():
            raise FileNotFoundError(f"index not found: {os.fspath(index_csv)!r}")
        base = index_csv.parent

        def _abs(p: str) -> str:
            return "" if not p else os.fspath(p if os.path.isabs(p) else base / p)

        rows: list[tuple[Sample, str]] = []
        with open(index_csv, newline="") as fh:
            reader = csv.DictReader(fh)
            columns = set(reader.fieldnames or ())
            need = {"id", "path", "label"} - columns
            if need:
                raise ValueError(f"index {os.fspath(index_csv)!r} lacks column {sorted(need)[0]!r}")
            for row in reader:
                try:
                    label = int(row["label"])
                except ValueError as err:
                    raise ValueError(
                        f"label of {row['id']!r} must be 0 or 1, got {row['label']!r}"
                    ) from err
                sample = Sample(
                    _abs(row["path"]),
                    label,
                    row["id"],
                    row.get("group") or ("fake" if label else "real"),
                    row.get("pair_id", "") or "",
                    _abs(row.get("mask_path", "") or ""),
                    row.get("video", "") or "",
                )
                rows.append((sample, row.get("split", "") or ""))
        ids = [s.id for s, _ in rows]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"index {os.fspath(index_csv)!r} lists the id {dup!r} twice")
        any_mask = any(s.mask_path for s, _ in rows)
        pairing = report_pairing([s for s, _ in rows], f"index {os.fspath(index_csv)}")
        kept = [(s, sp) for s, sp in rows if split is None or sp == split]
        if not kept:
            where = f" with split {split!r}" if split is not None else ""
            raise ValueError(f"index {os.fspath(index_csv)!r} lists no samples{where}")
        ds = ImageDataset([s for s, _ in kept], image_size=image_size)
        ds.has_masks = any_mask  # consistent across the splits of one index
        ds.index_path = os.fspath(index_csv)
        ds.has_split_column = "split" in columns and any(sp for _, sp in rows)
        ds.row_splits = [sp for _, sp in kept]
        ds.pairing = pairing
        return ds
