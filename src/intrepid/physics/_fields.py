"""Radiation fields (apertures) at the isocentre plane, with a smooth jaw / leaf penumbra.

A :class:`Field` describes the opening of the beam-limiting devices projected to the isocentre plane, in mm,
in the beam's-eye view at collimator 0: ``u`` along IEC X_b (crossplane, "x" jaws) and ``v`` along IEC Y_b
(inplane, towards the gantry, "y" jaws).

The relative fluence behind the collimator is the aperture indicator blurred by the projected focal spot:
for a Gaussian source of standard deviation σ_s at the target and a collimator edge at distance z_c from
the source, the edge image at the isocentre plane is a Gaussian-blurred step of σ = σ_s (SAD − z_c) / z_c
(geometric penumbra; Jaffray et al. 1993 (Med Phys 20:1417) [recall]). A blurred straight edge is an error
function; its 80 %–20 % width is 2 · 0.8416 σ = 1.683 σ. ``penumbra_mm`` everywhere in this module is that
80–20 % width at the isocentre plane.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from intrepid.errors import ParameterError

__all__ = ["Field", "FieldShape"]

#: Ratio of the 80 %–20 % width of an error-function edge to its Gaussian σ: 2 · Φ⁻¹(0.8).
PENUMBRA_80_20_PER_SIGMA = 1.6832424671458286
#: Largest field dimension accepted (cm at the isocentre): a 40 × 40 cm² jaw opening.
MAX_FIELD_CM = 40.0


class FieldShape(enum.Enum):
    """How the aperture of a :class:`Field` is described."""

    RECTANGLES = "rectangles"  #: a union of disjoint axis-aligned rectangles (jaws, MLC leaf pairs)
    ELLIPSE = "ellipse"  #: an ellipse centred on the axis
    POLYGON = "polygon"  #: an arbitrary simple polygon


def _check_size_cm(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0 or v > MAX_FIELD_CM:
        raise ParameterError(f"{name} must be > 0 and <= {MAX_FIELD_CM} cm, got {value}")
    return v


def _fmt_cm(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Field:
    """An aperture at the isocentre plane (mm, beam's-eye view at collimator 0).

    Build it with :meth:`square`, :meth:`rectangle`, :meth:`ellipse`, :meth:`from_polygon` or
    :meth:`from_jaws_and_mlc` rather than directly.

    Parameters
    ----------
    name : str
        Label used in manifests and metadata ("10x10", "2x10", "ellipse 6x10", "mlc").
    shape : FieldShape
        Which of the geometric descriptions below is used.
    rectangles_mm : tuple of (u1, u2, v1, v2)
        Disjoint rectangles (mm) whose union is the aperture, for ``FieldShape.RECTANGLES``.
    semi_axes_mm : (float, float)
        Semi-axes (a along u, b along v) in mm, for ``FieldShape.ELLIPSE``.
    vertices_mm : tuple of (u, v)
        Polygon vertices in mm, for ``FieldShape.POLYGON``.

    Examples
    --------
    >>> f = Field.rectangle(2, 10)
    >>> f.name, f.width_mm, f.length_mm
    ('2x10', 20.0, 100.0)
    >>> round(float(f.relative_fluence(0.0, 0.0)), 6)
    1.0
    """

    name: str
    shape: FieldShape
    rectangles_mm: tuple[tuple[float, float, float, float], ...] = ()
    semi_axes_mm: tuple[float, float] = (0.0, 0.0)
    vertices_mm: tuple[tuple[float, float], ...] = ()

    # ------------------------------------------------------------------ constructors
    @classmethod
    def square(cls, side_cm: float) -> Field:
        """A square field of ``side_cm`` × ``side_cm`` cm² centred on the axis (name "10x10")."""
        s = _check_size_cm("side_cm", side_cm)
        h = 5.0 * s
        return cls(f"{_fmt_cm(s)}x{_fmt_cm(s)}", FieldShape.RECTANGLES, ((-h, h, -h, h),))

    @classmethod
    def rectangle(cls, x_cm: float, y_cm: float) -> Field:
        """A rectangle ``x_cm`` (crossplane, IEC x) by ``y_cm`` (inplane, IEC y) cm², centred ("2x10")."""
        x = _check_size_cm("x_cm", x_cm)
        y = _check_size_cm("y_cm", y_cm)
        return cls(f"{_fmt_cm(x)}x{_fmt_cm(y)}", FieldShape.RECTANGLES, ((-5 * x, 5 * x, -5 * y, 5 * y),))

    @classmethod
    def ellipse(cls, x_cm: float, y_cm: float) -> Field:
        """An ellipse of full axes ``x_cm`` (crossplane) and ``y_cm`` (inplane) cm, centred on the axis."""
        x = _check_size_cm("x_cm", x_cm)
        y = _check_size_cm("y_cm", y_cm)
        return cls(f"ellipse {_fmt_cm(x)}x{_fmt_cm(y)}", FieldShape.ELLIPSE, semi_axes_mm=(5 * x, 5 * y))

    @classmethod
    def from_polygon(cls, points_mm: ArrayLike, name: str = "polygon") -> Field:
        """A field bounded by a simple polygon, vertices ``(u, v)`` in mm at the isocentre plane.

        Parameters
        ----------
        points_mm : array_like, shape (n, 2)
            At least 3 vertices, in order (either orientation); the polygon must not self-intersect.
        """
        import shapely

        pts = np.asarray(points_mm, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 3:
            raise ParameterError(f"points_mm must have shape (n >= 3, 2), got {pts.shape}")
        if not np.all(np.isfinite(pts)):
            raise ParameterError("points_mm must be finite")
        if np.max(np.abs(pts)) > 5 * MAX_FIELD_CM * 1.5:
            raise ParameterError(f"points_mm must lie within ±{7.5 * MAX_FIELD_CM:g} mm of the axis")
        poly = shapely.Polygon(pts)
        if not poly.is_valid or poly.area <= 0:
            raise ParameterError("points_mm must describe a simple polygon of positive area")
        return cls(name, FieldShape.POLYGON, vertices_mm=tuple((float(a), float(b)) for a, b in pts))

    @classmethod
    def from_jaws_and_mlc(
        cls,
        x1_mm: float,
        x2_mm: float,
        y1_mm: float,
        y2_mm: float,
        leaf_boundaries_mm: Sequence[float] | None = None,
        leaf_positions_mm: ArrayLike | None = None,
        name: str = "mlc",
    ) -> Field:
        """The aperture of jaws and an MLC whose leaves move along x (MLCX), as in an RTPLAN control point.

        Parameters
        ----------
        x1_mm, x2_mm, y1_mm, y2_mm : float
            Jaw positions at the isocentre plane (ASYMX / ASYMY, mm), ``x1 < x2``, ``y1 < y2``.
        leaf_boundaries_mm : sequence of float, optional
            Leaf Position Boundaries (300A,00BE): n + 1 increasing y values (mm) of n leaf pairs.
        leaf_positions_mm : array_like, optional
            Leaf/Jaw Positions (300A,011C) of the MLCX: 2 n values, first the n bank-A (x1 side) then the n
            bank-B (x2 side) leaf tips, in mm at the isocentre plane.

        Notes
        -----
        Each open leaf pair gives the rectangle ``[max(a, x1), min(b, x2)] × [max(y_lo, y1), min(y_hi, y2)]``.
        """
        x1, x2, y1, y2 = (float(v) for v in (x1_mm, x2_mm, y1_mm, y2_mm))
        if not all(math.isfinite(v) for v in (x1, x2, y1, y2)):
            raise ParameterError(f"jaw positions must be finite, got {(x1, x2, y1, y2)}")
        if not (x1 < x2 and y1 < y2):
            raise ParameterError(f"jaws must satisfy x1 < x2 and y1 < y2, got x {x1}, {x2} and y {y1}, {y2}")
        if leaf_boundaries_mm is None or leaf_positions_mm is None:
            return cls(name, FieldShape.RECTANGLES, ((x1, x2, y1, y2),))
        bounds = np.asarray(leaf_boundaries_mm, dtype=float).reshape(-1)
        leaves = np.asarray(leaf_positions_mm, dtype=float).reshape(-1)
        n = bounds.size - 1
        if n < 1 or np.any(np.diff(bounds) <= 0):
            raise ParameterError("leaf_boundaries_mm must hold at least 2 strictly increasing values")
        if leaves.size != 2 * n:
            raise ParameterError(
                f"leaf_positions_mm must hold 2 x {n} values (bank A then bank B), got {leaves.size}"
            )
        if np.any(leaves[:n] > leaves[n:] + 1e-9):
            bad = int(np.argmax(leaves[:n] > leaves[n:] + 1e-9))
            raise ParameterError(
                f"leaf pair {bad + 1}: bank A position {leaves[bad]} must be <= bank B {leaves[n + bad]}"
            )
        rects = []
        for p in range(n):
            a, b = max(leaves[p], x1), min(leaves[n + p], x2)
            lo, hi = max(bounds[p], y1), min(bounds[p + 1], y2)
            if b > a and hi > lo:
                rects.append((float(a), float(b), float(lo), float(hi)))
        if not rects:
            raise ParameterError("the jaws and leaves leave no open aperture")
        return cls(name, FieldShape.RECTANGLES, tuple(rects))

    # ------------------------------------------------------------------ properties
    @property
    def bounds_mm(self) -> tuple[float, float, float, float]:
        """Bounding box ``(u_min, u_max, v_min, v_max)`` of the aperture at the isocentre plane (mm)."""
        if self.shape is FieldShape.RECTANGLES:
            r = np.asarray(self.rectangles_mm)
            return (float(r[:, 0].min()), float(r[:, 1].max()), float(r[:, 2].min()), float(r[:, 3].max()))
        if self.shape is FieldShape.ELLIPSE:
            a, b = self.semi_axes_mm
            return (-a, a, -b, b)
        p = np.asarray(self.vertices_mm)
        return (float(p[:, 0].min()), float(p[:, 0].max()), float(p[:, 1].min()), float(p[:, 1].max()))

    @property
    def width_mm(self) -> float:
        """Extent along u (crossplane) at the isocentre plane, mm."""
        b = self.bounds_mm
        return b[1] - b[0]

    @property
    def length_mm(self) -> float:
        """Extent along v (inplane) at the isocentre plane, mm."""
        b = self.bounds_mm
        return b[3] - b[2]

    @property
    def area_mm2(self) -> float:
        """Open area at the isocentre plane, mm²."""
        if self.shape is FieldShape.RECTANGLES:
            return float(sum((r[1] - r[0]) * (r[3] - r[2]) for r in self.rectangles_mm))
        if self.shape is FieldShape.ELLIPSE:
            return math.pi * self.semi_axes_mm[0] * self.semi_axes_mm[1]
        p = np.asarray(self.vertices_mm)
        return float(0.5 * abs(np.dot(p[:, 0], np.roll(p[:, 1], 1)) - np.dot(p[:, 1], np.roll(p[:, 0], 1))))

    @property
    def equivalent_square_mm(self) -> float:
        """Equivalent square side (mm): 4 · area / perimeter of the bounding rectangle (Sterling's rule)."""
        w, h = self.width_mm, self.length_mm
        if self.shape is FieldShape.RECTANGLES and len(self.rectangles_mm) == 1:
            return 2.0 * w * h / (w + h)
        return math.sqrt(self.area_mm2)

    # ------------------------------------------------------------------ fluence
    def relative_fluence(
        self, u_mm: ArrayLike, v_mm: ArrayLike, *, penumbra_mm: float = 0.0
    ) -> NDArray[np.float64]:
        """Aperture transmission (0 … 1) at isocentre-plane points, with an error-function edge.

        Parameters
        ----------
        u_mm, v_mm : array_like
            Broadcastable coordinates at the isocentre plane (mm): u crossplane (IEC x), v inplane (IEC y).
        penumbra_mm : float
            80 %–20 % width of the edge at the isocentre plane (mm); 0 gives a sharp indicator. The edge is
            the aperture convolved with a Gaussian of σ = penumbra_mm / 1.683: exact for rectangles and
            unions of disjoint rectangles (MLC), the signed-distance approximation Φ(d/σ) for ellipses and
            polygons (exact along straight edges, rounded within ~σ of corners).

        Returns
        -------
        ndarray
            Broadcast shape of ``u_mm`` and ``v_mm``.
        """
        pen = float(penumbra_mm)
        if not math.isfinite(pen) or pen < 0:
            raise ParameterError(f"penumbra_mm must be >= 0, got {penumbra_mm}")
        u, v = np.broadcast_arrays(np.asarray(u_mm, dtype=float), np.asarray(v_mm, dtype=float))
        sigma = pen / PENUMBRA_80_20_PER_SIGMA
        if self.shape is FieldShape.RECTANGLES:
            return self._rectangles(u, v, sigma)
        if self.shape is FieldShape.ELLIPSE:
            d = self._ellipse_signed_distance(u, v)
        else:
            d = self._polygon_signed_distance(u, v)
        if sigma == 0:
            return np.asarray(d >= 0, dtype=float)
        return np.asarray(ndtr(d / sigma), dtype=float)

    def _rectangles(
        self, u: NDArray[np.float64], v: NDArray[np.float64], sigma: float
    ) -> NDArray[np.float64]:
        # Separable evaluation when u and v form a grid (the common case: images), pointwise otherwise.
        separable = u.ndim == 2 and np.all(u[0:1, :] == u) and np.all(v[:, 0:1] == v)
        out = np.zeros(u.shape, dtype=float)
        uu = u[0, :] if separable else u
        vv = v[:, 0] if separable else v
        for u1, u2, v1, v2 in self.rectangles_mm:
            if sigma == 0:
                fu = ((uu >= u1) & (uu <= u2)).astype(float)
                fv = ((vv >= v1) & (vv <= v2)).astype(float)
            else:
                fu = ndtr((uu - u1) / sigma) - ndtr((uu - u2) / sigma)
                fv = ndtr((vv - v1) / sigma) - ndtr((vv - v2) / sigma)
            out += np.outer(fv, fu) if separable else fu * fv
        return out

    def _ellipse_signed_distance(self, u: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
        a, b = self.semi_axes_mm
        rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        safe = np.maximum(rho, 1e-12)
        grad = np.sqrt((u / (a * a * safe)) ** 2 + (v / (b * b * safe)) ** 2)
        d = (1.0 - rho) / np.maximum(grad, 1e-12)
        # At the centre the first-order distance degenerates; the true distance there is min(a, b).
        return np.where(rho < 1e-9, min(a, b), d)

    def _polygon_signed_distance(self, u: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
        import shapely

        poly = shapely.Polygon(self.vertices_mm)
        pts = shapely.points(u.ravel(), v.ravel())
        dist = shapely.distance(poly.exterior, pts)
        inside = shapely.contains_xy(poly, u.ravel(), v.ravel())
        return np.where(inside, dist, -dist).reshape(u.shape)
