"""DVHs of contoured analytic solids in linear dose gradients against closed-form truth (Nelms et al. 2015).

The set (:func:`analytic_cases`): spheres, cylinders and cones, upright (axis along z) and rotated (cylinder
axis along x, cone axis along y), 0.2-30 cm³, contoured on 2 or 3 mm axial planes, in linear dose gradients
along the superior-inferior (z) and anterior-posterior (y) axes, on 1, 2 and 3 mm dose grids: 60 cases, 300
comparisons (volume, Dmean, Dmax, Dmin, D95).

**Truth as contoured.** Each solid is cut by the contour planes ``z_k`` (those where its section is not
empty); the structure is the solid between the first and last plane plus end caps: the outermost sections
extruded half a plane spacing outwards (the convention of Nelms et al. 2015, Med Phys 42:4435,
doi:10.1118/1.4923175). Its sections ``S(z)`` are closed-form (discs, rectangles, the hyperbola-bounded
sections of a cone lying along y), and so are their areas ``A(z)``, their areas above a level ``y`` and their
y extents. Volume, V(>= D), Dmean, Dmin and Dmax follow from one-dimensional integrals of these over z
(adaptive quadrature, relative error < 1e-8); D95 is the root of V(>= D) = 0.95 V. Contours are polygons of
256 vertices scaled to the exact section area.

Dose: ``D = 35 Gy + 1 Gy/mm × (u - u_c)`` with ``u`` = z or y and ``u_c`` the solid's centre: 1 Gy/mm is a
steep gradient for a structure of a few mm (a 0.2 cm³ sphere spans 26-43 Gy) and keeps every dose positive.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

from intrepid.analysis import compute_dvh
from intrepid.geometry import Grid, Quantity, Volume

D0_GY = 35.0
GRADIENT_GY_PER_MM = 1.0
N_VERTICES = 256
CENTRE_MM = (0.31, -0.57, 0.43)  # off every lattice on purpose
PLANE_OFFSET_MM = 0.17


# ---------------------------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class Shape:
    """A solid described by its axial sections S(z)."""

    kind: str
    z_lo: float
    z_hi: float
    area: Callable[[float], float]
    area_above: Callable[[float, float], float]  # area of S(z) with y >= t
    y_range: Callable[[float], tuple[float, float]]
    outline: Callable[[float], np.ndarray]  # polygon (n, 2) of S(z), exact area


def _disc_outline(cx: float, cy: float, r: float) -> np.ndarray:
    t = np.arange(N_VERTICES) * 2 * np.pi / N_VERTICES
    scale = math.sqrt(2 * np.pi / (N_VERTICES * math.sin(2 * np.pi / N_VERTICES)))  # polygon area = π r²
    return np.column_stack([cx + scale * r * np.cos(t), cy + scale * r * np.sin(t)])


def _segment_area(r: float, h: float) -> float:
    """Area of the part of a disc of radius r within height h of its top (0 <= h <= 2r)."""
    h = min(max(h, 0.0), 2 * r)
    return r * r * math.acos((r - h) / r) - (r - h) * math.sqrt(max(2 * r * h - h * h, 0.0))


def _disc_shape(kind: str, radius_at: Callable[[float], float], z_lo: float, z_hi: float) -> Shape:
    cx, cy, _ = CENTRE_MM
    return Shape(
        kind, z_lo, z_hi,
        lambda z: math.pi * radius_at(z) ** 2,
        lambda z, t: _segment_area(radius_at(z), cy + radius_at(z) - t) if radius_at(z) > 0 else 0.0,
        lambda z: (cy - radius_at(z), cy + radius_at(z)),
        lambda z: _disc_outline(cx, cy, radius_at(z)),
    )


def sphere(volume_cc: float) -> Shape:
    r = (3 * volume_cc * 1000 / (4 * math.pi)) ** (1 / 3)
    cz = CENTRE_MM[2]
    return _disc_shape("sphere", lambda z: math.sqrt(max(r * r - (z - cz) ** 2, 0.0)), cz - r, cz + r)


def cylinder(volume_cc: float) -> Shape:
    """Upright cylinder, length = diameter."""
    r = (volume_cc * 1000 / (2 * math.pi)) ** (1 / 3)
    cz = CENTRE_MM[2]
    return _disc_shape("cylinder", lambda z: r if abs(z - cz) <= r else 0.0, cz - r, cz + r)


def cone(volume_cc: float) -> Shape:
    """Upright cone, base (inferior) radius R, height 2R, apex superior."""
    rb = (3 * volume_cc * 1000 / (2 * math.pi)) ** (1 / 3)
    h = 2 * rb
    zb = CENTRE_MM[2] - rb
    return _disc_shape("cone", lambda z: rb * (zb + h - z) / h if zb <= z <= zb + h else 0.0, zb, zb + h)


def cylinder_rotated(volume_cc: float) -> Shape:
    """Cylinder lying along x (length = diameter): rectangular sections."""
    r = (volume_cc * 1000 / (2 * math.pi)) ** (1 / 3)
    cx, cy, cz = CENTRE_MM

    def w(z: float) -> float:
        return math.sqrt(max(r * r - (z - cz) ** 2, 0.0))

    def outline(z: float) -> np.ndarray:
        return np.array([[cx - r, cy - w(z)], [cx + r, cy - w(z)], [cx + r, cy + w(z)], [cx - r, cy + w(z)]])

    return Shape(
        "cylinder_rotated", cz - r, cz + r,
        lambda z: 2 * r * 2 * w(z),
        lambda z, t: 2 * r * min(max(cy + w(z) - t, 0.0), 2 * w(z)),
        lambda z: (cy - w(z), cy + w(z)),
        outline,
    )


def cone_rotated(volume_cc: float) -> Shape:
    """Cone lying along y: base radius R at y = y_c - R (posterior... + y side is the apex), height 2R."""
    rb = (3 * volume_cc * 1000 / (2 * math.pi)) ** (1 / 3)
    h = 2 * rb
    cx, cy, cz = CENTRE_MM
    yb, ya = cy - rb, cy + rb
    k = rb / h  # radius per mm of height

    def top(z: float) -> float:
        return ya - abs(z - cz) / k

    def big_f(u: float, c: float) -> float:  # ∫ sqrt(u² - c²) du
        s = math.sqrt(max(u * u - c * c, 0.0))
        return 0.5 * (u * s - (c * c * math.log((u + s) / c) if c > 0 else 0.0))

    def area_above(z: float, t: float) -> float:
        c = abs(z - cz)
        if c >= rb:
            return 0.0
        lo = max(t, yb)
        if lo >= top(z):
            return 0.0
        u_hi = k * (ya - lo)
        return 2.0 / k * (big_f(u_hi, c) - big_f(c, c))

    def outline(z: float) -> np.ndarray:
        c = abs(z - cz)
        hw = math.sqrt(max((k * (ya - yb)) ** 2 - c * c, 0.0))
        xs = np.linspace(hw, -hw, N_VERTICES)
        ys = ya - np.sqrt(xs * xs + c * c) / k
        poly = np.column_stack([cx + xs, ys])  # curved edge from +x to -x, then back along y = yb
        area = abs(0.5 * float(np.dot(poly[:, 0], np.roll(poly[:, 1], -1))
                                - np.dot(np.roll(poly[:, 0], -1), poly[:, 1])))
        exact = area_above(z, yb)
        # scale about the base-line centre so that the polygon's area is the section's exact area
        f = math.sqrt(exact / area)
        return np.column_stack([cx + (poly[:, 0] - cx) * f, yb + (poly[:, 1] - yb) * f])

    return Shape(
        "cone_rotated", cz - rb, cz + rb,
        lambda z: area_above(z, yb),
        area_above,
        lambda z: (yb, top(z)),
        outline,
    )


SHAPES = {"sphere": sphere, "cylinder": cylinder, "cone": cone, "cylinder_rotated": cylinder_rotated,
          "cone_rotated": cone_rotated}


# ---------------------------------------------------------------------------------------------- truth
@dataclass(frozen=True)
class Case:
    shape: str
    volume_cc: float
    slice_mm: float
    grid_mm: float
    gradient: str  # "z" (superior-inferior) or "y" (anterior-posterior)

    @property
    def label(self) -> str:
        return (f"{self.shape}-{self.volume_cc}cc-{self.slice_mm:g}mm-slices-{self.grid_mm:g}mm-grid-"
                f"{self.gradient}")


def planes(shape: Shape, slice_mm: float) -> np.ndarray:
    k0 = math.floor((shape.z_lo - PLANE_OFFSET_MM) / slice_mm)
    k1 = math.ceil((shape.z_hi - PLANE_OFFSET_MM) / slice_mm)
    z = PLANE_OFFSET_MM + slice_mm * np.arange(k0, k1 + 1)
    return np.array([zz for zz in z if shape.area(float(zz)) > 1e-3])


def truth(shape: Shape, z_planes: np.ndarray, slice_mm: float, gradient: str) -> dict[str, float]:
    """Closed-form volume (cm³), Dmean, Dmin, Dmax and D95 (Gy) of the contoured structure."""
    z1, zn = float(z_planes[0]), float(z_planes[-1])
    half = 0.5 * slice_mm
    cz = CENTRE_MM[2]
    cy = CENTRE_MM[1]
    g = GRADIENT_GY_PER_MM
    opts = {"epsabs": 1e-9, "epsrel": 1e-9, "limit": 200}
    brk = [cz, shape.z_lo, shape.z_hi]

    def integral(f: Callable[[float], float]) -> float:
        inner = quad(f, z1, zn, points=[p for p in brk if z1 < p < zn], **opts)[0] if zn > z1 else 0.0
        return inner + half * (f(z1) + f(zn))

    vol = integral(shape.area)
    if gradient == "z":
        def dose_z(z: float) -> float:
            return D0_GY + g * (z - cz)

        def v_above(d: float) -> float:
            zd = cz + (d - D0_GY) / g
            v = quad(shape.area, max(zd, z1), zn, **opts)[0] if zd < zn else 0.0
            v += shape.area(z1) * min(max(z1 - zd, 0.0), half)
            v += shape.area(zn) * min(max(zn + half - max(zd, zn), 0.0), half)
            return v

        moment = integral(lambda z: dose_z(z) * shape.area(z))
        # caps: their centroids sit a quarter spacing beyond the end planes, not on them
        moment += half * g * 0.5 * half * (shape.area(zn) - shape.area(z1))
        dmin, dmax = dose_z(z1 - half), dose_z(zn + half)
    else:
        def v_above(d: float) -> float:
            t = cy + (d - D0_GY) / g
            return integral(lambda z: shape.area_above(z, t))

        ys = [shape.y_range(float(z)) for z in np.linspace(z1, zn, 4001)]
        ylo = min(y[0] for y in ys)
        yhi = max(y[1] for y in ys)
        # refine the extremes (smooth in z): golden-section on a bracket around the best sample
        from scipy.optimize import minimize_scalar

        for sign, idx in ((1.0, 0), (-1.0, 1)):
            res = minimize_scalar(lambda z, s=sign, i=idx: s * shape.y_range(z)[i], bounds=(z1, zn),
                                  method="bounded", options={"xatol": 1e-9}) if zn > z1 else None
            if res is not None:
                if idx == 0:
                    ylo = min(ylo, float(res.fun))
                else:
                    yhi = max(yhi, -float(res.fun))
        dmin, dmax = D0_GY + g * (ylo - cy), D0_GY + g * (yhi - cy)
        mean_above = quad(v_above, dmin, dmax, epsabs=1e-9, epsrel=1e-9, limit=200)[0]
        moment = dmin * vol + mean_above
    dx = {f"d{p}_gy": brentq(lambda d, f=p / 100: v_above(d) - f * vol, dmin, dmax, xtol=1e-10)
          for p in (98, 95, 2)}
    return {"volume_cc": vol / 1000, "mean_gy": moment / vol, "min_gy": dmin, "max_gy": dmax, **dx}


# ---------------------------------------------------------------------------------------------- the set
SMALL_CC = {1.0: 0.2, 2.0: 0.5, 3.0: 1.0}
LARGE_CC = {1.0: 5.0, 2.0: 15.0, 3.0: 30.0}


def analytic_cases() -> list[Case]:
    """60 cases: 5 shapes × 2 gradients × 3 dose grids × (small, large); 2 or 3 mm planes alternate."""
    out = []
    for s_idx, shape in enumerate(SHAPES):
        for g_idx, grid_mm in enumerate((1.0, 2.0, 3.0)):
            for size_idx, vols in enumerate((SMALL_CC, LARGE_CC)):
                slice_mm = 3.0 if (s_idx + g_idx + size_idx) % 2 == 0 else 2.0
                for gradient in ("z", "y"):
                    out.append(Case(shape, vols[grid_mm], slice_mm, grid_mm, gradient))
    return out


@dataclass(frozen=True)
class _Contour:
    points_mm: np.ndarray


@dataclass(frozen=True)
class _Roi:
    name: str
    number: int
    contours: tuple[_Contour, ...]


def build(case: Case) -> tuple[_Roi, Volume, dict[str, float]]:
    """The case's ROI (contours), its dose Volume and the truth."""
    shape = SHAPES[case.shape](case.volume_cc)
    zp = planes(shape, case.slice_mm)
    contours = []
    for z in zp:
        xy = shape.outline(float(z))
        contours.append(_Contour(np.column_stack([xy, np.full(xy.shape[0], z)])))
    roi = _Roi(case.label, 1, tuple(contours))
    pts = np.concatenate([c.points_mm for c in contours])
    lo = pts.min(axis=0) - 2 * case.slice_mm - 4.0 - 0.37
    hi = pts.max(axis=0) + 2 * case.slice_mm + 4.0
    grid = Grid.from_bounds(tuple(lo), tuple(hi), (case.grid_mm,) * 3)
    p = grid.world_points()
    axis = 2 if case.gradient == "z" else 1
    dose = D0_GY + GRADIENT_GY_PER_MM * (p[..., axis] - CENTRE_MM[axis])
    vol = Volume(dose, grid, Quantity.DOSE, "Gy")
    return roi, vol, truth(shape, zp, case.slice_mm, case.gradient)


QUANTITIES = ("volume_cc", "mean_gy", "max_gy", "min_gy", "d95_gy")


def ours(roi: _Roi, dose: Volume) -> dict[str, float]:
    dvh = compute_dvh(dose, roi)
    return {"volume_cc": dvh.volume_cc, "mean_gy": dvh.mean_gy, "max_gy": dvh.max_gy, "min_gy": dvh.min_gy,
            "d98_gy": dvh.dose_at_volume_percent(98.0), "d95_gy": dvh.dose_at_volume_percent(95.0),
            "d2_gy": dvh.dose_at_volume_percent(2.0)}


# ---------------------------------------------------------------------------------------------- tests
def test_truth_closed_forms_agree_with_the_solids() -> None:
    # On fine planes the contoured structure tends to the solid: its volume and (by symmetry) Dmean.
    for name, fn in SHAPES.items():
        shape = fn(10.0)
        zp = planes(shape, 0.05)
        t = truth(shape, zp, 0.05, "z")
        assert t["volume_cc"] == pytest.approx(10.0, rel=2e-3), name
    t = truth(sphere(10.0), planes(sphere(10.0), 0.05), 0.05, "y")
    assert t["mean_gy"] == pytest.approx(D0_GY, abs=1e-6)
    r = (3 * 10000 / (4 * math.pi)) ** (1 / 3)
    assert t["max_gy"] == pytest.approx(D0_GY + r, abs=1e-6)
    # Cylinder lying along x in a y gradient: a disc cross-section, D95 from the segment area.
    rc = (10000 / (2 * math.pi)) ** (1 / 3)
    tc = truth(cylinder_rotated(10.0), planes(cylinder_rotated(10.0), 0.05), 0.05, "y")
    h = brentq(lambda hh: _segment_area(rc, hh) - 0.95 * math.pi * rc * rc, 0, 2 * rc)
    assert tc["d95_gy"] == pytest.approx(D0_GY + rc - h, abs=0.02)


def test_analytic_set_within_3_percent() -> None:
    """At most 10 of the 300 comparisons off by more than 3 % (issue 13); volumes all within 3 %."""
    cases = analytic_cases()
    assert len(cases) == 60
    failures, extra = [], []
    worst = dict.fromkeys((*QUANTITIES, "d98_gy", "d2_gy"), 0.0)
    for case in cases:
        roi, dose, t = build(case)
        o = ours(roi, dose)
        for q in worst:
            err = abs(o[q] - t[q]) / abs(t[q])
            worst[q] = max(worst[q], err)
            if err > 0.03:
                msg = f"{case.label} {q}: {o[q]:.4f} vs {t[q]:.4f} ({100 * err:.1f} %)"
                (failures if q in QUANTITIES else extra).append(msg)
    assert len(failures) <= 10, "\n".join(failures)
    assert worst["volume_cc"] < 0.03, worst
    # D98 and D2 (not among the 300, asked for by the issue too): observed worst 1.3 % and 0.6 %
    assert not extra, "\n".join(extra)


@pytest.mark.parametrize("case", [c for c in analytic_cases() if c.volume_cc <= 0.5], ids=lambda c: c.label)
def test_small_structures_volume_within_3_percent(case: Case) -> None:
    roi, dose, t = build(case)
    assert ours(roi, dose)["volume_cc"] == pytest.approx(t["volume_cc"], rel=0.03)
