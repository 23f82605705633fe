"""ROIs of an RT Structure Set → binary masks, fractional-occupancy masks and closed triangle meshes.

The geometry (end caps, holes, exact partial volumes) is documented in :mod:`intrepid.geometry._rasterize`:
each contour plane stands for a slab reaching halfway to its neighbours, the first and last planes half the
contour spacing beyond themselves (Nelms et al. 2015, doi:10.1118/1.4923175); nested contours on one plane
are holes. Point ROIs, open contours and empty ROIs enclose no volume: their masks are all zero and their mesh
is empty.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from intrepid.dicom._rtstruct import ROI
from intrepid.errors import FrameOfReferenceError, ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.geometry._mesh import TriangleMesh, isosurface_mesh
from intrepid.geometry._rasterize import polygon_stack_mask, polygon_stack_occupancy

__all__ = ["roi_fractional_mask", "roi_mask", "roi_mesh"]

_log = logging.getLogger(__name__)

#: Largest number of voxels of the working grid of :func:`roi_mesh` before its spacing is coarsened.
MESH_MAX_VOXELS = 8_000_000


def _target(roi: ROI, grid_or_volume: Grid | Volume) -> tuple[Grid, str | None]:
    if isinstance(grid_or_volume, Volume):
        vol_uid = grid_or_volume.frame_of_reference_uid
        if vol_uid and roi.frame_of_reference_uid and vol_uid != roi.frame_of_reference_uid:
            raise FrameOfReferenceError(
                f"ROI {roi.name!r} is in Frame of Reference {roi.frame_of_reference_uid} but the volume is "
                f"in {vol_uid}; register them first"
            )
        return grid_or_volume.grid, roi.frame_of_reference_uid or vol_uid
    if isinstance(grid_or_volume, Grid):
        return grid_or_volume, roi.frame_of_reference_uid
    raise ParameterError(f"grid_or_volume must be a Grid or a Volume, got {type(grid_or_volume).__name__}")


def _polygons(roi: ROI) -> list[np.ndarray]:
    polys = [c.points_mm for c in roi.area_contours]
    if not polys:
        _log.info("ROI %r encloses no volume (empty, point or open contours): all-zero mask", roi.name)
    return polys


def _metadata(roi: ROI) -> dict[str, Any]:
    return {"roi_name": roi.name, "roi_number": roi.number}


def roi_mask(roi: ROI, grid_or_volume: Grid | Volume, *, crop: bool = False) -> Volume:
    """Binary mask of an ROI: voxels whose centre lies inside the structure.

    Parameters
    ----------
    roi : ROI
        From :func:`read_rtstruct`.
    grid_or_volume : Grid or Volume
        Where to make the mask (a CT, an RTDOSE...). A Volume's Frame of Reference UID must match the ROI's.
        The grid must be axis-aligned or axis-permuted.
    crop : bool
        Return only the smallest sub-grid that holds the ROI (faster statistics on big grids).

    Returns
    -------
    Volume
        bool array, :attr:`Quantity.MASK`, with the ROI's Frame of Reference UID and ``metadata["roi_name"]``.
        Empty, point and open-contour ROIs give an all-False mask.

    Raises
    ------
    FrameOfReferenceError
        The volume and the ROI are in different Frames of Reference (both UIDs named).
    GeometryError
        Oblique grid, or a contour not in an axial plane.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> from intrepid.dicom import read_rtstruct
    >>> roi = read_rtstruct(get_testdata_file("rtstruct.dcm")).roi("patient")
    >>> grid = Grid((3, 40, 50), origin_mm=(-245, -195, -210), spacing_mm=(10, 10, 10))
    >>> int(roi_mask(roi, grid).array.sum())
    2400
    """
    grid, uid = _target(roi, grid_or_volume)
    vol = polygon_stack_mask(_polygons(roi), grid, crop=crop)
    return Volume(vol.array, vol.grid, Quantity.MASK, "1", uid, _metadata(roi))


def roi_fractional_mask(
    roi: ROI, grid_or_volume: Grid | Volume, *, supersample: int | None = None, crop: bool = False
) -> Volume:
    """Fractional-occupancy mask of an ROI: the part of each voxel inside the structure, in [0, 1].

    With ``supersample=None`` the occupancy is exact for the half-slice end-cap model (exact polygon ∩ pixel
    areas and slab overlaps), so small and thin structures keep their volume on coarse dose grids:
    ``mask.array.sum() * grid.voxel_volume_mm3`` is the ROI's volume in mm³.

    Parameters
    ----------
    roi : ROI
        From :func:`read_rtstruct`.
    grid_or_volume : Grid or Volume
        As for :func:`roi_mask`.
    supersample : int, optional
        Use point sampling at ``n × n × n`` points per voxel instead of exact areas (for comparisons).
    crop : bool
        Return only the smallest sub-grid that holds the ROI.

    Returns
    -------
    Volume
        float32 array in [0, 1], :attr:`Quantity.MASK`, with the ROI's Frame of Reference UID. Empty, point
        and open-contour ROIs give an all-zero mask.

    References
    ----------
    Nelms et al. 2015, Med Phys 42:4435, doi:10.1118/1.4923175.
    """
    grid, uid = _target(roi, grid_or_volume)
    vol = polygon_stack_occupancy(_polygons(roi), grid, supersample=supersample, crop=crop)
    return Volume(vol.array, vol.grid, Quantity.MASK, "1", uid, _metadata(roi))


def _mesh_spacing(spacing_mm: float | Sequence[float] | ArrayLike | None) -> np.ndarray:
    if spacing_mm is None:
        return np.array([1.0, 1.0, 1.0])
    sp = np.asarray(spacing_mm, dtype=float).reshape(-1)
    if sp.size == 1:
        sp = np.repeat(sp, 3)
    if sp.size != 3 or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ParameterError(f"spacing_mm must be one or three values > 0 (x, y, z), got {sp.tolist()}")
    return sp


def roi_mesh(roi: ROI, *, spacing_mm: float | Sequence[float] | None = None) -> TriangleMesh:
    """Closed, consistently oriented triangle mesh of an ROI's surface (world LPS, mm).

    The ROI's exact fractional occupancy is computed on a fine axis-aligned grid padded around the ROI and
    its 0.5 iso-surface extracted by marching cubes (Lewiner et al. 2003). The surface follows the
    half-slice end-cap model, so it is stepped in z at the contour planes' slab boundaries; its enclosed
    volume approaches the ROI's volume as ``spacing_mm`` decreases (marching cubes bevels edges by an amount
    proportional to the spacing).

    Parameters
    ----------
    roi : ROI
        From :func:`read_rtstruct`.
    spacing_mm : float or 3 floats, optional
        Working-grid spacing (x, y, z) in mm; default 1 mm, coarsened where the grid would exceed
        8 million voxels.

    Returns
    -------
    TriangleMesh
        Outward normals; empty for ROIs that enclose no volume.
    """
    sp = _mesh_spacing(spacing_mm)
    polys = _polygons(roi)
    if not polys:
        return TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    pts = np.concatenate(polys)
    z = roi.z_planes_mm
    spacing_z = float(np.median(np.diff(z))) if z.size > 1 else float(sp[2])
    lo = pts.min(axis=0) - 2 * sp
    hi = pts.max(axis=0) + 2 * sp
    lo[2] -= 0.5 * spacing_z
    hi[2] += 0.5 * spacing_z
    n = np.ceil((hi - lo) / sp) + 1
    if np.prod(n) > MESH_MAX_VOXELS:
        factor = float((np.prod(n) / MESH_MAX_VOXELS) ** (1 / 3))
        sp = sp * factor
        _log.info("roi_mesh: ROI %r is large; working spacing coarsened to %s mm", roi.name, sp.tolist())
    grid = Grid.from_bounds(lo, hi + sp, sp)
    occupancy = polygon_stack_occupancy(polys, grid, single_plane_thickness_mm=spacing_z)
    return isosurface_mesh(occupancy, 0.5, pad=True)
