"""design_aperture: the analytic sphere, dual source, every manipulation in order, results and drawings."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, box

from intrepid.devices import (
    ApertureCenterline,
    ApertureOrgan,
    ApertureOverride,
    AperturePlane,
    ApertureSettings,
    BeamGeometry,
    CornerPlane,
    HalfPlane,
    MillMode,
    Mount,
    OverrideMode,
    aperture_png,
    aperture_svg,
    design_aperture,
    downstream_edge_from_tray,
    project_mesh,
)
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, TriangleMesh, Volume, isosurface_mesh

SAD = 2000.0
EDGE = 300.0  # isocentre to the aperture's downstream face, mm
POINT = BeamGeometry((SAD, SAD), gantry_deg=0.0)  # HFS: source anterior (−y), beam x = patient left


def icosphere(centre: tuple[float, float, float], radius: float, levels: int = 4) -> TriangleMesh:
    """Closed sphere mesh with every vertex exactly on the sphere (outward faces)."""
    t = (1 + 5**0.5) / 2
    v = [
        (-1, t, 0),
        (1, t, 0),
        (-1, -t, 0),
        (1, -t, 0),
        (0, -1, t),
        (0, 1, t),
        (0, -1, -t),
        (0, 1, -t),
        (t, 0, -1),
        (t, 0, 1),
        (-t, 0, -1),
        (-t, 0, 1),
    ]
    f = [
        (0, 11, 5),
        (0, 5, 1),
        (0, 1, 7),
        (0, 7, 10),
        (0, 10, 11),
        (1, 5, 9),
        (5, 11, 4),
        (11, 10, 2),
        (10, 7, 6),
        (7, 1, 8),
        (3, 9, 4),
        (3, 4, 2),
        (3, 2, 6),
        (3, 6, 8),
        (3, 8, 9),
        (4, 9, 5),
        (2, 4, 11),
        (6, 2, 10),
        (8, 6, 7),
        (9, 8, 1),
    ]
    verts = [np.asarray(p, float) / np.linalg.norm(p) for p in v]
    faces = list(f)

    def mid(a: int, b: int, cache: dict[tuple[int, int], int]) -> int:
        key = (min(a, b), max(a, b))
        if key not in cache:
            m = verts[a] + verts[b]
            verts.append(m / np.linalg.norm(m))
            cache[key] = len(verts) - 1
        return cache[key]

    for _ in range(levels):
        cache: dict[tuple[int, int], int] = {}
        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b, cache), mid(b, c, cache), mid(c, a, cache)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    mesh = TriangleMesh(np.asarray(verts) * radius + np.asarray(centre), np.asarray(faces))
    return mesh if mesh.volume_mm3() > 0 else TriangleMesh(mesh.vertices_mm, mesh.faces[:, ::-1])


def cube(centre: tuple[float, float, float], half: float) -> TriangleMesh:
    g = Grid.from_bounds(np.asarray(centre) - half - 2, np.asarray(centre) + half + 2, (1.0, 1.0, 1.0))
    d = half - np.max(np.abs(g.world_points() - np.asarray(centre)), axis=-1)
    return isosurface_mesh(Volume(d, g), 0.0)


def rod(x_mm: float, y_mm: float, radius: float, half_length: float) -> TriangleMesh:
    """A cylinder along the patient's z (superior)."""
    g = Grid.from_bounds(
        (x_mm - radius - 2, y_mm - radius - 2, -half_length - 2),
        (x_mm + radius + 2, y_mm + radius + 2, half_length + 2),
        (1.0, 1.0, 1.0),
    )
    p = g.world_points()
    d = np.minimum(radius - np.hypot(p[..., 0] - x_mm, p[..., 1] - y_mm), half_length - np.abs(p[..., 2]))
    return isosurface_mesh(Volume(d, g), 0.0)


def silhouette_radius(radius: float, centre_to_source: float, plane_to_source: float) -> float:
    """BEV silhouette of a sphere: the tangent cone has sin α = R/d: a circle of radius p R/√(d² − R²)."""
    return plane_to_source * radius / math.sqrt(centre_to_source**2 - radius**2)


@pytest.fixture(scope="module")
def target() -> TriangleMesh:
    return icosphere((0.0, 0.0, 0.0), 30.0)


def _radii(geom: object) -> np.ndarray:
    c = np.asarray(geom.exterior.coords)  # type: ignore[attr-defined]
    return np.hypot(c[:, 0], c[:, 1])


def test_sphere_gives_circle_of_magnified_radius_plus_margin(target: TriangleMesh) -> None:
    margin = 5.0
    res = design_aperture(target, POINT, ApertureSettings(EDGE, target_margin_mm=margin))
    r_dev = silhouette_radius(30.0, SAD, SAD - EDGE) + margin
    # Tolerance 0.03 mm: the icosphere (level 4) is inscribed in the sphere, its silhouette is short by at
    # most R (1 − cos 2.3°) ≈ 0.024 mm (× 0.85 at the plane); the 16-chord margin arcs add ≤ 0.006 mm.
    radii = _radii(res.opening_device)
    assert radii.max() == pytest.approx(r_dev, abs=0.03) and radii.min() == pytest.approx(r_dev, abs=0.03)
    r_iso = r_dev * SAD / (SAD - EDGE)
    assert _radii(res.opening_iso).max() == pytest.approx(r_iso, abs=0.04)
    assert res.area_iso_mm2 == pytest.approx(math.pi * r_iso**2, rel=3e-3)
    assert res.area_device_mm2 == pytest.approx(math.pi * r_dev**2, rel=3e-3)
    assert res.perimeter_mm == pytest.approx(2 * math.pi * r_dev, rel=2e-3)
    fr = res.field_rectangle_iso
    assert fr is not None and fr.width_mm == pytest.approx(2 * r_iso, abs=0.08)
    assert res.warnings == () and res.islands_removed == 0


def test_sphere_off_isocentre_along_the_axis() -> None:
    """A sphere 150 mm upstream (towards the source) is magnified more: d = SAD − 150."""
    res = design_aperture(icosphere((0.0, -150.0, 0.0), 20.0), POINT, ApertureSettings(EDGE))
    expected = silhouette_radius(20.0, SAD - 150.0, SAD - EDGE)
    assert _radii(res.opening_device).max() == pytest.approx(expected, abs=0.03)


def test_dual_source_extents_follow_each_distance(target: TriangleMesh) -> None:
    sx, sy = 1800.0, 2200.0
    dual = BeamGeometry((sx, sy))
    proj = project_mesh(target, dual, EDGE)
    x0, y0, x1, y1 = proj.bounds
    # each axis sees the 2D tangent from its own source: half-extent (SAD_a − z_p) R / √(SAD_a² − R²)
    assert x1 == pytest.approx(silhouette_radius(30.0, sx, sx - EDGE), abs=0.03)
    assert y1 == pytest.approx(silhouette_radius(30.0, sy, sy - EDGE), abs=0.03)
    assert -x0 == pytest.approx(x1, abs=1e-6) and -y0 == pytest.approx(y1, abs=1e-6)
    # the isocentre-plane opening scales by SAD_a/(SAD_a − z_p) per axis
    res = design_aperture(target, dual, ApertureSettings(EDGE))
    assert res.scale_to_iso == pytest.approx((sx / (sx - EDGE), sy / (sy - EDGE)), rel=1e-14)
    assert res.opening_iso.bounds[2] == pytest.approx(x1 * sx / (sx - EDGE), rel=1e-12)
    assert res.opening_iso.bounds[3] == pytest.approx(y1 * sy / (sy - EDGE), rel=1e-12)


def test_silhouette_equals_union_of_all_triangles(target: TriangleMesh) -> None:
    mesh = cube((5.0, 3.0, -2.0), 12.0)
    g = BeamGeometry((2000.0, 2000.0), gantry_deg=33.0, couch_deg=12.0)
    fast = project_mesh(mesh, g, 100.0)
    uv = g.project_to_plane(mesh.vertices_mm, 100.0)[mesh.faces]
    tri = shapely.polygons(np.concatenate([uv, uv[:, :1]], axis=1))
    slow = shapely.union_all(tri[shapely.area(tri) > 0])
    assert fast.symmetric_difference(slow).area < 1e-6


def test_organ_clipping_with_margin(target: TriangleMesh) -> None:
    organ = icosphere((30.0, 0.0, 0.0), 10.0)  # beside the target, overlapping its projection
    base = design_aperture(target, POINT, ApertureSettings(EDGE, target_margin_mm=5.0))
    o_proj = project_mesh(organ, POINT, EDGE)
    for margin in (3.0, 0.0, -3.0):
        res = design_aperture(
            target,
            POINT,
            ApertureSettings(EDGE, target_margin_mm=5.0),
            organs=[ApertureOrgan(organ, margin, name="OAR")],
        )
        clip = o_proj.buffer(margin, quad_segs=16) if margin else o_proj
        expected = base.opening_device.difference(clip)
        assert res.opening_device.symmetric_difference(expected).area < 1e-6
    assert res.organs == ({"name": "OAR", "margin_mm": -3.0, "occlude_by_target": False},)


def test_organ_behind_the_target_is_occluded(target: TriangleMesh) -> None:
    behind = icosphere((0.0, 80.0, 0.0), 12.0)  # posterior: farther from the anterior source
    base = design_aperture(target, POINT, ApertureSettings(EDGE, target_margin_mm=5.0))
    s = ApertureSettings(EDGE, target_margin_mm=5.0, keep_islands=True)
    plain = design_aperture(target, POINT, s, organs=[ApertureOrgan(behind, 2.0, False)])
    hidden = design_aperture(target, POINT, s, organs=[ApertureOrgan(behind, 2.0, True)])
    # without occlusion the organ's projection (radius ≈ 12 · 1700/2080 mm, + 2 mm) is cut out of the field
    r_clip = silhouette_radius(12.0, SAD + 80.0, SAD - EDGE) + 2.0
    # (1 mm²: the icosphere's silhouette is inscribed, ≤ 0.012 mm short, over a 2π × 12 mm outline)
    assert plain.area_device_mm2 == pytest.approx(base.area_device_mm2 - math.pi * r_clip**2, abs=1.0)
    # with it, the organ is wholly hidden behind the target: the opening is untouched
    assert hidden.opening_device.symmetric_difference(base.opening_device).area < 1e-6


def test_organ_in_front_clips_even_with_occlusion(target: TriangleMesh) -> None:
    front = icosphere((15.0, -80.0, 0.0), 10.0)  # anterior: between the source and the target
    res = design_aperture(
        target,
        POINT,
        ApertureSettings(EDGE, target_margin_mm=5.0, keep_islands=True),
        organs=[ApertureOrgan(front, 0.0, True)],
    )
    expected = design_aperture(target, POINT, ApertureSettings(EDGE, target_margin_mm=5.0)).opening_device
    expected = expected.difference(project_mesh(front, POINT, EDGE))
    # pixel 0.5 mm: the hidden-region trace may shave up to ~0.75 pixel off the clip's boundary inside the
    # target's silhouette; the organ is wholly in front here, so nothing is hidden and the result is exact
    assert res.opening_device.symmetric_difference(expected).area < 1e-6


def test_partially_hidden_organ_clips_only_outside_the_target(target: TriangleMesh) -> None:
    organ = icosphere((25.0, 90.0, 0.0), 15.0)  # behind the target, sticking out to the patient's left
    s = ApertureSettings(EDGE, target_margin_mm=0.0)
    res = design_aperture(target, POINT, s, organs=[ApertureOrgan(organ, 0.0, True)])
    t_proj = project_mesh(target, POINT, EDGE)
    o_proj = project_mesh(organ, POINT, EDGE)
    # the target (no margin) is untouched, and the opening equals the target's projection: the visible
    # part of the organ lies outside it
    assert t_proj.difference(res.opening_device).area < 0.5  # ~0.75 pixel × the hidden boundary length
    assert res.opening_device.intersection(o_proj.difference(t_proj)).area < 1e-6


def test_centerline_band_is_removed(target: TriangleMesh) -> None:
    cord = rod(5.0, 60.0, 4.0, 80.0)  # behind the target, along the patient's z
    width = 6.0
    res = design_aperture(
        target,
        POINT,
        ApertureSettings(EDGE, target_margin_mm=5.0),
        centerlines=[ApertureCenterline(cord, width, "cord", step_mm=4.0)],
    )
    base = design_aperture(target, POINT, ApertureSettings(EDGE, target_margin_mm=5.0)).opening_device
    # Centre line x = 5 mm at depth −60 mm (beam z) -> u = 5 (SAD − z_p)/(SAD + 60) at the device plane
    u = 5.0 * (SAD - EDGE) / (SAD + 60.0)
    strip = box(u - width / 2, -1000.0, u + width / 2, 1000.0)
    expected = base.difference(strip)
    # 0.05 mm²: centroids of marching-cubes sections are within ~0.01 mm of the axis over a ~70 mm band
    assert res.opening_device.symmetric_difference(expected).area < 0.05 * 70
    assert not res.opening_device.contains(Point(u, 0.0))


def test_override_add_and_limit_in_both_planes(target: TriangleMesh) -> None:
    s = ApertureSettings(EDGE, target_margin_mm=5.0)
    base = design_aperture(target, POINT, s)
    square = np.array([[60.0, -5.0], [70.0, -5.0], [70.0, 5.0], [60.0, 5.0]])
    added = design_aperture(target, POINT, s, overrides=[ApertureOverride(square, OverrideMode.ADD)])
    assert added.area_device_mm2 == pytest.approx(base.area_device_mm2 + 100.0, abs=1e-6)
    at_iso = design_aperture(target, POINT, s, overrides=[ApertureOverride(square, "add", "isocenter")])
    m = (SAD - EDGE) / SAD
    assert at_iso.area_device_mm2 == pytest.approx(base.area_device_mm2 + 100.0 * m * m, abs=1e-6)
    limit = np.array([[-10.0, -10.0], [10.0, -10.0], [10.0, 10.0], [-10.0, 10.0]])
    limited = design_aperture(target, POINT, s, overrides=[ApertureOverride(limit, OverrideMode.LIMIT)])
    assert limited.area_device_mm2 == pytest.approx(400.0, abs=1e-9)
    assert limited.overrides[0]["mode"] == "limit"


def test_half_and_corner_planes(target: TriangleMesh) -> None:
    base = design_aperture(target, POINT, ApertureSettings(EDGE, target_margin_mm=5.0)).opening_device
    half = design_aperture(
        target, POINT, ApertureSettings(EDGE, target_margin_mm=5.0, half_planes=(HalfPlane((0.0, 0.0), 0.0),))
    )
    assert half.area_device_mm2 == pytest.approx(base.area / 2, rel=1e-3)
    assert half.opening_device.bounds[2] == pytest.approx(0.0, abs=1e-9)
    corner = design_aperture(
        target,
        POINT,
        ApertureSettings(EDGE, target_margin_mm=5.0, corner_planes=(CornerPlane((0.0, 0.0), 0.0, 90.0),)),
    )
    assert corner.area_device_mm2 == pytest.approx(0.75 * base.area, rel=1e-3)
    assert not corner.opening_device.contains(Point(5.0, 5.0))
    assert corner.opening_device.contains(Point(5.0, -5.0))


def test_steps_happen_in_order(target: TriangleMesh) -> None:
    """An override ADD comes after organ clipping (it reopens), a half plane after the override (it cuts)."""
    organ = icosphere((0.0, -80.0, 0.0), 8.0)  # in front, centred
    add = ApertureOverride(np.array([[-3.0, -3.0], [3.0, -3.0], [3.0, 3.0], [-3.0, 3.0]]), OverrideMode.ADD)
    res = design_aperture(
        target,
        POINT,
        ApertureSettings(EDGE, keep_islands=True, half_planes=(HalfPlane((1.0, 0.0), 0.0),)),
        organs=[ApertureOrgan(organ)],
        overrides=[add],
    )
    assert res.opening_device.contains(Point(-2.0, 0.0))  # reopened by the override
    assert not res.opening_device.contains(Point(2.0, 0.0))  # then removed by the half plane
    assert [name for name, _ in res.step_areas_mm2] == [
        "target_projection",
        "target_margin",
        "organ:organ",
        "override:add",
        "half_plane",
        "mill_radius",
        "smoothing",
    ]


def test_mount_clips_the_opening(target: TriangleMesh) -> None:
    res = design_aperture(
        target, POINT, ApertureSettings(EDGE, target_margin_mm=5.0, mount=Mount.circle(20.0))
    )
    assert _radii(res.opening_device).max() <= 20.0 + 1e-9
    rect = design_aperture(
        target, POINT, ApertureSettings(EDGE, target_margin_mm=5.0, mount=Mount.rectangle(20.0, 60.0))
    )
    assert rect.opening_device.bounds[2] == pytest.approx(10.0, abs=1e-9)
    assert any("targets' projection lies outside" in w for w in rect.warnings)


def test_mill_and_smoothing_report_uncovered_target() -> None:
    block = cube((0.0, 0.0, 0.0), 20.0)
    milled = design_aperture(
        block, POINT, ApertureSettings(EDGE, mill_radius_mm=8.0, mill_mode=MillMode.OPEN)
    )
    assert milled.uncovered_by_mill_mm2 > 10.0
    assert any(w.startswith("the mill radius (8.0 mm, open) uncovered") for w in milled.warnings)
    closed = design_aperture(
        block, POINT, ApertureSettings(EDGE, mill_radius_mm=8.0, mill_mode=MillMode.CLOSE)
    )
    assert closed.uncovered_by_mill_mm2 < 0.01
    smoothed = design_aperture(block, POINT, ApertureSettings(EDGE, smoothing=1.0, smoothing_iterations=5))
    assert smoothed.uncovered_by_smoothing_mm2 > 1.0
    assert any(w.startswith("smoothing (fraction 1.0, 5 iterations) uncovered") for w in smoothed.warnings)


def test_mill_radius_result_is_idempotent(target: TriangleMesh) -> None:
    from intrepid.devices import apply_mill_radius

    organ = icosphere((28.0, -80.0, 0.0), 9.0)
    res = design_aperture(
        target,
        POINT,
        ApertureSettings(EDGE, target_margin_mm=3.0, mill_radius_mm=4.0),
        organs=[ApertureOrgan(organ)],
    )
    again = apply_mill_radius(res.opening_device, 4.0)
    assert again.symmetric_difference(res.opening_device).area < 0.0012 * 4.0 * res.perimeter_mm
    assert res.min_feature_size_mm is not None and res.min_feature_size_mm >= 8.0 - 0.2


def test_islands_kept_or_removed(target: TriangleMesh) -> None:
    organ = icosphere((0.0, -80.0, 0.0), 6.0)  # in front, inside the field: a floating island of material
    kept = design_aperture(
        target, POINT, ApertureSettings(EDGE, keep_islands=True), organs=[ApertureOrgan(organ)]
    )
    removed = design_aperture(target, POINT, ApertureSettings(EDGE), organs=[ApertureOrgan(organ)])
    assert len(kept.opening_device.interiors) == 1 and kept.islands_removed == 0
    assert any("floating island" in w for w in kept.warnings)
    assert len(removed.opening_device.interiors) == 0 and removed.islands_removed == 1
    assert any(w.startswith("1 floating island(s) of material removed") for w in removed.warnings)
    hole = project_mesh(organ, POINT, EDGE).area
    assert removed.area_device_mm2 == pytest.approx(kept.area_device_mm2 + hole, rel=1e-6)


def test_result_to_dict_is_json(target: TriangleMesh) -> None:
    res = design_aperture(target, POINT, ApertureSettings(EDGE, target_margin_mm=2.0, thickness_mm=30.0))
    data = json.loads(json.dumps(res.to_dict()))
    for key in (
        "area_iso_mm2",
        "area_device_mm2",
        "perimeter_mm",
        "polygons_iso_mm",
        "polygons_device_mm",
        "settings",
        "geometry",
        "field_rectangle_iso_mm",
        "min_feature_size_mm",
        "warnings",
    ):
        assert key in data
    assert data["settings"]["target_margin_mm"] == 2.0 and data["settings"]["thickness_mm"] == 30.0
    ring = np.asarray(data["polygons_iso_mm"][0]["exterior"])
    assert ring.shape[1] == 2
    assert res.polygons(AperturePlane.DEVICE)[0]["holes"] == []


def test_drawings(target: TriangleMesh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    organ = icosphere((30.0, 0.0, 0.0), 10.0)
    res = design_aperture(
        target,
        POINT,
        ApertureSettings(EDGE, target_margin_mm=5.0, mount=Mount.circle(60.0)),
        organs=[ApertureOrgan(organ, 2.0, name="OAR")],
    )
    svg = aperture_svg(res, tmp_path / "a.svg")
    root = ET.parse(svg).getroot()
    paths = root.findall(".//{http://www.w3.org/2000/svg}path")
    assert len(paths) >= 5  # target, margin, organ, organ clip, mount, opening
    assert "OAR" in svg.read_text()
    png = aperture_png(res, tmp_path / "a.png", plane=AperturePlane.DEVICE, dpi=50)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ParameterError, match="plane must be an AperturePlane"):
        aperture_svg(res, tmp_path / "b.svg", plane="iso")  # type: ignore[arg-type]
    assert not (tmp_path / "b.svg").exists()


def test_downstream_edge_from_tray() -> None:
    assert downstream_edge_from_tray(192.27, 30.0, "PATIENT_SIDE") == pytest.approx(162.27)
    assert downstream_edge_from_tray(192.27, 30.0, "SOURCE_SIDE") == pytest.approx(192.27)
    with pytest.raises(ParameterError, match="mounting_position must be PATIENT_SIDE or SOURCE_SIDE"):
        downstream_edge_from_tray(100.0, 10.0, "DOUBLE_SIDED")
    with pytest.raises(ParameterError, match="thickness_mm must be >= 0"):
        downstream_edge_from_tray(100.0, -1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"downstream_edge_mm": -1.0}, "downstream_edge_mm must be >= 0"),
        ({"target_margin_mm": -2.0}, "target_margin_mm must be >= 0"),
        ({"mill_radius_mm": -1.0}, "mill_radius_mm must be >= 0"),
        ({"mill_mode": "sideways"}, "mill_mode must be open, close or both"),
        ({"smoothing": 1.2}, r"smoothing must be in \[0, 1\]"),
        ({"smoothing_iterations": -1}, "smoothing_iterations must be an integer >= 0"),
        ({"occlusion_pixel_mm": 0.0}, "occlusion_pixel_mm must be > 0"),
        ({"half_planes": ("x",)}, "half_planes must hold HalfPlane items"),
        ({"mount": "circle"}, "mount must be a Mount"),
        ({"thickness_mm": 0.0}, "thickness_mm must be > 0"),
    ],
)
def test_settings_validation(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"downstream_edge_mm": 100.0, **kwargs}
    with pytest.raises(ParameterError, match=match):
        ApertureSettings(**args)  # type: ignore[arg-type]


def test_design_validation(target: TriangleMesh) -> None:
    s = ApertureSettings(EDGE)
    with pytest.raises(ParameterError, match="downstream_edge_mm must be < the source distances"):
        design_aperture(target, BeamGeometry((250.0, 250.0)), s)
    with pytest.raises(ParameterError, match="targets must hold at least one TriangleMesh"):
        design_aperture([], POINT, s)
    with pytest.raises(GeometryError, match=r"targets\[0\] is an empty mesh"):
        design_aperture([TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3)))], POINT, s)
    with pytest.raises(ParameterError, match="organs must hold ApertureOrgan items"):
        design_aperture(target, POINT, s, organs=[target])  # type: ignore[list-item]
    with pytest.raises(ParameterError, match=r"override polygon_mm must have shape \(n >= 3, 2\)"):
        ApertureOverride(np.zeros((2, 2)), OverrideMode.ADD)
    with pytest.raises(ParameterError, match="override mode must be 'add' or 'limit'"):
        ApertureOverride(np.zeros((3, 2)), "grow")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="width_mm must be > 0"):
        ApertureCenterline(target, 0.0)
    with pytest.raises(GeometryError, match="at or behind the virtual source"):
        design_aperture(icosphere((0.0, -1990.0, 0.0), 20.0), POINT, s)


@pytest.mark.external
def test_real_plan_block_outline_round_trip(external_data) -> None:  # type: ignore[no-untyped-def]
    """A thin prism with the plan's block outline at the isocentre plane designs back that outline.

    Block Data are at the isocentre plane in the beam-limiting-device frame; the prism (0.01 mm thick) is
    built there, moved to the patient frame, projected to the device plane of the block (dual source) and
    scaled back: the isocentre-plane opening must be the outline (0.01 mm covers the prism's thickness).
    """
    from intrepid.dicom import read_rtplan

    plan = read_rtplan(external_data / "ion-plan" / "rtip_demo.dcm")
    g = BeamGeometry.from_ion_plan(plan, 1)
    block = plan.beam(1).blocks[0]
    edge = downstream_edge_from_tray(
        block.isocenter_to_block_tray_mm, block.thickness_mm, block.mounting_position
    )
    assert edge == pytest.approx(192.27 - 30.0, abs=1e-3)
    outline = shapely.Polygon(block.points_mm)
    if not outline.exterior.is_ccw:
        outline = shapely.Polygon(block.points_mm[::-1])
    pts = np.asarray(outline.exterior.coords)[:-1]
    n = len(pts)
    verts = np.vstack([np.column_stack([pts, np.full(n, -0.005)]), np.column_stack([pts, np.full(n, 0.005)])])
    # side faces, and fan caps (the outline is star-shaped about its centroid: checked by shapely below)
    centre = np.asarray(outline.centroid.coords[0])
    assert all(
        outline.contains(shapely.LineString([centre, p]).interpolate(0.999, normalized=True)) for p in pts
    )
    verts = np.vstack([verts, [[*centre, -0.005], [*centre, 0.005]]])
    faces = []
    for i in range(n):
        j = (i + 1) % n
        faces += [(i, j, n + j), (i, n + j, n + i), (2 * n, j, i), (2 * n + 1, n + i, n + j)]
    prism = TriangleMesh(g.to_image(verts), np.asarray(faces))
    assert prism.is_closed()
    res = design_aperture(prism, g, ApertureSettings(edge, thickness_mm=block.thickness_mm))
    assert shapely.hausdorff_distance(res.opening_iso, outline) < 0.01
    assert res.area_iso_mm2 == pytest.approx(outline.area, rel=1e-4)
