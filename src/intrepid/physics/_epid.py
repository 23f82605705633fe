"""The a-Si EPID: energy response, glare, arm backscatter, flood field, ghosting, noise and pixel encoding.

The detector turns the (response-weighted) collision kerma at its plane into a calibrated signal:

1. dose deposition in the build-up / phosphor (the water pencil kernel of :mod:`intrepid.physics._kernels`)
   and optical glare (sum-of-exponentials kernel, Warkentin et al. 2003, doi:10.1118/1.1625440);
2. support-arm backscatter: the field's fluence blurred by a wide Gaussian, weighted by a smooth step that
   covers the arm side of the panel only (asymmetric in-plane; Rowshanfarzad et al. 2010,
   Med Phys 2010 [recall]);
3. off-axis response and flood-field calibration: the raw image carries the beam's horns and the panel's
   off-axis response, the flood field (an open, large-field image) divides both out (Greer 2005,
   Med Phys 2005 [recall]);
4. ghosting / lag: charge trapped at the start of the irradiation, under-response 1 − f τ/MU (1 − e^{−MU/τ})
   (McDermott et al. 2006 (Med Phys 2006) [recall]);
5. quantum (signal-proportional variance) and electronic (constant) noise, dead pixels;
6. the vendor encoding: Elekta iView inverted 16-bit, Varian aS1000 calibrated units via a negative slope.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import ParameterError
from intrepid.physics._kernels import DoseKernel, GlareKernel
from intrepid.physics._transport import EnergyResponse

__all__ = ["DetectorModel", "Vendor", "encode_raw", "ghosting_factor"]


class Vendor(enum.Enum):
    """EPID vendor conventions (pixel encoding, geometry)."""

    ELEKTA = "elekta"
    VARIAN = "varian"


@dataclass(frozen=True)
class DetectorModel:
    """An amorphous-silicon EPID with its calibration and vendor encoding.

    Parameters
    ----------
    vendor : Vendor
    rows, columns : int
        Image size (pixels).
    pixel_mm : float
        Pixel pitch at the detector (mm).
    sid_mm : float
        Source-to-image distance (mm).
    energy_response : EnergyResponse
        Response per unit water collision kerma versus photon energy (phosphor over-response).
    deposition : DoseKernel
        Dose-deposition kernel in the build-up and phosphor (mm at the detector): sharper than water's at
        depth (thin Cu + Gd₂O₂S layer) with a weaker scatter tail.
    glare : GlareKernel
        Optical glare kernel (mm at the detector).
    backscatter_fraction : float
        Arm backscatter added, on the arm side, for a field that fills the backscatter kernel.
    backscatter_sigma_mm : float
        σ (mm) of the backscatter kernel at the detector.
    backscatter_edge_mm : float
        In-plane coordinate (mm, along the image rows index j) where the arm region begins; the arm covers
        ``v > backscatter_edge_mm`` (bottom of the image), with a soft edge.
    backscatter_edge_width_mm : float
        σ (mm) of the error-function edge of the arm region (the arm's backscatter falls off gradually).
    off_axis_response : float
        Raw panel over-response at 150 mm off axis (softer off-axis spectrum), removed by the flood field.
    flood_field_calibrated : bool
        Whether the image is divided by a flood field (removes horns and off-axis response).
    lag_fraction : float
        f: fraction of the signal lost to trapping at the start of an irradiation.
    lag_mu : float
        τ (MU): monitor units over which the traps fill.
    quantum_cu2_per_cu : float
        Quantum-noise variance per unit signal (CU² per CU) at full resolution.
    electronic_noise_cu : float
        Standard deviation of the additive electronic noise (CU).
    dead_pixel_fraction : float
        Fraction of dead pixels (reading zero), fixed per panel.
    panel_seed : int
        Seed of the panel's fixed pattern (dead-pixel map), independent of the per-image noise seed.
    raw_offset : float
        Elekta: raw value of zero signal (inverted encoding); Varian: raw value of zero signal.
    raw_counts_per_cu : float
        Encoding gain (counts per CU).
    units : str
        Units of the calibrated image ("CU": 1 CU = the central-axis signal of 1 MU, 10 × 10 cm², no
        phantom, at SID 1000 mm — the Varian dosimetry calibration, also used for the Elekta preset).
    """

    vendor: Vendor
    rows: int
    columns: int
    pixel_mm: float
    sid_mm: float
    energy_response: EnergyResponse = field(default_factory=lambda: EnergyResponse(0.06, 0.5, 1.5))
    deposition: DoseKernel = field(default_factory=lambda: DoseKernel(1.5, 0.012, 0.08))
    glare: GlareKernel = field(default_factory=lambda: GlareKernel(0.06, 1.0, 0.04, 20.0))
    backscatter_fraction: float = 0.02
    backscatter_sigma_mm: float = 40.0
    backscatter_edge_mm: float = 0.0
    backscatter_edge_width_mm: float = 100.0
    off_axis_response: float = 0.03
    flood_field_calibrated: bool = True
    lag_fraction: float = 0.10
    lag_mu: float = 5.0
    quantum_cu2_per_cu: float = 2.5e-3
    electronic_noise_cu: float = 0.02
    dead_pixel_fraction: float = 2e-4
    panel_seed: int = 20240401
    raw_offset: float = 65000.0
    raw_counts_per_cu: float = 100.0
    units: str = "CU"

    def __post_init__(self) -> None:
        if not isinstance(self.vendor, Vendor):
            raise ParameterError(f"vendor must be a Vendor, got {self.vendor!r}")
        for name in ("rows", "columns"):
            n = int(getattr(self, name))
            if n < 8 or n > 8192:
                raise ParameterError(f"{name} must be in [8, 8192] pixels, got {getattr(self, name)}")
            object.__setattr__(self, name, n)
        for name in (
            "pixel_mm",
            "sid_mm",
            "backscatter_sigma_mm",
            "backscatter_edge_width_mm",
            "lag_mu",
            "raw_counts_per_cu",
        ):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v <= 0:
                raise ParameterError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("backscatter_fraction", "lag_fraction", "dead_pixel_fraction"):
            v = float(getattr(self, name))
            if not math.isfinite(v) or not 0 <= v < 1:
                raise ParameterError(f"{name} must be in [0, 1), got {v}")
        for name in ("quantum_cu2_per_cu", "electronic_noise_cu"):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v < 0:
                raise ParameterError(f"{name} must be >= 0, got {v}")
        if not -0.5 < self.off_axis_response < 0.5:
            raise ParameterError(f"off_axis_response must be in (-0.5, 0.5), got {self.off_axis_response}")
        if not 0 <= self.raw_offset <= 65535:
            raise ParameterError(f"raw_offset must be in [0, 65535], got {self.raw_offset}")

    # ------------------------------------------------------------------ presets
    @classmethod
    def elekta_iview(cls, **changes: object) -> DetectorModel:
        """Elekta iViewGT-like panel: 1024 × 1024 at 0.405 mm, SID 1600 mm, inverted 16-bit encoding.

        Raw = 65000 − 100 · signal[CU] (open background ≈ 65 000, irradiated lower, as real iView files).
        The Elekta arm holds the panel from the side: weak backscatter (2 %) over the gantry half.
        """
        base: dict[str, object] = dict(
            vendor=Vendor.ELEKTA, rows=1024, columns=1024, pixel_mm=0.405, sid_mm=1600.0
        )
        base.update(changes)
        return cls(**base)  # type: ignore[arg-type]

    @classmethod
    def varian_as1000(cls, **changes: object) -> DetectorModel:
        """Varian aS1000-like panel: 768 × 1024 pixels at 0.392 mm, SID 1500 mm, CU via a negative slope.

        The robotic E-arm behind the gantry half of the panel gives a stronger asymmetric backscatter (6 %).
        Raw = 16384 − signal / 0.0156 (slope −0.0156 CU per count, as real aS1000 dosimetry files).
        """
        base: dict[str, object] = dict(
            vendor=Vendor.VARIAN,
            rows=768,
            columns=1024,
            pixel_mm=0.392,
            sid_mm=1500.0,
            backscatter_fraction=0.06,
            raw_offset=16384.0,
            raw_counts_per_cu=1.0 / 0.0156,
        )
        base.update(changes)
        return cls(**base)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ helpers
    def off_axis_raw_response(self, radius_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        """Raw panel response versus radius at the detector (1 on the axis), before the flood field."""
        return np.asarray(1.0 + self.off_axis_response * (radius_mm / 150.0) ** 2, dtype=float)

    def backscatter_weight(self, v_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        """Arm coverage (0 … 1) versus the in-plane image coordinate v (mm at the detector, rows down)."""
        from scipy.special import ndtr

        return np.asarray(
            ndtr((v_mm - self.backscatter_edge_mm) / self.backscatter_edge_width_mm), dtype=float
        )

    def dead_pixel_mask(self) -> NDArray[np.bool_]:
        """Fixed map of dead pixels, shape (rows, columns), from ``panel_seed``."""
        return _dead_pixels(self.rows, self.columns, self.dead_pixel_fraction, self.panel_seed)


@lru_cache(maxsize=4)
def _dead_pixels(rows: int, columns: int, fraction: float, seed: int) -> NDArray[np.bool_]:
    rng = np.random.default_rng(seed)
    n = round(fraction * rows * columns)
    flat = np.zeros(rows * columns, dtype=bool)
    if n:
        flat[rng.choice(rows * columns, size=n, replace=False)] = True
    mask = flat.reshape(rows, columns)
    mask.setflags(write=False)
    return mask


def ghosting_factor(mu: float, lag_fraction: float, lag_mu: float) -> float:
    """Relative EPID response at ``mu`` monitor units with trapping (ghosting / lag).

    R(MU) = 1 − f (τ / MU)(1 − e^{−MU/τ}): the traps take a charge that saturates at f τ, so the deficit is
    f at a fraction of an MU, a few % at a few MU and below 0.5 % above 100 MU (for f = 0.1, τ = 5 MU).

    Examples
    --------
    >>> round(ghosting_factor(1000.0, 0.1, 5.0), 4)
    0.9995
    """
    m = float(mu)
    if not math.isfinite(m) or m <= 0:
        raise ParameterError(f"mu must be > 0, got {mu}")
    x = m / lag_mu
    return float(1.0 - lag_fraction * (-math.expm1(-x)) / x)


def add_noise(
    signal_cu: NDArray[np.float64], detector: DetectorModel, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Quantum (variance ∝ signal) plus electronic (constant) Gaussian noise, then the dead pixels."""
    s = np.asarray(signal_cu, dtype=float)
    sigma = np.sqrt(np.maximum(s, 0.0) * detector.quantum_cu2_per_cu + detector.electronic_noise_cu**2)
    noisy = s + sigma * rng.standard_normal(s.shape)
    if s.shape == (detector.rows, detector.columns):
        noisy[detector.dead_pixel_mask()] = 0.0
    return np.asarray(noisy, dtype=float)


@dataclass(frozen=True)
class RawEncoding:
    """Pixel encoding of a raw image: ``signal = slope · raw + intercept`` (CU)."""

    raw: NDArray[np.uint16]
    rescale_slope: float
    rescale_intercept: float


def encode_raw(signal_cu: NDArray[np.float64], detector: DetectorModel) -> RawEncoding:
    """Vendor pixel encoding of a calibrated image.

    Elekta: ``raw = offset − gain · S`` (inverted, saturating at 0). Varian: ``raw = offset − S / |slope|``
    with slope −1/gain; if the image would saturate, |slope| is increased so its maximum stays in range
    (as the real aS1000 software rescales per image). Both decode as ``S = slope · raw + intercept``.
    """
    s = np.asarray(signal_cu, dtype=float)
    gain = detector.raw_counts_per_cu
    if detector.vendor is Vendor.VARIAN:
        s_max = float(np.max(s)) if s.size else 0.0
        if s_max * gain > detector.raw_offset * 0.98:
            gain = detector.raw_offset * 0.98 / s_max
    raw = np.clip(np.rint(detector.raw_offset - gain * s), 0, 65535).astype(np.uint16)
    slope = -1.0 / gain
    return RawEncoding(raw=raw, rescale_slope=slope, rescale_intercept=detector.raw_offset / gain)
