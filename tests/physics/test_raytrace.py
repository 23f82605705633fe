"""Line integrals, radiological depth (EXACT, FAST), WEPL along rays: closed forms, references, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, MachineAngles, Quantity, Volume, source_position_mm
from intrepid.physics import (
    DivergentRays,
    RayTraceMode,
    cumulative_path,
    line_integrals,
    radiological_depth,
    trace_ray,
    wepl_along_rays,
)

# Outputs of radiological_depth are float32: 1e-4 mm is ~10 ulp at 100 mm.
F32_MM = 1e-4


def _water(shape=(10, 12, 14), spacing=(2.0, 2.0, 2.0), value=1.0, origin=(0.0, 0.0, 0.0)) -> Volume:
    grid = Grid(shape, origin, spacing)
    return Volume(np.full(shape, value, dtype=np.float32), grid, Quantity.RELATIVE_STOPPING_POWER, "relative")


def _centre(vol: Volume) -> np.ndarray:
    lo, hi = vol.grid.bounds_mm()
    return (lo + hi) / 2


# ------------------------------------------------------------------------------------ line integrals
def test_line_integral_of_a_water_box_is_the_chord_length() -> None:
    vol = _water()  # x in [-1, 27], y in [-1, 23], z in [-1, 19]
    got = line_integrals(vol, (13.0, -500.0, 9.0), [(13.0, 500.0, 9.0), (13.0, 5.0, 9.0)])
    np.testing.assert_allclose(got, [24.0, 6.0], atol=1e-9)


def test_density_two_doubles_every_integral() -> None:
    rng = np.random.default_rng(1)
    pts = rng.uniform(-5, 30, size=(40, 3))
    src = (12.0, -300.0, 8.0)
    one = line_integrals(_water(), src, pts)
    two = line_integrals(_water(value=2.0), src, pts)
    np.testing.assert_allclose(two, 2 * one, rtol=1e-12, atol=1e-12)


def test_slab_integral_counts_only_the_slab() -> None:
    vol = _water()
    arr = np.zeros(vol.shape, np.float32)
    arr[:, 3:6, :] = 2.0  # rows 3..5: y from 5 to 11 mm, 6 mm thick, density 2
    slab = vol.with_array(arr)
    src = np.array([13.0, -1000.0, 9.0])
    tgt = np.array([20.0, 100.0, 12.0])
    d = tgt - src
    path_per_mm_y = np.linalg.norm(d) / d[1]
    assert line_integrals(slab, src, tgt[None])[0] == pytest.approx(2.0 * 6.0 * path_per_mm_y, rel=1e-12)


def test_stop_at_target_false_integrates_the_whole_line() -> None:
    vol = _water()
    src = (13.0, -500.0, 9.0)
    full = line_integrals(vol, src, [(13.0, 5.0, 9.0)], stop_at_target=False)
    assert full[0] == pytest.approx(24.0, abs=1e-9)


def test_line_integrals_keep_the_target_shape_and_accept_one_source_per_target() -> None:
    vol = _water()
    tgts = np.zeros((2, 3, 3)) + np.array([13.0, 500.0, 9.0])
    srcs = np.zeros((2, 3, 3)) + np.array([13.0, -500.0, 9.0])
    out = line_integrals(vol, srcs, tgts)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, 24.0, atol=1e-9)


def test_trace_ray_values_follow_the_volume() -> None:
    vol = _water()
    arr = np.arange(vol.grid.size, dtype=np.float32).reshape(vol.shape)
    path = trace_ray(vol.with_array(arr), (-10.0, 4.0, 6.0), (40.0, 4.0, 6.0))
    np.testing.assert_array_equal(path.values, arr[path.array_index])
    assert path.line_integral == pytest.approx(float(np.sum(arr[3, 2, :] * 2.0)))


# ------------------------------------------------------------------------------------ radiological depth
def test_exact_depth_on_the_central_axis_is_the_distance_from_the_entry_plane() -> None:
    vol = _water((9, 11, 9), (2.0, 2.0, 2.0))
    iso = _centre(vol)  # (8, 10, 8); the central ray runs along y through column i = 4, slice k = 4
    src = source_position_mm(MachineAngles(0.0), 1000.0, iso)
    res = radiological_depth(vol, src, isocenter_mm=iso)
    y = vol.grid.origin_mm[1] + 2.0 * np.arange(11)
    np.testing.assert_allclose(res.entrance_mm.array[4, :, 4], y + 1.0, atol=F32_MM)
    np.testing.assert_allclose(res.exit_mm.array[4, :, 4], 21.0 - y, atol=F32_MM)
    assert res.entrance_mm.quantity is Quantity.LENGTH and res.entrance_mm.units == "mm"


def test_exact_depth_is_near_the_divergent_distance_and_sums_to_the_chord() -> None:
    vol = _water((12, 14, 16), (2.0, 2.5, 3.0))
    iso = _centre(vol)
    src = source_position_mm(MachineAngles(20.0), 400.0, iso)
    res = radiological_depth(vol, src, isocenter_mm=iso)
    ent, ext = res.entrance_mm.array, res.exit_mm.array
    assert np.all(np.isfinite(ent)) and np.all(ent > 0) and np.all(ext > 0)
    # the depth refers to a point of the voxel near its centre: within half a voxel diagonal of the exact
    # path to the centre (water: path length = geometric distance)
    centres = vol.grid.world_points().reshape(-1, 3)
    exact = line_integrals(vol, src, centres).reshape(vol.shape)
    half_diag = 0.5 * np.linalg.norm(vol.grid.spacing_mm)
    assert np.abs(ent - exact).max() < half_diag
    # entrance + exit is the chord of one ray through the box: at most the box diagonal
    lo, hi = vol.grid.bounds_mm(edges=True)
    assert np.all(ent + ext <= np.linalg.norm(hi - lo) + F32_MM)


def _matrad_reference(vol: Volume, src: np.ndarray, iso: np.ndarray) -> np.ndarray:
    """matRad's radiological depth, voxel by voxel, from the independent single-ray tracer."""
    w = (iso - src) / np.linalg.norm(iso - src)
    ez = np.array([0.0, 0.0, 1.0]) - w[2] * w
    ez /= np.linalg.norm(ez)
    ex = np.cross(w, ez)
    pts = vol.grid.world_points()
    rel = pts - src
    bx, by, bz = rel @ ex, rel @ w, rel @ ez
    sp = min(vol.grid.spacing_mm) / np.sqrt(2)
    plane = by.max() + max(vol.grid.spacing_mm)
    nx = np.ceil(bx * plane / by / sp - 0.5)
    nz = np.ceil(bz * plane / by / sp - 0.5)
    out = np.full(vol.shape, np.nan)
    for idx in np.ndindex(vol.shape):
        target = src + plane * w + nx[idx] * sp * ex + nz[idx] * sp * ez
        path = trace_ray(vol, src, target)
        hit = np.flatnonzero(
            (path.ijk[:, 2] == idx[0]) & (path.ijk[:, 1] == idx[1]) & (path.ijk[:, 0] == idx[2])
        )
        if hit.size:
            seg = path.values * path.lengths_mm
            out[idx] = seg[: hit[0]].sum() + 0.5 * seg[hit[0]]
    return out


@pytest.mark.parametrize("gantry", [0.0, 45.0, 200.0])
def test_exact_matches_an_independent_matrad_style_reference(gantry: float) -> None:
    rng = np.random.default_rng(11)
    grid = Grid((5, 6, 7), (-6.0, -7.5, -5.0), (2.0, 2.5, 2.5))
    vol = Volume(rng.uniform(0.2, 2.0, grid.shape).astype(np.float32), grid)
    iso = np.array([0.5, -1.0, 0.3])
    src = source_position_mm(MachineAngles(gantry), 300.0, iso)
    got = radiological_depth(vol, src, isocenter_mm=iso).entrance_mm.array
    ref = _matrad_reference(vol, src, iso)
    np.testing.assert_allclose(got, ref, atol=F32_MM)


def test_doubling_the_density_doubles_both_depths() -> None:
    rng = np.random.default_rng(2)
    vol = _water((8, 9, 10), (2.0, 2.0, 2.0)).with_array(rng.uniform(0.5, 1.5, (8, 9, 10)).astype(np.float32))
    iso = _centre(vol)
    src = source_position_mm(MachineAngles(30.0), 600.0, iso)
    for mode in RayTraceMode:
        one = radiological_depth(vol, src, isocenter_mm=iso, mode=mode)
        two = radiological_depth(vol.with_array(2 * vol.array), src, isocenter_mm=iso, mode=mode)
        np.testing.assert_allclose(two.entrance_mm.array, 2 * one.entrance_mm.array, rtol=1e-5)
        np.testing.assert_allclose(two.exit_mm.array, 2 * one.exit_mm.array, rtol=1e-5, atol=F32_MM)


@pytest.mark.parametrize("mode", list(RayTraceMode))
def test_mirror_symmetry_of_gantry_angles(mode: RayTraceMode) -> None:
    """A volume symmetric in x gives mirrored depths for gantry g and 360 - g."""
    rng = np.random.default_rng(4)
    half = rng.uniform(0.5, 1.5, (6, 9, 5)).astype(np.float32)
    arr = np.concatenate([half, half[:, :, ::-1]], axis=2)  # 10 columns, mirror plane x = 0
    grid = Grid(arr.shape, (-9.0, -8.0, -5.0), (2.0, 2.0, 2.0))
    vol = Volume(arr, grid)
    iso = np.array([0.0, 0.0, 0.0])
    a = radiological_depth(
        vol, source_position_mm(MachineAngles(25.0), 500.0, iso), isocenter_mm=iso, mode=mode
    )
    b = radiological_depth(
        vol, source_position_mm(MachineAngles(335.0), 500.0, iso), isocenter_mm=iso, mode=mode
    )
    # float32 outputs; the ray grid is mirror-symmetric so the same rays serve mirrored voxels
    np.testing.assert_allclose(a.entrance_mm.array, b.entrance_mm.array[:, :, ::-1], atol=1e-3)


def test_fast_agrees_with_exact_on_a_water_cylinder() -> None:
    shape = (20, 40, 40)
    grid = Grid(shape, (-58.5, -58.5, -28.5), (3.0, 3.0, 3.0))
    x, y = np.meshgrid(grid.world_axes_mm()[0], grid.world_axes_mm()[1])
    disk = ((x**2 + y**2) < 50.0**2).astype(np.float32)
    arr = np.broadcast_to(disk, shape).astype(np.float32) + 0.001
    vol = Volume(arr, grid)
    body = np.broadcast_to(disk > 0, shape)
    iso = np.zeros(3)
    for gantry in (0.0, 60.0):
        src = source_position_mm(MachineAngles(gantry), 1000.0, iso)
        ex = radiological_depth(vol, src, isocenter_mm=iso)
        fa = radiological_depth(vol, src, isocenter_mm=iso, mode=RayTraceMode.FAST)
        fine = radiological_depth(vol, src, isocenter_mm=iso, mode=RayTraceMode.FAST, lateral_spacing_mm=3.0)
        diff = np.abs(fa.entrance_mm.array - ex.entrance_mm.array)[body]
        diff_fine = np.abs(fine.entrance_mm.array - ex.entrance_mm.array)[body]
        # FAST interpolates laterally between columns 6 mm apart (3 mm with lateral_spacing_mm=3) across the
        # staircase surface of a voxelised cylinder (steps of one 3 mm voxel): on average a third of a voxel,
        # a sixth with the finer grid; a step of the surface can shift a voxel's depth by about one voxel
        assert diff.mean() < 1.0
        assert diff_fine.mean() < 0.6
        assert np.percentile(diff, 95) < 3.0
        assert np.all(np.isfinite(fa.entrance_mm.array[body]))


def test_fast_on_a_water_box_along_an_axis_is_exact_on_the_central_column() -> None:
    vol = _water((9, 11, 9), (2.0, 2.0, 2.0))
    iso = _centre(vol)
    src = source_position_mm(MachineAngles(0.0), 1000.0, iso)
    res = radiological_depth(vol, src, isocenter_mm=iso, mode=RayTraceMode.FAST)
    y = vol.grid.origin_mm[1] + 2.0 * np.arange(11)
    # depth samples sit on the voxel planes and the trapezoid rule is exact for a constant density
    np.testing.assert_allclose(res.entrance_mm.array[4, :, 4], y + 1.0, atol=1e-3)
    np.testing.assert_allclose(res.exit_mm.array[4, :, 4], 21.0 - y, atol=1e-3)
    # everywhere: entrance + exit = the chord of a nearly axis-parallel ray through the 22 mm deep box
    tot = res.entrance_mm.array + res.exit_mm.array
    assert np.all(tot >= 22.0 - 1e-3) and np.all(tot <= 22.0 * 1.001)


def test_result_records_the_geometry() -> None:
    vol = _water()
    src = (13.0, -800.0, 9.0)
    res = radiological_depth(vol, src)
    assert res.source_mm == src
    np.testing.assert_allclose(res.isocenter_mm, _centre(vol))
    assert res.mode is RayTraceMode.EXACT
    assert res.entrance_mm.grid is vol.grid


# ------------------------------------------------------------------------------------ rays, WEPL
def test_cumulative_path_is_piecewise_linear_in_water() -> None:
    vol = _water()  # y from -1 to 23
    starts = np.array([[13.0, -11.0, 9.0], [5.0, -21.0, 3.0]])
    dirs = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    dist = np.array([0.0, 5.0, 10.0, 15.0, 40.0, 100.0])
    got = cumulative_path(vol, starts, dirs, dist)
    entry = np.array([[10.0], [20.0]])
    expected = np.clip(dist[None, :] - entry, 0.0, 24.0)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    # unsorted per-ray distances come back in the caller's order
    got2 = cumulative_path(vol, starts, dirs, np.array([[40.0, 15.0], [5.0, 30.0]]))
    np.testing.assert_allclose(got2, [[24.0, 5.0], [0.0, 10.0]], atol=1e-9)


def test_wepl_along_rays_finds_the_distal_mask_surface() -> None:
    vol = _water(value=1.0)
    arr = vol.array.copy()
    arr[:, :4, :] = 2.0  # rows 0..3 (y from -1 to 7) have stopping power 2
    rsp = vol.with_array(arr)
    mask = np.zeros(vol.shape, bool)
    mask[3:6, 6:9, 4:8] = True  # y from 11 to 17
    mask_vol = Volume(mask, vol.grid, Quantity.MASK)
    res = wepl_along_rays(rsp, [[12.0, -11.0, 8.0]], [[0.0, 1.0, 0.0]], mask=mask_vol)
    assert res.entry_mm[0] == pytest.approx(10.0)
    assert res.exit_mm[0] == pytest.approx(34.0)
    assert res.mask_entry_mm[0] == pytest.approx(22.0)
    assert res.mask_exit_mm[0] == pytest.approx(28.0)
    assert res.wepl_to_mask_entry_mm[0] == pytest.approx(2 * 8.0 + 4.0)
    assert res.wepl_to_mask_exit_mm[0] == pytest.approx(2 * 8.0 + 10.0)
    assert res.wepl_mm[0] == pytest.approx(2 * 8.0 + 16.0)
    miss = wepl_along_rays(rsp, [[12.0, -11.0, 8.0]], [[0.0, -1.0, 0.0]], mask=mask_vol)
    assert np.isnan(miss.entry_mm[0]) and miss.wepl_mm[0] == 0.0 and np.isnan(miss.mask_exit_mm[0])


def test_divergent_rays_point_source_meet_at_the_source() -> None:
    iso = np.array([10.0, 20.0, 30.0])
    uv = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, -30.0], [20.0, 20.0]])
    rays = DivergentRays.from_isocenter_plane(
        uv, isocenter_mm=iso, beam_direction=(0, 1, 0), x_axis=(1, 0, 0), sad_mm=1000.0
    )
    expected_start = iso + np.array([0.0, -1000.0, 0.0])
    np.testing.assert_allclose(rays.starts_mm, np.tile(expected_start, (4, 1)), atol=1e-9)
    # each ray reaches (u, v) on the isocentre plane after SAD / cos(angle)
    t = 1000.0 / rays.directions[:, 1]
    at_iso = rays.starts_mm + t[:, None] * rays.directions
    y_axis = np.cross([0.0, -1.0, 0.0], [1.0, 0.0, 0.0])  # Y = Z x X with Z towards the source
    np.testing.assert_allclose(at_iso - iso, uv[:, :1] * [1.0, 0.0, 0.0] + uv[:, 1:] * y_axis, atol=1e-9)


def test_divergent_rays_dual_source_scale_each_axis_with_its_own_distance() -> None:
    iso = np.zeros(3)
    uv = np.array([[40.0, 30.0], [-20.0, 10.0]])
    dx, dy = 1800.0, 2000.0
    rays = DivergentRays.from_isocenter_plane(
        uv,
        isocenter_mm=iso,
        beam_direction=(0, 0, -1),
        x_axis=(1, 0, 0),
        sad_mm=(dx, dy),
        start_distance_mm=500.0,
    )
    # beam frame = world frame here (Z towards the source = +z, X = +x, Y = +y); at height z the ray is at
    # (u (1 - z / Dx), v (1 - z / Dy))
    for z in (500.0, 100.0, 0.0, -300.0):
        t = (rays.starts_mm[:, 2] - z) / -rays.directions[:, 2]
        p = rays.starts_mm + t[:, None] * rays.directions
        np.testing.assert_allclose(p[:, 0], uv[:, 0] * (1 - z / dx), atol=1e-9)
        np.testing.assert_allclose(p[:, 1], uv[:, 1] * (1 - z / dy), atol=1e-9)
    res = wepl_along_rays(_water(origin=(-10.0, -10.0, -200.0)), rays)
    assert res.wepl_mm.shape == (2,)


# ------------------------------------------------------------------------------------ bad inputs
def test_nan_volume_is_refused() -> None:
    vol = _water()
    arr = vol.array.copy()
    arr[1, 2, 3] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        line_integrals(vol.with_array(arr), (0, -100, 0), [(0, 100, 0)])


def test_oblique_grid_is_refused() -> None:
    c, s = np.cos(0.3), np.sin(0.3)
    grid = Grid((3, 4, 5), (0, 0, 0), (1, 1, 1), (c, s, 0, -s, c, 0, 0, 0, 1))
    with pytest.raises(GeometryError, match="oblique"):
        line_integrals(Volume(np.ones(grid.shape), grid), (0, -100, 0), [(0, 100, 0)])


def test_two_dimensional_volume_is_refused() -> None:
    grid = Grid((4, 5), (0, 0, 0), (1, 1, 1))
    with pytest.raises(GeometryError, match="3D"):
        trace_ray(Volume(np.ones(grid.shape), grid), (0, -100, 0), (0, 100, 0))


def test_zero_length_rays_are_refused() -> None:
    with pytest.raises(ParameterError, match="zero-length"):
        line_integrals(_water(), (1.0, 2.0, 3.0), [(5.0, 5.0, 5.0), (1.0, 2.0, 3.0)])
    with pytest.raises(ParameterError, match="zero-length"):
        trace_ray(_water(), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0))


def test_bad_points_are_refused() -> None:
    with pytest.raises(ParameterError, match="3 coordinates"):
        line_integrals(_water(), (1.0, 2.0), [(5.0, 5.0, 5.0)])
    with pytest.raises(ParameterError, match="finite"):
        line_integrals(_water(), (1.0, 2.0, np.inf), [(5.0, 5.0, 5.0)])
    with pytest.raises(ParameterError, match="source_mm must have shape"):
        line_integrals(_water(), np.zeros((2, 3)), np.ones((3, 3)))


def test_radiological_depth_refuses_bad_inputs() -> None:
    vol = _water()
    src = (13.0, -800.0, 9.0)
    with pytest.raises(ParameterError, match="CT numbers"):
        radiological_depth(Volume(vol.array, vol.grid, Quantity.CT_NUMBER, "HU"), src)
    with pytest.raises(ParameterError, match=">= 0"):
        radiological_depth(vol.with_array(vol.array - 2.0), src)
    with pytest.raises(GeometryError, match="inside the volume"):
        radiological_depth(vol, (13.0, 10.0, 9.0))
    with pytest.raises(ParameterError, match="coincides"):
        radiological_depth(vol, src, isocenter_mm=src)
    with pytest.raises(ParameterError, match="RayTraceMode"):
        radiological_depth(vol, src, mode="exact")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="ray_spacing_mm must be > 0"):
        radiological_depth(vol, src, ray_spacing_mm=-1.0)
    with pytest.raises(ParameterError, match="lateral_spacing_mm must be > 0"):
        radiological_depth(vol, src, mode=RayTraceMode.FAST, lateral_spacing_mm=0.0)
    with pytest.raises(GeometryError, match="behind the source"):
        radiological_depth(vol, (13.0, -5.0, 9.0), isocenter_mm=(13.0, -5.0, 50.0))


def test_ray_helpers_refuse_bad_inputs() -> None:
    vol = _water()
    with pytest.raises(ParameterError, match="unit vectors"):
        cumulative_path(vol, [[0, 0, 0]], [[0, 2, 0]], [1.0])
    with pytest.raises(ParameterError, match="non-zero"):
        cumulative_path(vol, [[0, 0, 0]], [[0, 0, 0]], [1.0])
    with pytest.raises(ParameterError, match=">= 0"):
        cumulative_path(vol, [[0, 0, 0]], [[0, 1, 0]], [-1.0])
    with pytest.raises(ParameterError, match="distances_mm must have shape"):
        cumulative_path(vol, [[0, 0, 0]], [[0, 1, 0]], np.ones((2, 2)))
    other = Volume(np.ones((2, 2, 2), bool), Grid((2, 2, 2), (0, 0, 0), (1, 1, 1)))
    with pytest.raises(GeometryError, match="same grid"):
        wepl_along_rays(vol, [[0, 0, 0]], [[0, 1, 0]], mask=other)
    with pytest.raises(ParameterError, match="directions is required"):
        wepl_along_rays(vol, [[0, 0, 0]])
    with pytest.raises(ParameterError, match="perpendicular"):
        DivergentRays.from_isocenter_plane(
            [[0, 0]], isocenter_mm=(0, 0, 0), beam_direction=(0, 1, 0), x_axis=(0, 1, 0), sad_mm=1000.0
        )
    with pytest.raises(ParameterError, match="sad_mm must be > 0"):
        DivergentRays.from_isocenter_plane(
            [[0, 0]],
            isocenter_mm=(0, 0, 0),
            beam_direction=(0, 1, 0),
            x_axis=(1, 0, 0),
            sad_mm=(1000.0, -1.0),
        )


# ------------------------------------------------------------------------------------ FAST kernels
@pytest.mark.parametrize("gantry", [0.0, 45.0, 200.0])
def test_fast_separable_interpolation_equals_the_general_trilinear_path(
    gantry: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The couch-0 fast path (profiles along v) gives the general path's values on uninitialised outputs."""
    from intrepid.physics import _siddon

    rng = np.random.default_rng(7)
    arr = rng.uniform(0.0, 2.0, (7, 11, 9)).astype(np.float32)
    vol = Volume(arr, Grid(arr.shape, (-8.0, -10.0, -6.0), (2.0, 2.0, 2.0)))
    iso = np.zeros(3)
    original = _siddon.bev_interpolate
    seen = []

    def both(*args):  # type: ignore[no-untyped-def]
        original(*args)
        general = list(args)
        bev = args[2].copy()
        bev[0, 2] += 1e-300  # not separable any more; changes no product at double precision
        general[2] = bev
        general[-2] = np.full_like(args[-2], 123.0)  # garbage: every voxel must be overwritten
        general[-1] = np.full_like(args[-1], 123.0)
        original(*general)
        seen.append((args[-2].copy(), general[-2], args[-1].copy(), general[-1]))

    monkeypatch.setattr(_siddon, "bev_interpolate", both)
    radiological_depth(
        vol, source_position_mm(MachineAngles(gantry), 300.0, iso), isocenter_mm=iso, mode=RayTraceMode.FAST
    )
    ((ent_fast, ent_gen, exit_fast, exit_gen),) = seen
    assert np.all(np.isfinite(ent_fast))
    # same sums in another order, float64 then rounded to float32: a few float32 ulp
    np.testing.assert_allclose(ent_fast, ent_gen, rtol=1e-6, atol=F32_MM)
    np.testing.assert_allclose(exit_fast, exit_gen, rtol=1e-6, atol=F32_MM)


def test_fast_depth_increases_along_the_beam_and_entrance_plus_exit_is_the_column_total() -> None:
    """Metamorphic: in a positive density the entrance depth grows away from the source on the axis."""
    rng = np.random.default_rng(11)
    arr = rng.uniform(0.2, 1.8, (9, 15, 11)).astype(np.float32)
    vol = Volume(arr, Grid(arr.shape, (-10.0, -14.0, -8.0), (2.0, 2.0, 2.0)))
    iso = np.zeros(3)
    res = radiological_depth(
        vol, source_position_mm(MachineAngles(0.0), 1000.0, iso), isocenter_mm=iso, mode=RayTraceMode.FAST
    )
    ent = res.entrance_mm.array[4, :, 5]  # central column, beam along +y (gantry 0: source anterior)
    assert np.all(np.diff(ent) > 0)
    total = res.entrance_mm.array + res.exit_mm.array
    # the column total is shared by the voxels of one ray: constant along the central column (float32)
    np.testing.assert_allclose(total[4, :, 5], total[4, 0, 5], rtol=1e-5)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("mode", list(RayTraceMode))
def test_radiological_depth_refuses_non_finite_values(mode: RayTraceMode) -> None:
    vol = _water()
    arr = vol.array.copy()
    arr[1, 2, 3] = np.inf
    with pytest.raises(ParameterError, match="1 NaN or infinite"):
        radiological_depth(vol.with_array(arr), (13.0, -800.0, 9.0), mode=mode)
    big = np.ones(vol.shape)
    big[0, 0, 0] = 1e39  # finite in float64, infinite once converted to float32
    with pytest.raises(ParameterError, match="after conversion to float32"):
        radiological_depth(vol.with_array(big), (13.0, -800.0, 9.0), mode=mode)
