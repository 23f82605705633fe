"""Resampling by patient coordinates, point sampling and rigid transforms."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import RegularGridInterpolator
from scipy.spatial.transform import Rotation

from intrepid.errors import FrameOfReferenceError, ParameterError
from intrepid.geometry import Grid, Interpolation, Quantity, RigidTransform, Volume, resample, sample_points

# Interpolated values are convex combinations of at most 8 samples of magnitude <= ~100, computed in float64:
# 1e-9 absolute is far above round-off (~1e-13) and far below any meaningful difference.
ATOL = 1e-9


def _rotation(axis: tuple[float, float, float], angle_deg: float) -> np.ndarray:
    return Rotation.from_rotvec(np.deg2rad(angle_deg) * np.asarray(axis) / np.linalg.norm(axis)).as_matrix()


def _linear_field(
    grid: Grid, coef: tuple[float, float, float] = (0.3, -0.7, 1.1), c: float = 5.0
) -> np.ndarray:
    """f(x, y, z) = a . p + c sampled on the grid: trilinear interpolation reproduces it exactly."""
    return np.asarray(grid.world_points() @ np.asarray(coef) + c)


def _dose_volume(rng: np.random.Generator, uid: str | None = "1.2.3") -> Volume:
    grid = Grid((12, 15, 18), origin_mm=(-20.0, -30.0, -12.0), spacing_mm=(2.5, 2.0, 3.0))
    return Volume(rng.random(grid.shape) * 10, grid, Quantity.DOSE, "Gy", frame_of_reference_uid=uid)


def _rgi(volume: Volume) -> RegularGridInterpolator:
    x, y, z = volume.grid.world_axes_mm()
    return RegularGridInterpolator((z, y, x), volume.array, bounds_error=False, fill_value=None)


# ---------------------------------------------------------------------------------------------- identity
@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 6), st.integers(1, 7), st.integers(1, 8)),
    spacing=st.tuples(*[st.floats(0.3, 5.0)] * 3),
    origin=st.tuples(*[st.floats(-300.0, 300.0)] * 3),
    perm=st.permutations([0, 1, 2]),
    signs=st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3),
    nearest=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_identity_onto_same_grid(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
    perm: list[int],
    signs: tuple[float, float, float],
    nearest: bool,
    seed: int,
) -> None:
    direction = np.eye(3)[:, perm] * np.asarray(signs)
    if np.linalg.det(direction) < 0:  # keep a right-handed grid
        direction[:, 2] *= -1
    grid = Grid(shape, origin, spacing, tuple(direction.reshape(-1)))
    vol = Volume(np.random.default_rng(seed).normal(size=shape), grid, Quantity.DOSE, "Gy")
    method = Interpolation.NEAREST if nearest else Interpolation.LINEAR
    out = resample(vol, grid, method=method)
    np.testing.assert_allclose(out.array, vol.array, atol=ATOL)
    assert out.grid == grid


# ---------------------------------------------------------------------------------------------- peer: scipy
def test_sample_points_matches_regular_grid_interpolator() -> None:
    rng = np.random.default_rng(1)
    vol = _dose_volume(rng)
    lo, hi = vol.grid.bounds_mm()
    pts = rng.uniform(lo, hi, size=(5000, 3))
    np.testing.assert_allclose(sample_points(vol, pts), _rgi(vol)(pts[:, ::-1]), atol=ATOL)
    pts_nd = pts.reshape(50, 100, 3)
    assert sample_points(vol, pts_nd).shape == (50, 100)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_resample_matches_regular_grid_interpolator(dtype: type) -> None:
    rng = np.random.default_rng(2)
    vol = _dose_volume(rng)
    vol = vol.with_array(vol.array.astype(dtype))
    target = Grid((20, 25, 30), origin_mm=(-25.0, -33.0, -15.0), spacing_mm=(1.7, 1.3, 2.1))
    out = resample(vol, target)
    assert out.array.dtype == dtype
    pts = target.world_points().reshape(-1, 3)
    inside = vol.grid.contains(pts, edges=False)
    assert 0.3 < inside.mean() < 1.0  # the test covers both inside and outside points
    expected = _rgi(vol)(pts[inside][:, ::-1])
    # float32 values in [0, 10]: 1e-5 covers the float32 rounding of the data and of the result.
    tol = ATOL if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out.array.reshape(-1)[inside], expected, atol=tol)


def test_flipped_and_permuted_grids_use_patient_coordinates(caplog: pytest.LogCaptureFixture) -> None:
    # A grid with reversed / permuted index axes describes the same world points: resampling it onto the plain
    # grid must give the plain array back, whatever the index order (never matched by index).
    rng = np.random.default_rng(3)
    plain = _dose_volume(rng)
    g = plain.grid
    # Reverse i and j (a 180-degree rotation about z) and restart the origin at the opposite corner.
    direction = np.diag([-1.0, -1.0, 1.0])
    origin = g.index_to_world([g.shape_ijk[0] - 1, g.shape_ijk[1] - 1, 0])
    flipped = Volume(
        plain.array[:, ::-1, ::-1], Grid(g.shape, tuple(origin), g.spacing_mm, tuple(direction.ravel()))
    )
    np.testing.assert_allclose(resample(flipped, g).array, plain.array, atol=ATOL)
    # Swap i and j axes (direction columns y, x, -z) with the matching array transposition.
    direction = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, -1]])
    origin = g.index_to_world([0, 0, g.shape_ijk[2] - 1])
    sp = (g.spacing_mm[1], g.spacing_mm[0], g.spacing_mm[2])
    swapped = Volume(
        np.transpose(plain.array[::-1], (0, 2, 1)),
        Grid((12, 18, 15), tuple(origin), sp, tuple(direction.ravel())),
    )
    np.testing.assert_allclose(resample(swapped, g).array, plain.array, atol=ATOL)
    with caplog.at_level(logging.DEBUG, logger="intrepid.geometry._resample"):
        np.testing.assert_allclose(resample(plain, swapped.grid).array, swapped.array, atol=ATOL)
    assert "separable path" in caplog.text  # permuted axes take the lookup-table path


# ---------------------------------------------------------------------------------------------- closed form
@pytest.mark.parametrize("oblique", ["moving", "target", "both"])
def test_oblique_grids_reproduce_linear_field(oblique: str, caplog: pytest.LogCaptureFixture) -> None:
    # Trilinear interpolation is exact for a field linear in the world coordinates, whatever the grid
    # orientation, so any oblique pair of grids gives the field back exactly inside the moving samples' hull.
    rot_a = _rotation((1.0, 2.0, 0.5), 25.0)
    rot_b = _rotation((-0.3, 0.2, 1.0), 40.0)
    moving_dir = rot_a if oblique in ("moving", "both") else np.eye(3)
    target_dir = rot_b if oblique in ("target", "both") else np.eye(3)
    moving = Grid((20, 22, 24), (-30.0, -35.0, -25.0), (3.0, 3.2, 2.8), tuple(moving_dir.ravel()))
    target = Grid((15, 16, 17), (-12.0, -10.0, -14.0), (2.0, 1.5, 1.8), tuple(target_dir.ravel()))
    vol = Volume(_linear_field(moving), moving, Quantity.DOSE, "Gy")
    with caplog.at_level(logging.DEBUG, logger="intrepid.geometry._resample"):
        out = resample(vol, target, fill_value=-7.0)
    assert "affine path" in caplog.text
    pts = target.world_points().reshape(-1, 3)
    inside = moving.contains(pts, edges=False)
    outside = ~moving.contains(pts, edges=True)
    assert inside.sum() > 100
    np.testing.assert_allclose(
        out.array.reshape(-1)[inside], _linear_field(target).reshape(-1)[inside], atol=1e-9
    )
    np.testing.assert_array_equal(out.array.reshape(-1)[outside], -7.0)
    # The per-point kernel agrees with the grid kernels.
    np.testing.assert_allclose(out.array.reshape(-1), sample_points(vol, pts, fill_value=-7.0), atol=ATOL)


def test_nearest_picks_the_closest_sample() -> None:
    grid = Grid((1, 1, 4), (0.0, 0.0, 0.0), (10.0, 10.0, 10.0))
    vol = Volume(np.array([[[1.0, 2.0, 3.0, 4.0]]]), grid)
    pts = [[4.9, 0, 0], [5.1, 0, 0], [14.0, 0, 0], [29.0, 0, 0], [-4.0, 0, 0]]
    np.testing.assert_array_equal(sample_points(vol, pts, Interpolation.NEAREST), [1, 2, 2, 4, 1])
    np.testing.assert_allclose(sample_points(vol, pts), [1.49, 1.51, 2.4, 3.9, 1.0], atol=ATOL)


def test_nearest_keeps_integer_types() -> None:
    grid = Grid((4, 5, 6), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    mask = Volume(np.arange(120).reshape(4, 5, 6) % 2 == 0, grid, Quantity.MASK)
    target = Grid((4, 5, 6), (0.2, -0.3, 0.4), (1.0, 1.0, 1.0))
    out = resample(mask, target, method=Interpolation.NEAREST)
    assert out.array.dtype == np.bool_
    np.testing.assert_array_equal(out.array[:3, 1:, :], mask.array[:3, 1:, :])
    ct = Volume(np.full((4, 5, 6), 40, dtype=np.int16), grid, Quantity.CT_NUMBER, "HU")
    assert resample(ct, target, method=Interpolation.NEAREST).array.dtype == np.int16
    lin = resample(ct, target)
    assert lin.array.dtype == np.float32
    # Outside the CT the default fill is air, -1000 HU: x = 6 mm is beyond the last voxel edge (5.5 mm).
    shifted = resample(ct, Grid((4, 5, 6), (1.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    np.testing.assert_array_equal(shifted.array[..., -1], -1000.0)
    np.testing.assert_array_equal(shifted.array[..., :-1], 40.0)


# ---------------------------------------------------------------------------------------------- edges
def test_boundary_points_sample_inside() -> None:
    grid = Grid((3, 4, 5), (10.0, 20.0, 30.0), (2.0, 3.0, 4.0))
    vol = Volume(_linear_field(grid), grid, Quantity.DOSE, "Gy")
    last = grid.index_to_world([4, 3, 2])
    first = grid.index_to_world([0, 0, 0])
    # Exactly on the first and last sample centres: the sample values, not the fill.
    np.testing.assert_allclose(
        sample_points(vol, [first, last]), [vol.array[0, 0, 0], vol.array[2, 3, 4]], atol=ATOL
    )
    # Within the outer half voxel: inside, clamped to the edge sample along that axis.
    edge = last + np.array([1.0, 0.0, 0.0])  # exactly on the voxel edge (half of 2 mm)
    assert sample_points(vol, [edge], fill_value=-1.0)[0] == pytest.approx(vol.array[2, 3, 4], abs=ATOL)
    # Just beyond the voxel edge: outside.
    assert sample_points(vol, [last + np.array([1.001, 0.0, 0.0])], fill_value=-1.0)[0] == -1.0
    # A target grid whose last sample falls exactly on the moving one's keeps it.
    target = Grid((1, 1, 3), tuple(last - [4.0, 0.0, 0.0]), (2.0, 1.0, 1.0))
    np.testing.assert_allclose(
        resample(vol, target, fill_value=-1.0).array.ravel(), vol.array[2, 3, 2:], atol=ATOL
    )


def test_fill_values() -> None:
    rng = np.random.default_rng(4)
    vol = _dose_volume(rng)
    far = Grid((2, 2, 2), (1000.0, 1000.0, 1000.0), (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(resample(vol, far).array, 0.0)
    np.testing.assert_array_equal(resample(vol, far, fill_value=-3.5).array, -3.5)
    ct = Volume(np.zeros(vol.shape, dtype=np.int16), vol.grid, Quantity.CT_NUMBER, "HU")
    np.testing.assert_array_equal(resample(ct, far).array, -1000.0)
    np.testing.assert_array_equal(sample_points(ct, [[1000.0, 0.0, 0.0]]), [-1000.0])


# ---------------------------------------------------------------------------------------------- 2D
def test_2d_image_on_its_plane() -> None:
    # A portal image on an oblique plane, resampled onto a finer grid on the same plane: bilinear
    # interpolation reproduces a linear field exactly.
    rot = _rotation((0.2, 1.0, 0.3), 33.0)
    image_grid = Grid((30, 40), (-50.0, 10.0, 5.0), (1.6, 1.2, 1.0), tuple(rot.ravel()))
    image = Volume(_linear_field(image_grid), image_grid, Quantity.PORTAL_DOSE, "Gy")
    fine = Grid((50, 60), tuple(image_grid.index_to_world([3.3, 2.7])), (0.8, 0.6, 1.0), tuple(rot.ravel()))
    out = resample(image, fine)
    assert out.ndim == 2 and out.shape == (50, 60)
    pts = fine.world_points().reshape(-1, 3)
    inside = image_grid.contains(pts, edges=False)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(
        out.array.reshape(-1)[inside], _linear_field(fine).reshape(-1)[inside], atol=1e-9
    )


def test_2d_image_onto_3d_grid_fills_only_its_slab() -> None:
    image_grid = Grid((10, 12), (0.0, 0.0, 0.0), (1.0, 1.0, 2.0))  # axial plane z = 0, 2 mm nominal thickness
    image = Volume(np.ones((10, 12)), image_grid, Quantity.DOSE, "Gy")
    target = Grid((5, 10, 12), (0.0, 0.0, -1.5), (1.0, 1.0, 0.75))  # z = -1.5, -0.75, 0, 0.75, 1.5
    out = resample(image, target)
    np.testing.assert_array_equal(out.array[:, 5, 5], [0.0, 1.0, 1.0, 1.0, 0.0])  # within +-1 mm of the plane


# ------------------------------------------------------------------------------------- frames of reference
def test_frame_of_reference_refused_without_transform() -> None:
    rng = np.random.default_rng(6)
    vol = _dose_volume(rng, uid="1.2.3")
    grid = Grid((4, 5, 6), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    other = Volume(np.zeros((4, 5, 6)), grid, frame_of_reference_uid="9.8.7")
    with pytest.raises(FrameOfReferenceError, match=r"1\.2\.3 differs from the target's 9\.8\.7"):
        resample(vol, other)
    # Same UID, or an unknown one, is accepted; the result takes the target's Frame of Reference.
    assert resample(vol, other.with_array(other.array, frame_of_reference_uid="1.2.3")).frame_of_reference_uid
    assert (
        resample(vol, other.with_array(other.array, frame_of_reference_uid=None)).frame_of_reference_uid
        == "1.2.3"
    )
    assert resample(vol, other.grid).frame_of_reference_uid == "1.2.3"


@pytest.mark.parametrize("rotate", [False, True])
def test_transform_maps_target_points_into_moving_frame(rotate: bool) -> None:
    rng = np.random.default_rng(7)
    vol = _dose_volume(rng, uid="1.2.3")
    grid = Grid((8, 9, 10), (-10.0, -12.0, -6.0), (1.5, 1.5, 1.5))
    target = Volume(np.zeros((8, 9, 10)), grid, frame_of_reference_uid="9.8.7")
    rotation = _rotation((1.0, 0.0, 1.0), 8.0) if rotate else np.eye(3)
    t = RigidTransform.from_rotation_translation(rotation, (2.0, -3.0, 1.5))
    out = resample(vol, target, transform=t)
    assert out.frame_of_reference_uid == "9.8.7"
    assert out.quantity is Quantity.DOSE and out.units == "Gy"
    expected = sample_points(vol, t.apply(target.grid.world_points()))
    np.testing.assert_allclose(out.array, expected, atol=ATOL)
    # A pure translation by a whole number of voxels is a shift of the array.
    vol_grid = vol.grid
    shift = RigidTransform.from_translation((2.5 * 2, 2.0 * 3, 3.0 * 1))
    out = resample(vol, vol_grid.subgrid((0, 0, 0), (10, 9, 8)), transform=shift)
    np.testing.assert_allclose(out.array, vol.array[1:9, 3:12, 2:12], atol=ATOL)
    assert out.frame_of_reference_uid is None  # target given as a bare grid in an unnamed frame


# ---------------------------------------------------------------------------------------------- bad input
def test_nan_input_is_refused() -> None:
    rng = np.random.default_rng(8)
    vol = _dose_volume(rng)
    arr = vol.array.copy()
    arr[3, 4, 5] = np.nan
    bad = vol.with_array(arr)
    with pytest.raises(ParameterError, match=r"volume \(dose, Gy, shape \(12, 15, 18\)\) contains 1 NaN"):
        resample(bad, vol.grid)
    with pytest.raises(ParameterError, match="contains 1 NaN or infinite"):
        sample_points(bad, [[0.0, 0.0, 0.0]])


def test_bad_arguments() -> None:
    rng = np.random.default_rng(9)
    vol = _dose_volume(rng)
    with pytest.raises(ParameterError, match="method must be an Interpolation"):
        resample(vol, vol.grid, method="linear")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="onto must be a Grid or a Volume, got ndarray"):
        resample(vol, vol.array)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="transform must be a RigidTransform, got ndarray"):
        resample(vol, vol.grid, transform=np.eye(4))  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="fill_value must be a number, got NaN"):
        resample(vol, vol.grid, fill_value=float("nan"))
    with pytest.raises(ParameterError, match="volume must be a Volume, got ndarray"):
        resample(vol.array, vol.grid)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="volume must hold real numbers, got dtype complex128"):
        resample(vol.with_array(vol.array.astype(complex)), vol.grid)
    with pytest.raises(ParameterError, match=r"points_mm must have shape \(\.\.\., 3\)"):
        sample_points(vol, [1.0, 2.0])
    with pytest.raises(ParameterError, match="points_mm must be finite"):
        sample_points(vol, [[np.nan, 0.0, 0.0]])


# ---------------------------------------------------------------------------------------------- real data
@pytest.mark.external
def test_rtdose_onto_ct_slice(external_data) -> None:  # type: ignore[no-untyped-def]
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(external_data / "dicompyler-example" / "rtdose.dcm")
    offsets = np.asarray(ds.GridFrameOffsetVector, dtype=float)
    dose_grid = Grid.from_dicom_plane(
        (int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns)),
        ds.ImagePositionPatient,
        ds.ImageOrientationPatient,
        ds.PixelSpacing,
        slice_spacing_mm=float(offsets[1] - offsets[0]),
    )
    dose = Volume(ds.pixel_array * float(ds.DoseGridScaling), dose_grid, Quantity.DOSE, "Gy")
    ct = pydicom.dcmread(external_data / "dicompyler-example" / "ct.0.dcm")
    ct_grid = Grid.from_dicom_plane(
        (1, int(ct.Rows), int(ct.Columns)),
        ct.ImagePositionPatient,
        ct.ImageOrientationPatient,
        ct.PixelSpacing,
    )
    out = resample(dose, ct_grid)
    assert out.shape == (1, 512, 512)
    pts = ct_grid.world_points().reshape(-1, 3)
    inside = dose_grid.contains(pts, edges=False)
    assert inside.any()
    expected = _rgi(dose)(pts[inside][:, ::-1])
    np.testing.assert_allclose(out.array.reshape(-1)[inside], expected, atol=1e-9)
    assert out.array.max() <= dose.array.max() + 1e-9


# ------------------------------------------------------------------------------------------ RigidTransform
unit = st.floats(-1.0, 1.0, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(
    q=st.tuples(unit, unit, unit, unit).filter(lambda v: np.linalg.norm(v) > 0.1),
    t=st.tuples(*[st.floats(-500.0, 500.0)] * 3),
    q2=st.tuples(unit, unit, unit, unit).filter(lambda v: np.linalg.norm(v) > 0.1),
)
def test_rigid_transform_round_trip(
    q: tuple[float, ...], t: tuple[float, float, float], q2: tuple[float, ...]
) -> None:
    a = RigidTransform.from_rotation_translation(Rotation.from_quat(q).as_matrix(), t)
    b = RigidTransform.from_rotation_translation(Rotation.from_quat(q2).as_matrix(), (1.0, 2.0, 3.0))
    assert a.inverse().compose(a).is_identity(1e-9)
    assert a.compose(a.inverse()).is_identity(1e-9)
    p = np.array([[10.0, -20.0, 30.0], [0.0, 0.0, 0.0]])
    # compose applies the argument first.
    np.testing.assert_allclose(a.compose(b).apply(p), a.apply(b.apply(p)), atol=1e-9)
    np.testing.assert_allclose(a.inverse().apply(a.apply(p)), p, atol=1e-9)


def test_rigid_transform_basics() -> None:
    t = RigidTransform.from_translation((1.0, 2.0, 3.0))
    np.testing.assert_array_equal(t.apply([0.0, 0.0, 0.0]), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(t.translation_mm, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(t.rotation, np.eye(3))
    assert t.to_dict()["matrix"][0] == [1.0, 0.0, 0.0, 1.0]
    assert RigidTransform.identity().is_identity()
    assert t.is_close(RigidTransform.from_translation((1.0, 2.0, 3.0 + 1e-9)))
    assert not t.matrix.flags.writeable


def test_rigid_transform_validation() -> None:
    with pytest.raises(ParameterError, match=r"matrix must be 4 x 4 \(homogeneous\), got shape \(3, 3\)"):
        RigidTransform(np.eye(3))
    with pytest.raises(ParameterError, match="rotation block must be orthonormal"):
        RigidTransform.from_rotation_translation(2 * np.eye(3), (0, 0, 0))
    with pytest.raises(ParameterError, match=r"determinant \+1 \(no reflection\), got -1"):
        RigidTransform.from_rotation_translation(np.diag([1.0, 1.0, -1.0]), (0, 0, 0))
    bad = np.eye(4)
    bad[3, 0] = 1.0
    with pytest.raises(ParameterError, match=r"last row must be \[0, 0, 0, 1\]"):
        RigidTransform(bad)
    with pytest.raises(ParameterError, match="matrix must be finite"):
        RigidTransform(np.full((4, 4), np.nan))
    with pytest.raises(ParameterError, match="translation_mm must have 3 values"):
        RigidTransform.from_rotation_translation(np.eye(3), (1.0, 2.0))
    with pytest.raises(ParameterError, match=r"rotation must be 3 x 3, got shape \(2, 2\)"):
        RigidTransform.from_rotation_translation(np.eye(2), (1.0, 2.0, 3.0))
    with pytest.raises(ParameterError, match="other must be a RigidTransform"):
        RigidTransform.identity().compose(np.eye(4))  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"points_mm must have shape \(\.\.\., 3\)"):
        RigidTransform.identity().apply([1.0, 2.0])
