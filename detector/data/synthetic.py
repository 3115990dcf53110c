"""SyntheticDoF: built-in depth-of-field data with fakes that break thin-lens physics.

Each scene is a stack of fronto-parallel layers: a background (a crop of a
photo that ships with scikit-image or scikit-learn) far away (depth 6-12)
and one to three foreground "objects" (soft-edged super-ellipses textured
with other crops) nearer the camera (depth 1-4); the nearest, the subject,
has radii of 0.26-0.38 of the image side. Crops are only ever
downsampled, so a layer in focus is sharp. A real image is the scene
rendered through a thin lens (:func:`detector.thin_lens.render_layers`): the
camera focuses on the nearest object, the subject (as a portrait does), and
every layer is blurred by
``sigma = k |1/d - 1/d_f|`` pixels, occlusion handled by blurring
premultiplied colour and alpha together. The lens constant ``k`` is drawn
so that the most blurred layer has a sigma of 1.8 to 3 pixels at 128 px
(scaled with the size).

The fakes are made from the same scene, so each fake's ``pair_id`` is its
real's id and they share content, noise and colour statistics; they differ
only in blur:

``"all_in_focus"``
    the scene rendered with every sigma 0 (what a generator without a lens
    model produces). Global: mask all zeros.
``"inconsistent_blur"``
    the all-in-focus scene blurred by a sigma field that is a tilted plane
    across the subject, clamped to [0, the real's largest sigma]: zero
    before the subject's near side (10th percentile of its extent along a
    random direction), the largest sigma beyond its far side (90th
    percentile). Blur then changes inside the subject and inside the
    background, each a single depth, and runs across silhouettes: half of
    the subject is as blurred as the background should be. Global: mask all
    zeros.
``"pasted_region"``
    a "face swap": most of the subject (an elliptical region around its
    centre, 0.75-0.95 of its equivalent radius, cut to its silhouette: about
    10-40% of the image) replaced by a crop of another photo rendered with
    the focus of another depth (sigma 2 to 3 pixels, the background's range)
    and pasted with a hard rim. A blurred texture with a sharp outline at
    the focus depth: no single depth gives that, and nothing lies in front
    of the nearest object. Its ground-truth mask (alpha > 0.5) is the only
    non-zero mask.

Everything is deterministic from ``seed``: scene ``i`` draws from
``numpy.random.default_rng([seed, i])`` whatever the access order, batch
size or worker count. Images get sensor noise (std 0.01) and are quantised
to 8 bits, so items equal what ``defocus make-data`` writes as PNG.

Rendering costs about 15 ms of one core per 128 px image, more than a
training step: :func:`prerender` renders the samples of one or more
SyntheticDoF datasets (or their splits) into their in-memory caches once,
spread over worker processes, so training and evaluation never wait for
it; the images are the same whoever renders them.

Splits (one scheme, used by the ``synthetic:`` data spec, ``defocus
make-data`` and the demo): the ``n`` samples of one seed are cut by scene
(a real and its fake stay together) into train, val and test, in that
order; :func:`synthetic_split_bounds` gives the cut points.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from detector.data._base import Sample, count_groups
from detector.data._output import atomic_folder
from detector.memory import available_memory, largest_fitting, require_memory
from detector.thin_lens import Layer, gaussian_blur, render_layers, sigma_from_depth
from safeio import atomic_path, atomic_write_json

__all__ = [
    "FAKE_GROUPS",
    "GROUPS",
    "SyntheticDoF",
    "photo_bank",
    "prerender",
    "synthetic_memory",
    "synthetic_split_bounds",
    "write_synthetic",
]

log = logging.getLogger("detector.data")

#: Peak bytes per pixel of rendering one scene in every group (measured with tracemalloc
#: at 64, 128 and 256 px: about 700), rounded up.
RENDER_BYTES_PER_PIXEL = 800
#: Bytes of one sample record (a :class:`Sample` and its strings), rounded up.
RECORD_BYTES = 600
#: Share of the available memory the rendered-sample cache may take before it is turned off.
CACHE_SHARE = 0.25


def synthetic_memory(n: int, size: int, cache: bool = False) -> int:
    """Estimate the peak bytes of a :class:`SyntheticDoF` of ``n`` samples at ``size`` px.

    One scene rendered at a time (``RENDER_BYTES_PER_PIXEL * size**2``), the
    sample records, and with ``cache`` every rendered image kept as uint8.
    """
    pixels = int(size) * int(size)
    return (
        RENDER_BYTES_PER_PIXEL * pixels + RECORD_BYTES * int(n) + (3 * pixels * n if cache else 0)
    )


def _require_fits(n: int, size: int) -> None:
    """Refuse (one line, saying what fits) an ``n`` or ``size`` that cannot fit in memory."""
    need = synthetic_memory(n, size)
    hints = []
    best_size = largest_fitting(lambda s: synthetic_memory(n, s), upper=size, lower=32)
    if best_size is not None and best_size < size:
        hints.append(f"size={best_size} fits with n={n}")
    best_n = largest_fitting(lambda k: synthetic_memory(k, size), upper=n, lower=1)
    if best_n is not None and best_n < n:
        hints.append(f"n={best_n} fits at size={size}")
    require_memory(
        need,
        f"synthetic data of n={n} images at size={size}",
        hint=" or ".join(hints) if hints else "use a smaller size",
    )


def _split_part(value, name: str, n_scenes: int) -> tuple[int, bool]:
    """Return (scenes, is_fraction) of a split given as a sample count or a fraction."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a sample count or a fraction in [0, 1), got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must be a non-negative sample count, got {value}")
        return math.ceil(value / 2), False
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be a sample count or a fraction in [0, 1), got {value!r}")
    return int(value * n_scenes), True


def synthetic_split_bounds(
    n: int, val: float | int = 0.1, test: float | int = 0.2
) -> tuple[int, int]:
    """Return the sample indices ``(a, b)`` cutting ``n`` samples into train, val and test.

    Train is ``[0, a)``, val ``[a, b)``, test ``[b, n)``; ``a`` and ``b``
    are even, so that a scene (a real and its fake) is never cut.

    Parameters
    ----------
    n : int
        Samples (``ceil(n / 2)`` scenes).
    val, test : float or int
        A float in ``[0, 1)`` is a fraction of the scenes, an int a number
        of samples (rounded up to whole scenes). With two fractions the cut
        is the paper's: ``int((1 - val - test) * scenes)`` train scenes,
        ``int(val * scenes)`` val scenes (at least one when val > 0 and two
        or more scenes remain), the rest test. Otherwise val and test take
        their scenes and train the rest.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        On a bad value, or when no scene is left for training.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    n_scenes = (int(n) + 1) // 2
    val_sc, val_frac = _split_part(val, "val", n_scenes)
    test_sc, test_frac = _split_part(test, "test", n_scenes)
    if val_frac and test_frac:
        if val + test >= 1:
            raise ValueError(f"val + test must leave a training fraction, got {val} + {test}")
        cut1 = int(round((1.0 - val - test) * n_scenes, 9))
        cut2 = cut1 + val_sc
        if cut2 == cut1 and val > 0 and n_scenes - cut1 >= 2:
            cut2 += 1  # keep a validation scene in small sets
    else:
        cut1 = n_scenes - val_sc - test_sc
        cut2 = cut1 + val_sc
    if cut1 < 1:
        raise ValueError(
            f"n={n} ({n_scenes} scenes) leaves no scene for training with val={val}, test={test}"
        )
    return 2 * cut1, min(2 * cut2, int(n))


#: Fake groups, in the order they are cycled through.
FAKE_GROUPS: tuple[str, ...] = ("all_in_focus", "inconsistent_blur", "pasted_region")
#: All groups of SyntheticDoF.
GROUPS: tuple[str, ...] = ("real", *FAKE_GROUPS)

_COLOUR = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "cat")
_GRAY = ("camera", "brick", "grass", "gravel", "coins", "moon", "clock")


@functools.lru_cache(maxsize=1)
def photo_bank() -> tuple[np.ndarray, ...]:
    """Return the source photos, uint8 ``(H, W, 3)``, at their full resolution.

    Colour photos of scikit-image and scikit-learn, and grayscale textures
    (tinted per use). Bundled with those packages: nothing is downloaded.
    """
    from skimage import data

    arrays = [np.ascontiguousarray(getattr(data, n)()[..., :3]) for n in _COLOUR]
    try:
        from sklearn.datasets import load_sample_images

        arrays += list(load_sample_images().images)
    except Exception:  # pragma: no cover - sklearn without its sample images
        pass
    arrays += [np.repeat(getattr(data, n)()[..., None], 3, axis=2) for n in _GRAY]
    return tuple(arrays)


def _n_colour() -> int:
    return len(photo_bank()) - len(_GRAY)


def _crop_once(rng: np.random.Generator, size: int) -> np.ndarray:
    from PIL import Image

    bank = photo_bank()
    k = int(rng.integers(len(bank)))
    photo = bank[k]
    h, w = photo.shape[:2]
    short = min(h, w)
    lo = min(size, short)
    side = int(rng.uniform(lo, min(short, 2.5 * size) + 1e-9))
    y0, x0 = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    crop = photo[y0 : y0 + side, x0 : x0 + side]
    img = Image.fromarray(crop).resize((size, size), Image.BOX if side >= size else Image.BILINEAR)
    out = np.asarray(img, dtype=np.float64) / 255.0
    if k >= _n_colour():  # grayscale texture: tint it
        tint = rng.uniform(0.35, 1.0, size=3)
        out = out * tint + rng.uniform(0.0, 0.3) * (1 - tint)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    # stretch the contrast so that every texture has edges the estimator sees
    lo_v, hi_v = np.percentile(out, (1.0, 99.0))
    out = (out - lo_v) / max(hi_v - lo_v, 1e-3) * 0.9 + 0.05
    return np.clip(out, 0.0, 1.0)


def _crop(rng: np.random.Generator, size: int, candidates: int = 3) -> np.ndarray:
    """Return a textured crop of a photo as ``(size, size, 3)`` float64 in [0, 1].

    Of ``candidates`` random crops the one with the most edges (mean absolute
    gradient) is kept: blur is only visible where there is texture. Crops
    are at least ``size`` pixels wide and downsampled (antialiased) to
    ``size``, never enlarged: a layer in focus is sharp, with no blur of its
    own.
    """
    best, best_score = None, -1.0
    for _ in range(candidates):
        c = _crop_once(rng, size)
        g = c.mean(axis=2)
        score = float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())
        if score > best_score:
            best, best_score = c, score
    return best


def _blob(
    rng: np.random.Generator,
    size: int,
    r_lo: float,
    r_hi: float,
    centre: tuple[float, float] | None = None,
) -> np.ndarray:
    """Return a soft-edged (one pixel) random super-ellipse alpha, ``(size, size)`` float64."""
    cy, cx = rng.uniform(0.15, 0.85, size=2) * size if centre is None else centre
    ry, rx = rng.uniform(r_lo, r_hi, size=2) * size
    theta = rng.uniform(0, np.pi)
    p = rng.uniform(1.6, 3.5)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dy, dx = yy - cy, xx - cx
    u = (np.cos(theta) * dx + np.sin(theta) * dy) / rx
    v = (-np.sin(theta) * dx + np.cos(theta) * dy) / ry
    r = (np.abs(u) ** p + np.abs(v) ** p) ** (1.0 / p)
    # signed distance to the rim in pixels (approximately), one-pixel ramp
    return np.clip((1.0 - r) * min(rx, ry) + 0.5, 0.0, 1.0)


def _varying_blur(image: np.ndarray, sigma: np.ndarray, max_sigma: float) -> np.ndarray:
    """Blur with a per-pixel sigma by interpolating a stack of uniformly blurred images."""
    levels = np.linspace(0.0, max(max_sigma, 1e-6), 9)
    stack = np.stack([gaussian_blur(image, s) for s in levels])
    pos = np.clip(sigma / levels[1], 0, len(levels) - 1 - 1e-9)
    lo = np.floor(pos).astype(np.int64)
    frac = (pos - lo)[..., None]
    rows, cols = np.indices(sigma.shape)
    return (1 - frac) * stack[lo, rows, cols] + frac * stack[lo + 1, rows, cols]


class SyntheticDoF(Dataset):
    """Built-in depth-of-field data: thin-lens reals and physics-breaking fakes.

    See the module docstring for how each group is made.

    Parameters
    ----------
    n : int
        Number of samples: scene ``i`` gives a real (even indices) and one
        fake (odd indices) whose group cycles through ``fake_groups``; with
        ``n`` odd the last scene gives only its real.
    size : int, default=128
        Side of the square images.
    seed : int, default=0
    fake_groups : sequence of str, default=FAKE_GROUPS
        Which fakes to make (cycled from a seed-dependent offset).
    noise : float, default=0.01
        Std of the Gaussian sensor noise added before 8-bit quantisation.
    cache : bool, default=True
        Keep rendered samples in memory (uint8, ``3 * size**2`` bytes each)
        so that later epochs do not render again.

    Notes
    -----
    Items are dicts with ``image`` float32 ``(3, size, size)`` in [0, 1],
    ``label``, ``id``, ``group``, ``pair_id``, ``video`` (""), ``index``
    and ``mask`` float32 ``(1, size, size)``: the pasted region for
    ``pasted_region`` fakes, zeros for reals and the two global fakes (they
    have no localised manipulation). ``.samples`` holds :class:`Sample`
    records with ``path=""``; :meth:`scene` returns all four renderings of
    a scene with their true sigma maps.
    """

    def __init__(
        self,
        n: int,
        size: int = 128,
        seed: int = 0,
        fake_groups: Sequence[str] = FAKE_GROUPS,
        noise: float = 0.01,
        cache: bool = True,
    ) -> None:
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if int(size) != size or size < 32:
            raise ValueError(f"size must be an int >= 32, got {size!r}")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        fake_groups = tuple(fake_groups)
        bad = [g for g in fake_groups if g not in FAKE_GROUPS]
        if bad or not fake_groups:
            got = bad or fake_groups
            raise ValueError(f"fake_groups must be a non-empty subset of {FAKE_GROUPS}, got {got}")
        if not 0.0 <= noise < 0.5:
            raise ValueError(f"noise must be in [0, 0.5), got {noise!r}")
        _require_fits(int(n), int(size))
        self.n, self.size, self.seed = int(n), int(size), int(seed)
        self.fake_groups, self.noise = fake_groups, float(noise)
        self.has_masks = True
        self.image_size = self.size
        offset = int(np.random.default_rng([self.seed, 2**31 - 1]).integers(len(fake_groups)))
        self.samples: list[Sample] = []
        for index in range(self.n):
            scene, is_fake = divmod(index, 2)
            real_id = f"syn{self.seed}-{scene:05d}-real"
            if not is_fake:
                self.samples.append(Sample("", 0, real_id, "real"))
            else:
                g = fake_groups[(scene + offset) % len(fake_groups)]
                self.samples.append(Sample("", 1, f"syn{self.seed}-{scene:05d}-{g}", g, real_id))
        self._last: tuple[int, dict[str, Any]] | None = None
        self.cache = bool(cache)
        available = available_memory()
        if self.cache and available is not None:
            full = 3 * self.size * self.size * self.n
            if full > CACHE_SHARE * available:
                log.info("synthetic data: %d images at %d px would not fit the in-memory cache; "
                         "rendering them again each epoch", self.n, self.size)  # fmt: skip
                self.cache = False
        self._store: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def __len__(self) -> int:
        return self.n

    @property
    def labels(self) -> np.ndarray:
        """Labels of all samples, ndarray of shape (n_samples,), int64."""
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def describe(self) -> dict[str, Any]:
        """Return a plain-dict summary for manifests and logs."""
        groups = count_groups(self.samples)
        return {
            "dataset": "SyntheticDoF",
            "n": self.n,
            "size": self.size,
            "seed": self.seed,
            "fake_groups": list(self.fake_groups),
            "noise": self.noise,
            "groups": groups,
        }

    # -- rendering --------------------------------------------------------------------------
    def scene(self, scene: int, groups: Sequence[str] = GROUPS) -> dict[str, Any]:
        """Render scene ``scene`` in the given groups.

        Parameters
        ----------
        scene : int
            Scene number (sample ``2 * scene`` is its real).
        groups : sequence of str
            Renderings to make, from :data:`GROUPS`.

        Returns
        -------
        dict
            ``images``: {group: uint8 ndarray of shape (size, size, 3)};
            ``sigma``: {group: float32 ndarray of shape (size, size)}, the
            true blur sigma (pixels) at each pixel; ``mask``: uint8 ndarray of
            shape (size, size), the pasted region (zeros if not rendered);
            ``focus_layer``, ``depths``, ``sigmas``: the lens settings.
        """
        if int(scene) != scene or scene < 0:
            raise ValueError(f"scene must be a non-negative int, got {scene!r}")
        bad = [g for g in groups if g not in GROUPS]
        if bad:
            raise ValueError(f"unknown group {bad[0]!r}; groups are {GROUPS}")
        s = self.size
        scale = s / 128.0
        rng = np.random.default_rng([self.seed, int(scene)])
        n_fg = int(rng.integers(1, 4))
        depths = np.concatenate(
            [[rng.uniform(6.0, 12.0)], np.sort(rng.uniform(1.0, 4.0, n_fg))[::-1]]
        )
        textures = [_crop(rng, s) for _ in range(n_fg + 1)]
        alphas = [np.ones((s, s))] + [_blob(rng, s, 0.14, 0.34) for _ in range(n_fg - 1)]
        alphas.append(_blob(rng, s, 0.26, 0.38))  # the subject: the nearest object
        focus = n_fg  # portrait focus: on the nearest object, everything behind it blurred
        raw = sigma_from_depth(depths, depths[focus], 1.0)
        k = rng.uniform(1.8, 3.0) * scale / raw.max()
        sigmas = raw * k
        noise_rng = np.random.default_rng([self.seed, int(scene), 1])
        fake_rng = np.random.default_rng([self.seed, int(scene), 2])
        paste_texture = _crop(fake_rng, s)
        ramp_dir = fake_rng.uniform(0, 2 * np.pi)
        paste_sigma = fake_rng.uniform(2.0, 3.0) * scale
        paste_u = fake_rng.random()

        out: dict[str, Any] = {"images": {}, "sigma": {}, "mask": np.zeros((s, s), np.uint8)}
        out.update(focus_layer=focus, depths=depths, sigmas=sigmas)
        real, real_sigma = render_layers(
            [Layer(t, a, float(sg)) for t, a, sg in zip(textures, alphas, sigmas, strict=True)]
        )
        renders: dict[str, tuple[np.ndarray, np.ndarray]] = {"real": (real, real_sigma)}
        subject = alphas[focus]
        inside = np.argwhere(subject > 0.5)
        centre = inside.mean(axis=0) + 0.5
        if "all_in_focus" in groups or "inconsistent_blur" in groups:
            aif, _ = render_layers(
                [Layer(t, a, 0.0) for t, a in zip(textures, alphas, strict=True)]
            )
            renders["all_in_focus"] = (aif, np.zeros((s, s)))
            if "inconsistent_blur" in groups:
                # a tilted plane of blur across the subject: zero at its near side, the
                # background's blur at its far side, clamped beyond; one depth plane (the
                # subject, the background) is sharp on one side and blurred on the other
                direction = np.array([np.sin(ramp_dir), np.cos(ramp_dir)])
                yy, xx = np.mgrid[0:s, 0:s] + 0.5
                t = direction[0] * (yy - centre[0]) + direction[1] * (xx - centre[1])
                proj = (inside + 0.5 - centre) @ direction
                lo, hi = np.percentile(proj, (10.0, 90.0))
                smax = sigmas.max()
                field = np.clip((t - lo) / max(hi - lo, 1.0), 0.0, 1.0) * smax
                renders["inconsistent_blur"] = (_varying_blur(aif, field, smax), field)
        if "pasted_region" in groups:
            # a swapped face: most of the sharp subject replaced by another photo's crop
            # rendered with the background's blur (focused elsewhere) and pasted with a
            # hard rim: a blurred texture with a sharp outline at the focus depth, which no
            # single depth can produce (nothing lies in front of the nearest object)
            r_eq = np.sqrt(len(inside) / np.pi)  # radius of the disc of the subject's area
            off = (np.array([paste_u, fake_rng.random()]) - 0.5) * 0.2 * r_eq
            rel = fake_rng.uniform(0.75, 0.95) / 0.3  # _blob radii are fractions of the size
            paste_alpha = _blob(
                fake_rng, s, rel * 0.25 * r_eq / s, rel * 0.35 * r_eq / s,
                centre=(centre[0] + off[0], centre[1] + off[1]),
            ) * subject  # fmt: skip
            patch = gaussian_blur(paste_texture, paste_sigma)
            a = paste_alpha[..., None]
            renders["pasted_region"] = (
                a * patch + (1 - a) * real,
                np.where(paste_alpha > 0.5, paste_sigma, real_sigma),
            )
            out["mask"] = (paste_alpha > 0.5).astype(np.uint8)
        noise = noise_rng.normal(0.0, self.noise, (s, s, 3)) if self.noise else 0.0
        for g in groups:
            img, sig = renders[g]
            noisy = img + noise
            out["images"][g] = np.clip(np.rint(noisy * 255.0), 0, 255).astype(np.uint8)
            out["sigma"][g] = sig.astype(np.float32)
        return out

    def _render_scene(self, scene: int) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
        """Render the samples of scene ``scene``: {index: (uint8 (S, S, 3) image, mask or None)}."""
        indices = [i for i in (2 * scene, 2 * scene + 1) if i < self.n]
        rendered = self.scene(scene, [self.samples[i].group for i in indices])
        out = {}
        for i in indices:
            group = self.samples[i].group
            mask = rendered["mask"] if group == "pasted_region" else None
            out[i] = (rendered["images"][group], mask)
        return out

    def _settings(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this dataset (without its cache)."""
        return dict(n=self.n, size=self.size, seed=self.seed, fake_groups=self.fake_groups,
                    noise=self.noise)  # fmt: skip

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} samples")
        index = index % self.n
        rec = self.samples[index]
        if index in self._store:
            image, mask = self._store[index]
        else:
            scene = index // 2
            if self._last is None or self._last[0] != scene:
                self._last = (scene, self._render_scene(scene))
            image, mask = self._last[1][index]
            if self.cache:
                self._store[index] = (image, mask)
        img = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)
        if mask is None:
            mask = np.zeros((self.size, self.size), np.uint8)
        return {
            "image": img,
            "mask": torch.from_numpy(mask.astype(np.float32))[None],
            "label": rec.label,
            "id": rec.id,
            "group": rec.group,
            "pair_id": rec.pair_id,
            "video": "",
            "index": index,
        }


def _render_scenes(settings: dict[str, Any], scenes: list[int]):
    """Worker of :func:`prerender`: the samples of ``scenes`` as ``{index: (image, mask)}``."""
    ds = SyntheticDoF(**settings, cache=False)
    out: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    for scene in scenes:
        out.update(ds._render_scene(scene))
    return out


def _synthetic_parts(dataset) -> tuple[SyntheticDoF, list[int]] | None:
    """Return the SyntheticDoF behind ``dataset`` and the base indices it shows, or None."""
    if isinstance(dataset, SyntheticDoF):
        return dataset, list(range(dataset.n))
    base = getattr(dataset, "base", None)
    indices = getattr(dataset, "indices", None)
    if isinstance(base, SyntheticDoF) and indices is not None:
        return base, [int(i) for i in indices]
    return None


def prerender(datasets, workers: int = 1, progress: bool = False, chunk: int = 16) -> int:
    """Render the samples of SyntheticDoF datasets into their in-memory caches, once.

    Later reads (training epochs, evaluation) then only convert the stored
    uint8 images. Items are identical to rendering on access: every scene
    draws from its own seeded generator, whichever process renders it.

    Parameters
    ----------
    datasets : sequence of Dataset
        :class:`SyntheticDoF` datasets or subsets of one (e.g. the splits
        :func:`detector.data.open_data` returns for a ``synthetic:`` spec);
        others are ignored, as are datasets whose cache is off (they render
        on access, as before).
    workers : int, default=1
        Processes rendering scenes side by side (1: in this process).
    progress : bool, default=False
        Show a tqdm bar (scenes) on stderr.
    chunk : int, default=16
        Scenes per task given to a worker.

    Returns
    -------
    int
        Samples rendered (those already cached are skipped).
    """
    from tqdm.auto import tqdm

    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    tasks: list[tuple[SyntheticDoF, list[int]]] = []
    for ds in datasets:
        parts = _synthetic_parts(ds)
        if parts is None or not parts[0].cache:
            continue
        base, indices = parts
        scenes = sorted({i // 2 for i in indices if i not in base._store})
        tasks += [(base, scenes[k : k + chunk]) for k in range(0, len(scenes), chunk)]
    n_scenes = sum(len(sc) for _, sc in tasks)
    if not tasks:
        return 0
    bar = tqdm(total=n_scenes, desc="render", unit="scene", disable=not progress, leave=False)
    written = 0

    def store(base: SyntheticDoF, rendered: dict) -> None:
        nonlocal written
        base._store.update(rendered)
        written += len(rendered)

    try:
        if workers > 1 and len(tasks) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")  # never fork a process running torch
            with ProcessPoolExecutor(min(int(workers), len(tasks)), mp_context=ctx) as pool:
                futures = [(b, pool.submit(_render_scenes, b._settings(), sc)) for b, sc in tasks]
                for (base, fut), (_, scenes) in zip(futures, tasks, strict=True):
                    store(base, fut.result())
                    bar.update(len(scenes))
        else:
            for base, scenes in tasks:
                for scene in scenes:
                    store(base, base._render_scene(scene))
                    bar.update(1)
    finally:
        bar.close()
    return written


def write_synthetic(
    out_dir: str | os.PathLike,
    n: int = 400,
    size: int = 128,
    seed: int = 0,
    fractions: Sequence[float] | None = None,
    progress: bool = True,
    *,
    val: float | int = 0.1,
    test: float | int = 0.2,
    fake_groups: Sequence[str] = FAKE_GROUPS,
    noise: float = 0.01,
) -> Path:
    """Write SyntheticDoF as PNG files, masks and a CSV index.

    Layout of ``out_dir``::

        index.csv                    id,path,label,group,pair_id,mask_path,video,frame,split
        real/<id>.png
        fake/<group>/<id>.png        group: all_in_focus | inconsistent_blur | pasted_region
        masks/<id>.png               pasted_region fakes only (255 = pasted)
        dataset.json                 the generator's parameters

    Scenes (a real and its fake) go to one split, cut by
    :func:`synthetic_split_bounds` exactly as the ``synthetic:`` data spec
    cuts them, so ``index:OUT/index.csv,split=test`` holds the same images
    as ``synthetic:n=N,size=S,seed=K,split=test``. Read it back with
    ``RealFakeFolders.from_index(out_dir / "index.csv", split=...)``; the
    images equal ``SyntheticDoF(n, size, seed)[i]``.

    The folder is written whole or not at all: everything goes to a hidden
    temporary folder beside it, renamed to ``out_dir`` at the end; sizes
    that cannot fit in memory are refused before anything is created.

    Parameters
    ----------
    out_dir : str or path-like
        Must not exist, or be an empty folder.
    n, size, seed, fake_groups, noise
        As :class:`SyntheticDoF`.
    fractions : sequence of 3 floats summing to 1, optional
        Train, val and test fractions (another way to give ``val`` and ``test``).
    progress : bool, default=True
    val, test : float or int
        As :func:`synthetic_split_bounds`.

    Returns
    -------
    pathlib.Path
        The index CSV.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from detector.data.folders import write_index

    if fractions is not None:
        if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
            raise ValueError(
                f"fractions must be 3 non-negative numbers summing to 1, got {fractions!r}"
            )
        val, test = float(fractions[1]), float(fractions[2])
    cut1, cut2 = synthetic_split_bounds(n, val, test)
    ds = SyntheticDoF(n, size=size, seed=seed, fake_groups=fake_groups, noise=noise, cache=False)
    final = Path(out_dir)
    rows = []
    with atomic_folder(final) as out:
        for i in tqdm(range(ds.n), desc="make-data", disable=not progress):
            item = ds[i]
            rec = ds.samples[i]
            sub = Path("real") if rec.label == 0 else Path("fake") / rec.group
            (out / sub).mkdir(parents=True, exist_ok=True)
            rel = sub / f"{rec.id}.png"
            img = (item["image"].numpy().transpose(1, 2, 0) * 255.0).round().astype(np.uint8)
            with atomic_path(out / rel) as tmp:
                Image.fromarray(img).save(tmp)
            mask_rel = ""
            if rec.group == "pasted_region":
                (out / "masks").mkdir(parents=True, exist_ok=True)
                mask_rel = f"masks/{rec.id}.png"
                with atomic_path(out / mask_rel) as tmp:
                    Image.fromarray((item["mask"][0].numpy() * 255).astype(np.uint8)).save(tmp)
            split = "train" if i < cut1 else ("val" if i < cut2 else "test")
            rows.append({**rec.to_dict(), "path": rel.as_posix(), "mask_path": mask_rel,
                         "split": split})  # fmt: skip
        atomic_write_json(
            out / "dataset.json",
            {**ds.describe(), "val": val, "test": test, "bounds": [cut1, cut2]},
        )
        write_index(out / "index.csv", rows)
    return final / "index.csv"
