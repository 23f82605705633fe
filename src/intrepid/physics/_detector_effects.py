"""Detector and transit effects of a real a-Si EPID, switchable one by one and drawn per image.

:class:`EffectFlags` says which effects are on (for ablations); :func:`sample_effects` draws the value of
every effect that is on, uniformly within its published range (:data:`EFFECT_RANGES`, each with its
source), for one image; :class:`DetectorEffects` holds those values and is what
:func:`intrepid.physics.simulate_transit` takes (``effects=``). With ``effects=None`` the simulator keeps
its earlier, near-linear model.

The effects (docs/physics.md, "Detector and transit effects", has the table with magnitudes and sources):

* ``energy_response``: Gd₂O₂S / a-Si over-response per unit water kerma, several-fold below ~0.3 MeV;
* ``spectral_scatter``: single and multiple patient scatter with their own spectra (EPID-weighted
  scatter-to-primary ratio 5–40 % above water's, growing with thickness and field size);
* ``heterogeneity_position``: patient scatter depends on where the mass sits along each ray (effective gap);
* ``glare``: long-range optical glare whose strength varies across the panel (field-size over-response
  5–8 % at 25–30 cm against 10 × 10, non-stationary);
* ``off_axis_softening``: softer spectrum off axis (not removed by the flood field behind a patient);
* ``flood_field``: flood-field tilt and fixed-pattern residuals; ``dark_field``: offset residual;
* ``gain_drift``: panel sensitivity drift since calibration; ``dead_lines``: defective rows / columns;
* ``arm_backscatter``: vendor-specific support-arm backscatter, drawn per image;
* ``couch``: couch-top attenuation (angle dependent);
* ``frame_averaging``: dropped and partial frames (integrated signal lost), worse at low MU;
* ``ghosting``: lag at the start of the irradiation and the residual image of the previous field;
* ``dose_rate``: response per unit dose varying with the local dose rate (a non-linearity);
* ``panel_shift``: panel sag / positioning shifts of 1–2 mm;
* ``saturation``: per-frame saturation where the dose rate at the panel is high (open / thin, FFF rates).

MLC-modulated fields are a property of the field, not of the detector: see
:func:`intrepid.simulate.random_composition` (``mlc_fraction``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from intrepid.errors import ParameterError

__all__ = [
    "EFFECT_NAMES",
    "EFFECT_RANGES",
    "PANEL_FIELDS",
    "DetectorEffects",
    "EffectFlags",
    "EffectRange",
    "sample_effects",
]


@dataclass(frozen=True)
class EffectFlags:
    """Which detector / transit effects are simulated (all bool; see the module notes).

    Examples
    --------
    >>> EffectFlags.all_on().glare, EffectFlags.none().glare
    (True, False)
    >>> EffectFlags.all_on().without("glare", "couch").couch
    False
    """

    energy_response: bool = True
    spectral_scatter: bool = True
    heterogeneity_position: bool = True
    glare: bool = True
    off_axis_softening: bool = True
    flood_field: bool = True
    dark_field: bool = True
    gain_drift: bool = True
    dead_lines: bool = True
    arm_backscatter: bool = True
    couch: bool = True
    frame_averaging: bool = True
    ghosting: bool = True
    dose_rate: bool = True
    panel_shift: bool = True
    saturation: bool = True

    @classmethod
    def all_on(cls) -> EffectFlags:
        """Every effect on."""
        return cls()

    @classmethod
    def none(cls) -> EffectFlags:
        """Every effect off: an ideal water-like detector with noise only."""
        return cls(**{f.name: False for f in fields(cls)})

    @classmethod
    def only(cls, *names: str) -> EffectFlags:
        """Only the named effects on."""
        _check_names(names)
        return cls(**{f.name: f.name in names for f in fields(cls)})

    def without(self, *names: str) -> EffectFlags:
        """These flags with the named effects off."""
        _check_names(names)
        return replace(self, **{n: False for n in names})

    def enabled(self) -> tuple[str, ...]:
        """Names of the effects that are on."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name))

    @classmethod
    def parse(cls, text: str) -> EffectFlags:
        """Flags from text: ``all``, ``none``, ``all-glare-couch`` (all but those), or ``glare,couch`` (only).

        Raises
        ------
        ParameterError
            An unknown effect name (the message lists the valid ones).
        """
        t = str(text).strip().lower().replace(" ", "")
        if t in ("all", ""):
            return cls.all_on()
        if t == "none":
            return cls.none()
        if t.startswith("all-"):
            return cls.all_on().without(*t[4:].split("-"))
        return cls.only(*t.split(","))


#: Names of the effects, in the order of :class:`EffectFlags`.
EFFECT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(EffectFlags))


def _check_names(names: tuple[str, ...]) -> None:
    bad = [n for n in names if n not in EFFECT_NAMES]
    if bad:
        raise ParameterError(f"unknown effect {bad[0]!r}; valid effects: {', '.join(EFFECT_NAMES)}")


@dataclass(frozen=True)
class EffectRange:
    """Published range of one effect parameter: drawn uniformly in ``[low, high]`` per image."""

    effect: str
    parameter: str
    low: float
    high: float
    unit: str
    source: str


#: Range and source of every randomised parameter. [recall]: value from the literature as remembered, not
#: re-read; [assumption]: engineering choice where no number was found (see docs/physics.md).
EFFECT_RANGES: tuple[EffectRange, ...] = (
    EffectRange("energy_response", "response_strength", 0.75, 1.25, "exponent on the Gd2O2S table",
                "Yeboah & Pistorius 2000 Med Phys 27:330; Kirkby & Sloboda 2005 Med Phys 32:1115; McCurdy "
                "et al. 2001 Med Phys 28:911 [recall]: r(0.1 MeV) 3.8-9.4, r(0.3 MeV) 1.6-2.2"),
    EffectRange("spectral_scatter", "multiple_scatter_coefficient", 0.3, 0.8, "kappa",
                "Swindell & Evans 1996 Med Phys 23:63 [recall]: multiple ~ single scatter behind 20 cm"),
    EffectRange("spectral_scatter", "second_angle_deg", 50.0, 90.0, "deg", "[assumption]"),
    EffectRange("spectral_scatter", "spread", 1.2, 2.0, "ratio", "[assumption]"),
    EffectRange("glare", "overresponse_large_field", 0.05, 0.08, "fraction at 27x27 vs 10x10",
                "Greer & Popescu 2003 Med Phys 30:1618; Warkentin et al. 2003 Med Phys 30:3143; Wendling "
                "et al. 2006 Med Phys 33:259 [recall]: EPID/water +5-8 % at 25-30 cm fields"),
    EffectRange("glare", "glare_range_mm", 30.0, 80.0, "mm at the detector",
                "Warkentin et al. 2003 (long glare tail, cm range) [recall]"),
    EffectRange("glare", "glare_nonstationarity", -0.3, 0.3, "relative change centre to corner",
                "[assumption]: optical spread differs between centre and edges of the panel"),
    EffectRange("off_axis_softening", "mean_energy_drop_200mm", 0.05, 0.12, "fraction at 200 mm off axis",
                "flattened 6 MV beams soften off axis (Tailor et al. 1998 Med Phys 25:62) [recall]"),
    EffectRange("flood_field", "flood_tilt", -0.01, 0.01, "per 100 mm at the detector",
                "beam symmetry at flood acquisition within IEC 60976 +-2 % [recall]; Greer 2005 [recall]"),
    EffectRange("flood_field", "flood_pattern_sigma", 0.001, 0.005, "relative",
                "[assumption]: fixed-pattern residual of a finite-dose flood image"),
    EffectRange("dark_field", "dark_offset", -0.001, 0.001, "fraction of the 1-MU signal per MU",
                "[assumption]: offset drift between dark-field acquisition and the image"),
    EffectRange("gain_drift", "gain", -0.01, 0.01, "relative",
                "long-term EPID response reproducibility 0.5-1 % (Greer & Popescu 2003; King et al. 2012) "
                "[recall]"),
    EffectRange("dead_lines", "dead_line_count", 0.0, 3.0, "lines per image (integer)", "[assumption]"),
    EffectRange("arm_backscatter", "backscatter_elekta", 0.005, 0.02, "fraction",
                "Elekta side-mounted arm: weak backscatter [assumption]"),
    EffectRange("arm_backscatter", "backscatter_varian", 0.02, 0.06, "fraction",
                "Varian E-arm up to ~6 % in-plane (Ko et al. 2004; King et al. 2011) [recall]"),
    EffectRange("couch", "couch_attenuation", 0.02, 0.05, "fraction at normal incidence x path",
                "AAPM TG-176, Olch et al. 2014 Med Phys 41:061501: 2-5 % depending on angle"),
    EffectRange("frame_averaging", "dropped_frame_probability", 0.0, 0.03, "per frame",
                "iView frame averaging / dropped frames 1-3 % (McDermott et al. 2006) [recall]"),
    EffectRange("ghosting", "lag_fraction", 0.05, 0.15, "f", "McDermott et al. 2006; Alshanqity 2016 "
                "IJMPCERO 5:162: 4-10 % under-response at a few MU [checked, REFERENCES.md]"),
    EffectRange("ghosting", "residual_fraction", 0.0, 0.025, "of the previous image",
                "residual signal < 2.5 % (McDermott et al. 2006) [checked, REFERENCES.md]"),
    EffectRange("dose_rate", "dose_rate_coefficient", -0.01, 0.01, "per decade of local dose rate",
                "a-Si response vs dose rate within ~1 % (Winkler et al. 2005 Med Phys 32:3095) [recall]"),
    EffectRange("panel_shift", "shift_mm", 0.0, 2.0, "mm (radius)",
                "Elekta panel sag within ~2 mm (Rowshanfarzad, PMC4628515) [checked, REFERENCES.md]"),
    EffectRange("saturation", "saturation_dose_rate_mu_min", 600.0, 1400.0, "MU/min of the beam",
                "flattened 400-600 MU/min, FFF 1400 MU/min; panel saturation per frame [assumption]"),
)


def effect_range(parameter: str) -> EffectRange:
    """The :class:`EffectRange` of a parameter name."""
    for r in EFFECT_RANGES:
        if r.parameter == parameter:
            return r
    raise ParameterError(f"unknown effect parameter {parameter!r}")


@dataclass(frozen=True)
class DetectorEffects:
    """The drawn values of the effects of one image (neutral values for effects that are off).

    Build it with :func:`sample_effects` (random within :data:`EFFECT_RANGES`) or :meth:`nominal` (the middle
    of every range, for tests). All fields are plain numbers, recorded in the image metadata.
    """

    flags: EffectFlags
    response_strength: float = 0.0
    multiple_scatter_coefficient: float = 0.5
    second_angle_deg: float = 70.0
    spread: float = 1.5
    overresponse_large_field: float = 0.0
    glare_range_mm: float = 50.0
    glare_nonstationarity: float = 0.0
    mean_energy_drop_200mm: float = 0.0
    flood_tilt_u: float = 0.0
    flood_tilt_v: float = 0.0
    flood_pattern_sigma: float = 0.0
    dark_offset: float = 0.0
    gain: float = 0.0
    dead_line_count: int = 0
    backscatter_fraction: float | None = None
    couch_attenuation: float = 0.0
    dropped_frame_probability: float = 0.0
    lag_fraction: float | None = None
    residual_fraction: float = 0.0
    dose_rate_coefficient: float = 0.0
    shift_u_mm: float = 0.0
    shift_v_mm: float = 0.0
    beam_dose_rate_mu_min: float = 600.0
    pattern_seed: int = 0

    @classmethod
    def nominal(cls, flags: EffectFlags | None = None, vendor: str = "elekta") -> DetectorEffects:
        """Middle of every published range for the effects that are on (deterministic; for tests)."""
        return _draw(flags or EffectFlags.all_on(), vendor, None)

    def calibration_view(self) -> DetectorEffects:
        """The effects that the panel's dosimetric calibration (open 10 x 10, SID 1000 mm, no couch) sees."""
        return replace(
            self, couch_attenuation=0.0, flood_tilt_u=0.0, flood_tilt_v=0.0, flood_pattern_sigma=0.0,
            dark_offset=0.0, gain=0.0, dead_line_count=0, dropped_frame_probability=0.0,
            residual_fraction=0.0, dose_rate_coefficient=0.0, shift_u_mm=0.0, shift_v_mm=0.0, pattern_seed=0,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the flags that are on and every drawn value."""
        d = asdict(self)
        d["flags"] = list(self.flags.enabled())
        return d


#: Values that belong to the panel, the beam and the patient-scatter physics rather than to one acquisition:
#: with ``panel=`` (or ``generate_pairs(..., panel="dataset")``) they are drawn once and shared.
PANEL_FIELDS: tuple[str, ...] = (
    "response_strength", "multiple_scatter_coefficient", "second_angle_deg", "spread",
    "overresponse_large_field", "glare_range_mm", "glare_nonstationarity", "mean_energy_drop_200mm",
    "flood_tilt_u", "flood_tilt_v", "flood_pattern_sigma", "backscatter_fraction", "couch_attenuation",
    "pattern_seed",
)


def sample_effects(
    flags: EffectFlags, vendor: str, rng: np.random.Generator, *, panel: DetectorEffects | None = None
) -> DetectorEffects:
    """Draw the effects of one image uniformly within their published ranges.

    Parameters
    ----------
    flags : EffectFlags
        Which effects are on; the others keep neutral values.
    vendor : {"elekta", "varian"}
        Picks the vendor's backscatter range and frame time.
    rng : numpy.random.Generator
        Source of the draws (seeded by the caller).
    panel : DetectorEffects, optional
        Keep the panel / beam / scatter-physics values (:data:`PANEL_FIELDS`) of this draw, drawing only the
        per-acquisition ones (gain drift, dark offset, dead lines, frames, ghosting, dose rate, shift,
        dose rate of the beam): one panel in one clinic. Default: every value is drawn per image, so the
        data set spans the published spread between panels and studies.
    """
    if not isinstance(flags, EffectFlags):
        raise ParameterError(f"flags must be an EffectFlags, got {type(flags).__name__}")
    fx = _draw(flags, vendor, rng)
    if panel is None:
        return fx
    if not isinstance(panel, DetectorEffects) or panel.flags != flags:
        raise ParameterError("panel must be a DetectorEffects drawn with the same flags")
    return replace(fx, **{name: getattr(panel, name) for name in PANEL_FIELDS})


def _draw(flags: EffectFlags, vendor: str, rng: np.random.Generator | None) -> DetectorEffects:
    v = str(vendor).lower()
    if v not in ("elekta", "varian"):
        raise ParameterError(f"vendor must be elekta or varian, got {vendor!r}")

    def u(name: str) -> float:
        r = effect_range(name)
        if rng is None:
            return 0.5 * (r.low + r.high)
        return float(rng.uniform(r.low, r.high))

    out: dict[str, Any] = {}
    if flags.energy_response:
        out["response_strength"] = u("response_strength")
    if flags.spectral_scatter:
        out.update(multiple_scatter_coefficient=u("multiple_scatter_coefficient"),
                   second_angle_deg=u("second_angle_deg"), spread=u("spread"))
    if flags.glare:
        out.update(overresponse_large_field=u("overresponse_large_field"), glare_range_mm=u("glare_range_mm"),
                   glare_nonstationarity=u("glare_nonstationarity"))
    if flags.off_axis_softening:
        out["mean_energy_drop_200mm"] = u("mean_energy_drop_200mm")
    if flags.flood_field:
        out.update(flood_tilt_u=u("flood_tilt"), flood_tilt_v=u("flood_tilt"),
                   flood_pattern_sigma=u("flood_pattern_sigma"))
    if flags.dark_field:
        out["dark_offset"] = u("dark_offset")
    if flags.gain_drift:
        out["gain"] = u("gain")
    if flags.dead_lines:
        out["dead_line_count"] = 1 if rng is None else int(rng.integers(0, 4))
    if flags.arm_backscatter:
        out["backscatter_fraction"] = u(f"backscatter_{v}")
    else:
        out["backscatter_fraction"] = 0.0
    if flags.couch:
        out["couch_attenuation"] = u("couch_attenuation")
    if flags.frame_averaging:
        out["dropped_frame_probability"] = u("dropped_frame_probability")
    if flags.ghosting:
        out.update(lag_fraction=u("lag_fraction"), residual_fraction=u("residual_fraction"))
    else:
        out["lag_fraction"] = 0.0
    if flags.dose_rate:
        out["dose_rate_coefficient"] = u("dose_rate_coefficient")
    if flags.panel_shift:
        r = u("shift_mm")
        phi = 0.25 * math.pi if rng is None else float(rng.uniform(0, 2 * math.pi))
        out.update(shift_u_mm=r * math.cos(phi), shift_v_mm=r * math.sin(phi))
    if flags.saturation:
        out["beam_dose_rate_mu_min"] = (
            600.0 if rng is None else float(rng.choice([400.0, 600.0, 600.0, 1400.0]))
        )
    out["pattern_seed"] = 0 if rng is None else int(rng.integers(0, 2**31 - 1))
    return DetectorEffects(flags=flags, **out)


# ------------------------------------------------------------------------------------ image effects
#: Frame time (s) of the integrated acquisition: iView GT ~2.5 fps [recall], aS1000 ~7.5 fps [recall].
FRAME_TIME_S = {"elekta": 0.4, "varian": 0.133}
#: Per-frame signal at which the panel saturates, in CU per frame (ADC / photodiode full scale)
#: **[assumption]**: a 6 MV flattened beam at 600 MU/min reaches 60 % of it on an open 10 x 10 at SID 1000 mm.
SATURATION_CU_PER_FRAME = {"elekta": 6.7, "varian": 2.2}


def frame_factor(mu: float, fx: DetectorEffects, vendor: str, rng: np.random.Generator) -> float:
    """Fraction of the integrated signal kept: dropped frames (binomial) and a partial last frame.

    The beam lasts MU / dose rate; the panel integrates n = duration / frame time frames; the drawn fraction
    of the signal is lost to dropped frames and up to a tenth of a frame at beam-on (McDermott et al. 2006
    [recall]: 1–3 % at low MU / high dose rate).
    """
    if not fx.flags.frame_averaging:
        return 1.0
    n = max(1.0, 60.0 * mu / fx.beam_dose_rate_mu_min / FRAME_TIME_S[vendor])
    # the published 1-3 % is the signal lost, so the drawn fraction is lost as such (not a binomial count,
    # which would lose whole frames of 5-10 % each in a short beam)
    partial = float(rng.uniform(0.0, 0.1))  # part of a frame lost at beam-on / readout [assumption]
    return max(0.5, 1.0 - fx.dropped_frame_probability - partial / n)


def dose_rate_response(
    signal: NDArray[np.float64], reference: float, coefficient: float
) -> NDArray[np.float64]:
    """S (1 + c log10(Ṡ / Ṡ_ref)): response per unit dose versus the local dose rate (non-linear)."""
    if coefficient == 0 or reference <= 0:
        return signal
    rel = np.maximum(signal / reference, 1e-3)
    return np.asarray(signal * (1.0 + coefficient * np.log10(rel)), dtype=float)


def soft_saturation(signal_per_frame: NDArray[np.float64], level: float) -> NDArray[np.float64]:
    """Smooth clip of a per-frame signal at ``level`` (linear below ~70 % of it, flat at it)."""
    s = np.asarray(signal_per_frame, dtype=float)
    knee = 0.7 * level
    over = np.maximum(s - knee, 0.0)
    soft = knee + (level - knee) * np.tanh(over / (level - knee))
    return np.asarray(np.where(s > knee, soft, s), dtype=float)


def previous_image_residual(
    shape: tuple[int, int], spacing_mm: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Relative image of a previous field (a random rectangle, 1 inside, blurred edges) for ghosting."""
    ny, nx = shape
    w = rng.uniform(0.15, 0.8, size=2)
    c = rng.uniform(-0.25, 0.25, size=2)
    yy = (np.arange(ny) / ny - 0.5)[:, None]
    xx = (np.arange(nx) / nx - 0.5)[None, :]
    img = ((np.abs(yy - c[0]) < w[0] / 2) & (np.abs(xx - c[1]) < w[1] / 2)).astype(float)
    return np.asarray(ndimage.gaussian_filter(img, 3.0 / max(spacing_mm, 1e-3)), dtype=float)


def flood_pattern(shape: tuple[int, int], sigma: float, seed: int) -> NDArray[np.float64]:
    """Multiplicative fixed-pattern residual of the flood field: 1 + σ N(0, 1), slightly correlated."""
    if sigma <= 0:
        return np.ones(shape)
    rng = np.random.default_rng(seed)
    z = ndimage.gaussian_filter(rng.standard_normal(shape), 0.7)
    z /= max(float(z.std()), 1e-12)
    return np.asarray(1.0 + sigma * z, dtype=float)


def apply_dead_lines(
    image: NDArray[np.float64], count: int, rng: np.random.Generator
) -> tuple[NDArray[np.float64], list[str]]:
    """Defective rows / columns: half read zero, half are interpolated with a 1–3 % residual error."""
    out = image.copy()
    lines: list[str] = []
    for _ in range(int(count)):
        axis = int(rng.integers(0, 2))
        n = out.shape[axis]
        k = int(rng.integers(1, n - 1))
        zero = bool(rng.random() < 0.5)
        err = 1.0 + rng.uniform(-0.03, 0.03)
        if axis == 0:
            out[k, :] = 0.0 if zero else 0.5 * (out[k - 1, :] + out[k + 1, :]) * err
        else:
            out[:, k] = 0.0 if zero else 0.5 * (out[:, k - 1] + out[:, k + 1]) * err
        lines.append(f"{'row' if axis == 0 else 'column'} {k} {'zero' if zero else 'interpolated'}")
    return out, lines


def glare_fraction(overresponse: float, range_mm: float, r_small_mm: float, r_large_mm: float) -> float:
    """Fraction f of an exponential glare tail (range λ) giving ``overresponse`` between two disc fields.

    The on-axis signal of a disc field of radius R with a kernel (1 − f) δ + f e^{−r/λ}/(2πλ²) is
    1 − f + f I(R), I(R) = 1 − e^{−R/λ}(1 + R/λ); f solves (1 − f + f I_L)/(1 − f + f I_S) = 1 + o.
    """
    def i(r: float) -> float:
        x = r / range_mm
        return 1.0 - math.exp(-x) * (1.0 + x)

    a, b = i(r_large_mm) - 1.0, i(r_small_mm) - 1.0
    f = overresponse / (a - (1.0 + overresponse) * b)
    return float(min(max(f, 0.0), 0.6))
