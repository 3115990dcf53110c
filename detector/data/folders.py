"""Any real and fake image folders, and CSV indexes such as ``defocus make-data`` writes."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from detector.data._base import ImageDataset, Sample, list_images
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
    """Real images from one folder, fakes from another.

    Parameters
    ----------
    real_dir, fake_dir : str or path-like
        Scanned for image files (``*.png``, ``*.jpg``, ...).
    recursive : bool, default=True
        Also scan sub-folders. A fake in ``fake_dir/<name>/...`` gets group
        ``<name>`` (e.g. one folder per generator); a fake directly in
        ``fake_dir`` gets group ``"fake"``.
    image_size : int, optional
        Resize to this square size (needed when image sizes differ).

    Notes
    -----
    Ids are ``real/<relative path>`` and ``fake/<relative path>``. No pairs,
    masks or videos; use :meth:`from_index` for data that has them.
    """

    def __init__(
        self,
        real_dir: str | os.PathLike,
        fake_dir: str | os.PathLike,
        recursive: bool = True,
        image_size: int | None = None,
    ) -> None:
        samples: list[Sample] = []
        for folder, label in ((Path(real_dir), 0), (Path(fake_dir), 1)):
            files = list_images(folder, recursive=recursive)
            if not files:
                raise FileNotFoundError(f"no images in {os.fspath(folder)!r}")
            for f in files:
                rel = f.relative_to(folder).as_posix()
                if label == 0:
                    group = "real"
                else:
                    group = rel.split("/")[0] if "/" in rel else "fake"
                samples.append(
                    Sample(os.fspath(f), label, f"{'fake' if label else 'real'}/{rel}", group)
                )
        super().__init__(samples, image_size=image_size)

    @classmethod
    def from_index(
        cls,
        index_csv: str | os.PathLike,
        split: str | None = None,
        image_size: int | None = None,
    ) -> ImageDataset:
        """Load the samples an index CSV lists (e.g. ``defocus make-data`` output).

        Parameters
        ----------
        index_csv : str or path-like
            CSV with the columns :data:`INDEX_COLUMNS` (``id``, ``path`` and
            ``label`` required); relative paths are taken from its folder.
        split : str, optional
            Keep only rows whose ``split`` column equals this.
        image_size : int, optional

        Returns
        -------
        ImageDataset
            With ``.samples`` as listed; items carry masks (zeros where a row
            has none) when any row of the index, in any split, has a
            ``mask_path``.
        """
        index_csv = Path(index_csv)
        if not index_csv.is_file():
            raise FileNotFoundError(f"index not found: {os.fspath(index_csv)!r}")
        base = index_csv.parent
        samples: list[Sample] = []
        with open(index_csv, newline="") as fh:
            reader = csv.DictReader(fh)
            need = {"id", "path", "label"} - set(reader.fieldnames or ())
            if need:
                raise ValueError(f"index {os.fspath(index_csv)!r} lacks column {sorted(need)[0]!r}")
            any_mask = False
            for row in reader:
                any_mask = any_mask or bool(row.get("mask_path"))
                if split is not None and row.get("split", "") != split:
                    continue

                def _abs(p: str) -> str:
                    return "" if not p else os.fspath(p if os.path.isabs(p) else base / p)

                try:
                    label = int(row["label"])
                except ValueError as err:
                    raise ValueError(
                        f"label of {row['id']!r} must be 0 or 1, got {row['label']!r}"
                    ) from err
                samples.append(
                    Sample(
                        _abs(row["path"]),
                        label,
                        row["id"],
                        row.get("group") or ("fake" if label else "real"),
                        row.get("pair_id", "") or "",
                        _abs(row.get("mask_path", "") or ""),
                        row.get("video", "") or "",
                    )
                )
        if not samples:
            where = f" with split {split!r}" if split is not None else ""
            raise ValueError(f"index {os.fspath(index_csv)!r} lists no samples{where}")
        ds = ImageDataset(samples, image_size=image_size)
        ds.has_masks = any_mask  # consistent across the splits of one index
        ds.index_path = os.fspath(index_csv)
        return ds
