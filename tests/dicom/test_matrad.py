"""matRad phantoms: axis mapping (y, x, z) -> [k, j, i], 1-based column-major structure indices, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from intrepid.dicom import read_matrad_phantom
from intrepid.errors import GeometryError, ParameterError
from intrepid.geometry import Quantity
from intrepid.physics import HUCalibration


def _write(path: Path, cube: np.ndarray, *, axes: bool = True, cst: list | None = None, hlut=None) -> Path:
    ny, nx, nz = cube.shape
    ct: dict = {"cubeHU": cube, "resolution": {"x": 2.0, "y": 3.0, "z": 4.0}, "cubeDim": np.array(cube.shape)}
    if axes:
        ct["x"] = -10.0 + 2.0 * np.arange(nx)
        ct["y"] = 5.0 + 3.0 * np.arange(ny)
        ct["z"] = 100.0 + 4.0 * np.arange(nz)
    if hlut is not None:
        ct["hlut"] = hlut
    data: dict = {"ct": ct}
    if cst is not None:
        cell = np.empty((len(cst), 6), dtype=object)
        for r, row in enumerate(cst):
            for c, v in enumerate(row):
                cell[r, c] = v
            cell[r, 4] = {"Priority": 1}
            cell[r, 5] = np.zeros((0,))
        data["cst"] = cell
    scipy.io.savemat(path, data)
    return path


def test_axes_and_structures_are_mapped(tmp_path: Path) -> None:
    ny, nx, nz = 3, 4, 5
    cube = np.arange(ny * nx * nz, dtype=float).reshape(ny, nx, nz)
    # a structure made of one voxel (y=1, x=2, z=3) as matRad stores it: 1-based, column-major over (y, x, z)
    lin = np.ravel_multi_index((1, 2, 3), (ny, nx, nz), order="F") + 1
    path = _write(
        tmp_path / "p.mat",
        cube,
        cst=[[0, "Target", "TARGET", np.array([lin, lin])]],
        hlut=np.array([[-1000, 0.0], [0, 1.0]]),
    )
    ph = read_matrad_phantom(path)
    assert ph.ct.shape == (nz, ny, nx)
    assert ph.ct.grid.origin_mm == (-10.0, 5.0, 100.0) and ph.ct.grid.spacing_mm == (2.0, 3.0, 4.0)
    assert ph.ct.quantity is Quantity.CT_NUMBER and ph.ct.units == "HU"
    # array[k, j, i] = cube[y=j, x=i, z=k]
    assert ph.ct.array[3, 1, 2] == cube[1, 2, 3]
    np.testing.assert_array_equal(ph.ct.array, np.transpose(cube, (2, 0, 1)))
    mask = ph.structures["Target"]
    assert mask.quantity is Quantity.MASK and mask.array.dtype == bool
    assert np.argwhere(mask.array).tolist() == [[3, 1, 2]]
    assert ph.structure_types == {"Target": "TARGET"}
    # world position of that voxel: x = -10 + 2*2, y = 5 + 3*1, z = 100 + 4*3
    np.testing.assert_allclose(ph.ct.grid.index_to_world([2, 1, 3]), [-6.0, 8.0, 112.0])
    assert HUCalibration.from_matrad_hlut(ph.hlut)(0) == 1.0


def test_missing_axes_centre_the_cube(tmp_path: Path) -> None:
    ph = read_matrad_phantom(_write(tmp_path / "p.mat", np.zeros((3, 4, 5)), axes=False))
    lo, hi = ph.ct.grid.bounds_mm()
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-12)
    assert ph.structures == {} and ph.hlut is None


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_matrad_phantom(tmp_path / "none.mat")
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ParameterError, match=r"junk\.mat"):
        read_matrad_phantom(junk)
    no_ct = tmp_path / "no_ct.mat"
    scipy.io.savemat(no_ct, {"dose": np.zeros(3)})
    with pytest.raises(ParameterError, match="no variable 'ct'"):
        read_matrad_phantom(no_ct)
    no_cube = tmp_path / "no_cube.mat"
    scipy.io.savemat(no_cube, {"ct": {"resolution": {"x": 1.0, "y": 1.0, "z": 1.0}}})
    with pytest.raises(ParameterError, match="cubeHU"):
        read_matrad_phantom(no_cube)


def test_inconsistent_axes_and_indices(tmp_path: Path) -> None:
    cube = np.zeros((3, 4, 5))
    path = tmp_path / "bad_axis.mat"
    scipy.io.savemat(
        path,
        {
            "ct": {
                "cubeHU": cube,
                "resolution": {"x": 2.0, "y": 3.0, "z": 4.0},
                "x": np.arange(4) * 5.0,
                "y": np.arange(3) * 3.0,
                "z": np.arange(5) * 4.0,
            }
        },
    )
    with pytest.raises(GeometryError, match=r"ct.x is not evenly spaced"):
        read_matrad_phantom(path)
    with pytest.raises(GeometryError, match=r"outside 1\.\.60"):
        read_matrad_phantom(_write(tmp_path / "idx.mat", cube, cst=[[0, "A", "OAR", np.array([1, 61])]]))


def test_tg119(external_data: Path) -> None:
    ph = read_matrad_phantom(external_data / "tg119" / "TG119.mat")
    assert ph.ct.shape == (129, 167, 167)
    assert ph.ct.grid.spacing_mm == (3.0, 3.0, 2.5)
    assert ph.ct.grid.origin_mm == (-250.0, -250.0, -160.0)
    counts = {name: int(v.array.sum()) for name, v in ph.structures.items()}
    assert counts == {"Core": 1320, "OuterTarget": 7458, "BODY": 601736}
    assert ph.structure_types["OuterTarget"] == "TARGET"
    # the target and core lie inside the body, where the phantom is water-like (|HU| < 200 at the median)
    body = ph.structures["BODY"].array
    assert np.all(body[ph.structures["OuterTarget"].array]) and np.all(body[ph.structures["Core"].array])
    assert abs(float(np.median(ph.ct.array[body]))) < 200
    assert ph.hlut is not None and ph.hlut.shape == (6, 2)
