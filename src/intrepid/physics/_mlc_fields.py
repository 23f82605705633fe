"""MLC-modulated fields for the transit simulator: RTPLAN beams or generated IMRT / VMAT-like sequences.

The fluence of an :class:`MlcField` comes from the shared linac head model
(:func:`intrepid.physics.beam_fluence`: jaws, MLC leaves with 1.5 % transmission, tongue and groove, rounded
leaf ends, head scatter, horns); this module only describes *which* leaf sequences are delivered:

* :func:`step_and_shoot_field`: 3–7 static segments (step-and-shoot IMRT), each an opening per leaf pair
  drawn as a smooth random band inside the jaws, with random segment weights;
* :func:`sliding_window_field`: a dynamic sweep: both banks travel across the field at a smoothly varying
  gap (5–40 mm), as a sliding-window IMRT beam; the intensity profile varies from leaf pair to leaf pair;
* :func:`dynamic_field`: VMAT-like control points: both banks follow independent smooth random trajectories
  over 20–40 control points (gantry rotation not modelled: one transit image is one gantry angle);
* :meth:`MlcField.from_rtplan_beam`: a beam read by :func:`intrepid.dicom.read_rtplan`.

Leaf geometry of the generated fields: a 120-leaf Millennium-like MLCX, 40 central pairs of 5 mm and 10 outer
pairs of 10 mm on each side (mm at the isocentre) [recall].
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d, map_coordinates

from intrepid.errors import ParameterError
from intrepid.physics._beam import BeamModel
from intrepid.physics._fields import Field

__all__ = [
    "MILLENNIUM_BOUNDARIES_MM",
    "MlcField",
    "MlcKind",
    "dynamic_field",
    "generate_mlc_field",
    "sliding_window_field",
    "step_and_shoot_field",
]

#: Leaf Position Boundaries (mm at the isocentre) of a 60-pair Millennium-like MLC [recall].
MILLENNIUM_BOUNDARIES_MM: tuple[float, ...] = tuple(
    float(b)
    for b in np.concatenate(
        [np.arange(-200.0, -100.0, 10.0), np.arange(-100.0, 100.0, 5.0), np.arange(100.0, 200.1, 10.0)]
    )
)
#: Smallest gap (mm) between the two leaves of a pair that the generators leave when a pair is "closed"
#: (the leaves are parked against each other at a random position, as planning systems do).
_MIN_GAP_MM = 0.5
#: Spacing (mm at the isocentre) on which the head model is evaluated before interpolation: finer than the
#: 5 mm leaves and the ~1.5 mm (80-20 %) leaf-end penumbra it must carry **[assumption]**.
FLUENCE_GRID_MM = 1.5


class MlcKind(enum.Enum):
    """Kind of generated MLC sequence."""

    STEP_AND_SHOOT = "sns"  #: static segments
    SLIDING_WINDOW = "sw"  #: dynamic sweep at a varying gap
    DYNAMIC = "dyn"  #: VMAT-like free leaf trajectories


@dataclass(frozen=True)
class _Device:
    device_type: Any
    leaf_boundaries_mm: NDArray[np.float64] | None
    source_to_device_distance_mm: float | None = None


@dataclass(frozen=True)
class _ControlPoint:
    cumulative_meterset_weight: float
    jaw_x_mm: tuple[float, float]
    jaw_y_mm: tuple[float, float]
    mlc_mm: NDArray[np.float64]  # (2, pairs): bank A, bank B


@dataclass(frozen=True)
class _PlanBeam:
    devices: tuple[_Device, ...]
    control_points: tuple[_ControlPoint, ...]


@dataclass(frozen=True, eq=False)
class MlcField:
    """An MLC-modulated field: a beam's control points, with its fluence from the shared head model.

    Parameters
    ----------
    name : str
        Label for manifests and metadata ("sns 10x10").
    plan_beam : object
        An :class:`intrepid.dicom.Beam` (or any object with ``control_points`` and ``devices`` as
        :func:`intrepid.physics.beam_fluence` reads them).
    leaf_transmission : float or None
        Leaf transmission of this delivery (None: the :class:`intrepid.physics.LinacHead` default, 1.5 %);
        the generators draw it in 1.5–2 % (LoSasso et al. 1998 Med Phys 25:1919 [recall]).
    dosimetric_leaf_gap_mm : float or None
        Rounded-leaf-end dosimetric leaf gap (None: the head default, 1.6 mm); drawn in 1.5–2.0 mm.
    tongue_groove_mm : float or None
        Effective tongue-and-groove width (None: the head default, 0.6 mm); drawn in 0.4–1.0 mm (Deng et al.
        2001 Phys Med Biol 46:1039 [recall]).
    """

    name: str
    plan_beam: Any = field(repr=False)
    leaf_transmission: float | None = None
    dosimetric_leaf_gap_mm: float | None = None
    tongue_groove_mm: float | None = None

    @classmethod
    def from_rtplan_beam(cls, beam: Any, name: str | None = None) -> MlcField:
        """Wrap a beam read by :func:`intrepid.dicom.read_rtplan` (collimator 0 is assumed)."""
        if len(tuple(getattr(beam, "control_points", ()))) < 2:
            raise ParameterError("the RTPLAN beam needs at least 2 control points")
        return cls(name or f"rtplan {getattr(beam, 'name', '')}".strip(), beam)

    @property
    def bounds_mm(self) -> tuple[float, float, float, float]:
        """Union of the jaw openings over the control points (mm at the isocentre)."""
        xs: list[float] = []
        ys: list[float] = []
        for cp in self.plan_beam.control_points:
            jx = getattr(cp, "jaw_x_mm", None) or (-200.0, 200.0)
            jy = getattr(cp, "jaw_y_mm", None) or (-200.0, 200.0)
            xs += list(jx)
            ys += list(jy)
        return (min(xs), max(xs), min(ys), max(ys))

    def fluence(self, beam: BeamModel, u_mm: Any, v_mm: Any) -> NDArray[np.float64]:
        """Relative energy fluence on a grid of isocentre-plane coordinates (u along rows' columns, v rows).

        Normalised like :meth:`intrepid.physics.BeamModel.in_air_fluence` (the open 10 × 10 cm² on-axis
        value of ``beam``), so open and MLC fields share one scale.
        """
        from intrepid.physics._fluence import beam_fluence

        u = np.asarray(u_mm, dtype=float).reshape(-1)
        v = np.asarray(v_mm, dtype=float).reshape(-1)
        # the head model on a grid of FLUENCE_GRID_MM (its cost grows with the pixel count and the
        # extra-focal blur length), then bilinear interpolation to the requested points
        step = FLUENCE_GRID_MM
        xc = np.arange(u.min() - step, u.max() + 2 * step, step)
        yc = np.arange(v.min() - step, v.max() + 2 * step, step)
        coarse = beam_fluence(
            self.plan_beam, xc, yc,
            head=_head(beam, self.leaf_transmission, self.dosimetric_leaf_gap_mm, self.tongue_groove_mm),
        )
        iy = (v - yc[0]) / step
        ix = (u - xc[0]) / step
        out = map_coordinates(coarse, np.meshgrid(iy, ix, indexing="ij"), order=1, mode="nearest")
        return np.asarray(out * _reference(beam), dtype=float)


@lru_cache(maxsize=16)
def _head(beam: BeamModel, transmission: float | None, dlg_mm: float | None, tg_mm: float | None) -> Any:
    from intrepid.physics._fluence import LinacHead

    changes: dict[str, float] = {}
    if transmission is not None:
        changes["leaf_transmission"] = transmission
    if dlg_mm is not None:
        changes["dosimetric_leaf_gap_mm"] = dlg_mm
    if tg_mm is not None:
        changes["tongue_groove_mm"] = tg_mm
    return LinacHead(spectrum=beam, sad_mm=beam.sad_mm, **changes)


@lru_cache(maxsize=4)
def _reference(beam: BeamModel) -> float:
    return float(beam.in_air_fluence(Field.square(10.0), 0.0, 0.0))


def _mlcx() -> Any:
    from intrepid.dicom import BeamLimitingDeviceType

    return BeamLimitingDeviceType.MLCX


def _check_jaws(jaw_x_mm: tuple[float, float], jaw_y_mm: tuple[float, float]) -> None:
    for name, (a, b) in (("jaw_x_mm", jaw_x_mm), ("jaw_y_mm", jaw_y_mm)):
        if not (math.isfinite(a) and math.isfinite(b) and -200.0 <= a < b <= 200.0):
            raise ParameterError(f"{name} must satisfy -200 <= lo < hi <= 200 mm, got {(a, b)}")


def _smooth(rng: np.random.Generator, n: int, sigma: float) -> NDArray[np.float64]:
    z = gaussian_filter1d(rng.standard_normal(n + 8), sigma, mode="nearest")[4:-4]
    return np.asarray(z / max(float(z.std()), 1e-9), dtype=float)


def _beam(cps: list[_ControlPoint]) -> _PlanBeam:
    dev = _Device(_mlcx(), np.asarray(MILLENNIUM_BOUNDARIES_MM))
    return _PlanBeam((dev,), tuple(cps))


def _pair_centres() -> NDArray[np.float64]:
    b = np.asarray(MILLENNIUM_BOUNDARIES_MM)
    return 0.5 * (b[:-1] + b[1:])


def step_and_shoot_field(
    rng: np.random.Generator, jaw_x_mm: tuple[float, float], jaw_y_mm: tuple[float, float],
    n_segments: int | None = None, name: str = "sns",
) -> MlcField:
    """Step-and-shoot IMRT: ``n_segments`` (default 3–7) static segments of random smooth openings."""
    _check_jaws(jaw_x_mm, jaw_y_mm)
    n_seg = int(rng.integers(3, 8)) if n_segments is None else int(n_segments)
    if n_seg < 1:
        raise ParameterError(f"n_segments must be >= 1, got {n_segments}")
    y = _pair_centres()
    npairs = y.size
    x1, x2 = jaw_x_mm
    width = x2 - x1
    weights = rng.uniform(0.3, 1.0, n_seg)
    cum = np.concatenate([[0.0], np.cumsum(weights / weights.sum())])
    cps: list[_ControlPoint] = []
    for k in range(n_seg):
        centre = 0.5 * (x1 + x2) + 0.25 * width * _smooth(rng, npairs, 4.0)
        half = width * (0.15 + 0.3 * rng.random()) * np.clip(1.0 + 0.5 * _smooth(rng, npairs, 3.0), 0.0, 2.0)
        a = np.clip(centre - half, x1 - 5.0, x2)
        b = np.clip(centre + half, x1, x2 + 5.0)
        closed = b - a < 2.0
        mid = 0.5 * (a + b)
        a = np.where(closed, mid - _MIN_GAP_MM / 2, a)
        b = np.where(closed, mid + _MIN_GAP_MM / 2, b)
        leaves = np.stack([a, b])
        cps.append(_ControlPoint(float(cum[k]), jaw_x_mm, jaw_y_mm, leaves))
        cps.append(_ControlPoint(float(cum[k + 1]), jaw_x_mm, jaw_y_mm, leaves))
    return MlcField(name, _beam(cps))


def sliding_window_field(
    rng: np.random.Generator, jaw_x_mm: tuple[float, float], jaw_y_mm: tuple[float, float],
    n_control_points: int = 16, name: str = "sw",
) -> MlcField:
    """Sliding-window IMRT: both banks sweep from x1 to x2 with a gap that varies per pair and in time."""
    _check_jaws(jaw_x_mm, jaw_y_mm)
    n = int(n_control_points)
    if n < 2:
        raise ParameterError(f"n_control_points must be >= 2, got {n_control_points}")
    y = _pair_centres()
    x1, x2 = jaw_x_mm
    t = np.linspace(0.0, 1.0, n)
    gap0 = rng.uniform(5.0, 40.0)
    profile = np.clip(1.0 + 0.6 * _smooth(rng, y.size, 3.0), 0.2, 2.5)  # per-pair intensity scale
    cps: list[_ControlPoint] = []
    for k in range(n):
        wobble = 1.0 + 0.4 * math.sin(2 * math.pi * (t[k] * rng.uniform(1, 3) + rng.random()))
        gap = np.clip(gap0 * profile * wobble, _MIN_GAP_MM, 80.0)
        lead = x1 - gap + t[k] * (x2 - x1 + gap)
        b = np.clip(lead + gap, x1 - 10.0, x2 + 10.0)
        a = np.clip(lead, x1 - 10.0, x2 + 10.0)
        a = np.minimum(a, b - _MIN_GAP_MM)
        cps.append(_ControlPoint(float(t[k]), jaw_x_mm, jaw_y_mm, np.stack([a, b])))
    del y
    return MlcField(name, _beam(cps))


def dynamic_field(
    rng: np.random.Generator, jaw_x_mm: tuple[float, float], jaw_y_mm: tuple[float, float],
    n_control_points: int | None = None, name: str = "dyn",
) -> MlcField:
    """VMAT-like control points: each bank follows a smooth random trajectory inside the jaws."""
    _check_jaws(jaw_x_mm, jaw_y_mm)
    n = int(rng.integers(12, 25)) if n_control_points is None else int(n_control_points)
    if n < 2:
        raise ParameterError(f"n_control_points must be >= 2, got {n_control_points}")
    y = _pair_centres()
    x1, x2 = jaw_x_mm
    width = x2 - x1
    base_c = 0.5 * (x1 + x2) + 0.2 * width * _smooth(rng, y.size, 4.0)
    base_h = width * rng.uniform(0.15, 0.4) * np.clip(1 + 0.4 * _smooth(rng, y.size, 3.0), 0.1, 2.0)
    w = np.cumsum(rng.uniform(0.5, 1.5, n))
    w = (w - w[0]) / (w[-1] - w[0])  # varying dose rate between control points
    drift_c = 0.15 * width * np.sin(2 * np.pi * (np.linspace(0, 1, n)[:, None] * rng.uniform(0.5, 2.0)
                                                 + rng.random(y.size)[None, :]))  # fmt: skip
    cps: list[_ControlPoint] = []
    for k in range(n):
        c = base_c + drift_c[k]
        h = base_h * (0.7 + 0.3 * math.cos(2 * math.pi * k / n))
        a = np.clip(c - h, x1 - 5.0, x2)
        b = np.clip(c + h, x1, x2 + 5.0)
        a = np.minimum(a, b - _MIN_GAP_MM)
        cps.append(_ControlPoint(float(w[k]), jaw_x_mm, jaw_y_mm, np.stack([a, b])))
    return MlcField(name, _beam(cps))


def generate_mlc_field(
    kind: MlcKind | str, x_cm: float, y_cm: float, rng: np.random.Generator
) -> MlcField:
    """A generated MLC field of ``kind`` inside symmetric jaws of ``x_cm`` × ``y_cm`` (name "sns 10x10")."""
    k = MlcKind(kind) if not isinstance(kind, MlcKind) else kind
    for name, v in (("x_cm", x_cm), ("y_cm", y_cm)):
        if not (math.isfinite(v) and 1.0 <= v <= 40.0):
            raise ParameterError(f"{name} must be in [1, 40] cm, got {v}")
    jx = (-5.0 * x_cm, 5.0 * x_cm)
    jy = (-5.0 * y_cm, 5.0 * y_cm)
    label = f"{k.value} {x_cm:g}x{y_cm:g}"
    if k is MlcKind.STEP_AND_SHOOT:
        f = step_and_shoot_field(rng, jx, jy, name=label)
    elif k is MlcKind.SLIDING_WINDOW:
        f = sliding_window_field(rng, jx, jy, name=label)
    else:
        f = dynamic_field(rng, jx, jy, name=label)
    # the MLC's dosimetric properties, drawn within their published ranges (rounded to share head models)
    return replace(
        f,
        leaf_transmission=round(float(rng.uniform(0.015, 0.02)), 4),
        dosimetric_leaf_gap_mm=round(float(rng.uniform(1.5, 2.0)), 2),
        tongue_groove_mm=round(float(rng.uniform(0.4, 1.0)), 2),
    )
