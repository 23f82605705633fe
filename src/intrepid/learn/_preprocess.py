"""Preprocessing of EPID / portal-dose pairs: raw → signal, working grid, normalisation, augmentation.

The chain, recorded with every model in its :class:`PreprocessConfig`:

1. **Signal.** :func:`intrepid.dicom.read_rtimage` undoes the vendor encoding (Elekta inverted counts, Varian
   calibrated units); :func:`epid_signal` subtracts a dark field and divides by a normalised flood field where
   they are given (Greer 2005, doi:10.1118/1.2133432).
2. **Working grid.** Both images are resampled from the detector grid to the network's working grid
   (default 256 × 256), which covers the same detector area with coarser pixels: area averaging along an
   axis that shrinks, linear interpolation (pixel centres aligned, edges clamped) along an axis that grows.
   Predictions go back to the detector grid the same way (:func:`from_working_grid`). The rows and columns
   are resampled independently, so a 768 × 1024 panel gets rectangular working pixels; the detector spacing
   of the training data is recorded (:attr:`PreprocessConfig.detector_spacing_mm`) so that a predictor can
   warn about a detector it was not trained on.
3. **Normalisation.** ``x = (signal − input_offset) / input_scale`` and ``y = dose / target_scale``
   (:attr:`Scaling.LINEAR`, which keeps the proportionality of dose and MU), or ``log1p`` of the same
   (:attr:`Scaling.LOG`, which compresses the range). The constants are fitted on the training images only
   (:func:`fit_preprocess`): the offset is the median over images of their 0.1th signal percentile (the dark
   level and the collimator leakage), the scales the mean over images of their 99.9th percentiles.
4. **Augmentation** (training only, seeded, :class:`AugmentConfig`): transformations that keep the physics of
   the simulated detector valid. The support arm's backscatter is asymmetric *in-plane* (it covers the
   image rows on the gantry side, ``intrepid.physics`` ``DetectorModel.backscatter_weight``), so a
   left-right mirror (reversing the columns, crossplane) keeps a valid EPID / portal-dose pair, whereas an
   up-down mirror or a 90° rotation would move the arm's contribution to a side where no detector has it:
   they are off by default and available for detectors without asymmetric backscatter. Gaussian noise
   (percent of the image's maximum) on the EPID input mimics the detector noise.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import ModelError, ParameterError
from intrepid.geometry import Grid

__all__ = [
    "AugmentConfig",
    "PreprocessConfig",
    "Scaling",
    "augment_batch",
    "epid_signal",
    "fit_preprocess",
    "from_working_grid",
    "resampling_matrix",
    "to_working_grid",
    "working_grid",
]

#: Percentile (0-100) of each training image's signal taken as its dark / leakage level.
OFFSET_PERCENTILE = 0.1
#: Percentile (0-100) of each training image taken as its maximum for the scales (robust to hot pixels).
SCALE_PERCENTILE = 99.9


class Scaling(enum.Enum):
    """How signal and dose are mapped to network values."""

    LINEAR = "linear"  #: x = (s − offset) / scale
    LOG = "log"  #: x = log(1 + max(s − offset, 0) / scale)


@dataclass(frozen=True)
class AugmentConfig:
    """Random, physics-preserving augmentation of training pairs (see the module docstring).

    Parameters
    ----------
    flip_columns : bool
        Mirror left-right (reverse the columns) with probability 1/2. Valid for the simulated Elekta and
        Varian panels: their arm backscatter depends on the row only.
    flip_rows : bool
        Mirror up-down with probability 1/2. Moves the arm backscatter: only for detectors without it.
    rotate_90 : bool
        Rotate by a random multiple of 90°. Swaps in-plane and crossplane: only for detectors without
        asymmetric backscatter (and square images).
    noise_percent : float
        Standard deviation of Gaussian noise added to the normalised EPID input, percent of the image's
        maximum (>= 0; 0 = none).
    """

    flip_columns: bool = True
    flip_rows: bool = False
    rotate_90: bool = False
    noise_percent: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_percent) and self.noise_percent >= 0):
            raise ParameterError(f"noise_percent must be >= 0, got {self.noise_percent}")

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is on."""
        return self.flip_columns or self.flip_rows or self.rotate_90 or self.noise_percent > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything needed to turn a detector image into network input and the output back into dose.

    Parameters
    ----------
    working_shape : (rows, columns)
        Working grid of the network (default 256 × 256); multiples of the U-Net's ``size_multiple``.
    scaling : Scaling
        Linear or logarithmic normalisation.
    input_offset : float
        Subtracted from the EPID signal (signal units), fitted by :func:`fit_preprocess`.
    input_scale : float
        EPID signal scale (> 0, signal units).
    target_scale : float
        Portal-dose scale (> 0, Gy).
    fitted : bool
        Whether the constants were fitted on training data.
    detector_spacing_mm : (row, column) or None
        Detector pixel spacing of the training images (mm), where they share one.
    detector_shape : (rows, columns) or None
        Detector matrix of the training images, where they share one.
    clip_negative : bool
        Clip predicted doses below 0 to 0 (default True).
    """

    working_shape: tuple[int, int] = (256, 256)
    scaling: Scaling = Scaling.LINEAR
    input_offset: float = 0.0
    input_scale: float = 1.0
    target_scale: float = 1.0
    fitted: bool = False
    detector_spacing_mm: tuple[float, float] | None = None
    detector_shape: tuple[int, int] | None = None
    clip_negative: bool = True

    def __post_init__(self) -> None:
        shape = tuple(self.working_shape)
        if len(shape) != 2 or any(isinstance(s, bool) or int(s) != s or int(s) < 1 for s in shape):
            raise ParameterError(f"working_shape must be two integers >= 1, got {self.working_shape!r}")
        object.__setattr__(self, "working_shape", (int(shape[0]), int(shape[1])))
        if not isinstance(self.scaling, Scaling):
            raise ParameterError(f"scaling must be a Scaling, got {self.scaling!r}")
        if not math.isfinite(self.input_offset):
            raise ParameterError(f"input_offset must be finite, got {self.input_offset}")
        for name in ("input_scale", "target_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ParameterError(f"{name} must be > 0, got {value}")
        for name in ("detector_spacing_mm", "detector_shape"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))

    # -------------------------------------------------------------------------------- normalisation
    def normalise_input(self, signal: NDArray[Any]) -> NDArray[np.float32]:
        """EPID signal (signal units) → network input (float32)."""
        x = (np.asarray(signal, dtype=np.float32) - np.float32(self.input_offset)) / np.float32(
            self.input_scale
        )
        if self.scaling is Scaling.LOG:
            x = np.log1p(np.maximum(x, 0.0))
        return np.asarray(x, dtype=np.float32)

    def normalise_target(self, dose_gy: NDArray[Any]) -> NDArray[np.float32]:
        """Portal dose (Gy) → network target (float32)."""
        y = np.asarray(dose_gy, dtype=np.float32) / np.float32(self.target_scale)
        if self.scaling is Scaling.LOG:
            y = np.log1p(np.maximum(y, 0.0))
        return np.asarray(y, dtype=np.float32)

    def denormalise_target(self, values: NDArray[Any]) -> NDArray[np.float32]:
        """Network output → portal dose (Gy), clipped at 0 when :attr:`clip_negative`."""
        y = np.asarray(values, dtype=np.float32)
        if self.scaling is Scaling.LOG:
            y = np.expm1(y)
        y = y * np.float32(self.target_scale)
        if self.clip_negative:
            y = np.maximum(y, 0.0)
        return np.asarray(y, dtype=np.float32)

    def check_detector(self, shape: tuple[int, ...], spacing_mm: tuple[float, float] | None) -> list[str]:
        """Warnings (empty when fine) for an image unlike the training images (other matrix or spacing)."""
        notes = []
        if self.detector_shape is not None and tuple(shape) != self.detector_shape:
            notes.append(
                f"image shape {tuple(shape)} differs from the training detector {self.detector_shape}"
            )
        if self.detector_spacing_mm is not None and spacing_mm is not None:
            ratio = [a / b for a, b in zip(spacing_mm, self.detector_spacing_mm, strict=True)]
            if any(abs(r - 1) > 0.05 for r in ratio):
                notes.append(
                    f"pixel spacing {list(spacing_mm)} mm differs from the training detector's "
                    f"{list(self.detector_spacing_mm)} mm by more than 5 %"
                )
        return notes

    # -------------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        d = asdict(self)
        d["scaling"] = self.scaling.value
        for name in ("working_shape", "detector_spacing_mm", "detector_shape"):
            d[name] = None if d[name] is None else list(d[name])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`; unknown keys or bad values raise :class:`ModelError`."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"unknown preprocessing key(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        try:
            if "scaling" in values:
                values["scaling"] = Scaling(values["scaling"])
            for name in ("working_shape", "detector_spacing_mm", "detector_shape"):
                if values.get(name) is not None:
                    values[name] = tuple(values[name])
            return cls(**values)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"invalid preprocessing {data}: {exc}") from exc


# ------------------------------------------------------------------------------------------- signal
def epid_signal(
    signal: ArrayLike, dark: ArrayLike | None = None, flood: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Dark- and flood-field correction of an EPID image.

    ``corrected = (signal − dark) / g`` with the gain ``g = (flood − dark) / mean(flood − dark)``; without a
    flood field only the dark field is subtracted, without either the signal is returned as float64.

    Parameters
    ----------
    signal : array_like, shape (rows, columns)
        EPID signal (vendor encoding already undone).
    dark : array_like, optional
        Dark-field image (no beam), same shape.
    flood : array_like, optional
        Flood-field image (open, uniform field), same shape.

    Raises
    ------
    ParameterError
        Shapes differ, or the flood field minus the dark field is not > 0 everywhere.

    References
    ----------
    Greer 2005, doi:10.1118/1.2133432 (dark / flood calibration of a-Si EPIDs).
    """
    s = np.asarray(signal, dtype=np.float64)
    d = np.zeros_like(s) if dark is None else np.asarray(dark, dtype=np.float64)
    if d.shape != s.shape:
        raise ParameterError(f"dark field shape {d.shape} differs from the image shape {s.shape}")
    out = s - d
    if flood is not None:
        f = np.asarray(flood, dtype=np.float64)
        if f.shape != s.shape:
            raise ParameterError(f"flood field shape {f.shape} differs from the image shape {s.shape}")
        gain = f - d
        if not np.all(gain > 0):
            bad = int(np.count_nonzero(~(gain > 0)))
            raise ParameterError(f"flood field minus dark field must be > 0 everywhere, {bad} pixels are not")
        out = out / (gain / gain.mean())
    return out


# ------------------------------------------------------------------------------------------- resampling
@functools.lru_cache(maxsize=32)
def _matrix(n_in: int, n_out: int) -> NDArray[np.float32]:
    m = np.zeros((n_out, n_in), dtype=np.float64)
    if n_out == n_in:
        m = np.eye(n_in)
    if n_out < n_in:  # area: overlap of output pixel o = [o f, (o+1) f) with input pixel [i, i+1)
        f = n_in / n_out
        for o in range(n_out):
            lo, hi = o * f, (o + 1) * f
            for i in range(math.floor(lo), min(math.ceil(hi), n_in)):
                m[o, i] = (min(hi, i + 1) - max(lo, i)) / f
    elif n_out > n_in:  # linear between input pixel centres, edges clamped
        c = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(c).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        w = c - i0
        m[np.arange(n_out), i0] += 1 - w
        m[np.arange(n_out), i1] += w
    out = m.astype(np.float32)
    out.setflags(write=False)
    return out


def resampling_matrix(n_in: int, n_out: int) -> NDArray[np.float32]:
    """``(n_out, n_in)`` matrix resampling one axis of ``n_in`` pixels to ``n_out`` over the same extent.

    Area averaging when ``n_out < n_in`` (each output pixel is the mean of the input it covers, fractions
    weighted by overlap), linear interpolation between pixel centres (edges clamped) when ``n_out > n_in``,
    the identity when equal. Rows sum to 1, so a constant image stays constant.
    """
    for name, n in (("n_in", n_in), ("n_out", n_out)):
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ParameterError(f"{name} must be an integer >= 1, got {n!r}")
    return _matrix(int(n_in), int(n_out))


def _resample(array: ArrayLike, shape: Sequence[int]) -> NDArray[np.float32]:
    a = np.asarray(array, dtype=np.float32)
    if a.ndim < 2:
        raise ParameterError(f"image must have at least 2 dimensions [..., row, column], got shape {a.shape}")
    if len(shape) != 2:
        raise ParameterError(f"shape must be (rows, columns), got {tuple(shape)}")
    rows, cols = int(shape[0]), int(shape[1])
    if (rows, cols) == a.shape[-2:]:
        return np.ascontiguousarray(a)
    my = resampling_matrix(a.shape[-2], rows)
    mx = resampling_matrix(a.shape[-1], cols)
    return np.ascontiguousarray(np.matmul(np.matmul(my, a), mx.T), dtype=np.float32)


def to_working_grid(array: ArrayLike, working_shape: Sequence[int]) -> NDArray[np.float32]:
    """Resample images ``[..., rows, columns]`` from the detector grid to the working grid (float32).

    Examples
    --------
    >>> to_working_grid(np.ones((1024, 1024)), (256, 256)).shape
    (256, 256)
    """
    return _resample(array, working_shape)


def from_working_grid(array: ArrayLike, detector_shape: Sequence[int]) -> NDArray[np.float32]:
    """Resample images ``[..., rows, columns]`` from the working grid back to the detector grid (float32)."""
    return _resample(array, detector_shape)


def working_grid(detector: Grid, working_shape: Sequence[int]) -> Grid:
    """The working grid of a 2D detector grid: same extent and direction, ``working_shape`` pixels.

    Parameters
    ----------
    detector : Grid
        2D detector grid.
    working_shape : (rows, columns)
        Working matrix.
    """
    if detector.ndim != 2:
        raise ParameterError(f"detector grid must be 2D, got shape {detector.shape}")
    rows, cols = detector.shape
    w_rows, w_cols = int(working_shape[0]), int(working_shape[1])
    fi, fj = cols / w_cols, rows / w_rows
    first = detector.index_to_world([0.5 * fi - 0.5, 0.5 * fj - 0.5])
    sx, sy, sz = detector.spacing_mm
    return Grid((w_rows, w_cols), tuple(first), (sx * fi, sy * fj, sz), detector.direction)


# ------------------------------------------------------------------------------------------- fitting
def fit_preprocess(
    epid_signals: Sequence[NDArray[Any]],
    portal_doses_gy: Sequence[NDArray[Any]],
    config: PreprocessConfig | None = None,
    *,
    detector_spacing_mm: tuple[float, float] | None = None,
) -> PreprocessConfig:
    """Fit the normalisation constants on training images (see the module docstring).

    Parameters
    ----------
    epid_signals : sequence of ndarray (rows, columns)
        Training EPID signals on the detector grid.
    portal_doses_gy : sequence of ndarray (rows, columns)
        Matching portal doses (Gy).
    config : PreprocessConfig, optional
        Working shape and scaling to keep (default :class:`PreprocessConfig`).
    detector_spacing_mm : (row, column), optional
        Recorded as the training detector spacing.

    Returns
    -------
    PreprocessConfig
        ``config`` with ``input_offset``, ``input_scale``, ``target_scale``, ``detector_shape`` (when all
        images share one) and ``fitted=True``.

    Raises
    ------
    ParameterError
        No images, different counts, or images without signal / dose above the offset.
    """
    cfg = PreprocessConfig() if config is None else config
    if len(epid_signals) == 0:
        raise ParameterError("fit_preprocess needs at least one training pair, got 0")
    if len(epid_signals) != len(portal_doses_gy):
        raise ParameterError(
            f"epid_signals and portal_doses_gy must have the same length, got {len(epid_signals)} and "
            f"{len(portal_doses_gy)}"
        )
    lows = [float(np.percentile(s, OFFSET_PERCENTILE)) for s in epid_signals]
    offset = float(np.median(lows))
    highs = [
        float(np.percentile(np.asarray(s, dtype=np.float64) - offset, SCALE_PERCENTILE)) for s in epid_signals
    ]
    input_scale = float(np.mean(highs))
    target_scale = float(np.mean([float(np.percentile(d, SCALE_PERCENTILE)) for d in portal_doses_gy]))
    if not input_scale > 0:
        raise ParameterError(
            f"training EPID images have no signal above their dark level {offset:g} (scale {input_scale:g})"
        )
    if not target_scale > 0:
        raise ParameterError(f"training portal doses have no positive dose (scale {target_scale:g} Gy)")
    shapes = {tuple(np.shape(s)) for s in epid_signals}
    shape = next(iter(shapes)) if len(shapes) == 1 else None
    return replace(
        cfg,
        input_offset=offset,
        input_scale=input_scale,
        target_scale=target_scale,
        fitted=True,
        detector_shape=None if shape is None else (int(shape[0]), int(shape[1])),
        detector_spacing_mm=detector_spacing_mm,
    )


# ------------------------------------------------------------------------------------------- augmentation
def augment_batch(
    x: NDArray[np.float32],
    y: NDArray[np.float32],
    config: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float32], NDArray[np.float32], dict[str, int]]:
    """Augment a batch of normalised pairs ``(N, C, rows, columns)`` in the same way for input and target.

    Parameters
    ----------
    x, y : ndarray (N, C, rows, columns)
        Network inputs and targets (float32).
    config : AugmentConfig
        Which transformations.
    rng : numpy.random.Generator
        Source of randomness (seeded by the caller; no global RNG).

    Returns
    -------
    x, y : ndarray
        New arrays (the inputs are not modified).
    counts : dict
        How many samples were mirrored (``flip_columns``, ``flip_rows``), rotated (``rotate_90``) and made
        noisy (``noise``), for the run manifest.
    """
    if x.shape[0] != y.shape[0] or x.shape[-2:] != y.shape[-2:]:
        raise ParameterError(f"x and y must hold matching images, got shapes {x.shape} and {y.shape}")
    xs, ys = x.copy(), y.copy()
    counts = {"flip_columns": 0, "flip_rows": 0, "rotate_90": 0, "noise": 0}
    square = x.shape[-1] == x.shape[-2]
    for n in range(x.shape[0]):
        a, b = xs[n], ys[n]
        if config.flip_columns and rng.random() < 0.5:
            a, b = a[..., ::-1], b[..., ::-1]
            counts["flip_columns"] += 1
        if config.flip_rows and rng.random() < 0.5:
            a, b = a[..., ::-1, :], b[..., ::-1, :]
            counts["flip_rows"] += 1
        if config.rotate_90 and square:
            k = int(rng.integers(4))
            if k:
                a, b = np.rot90(a, k, axes=(-2, -1)), np.rot90(b, k, axes=(-2, -1))
                counts["rotate_90"] += 1
        if config.noise_percent > 0:
            sigma = config.noise_percent / 100.0 * float(np.max(np.abs(a)))
            a = a + rng.normal(0.0, sigma, size=a.shape).astype(np.float32)
            counts["noise"] += 1
        xs[n], ys[n] = a, b
    return xs, ys, counts
