"""Beam geometry of a proton (ion) field: point or dual source, image-to-beam transform, beam-line view.

Beam frame
----------
The beam frame is the IEC 61217 beam-limiting-device frame (``Frame.BEAM_LIMITING_DEVICE``): origin at the
isocentre, ``z`` along the beam axis *towards the source*, ``x`` and ``y`` the collimator axes. For a
head-first-supine patient at gantry, collimator and couch 0: ``x`` = patient left, ``y`` = superior (towards
the gantry), ``z`` = anterior (see :mod:`intrepid.geometry._frames` for every position and angle).
DICOM Block Data and compensator positions are given in this frame, so device outlines need no further
rotation.

Point and dual source
---------------------
An ion beam may diverge from different apparent (virtual) sources in x and y (two scanning magnets, or a
double-scattering system): ``sad_mm = (SAD_x, SAD_y)`` are the Virtual Source-Axis Distances (300A,030A).
Each axis diverges from its own source, so a point at beam coordinates ``(x, y, z)`` projects to the plane at
``z_p`` (distance from the isocentre towards the source) as

    u = x · (SAD_x − z_p) / (SAD_x − z),    v = y · (SAD_y − z_p) / (SAD_y − z).

With ``SAD_x == SAD_y`` this is the ordinary central projection from a point source.

References
----------
DICOM PS3.3 C.8.8.25.4, Virtual Source-Axis Distances and the use of trays in ion therapy: device sizes
scale with ``VirtualSAD − IsocenterToDeviceDistance``.
IEC 61217:2011, Radiotherapy equipment — Coordinates, movements and scales.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import ParameterError
from intrepid.geometry import Frame, MachineAngles, PatientPosition, frame_transform

__all__ = ["BeamGeometry", "BeamLineView"]

_log = logging.getLogger(__name__)


def _finite(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v):
        raise ParameterError(f"{name} must be finite, got {v}")
    return v


def _points3(name: str, points: ArrayLike) -> NDArray[np.float64]:
    p = np.asarray(points, dtype=float)
    if p.ndim == 0 or p.shape[-1] != 3:
        raise ParameterError(f"{name} must have shape (..., 3) (x, y, z in mm), got {p.shape}")
    return p


@dataclass(frozen=True, eq=False)
class BeamLineView:
    """Where the beam line is, seen in the patient frame, for one isocentre.

    Parameters
    ----------
    isocenter_mm : tuple of 3 float
        Isocentre, patient LPS, mm.
    sad_mm : tuple of 2 float
        Virtual source-axis distances (x, y), mm.
    source_x_mm, source_y_mm : tuple of 3 float
        LPS positions (mm) of the virtual sources of the x and y divergence (equal for a point source).
    beam_axis : tuple of 3 float
        Unit LPS vector of the central axis from the source towards the isocentre (−z of the beam frame).
    x_axis, y_axis : tuple of 3 float
        Unit LPS vectors of the beam frame's x and y axes.
    image_to_beam : ndarray, shape (4, 4)
        Patient LPS (mm) → beam frame (mm).
    """

    isocenter_mm: tuple[float, float, float]
    sad_mm: tuple[float, float]
    source_x_mm: tuple[float, float, float]
    source_y_mm: tuple[float, float, float]
    beam_axis: tuple[float, float, float]
    x_axis: tuple[float, float, float]
    y_axis: tuple[float, float, float]
    image_to_beam: NDArray[np.float64]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "isocenter_mm": list(self.isocenter_mm),
            "sad_mm": list(self.sad_mm),
            "source_x_mm": list(self.source_x_mm),
            "source_y_mm": list(self.source_y_mm),
            "beam_axis": list(self.beam_axis),
            "x_axis": list(self.x_axis),
            "y_axis": list(self.y_axis),
        }


@dataclass(frozen=True)
class BeamGeometry:
    """Geometry of one proton field: virtual source distances per axis, machine angles, isocentre.

    Parameters
    ----------
    sad_mm : tuple of 2 float
        Virtual Source-Axis Distances ``(SAD_x, SAD_y)`` in mm (> 0). Equal values: point source; different
        values: dual source (each axis diverges from its own source).
    gantry_deg, couch_deg, collimator_deg : float
        IEC 61217 gantry, patient-support and beam-limiting-device angles in degrees.
    isocenter_mm : tuple of 3 float
        Isocentre in the DICOM patient frame (LPS), mm.
    patient_position : PatientPosition or str
        DICOM Patient Position (HFS, FFS, HFP, ...).

    Examples
    --------
    >>> g = BeamGeometry(sad_mm=(2000.0, 2000.0), gantry_deg=0.0)
    >>> g.to_beam([[0.0, -100.0, 0.0]]).round(6).tolist()   # HFS gantry 0: anterior is towards the source
    [[0.0, 0.0, 100.0]]
    >>> g.magnification(1000.0)
    (0.5, 0.5)
    """

    sad_mm: tuple[float, float]
    gantry_deg: float = 0.0
    couch_deg: float = 0.0
    collimator_deg: float = 0.0
    isocenter_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    patient_position: PatientPosition = PatientPosition.HFS

    def __post_init__(self) -> None:
        sad = np.asarray(self.sad_mm, dtype=float).reshape(-1)
        if sad.size == 1:
            sad = np.repeat(sad, 2)
        if sad.size != 2:
            raise ParameterError(f"sad_mm must have 2 values (x, y), got {sad.size}")
        if not np.all(np.isfinite(sad)) or np.any(sad <= 0):
            raise ParameterError(f"sad_mm must be > 0 and finite, got {sad.tolist()}")
        object.__setattr__(self, "sad_mm", (float(sad[0]), float(sad[1])))
        for name in ("gantry_deg", "couch_deg", "collimator_deg"):
            object.__setattr__(self, name, _finite(name, getattr(self, name)))
        iso = np.asarray(self.isocenter_mm, dtype=float).reshape(-1)
        if iso.size != 3 or not np.all(np.isfinite(iso)):
            raise ParameterError(f"isocenter_mm must be 3 finite values (x, y, z), got {iso.tolist()}")
        object.__setattr__(self, "isocenter_mm", (float(iso[0]), float(iso[1]), float(iso[2])))
        pos = self.patient_position
        if isinstance(pos, str):
            pos = PatientPosition.from_dicom(pos)
        if not isinstance(pos, PatientPosition):
            raise ParameterError(f"patient_position must be a PatientPosition, got {pos!r}")
        object.__setattr__(self, "patient_position", pos)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_ion_plan(cls, plan: Any, beam_number: int | str, control_point: int = 0) -> BeamGeometry:
        """Geometry of a beam of an RT (Ion) Plan read by :func:`intrepid.dicom.read_rtplan`.

        Parameters
        ----------
        plan : RTPlan
        beam_number : int or str
            Beam Number, or Beam Name.
        control_point : int
            Index of the control point whose angles and isocentre are used.

        Raises
        ------
        ParameterError
            No such beam or control point.
        """
        beam = plan.beam(beam_number)
        n = len(beam.control_points)
        if not 0 <= int(control_point) < n:
            raise ParameterError(
                f"control_point must be in 0..{n - 1} for beam {beam.number} {beam.name!r}, "
                f"got {control_point}"
            )
        cp = beam.control_points[int(control_point)]
        position = beam.patient_position or plan.patient_position or PatientPosition.HFS
        if beam.patient_position is None and plan.patient_position is None:
            _log.warning("plan %s gives no Patient Position: assuming HFS", plan.source)
        return cls(
            sad_mm=tuple(beam.sad_mm),
            gantry_deg=cp.gantry_deg,
            couch_deg=cp.couch_deg,
            collimator_deg=cp.collimator_deg,
            isocenter_mm=tuple(cp.isocenter_mm),
            patient_position=position,
        )

    # ------------------------------------------------------------------ properties
    @property
    def is_dual_source(self) -> bool:
        """True when the x and y virtual source distances differ."""
        return self.sad_mm[0] != self.sad_mm[1]

    @property
    def angles(self) -> MachineAngles:
        """The machine angles as :class:`MachineAngles`."""
        return MachineAngles(self.gantry_deg, self.collimator_deg, self.couch_deg)

    @property
    def image_to_beam(self) -> NDArray[np.float64]:
        """4 × 4 homogeneous matrix: patient LPS (mm) → beam frame (mm, isocentre at the origin)."""
        return frame_transform(
            Frame.PATIENT_LPS,
            Frame.BEAM_LIMITING_DEVICE,
            self.angles,
            patient_position=self.patient_position,
            isocenter_mm=self.isocenter_mm,
        )

    @property
    def beam_to_image(self) -> NDArray[np.float64]:
        """4 × 4 homogeneous matrix: beam frame (mm) → patient LPS (mm); inverse of :attr:`image_to_beam`."""
        return frame_transform(
            Frame.BEAM_LIMITING_DEVICE,
            Frame.PATIENT_LPS,
            self.angles,
            patient_position=self.patient_position,
            isocenter_mm=self.isocenter_mm,
        )

    # ------------------------------------------------------------------ transforms
    def to_beam(self, points_lps_mm: ArrayLike) -> NDArray[np.float64]:
        """Beam-frame coordinates (mm) of LPS points, shape (..., 3) → (..., 3)."""
        p = _points3("points_lps_mm", points_lps_mm)
        m = self.image_to_beam
        return np.asarray(p @ m[:3, :3].T + m[:3, 3], dtype=float)

    def to_image(self, points_beam_mm: ArrayLike) -> NDArray[np.float64]:
        """LPS coordinates (mm) of beam-frame points, shape (..., 3) → (..., 3)."""
        p = _points3("points_beam_mm", points_beam_mm)
        m = self.beam_to_image
        return np.asarray(p @ m[:3, :3].T + m[:3, 3], dtype=float)

    def magnification(self, z_mm: float) -> tuple[float, float]:
        """Per-axis magnification of the plane at ``z_mm`` (beam z, towards the source) relative to isocentre.

        A length ``d`` at the isocentre plane appears as ``d · m`` at that plane, with
        ``m_a = (SAD_a − z) / SAD_a`` (source-to-plane distance over SAD), for a = x, y.

        Raises
        ------
        ParameterError
            The plane is at or behind a source (``z >= SAD``).
        """
        z = _finite("z_mm", z_mm)
        sx, sy = self.sad_mm
        if z >= min(sx, sy):
            raise ParameterError(f"z_mm must be < the source distance {min(sx, sy)} mm, got {z}")
        return ((sx - z) / sx, (sy - z) / sy)

    def project_beam_points(
        self, points_beam_mm: ArrayLike, plane_distance_from_iso_mm: float
    ) -> NDArray[np.float64]:
        """Project beam-frame points along the (dual-source) rays onto the plane at ``z`` from the isocentre.

        Parameters
        ----------
        points_beam_mm : array_like, shape (..., 3)
        plane_distance_from_iso_mm : float
            Distance of the plane from the isocentre towards the source (negative: beyond the isocentre).

        Returns
        -------
        ndarray, shape (..., 2)
            ``(u, v)`` in mm in the plane (beam x, y axes). Points at or behind a source give NaN.
        """
        p = _points3("points_beam_mm", points_beam_mm)
        zp = _finite("plane_distance_from_iso_mm", plane_distance_from_iso_mm)
        sx, sy = self.sad_mm
        if zp >= min(sx, sy):
            raise ParameterError(
                f"plane_distance_from_iso_mm must be < the source distance {min(sx, sy)} mm, got {zp}"
            )
        z = p[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            fx = np.where(z < sx, (sx - zp) / (sx - z), np.nan)
            fy = np.where(z < sy, (sy - zp) / (sy - z), np.nan)
        return np.stack([p[..., 0] * fx, p[..., 1] * fy], axis=-1)

    def project_to_plane(
        self, points_lps: ArrayLike, plane_distance_from_iso_mm: float
    ) -> NDArray[np.float64]:
        """Beam's-eye-view projection of LPS points onto a plane perpendicular to the beam axis.

        Parameters
        ----------
        points_lps : array_like, shape (..., 3)
            Points in the patient frame (LPS, mm).
        plane_distance_from_iso_mm : float
            Distance of the plane from the isocentre along the axis towards the source (mm); 0 is the
            isocentre plane, a device plane is positive.

        Returns
        -------
        ndarray, shape (..., 2)
            ``(u, v)`` in mm, along the beam x and y axes, at the plane (true size there).

        Examples
        --------
        >>> g = BeamGeometry(sad_mm=(1800.0, 2000.0))
        >>> g.project_beam_points([[10.0, 10.0, 100.0]], 0.0).round(4).tolist()
        [[10.5882, 10.5263]]
        """
        return self.project_beam_points(self.to_beam(points_lps), plane_distance_from_iso_mm)

    def beam_line_view(self, isocenter_mm: ArrayLike | None = None) -> BeamLineView:
        """The beam line seen in the patient frame for an isocentre (default: this geometry's).

        Parameters
        ----------
        isocenter_mm : array_like, 3, optional
            Isocentre (LPS, mm) to place the beam line on; the angles and source distances are kept.
        """
        geometry = self if isocenter_mm is None else self.with_isocenter(isocenter_mm)
        m = geometry.beam_to_image
        r, t = m[:3, :3], m[:3, 3]
        sx, sy = geometry.sad_mm

        def tup(v: NDArray[np.float64]) -> tuple[float, float, float]:
            return (float(v[0]), float(v[1]), float(v[2]))

        return BeamLineView(
            isocenter_mm=geometry.isocenter_mm,
            sad_mm=geometry.sad_mm,
            source_x_mm=tup(r @ np.array([0.0, 0.0, sx]) + t),
            source_y_mm=tup(r @ np.array([0.0, 0.0, sy]) + t),
            beam_axis=tup(r @ np.array([0.0, 0.0, -1.0])),
            x_axis=tup(r[:, 0]),
            y_axis=tup(r[:, 1]),
            image_to_beam=geometry.image_to_beam,
        )

    def with_isocenter(self, isocenter_mm: ArrayLike) -> BeamGeometry:
        """The same beam moved to another isocentre (LPS, mm)."""
        iso = np.asarray(isocenter_mm, dtype=float).reshape(-1)
        if iso.size != 3:
            raise ParameterError(f"isocenter_mm must have 3 values (x, y, z), got {iso.size}")
        return BeamGeometry(
            self.sad_mm, self.gantry_deg, self.couch_deg, self.collimator_deg,
            (float(iso[0]), float(iso[1]), float(iso[2])), self.patient_position,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the geometry."""
        return {
            "sad_mm": list(self.sad_mm),
            "dual_source": self.is_dual_source,
            "gantry_deg": self.gantry_deg,
            "couch_deg": self.couch_deg,
            "collimator_deg": self.collimator_deg,
            "isocenter_mm": list(self.isocenter_mm),
            "patient_position": self.patient_position.value,
        }
