"""NIfTI, NRRD and npz round trips keep geometry, values and units; LPS <-> RAS; bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest

from intrepid.dicom import (
    read_nifti,
    read_npz,
    read_nrrd,
    read_volume,
    volume_format,
    write_nifti,
    write_npz,
    write_nrrd,
    write_volume,
)
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume


def _oblique_grid(shape: tuple[int, ...] = (4, 5, 6)) -> Grid:
    rng = np.random.default_rng(3)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    if np.linalg.det(rot) < 0:
        rot[:, 2] *= -1
    return Grid(shape, (10.0, -20.0, 30.5), (0.5, 0.75, 2.0), tuple(rot.reshape(-1)))


def _volume(grid: Grid, quantity: Quantity = Quantity.DOSE, units: str = "Gy") -> Volume:
    rng = np.random.default_rng(7)
    return Volume(rng.random(grid.shape).astype(np.float32), grid, quantity, units, "1.2.826.0.1.3680043.9.1")


WRITERS = {
    "npz": (write_npz, read_npz),
    "nii": (write_nifti, read_nifti),
    "nii.gz": (write_nifti, read_nifti),
    "nrrd": (write_nrrd, read_nrrd),
}
# NIfTI stores its affine in float32: positions agree to ~1e-5 relative, i.e. well below 1e-3 mm here.
TOLERANCE_MM = 1e-3


@pytest.mark.parametrize("ext", sorted(WRITERS))
@pytest.mark.parametrize("shape", [(4, 5, 6), (5, 6)])
def test_round_trip_keeps_geometry_values_and_units(tmp_path: Path, ext: str, shape: tuple[int, ...]) -> None:
    grid = _oblique_grid((4, 5, 6))
    if len(shape) == 2:
        grid = Grid(shape, grid.origin_mm, grid.spacing_mm, grid.direction)
    vol = _volume(grid)
    write, read = WRITERS[ext]
    path = tmp_path / f"v.{ext}"
    write(vol, path)
    back = read(path)
    assert back.ndim == vol.ndim
    assert back.grid.is_close(vol.grid, tolerance_mm=TOLERANCE_MM)
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.units == "Gy"
    assert back.quantity is Quantity.DOSE
    # The generic entry points give the same answer.
    assert volume_format(path).value in ("npz", "nifti", "nrrd")
    np.testing.assert_array_equal(read_volume(path).array, vol.array)


def test_nifti_affine_is_ras(tmp_path: Path) -> None:
    """A voxel at LPS (x, y, z) must sit at RAS (-x, -y, z) in the NIfTI file, as 3D Slicer reads it."""
    vol = _volume(Grid((3, 4, 5), (12.0, -7.0, 3.0), (1.0, 2.0, 3.0)))
    path = tmp_path / "v.nii.gz"
    write_nifti(vol, path)
    img = nib.load(str(path))
    ijk = np.array([4.0, 3.0, 2.0, 1.0])
    ras = img.affine @ ijk
    lps = vol.grid.index_to_world(ijk[:3])
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)
    # and the stored array is indexed [i, j, k]
    assert img.shape == (5, 4, 3)
    assert np.asarray(img.dataobj)[4, 3, 2] == vol.array[2, 3, 4]


def test_nrrd_in_ras_space_is_converted_to_lps(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)  # NRRD (F order) axes i, j, k
    header = {
        "space": "right-anterior-superior",
        "space directions": np.diag([1.0, 2.0, 3.0]),
        "space origin": np.array([5.0, 6.0, 7.0]),
    }
    path = tmp_path / "ras.nrrd"
    nrrd.write(str(path), data, header, index_order="F")
    vol = read_nrrd(path)
    assert vol.shape == (4, 3, 2)
    np.testing.assert_allclose(vol.grid.origin_mm, [-5.0, -6.0, 7.0])
    np.testing.assert_allclose(vol.grid.direction_matrix, np.diag([-1.0, -1.0, 1.0]))
    np.testing.assert_allclose(vol.grid.spacing_mm, [1.0, 2.0, 3.0])
    assert vol.array[3, 2, 1] == data[1, 2, 3]


def test_npz_keys_and_layout(tmp_path: Path) -> None:
    vol = _volume(Grid((2, 3, 4), (1.0, 2.0, 3.0), (0.5, 0.6, 0.7)))
    path = tmp_path / "v.npz"
    write_npz(vol, path)
    with np.load(path, allow_pickle=False) as data:
        assert {"array", "origin_mm", "spacing_mm", "direction", "units"} <= set(data.files)
        assert data["array"].shape == (2, 3, 4)
        np.testing.assert_allclose(data["spacing_mm"], [0.5, 0.6, 0.7])
        np.testing.assert_allclose(data["direction"], np.eye(3))
        assert str(data["units"]) == "Gy"


def test_npz_written_by_a_script_is_read(tmp_path: Path) -> None:
    path = tmp_path / "script.npz"
    np.savez(
        path,
        array=np.ones((3, 4)),
        origin_mm=[0, 0, 0],
        spacing_mm=[0.4, 0.4, 1],
        direction=np.eye(3),
        units="Gy",
    )
    vol = read_npz(path)
    assert vol.ndim == 2 and vol.quantity is Quantity.DOSE and vol.grid.spacing_mm == (0.4, 0.4, 1.0)


def test_npz_missing_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, array=np.ones((3, 4)), origin_mm=[0, 0, 0])
    with pytest.raises(ParameterError, match=r"bad\.npz.*spacing_mm"):
        read_npz(path)


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickle.npz"
    np.savez(
        path,
        array=np.array([{"a": 1}], dtype=object),
        origin_mm=[0, 0, 0],
        spacing_mm=[1, 1, 1],
        direction=np.eye(3),
        units="Gy",
    )
    with pytest.raises(ParameterError, match="pickle"):
        read_npz(path)


def test_sheared_nifti_is_refused(tmp_path: Path) -> None:
    affine = np.array([[1.0, 0.5, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1]])
    path = tmp_path / "shear.nii"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), affine), str(path))
    with pytest.raises(GeometryError, match="sheared"):
        read_nifti(path)


def test_truncated_files_fail_with_the_file_name(tmp_path: Path) -> None:
    vol = _volume(Grid((4, 5, 6), (0, 0, 0), (1, 1, 1)))
    for ext in ("nii.gz", "nrrd", "npz"):
        path = tmp_path / f"v.{ext}"
        write_volume(vol, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
        with pytest.raises(ParameterError, match=r"v\."):
            read_volume(path)


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    vol = _volume(Grid((2, 2, 2), (0, 0, 0), (1, 1, 1)))
    with pytest.raises(ParameterError, match="unknown output format"):
        write_volume(vol, tmp_path / "v.mha")
    (tmp_path / "v.mha").write_bytes(b"x")
    with pytest.raises(ParameterError, match="unknown volume format"):
        read_volume(tmp_path / "v.mha")
    with pytest.raises(ParameterError, match="no such file"):
        read_volume(tmp_path / "missing.nii")


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    vol = _volume(Grid((2, 2, 2), (0, 0, 0), (1, 1, 1)))
    with pytest.raises(OSError):
        write_volume(vol, tmp_path / "no-such-folder" / "v.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_bool_masks_are_written_as_bytes(tmp_path: Path) -> None:
    grid = Grid((2, 3, 4), (0, 0, 0), (1, 1, 1))
    mask = Volume(np.zeros(grid.shape, bool), grid, Quantity.MASK, "1")
    for ext in ("nii.gz", "nrrd", "npz"):
        back = read_volume(write_volume(mask, tmp_path / f"m.{ext}"))
        assert back.array.dtype in (np.uint8, np.bool_)
