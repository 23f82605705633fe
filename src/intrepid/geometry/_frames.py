"""Machine frames (IEC 61217) and the DICOM patient frame (LPS), for every patient position.

Conventions, written down once
------------------------------
IEC 61217 (2011) defines a tree of right-handed coordinate systems, all in mm:

* **FIXED** (f): origin at the isocentre; +X_f to the right of an observer standing at the foot of the
  couch and facing the gantry, +Y_f horizontal from the isocentre towards the gantry, +Z_f vertical, up.
* **GANTRY** (g): rotated from f about Y_f by the gantry angle. At gantry 0 the source is on +Z_g (above the
  isocentre) and Z_g stays the beam axis pointing to the source.
* **BEAM_LIMITING_DEVICE** (b): rotated from g about Z_g (the beam axis) by the collimator angle.
* **IMAGE_RECEPTOR** (r): child of the gantry frame (it does not turn with the collimator), axes parallel to
  g, origin on the beam axis at the receptor plane, ``Z_g = SAD - SID`` (i.e. SID from the source).
* **PATIENT_SUPPORT** (s): rotated from f about Z_f (the vertical through the isocentre) by the patient
  support (couch) angle.
* **TABLE_TOP** (t): here identical to s: table-top eccentric rotation, pitch, roll and the table
  translations are taken as zero (the isocentre is the origin of the table-top frame).

Rotation sense: every IEC angle is a *right-handed* rotation about the positive axis (clockwise when looking
from the origin along the positive axis). Hence gantry 90 puts the source on +X_f, the collimator turns
counter-clockwise as seen from the source (beam's-eye view), and the couch turns counter-clockwise as seen
from above.

The DICOM patient frame **PATIENT_LPS** (+x patient left, +y posterior, +z superior) sits on the table top
according to Patient Position (0018,5100): e.g. head-first supine (HFS) gives ``x = X_t``, ``y = -Z_t``,
``z = Y_t``; the table-top origin (the isocentre) is at ``isocenter_mm`` in LPS (Isocenter Position
(300A,012C)). The other positions follow from where the head (towards or away from the gantry) and the
anterior side (up, down, or — decubitus — towards ±X_t) point; see :data:`_LPS_IN_TABLE_TOP`.

References
----------
IEC 61217:2011, Radiotherapy equipment — Coordinates, movements and scales.
DICOM PS3.3, C.7.3.1.1.2 (Patient Position) and C.8.8.25.6 (RT coordinate systems).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import ParameterError
from intrepid.geometry._grid import Grid

__all__ = [
    "DetectorPlane",
    "Frame",
    "MachineAngles",
    "PatientPosition",
    "beam_direction",
    "detector_plane",
    "frame_transform",
    "project_to_plane",
    "source_position_mm",
]


class Frame(enum.Enum):
    """The coordinate systems that InTrEPID converts between (IEC 61217 names, plus DICOM LPS)."""

    FIXED = "iec_fixed"
    GANTRY = "iec_gantry"
    BEAM_LIMITING_DEVICE = "iec_beam_limiting_device"
    PATIENT_SUPPORT = "iec_patient_support"
    TABLE_TOP = "iec_table_top"
    IMAGE_RECEPTOR = "iec_image_receptor"
    PATIENT_LPS = "dicom_patient_lps"


class PatientPosition(enum.Enum):
    """DICOM Patient Position (0018,5100): head or feet first towards the gantry, and how the patient lies."""

    HFS = "HFS"  #: head first, supine
    HFP = "HFP"  #: head first, prone
    FFS = "FFS"  #: feet first, supine
    FFP = "FFP"  #: feet first, prone
    HFDR = "HFDR"  #: head first, decubitus right (lying on the right side)
    HFDL = "HFDL"  #: head first, decubitus left
    FFDR = "FFDR"  #: feet first, decubitus right
    FFDL = "FFDL"  #: feet first, decubitus left

    @classmethod
    def from_dicom(cls, code: str) -> PatientPosition:
        """Parse the value of Patient Position (0018,5100), e.g. ``"HFS"`` (case and spaces ignored)."""
        text = str(code).strip().upper()
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(p.value for p in cls)
            raise ParameterError(
                f"Patient Position (0018,5100) must be one of {allowed}, got {code!r}"
            ) from None


# Columns: the LPS unit vectors (x = left, y = posterior, z = superior) written in IEC table-top coordinates.
# Head first: superior = +Y_t (towards the gantry); feet first: superior = -Y_t. Supine: anterior = +Z_t, so
# posterior = -Z_t; prone: posterior = +Z_t; decubitus right: the right side is down, so left = +Z_t;
# decubitus left: left = -Z_t. The remaining axis follows from x × y = z (right-handed).
_LPS_IN_TABLE_TOP: dict[PatientPosition, NDArray[np.float64]] = {
    PatientPosition.HFS: np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=float),
    PatientPosition.HFP: np.array([[-1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=float),
    PatientPosition.FFS: np.array([[-1, 0, 0], [0, 0, -1], [0, -1, 0]], dtype=float),
    PatientPosition.FFP: np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=float),
    PatientPosition.HFDR: np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float),
    PatientPosition.HFDL: np.array([[0, -1, 0], [0, 0, 1], [-1, 0, 0]], dtype=float),
    PatientPosition.FFDR: np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=float),
    PatientPosition.FFDL: np.array([[0, 1, 0], [0, 0, -1], [-1, 0, 0]], dtype=float),
}


@dataclass(frozen=True)
class MachineAngles:
    """Gantry, collimator (beam-limiting device) and couch (patient support) angles, IEC 61217, in degrees.

    Parameters
    ----------
    gantry_deg : float
        Gantry Angle (300A,011E): right-handed rotation about Y_f; 90 puts the source on +X_f.
    collimator_deg : float
        Beam Limiting Device Angle (300A,0120): right-handed rotation about the beam axis Z_g
        (counter-clockwise in the beam's-eye view).
    couch_deg : float
        Patient Support Angle (300A,0122): right-handed rotation about the vertical Z_f
        (counter-clockwise seen from above).
    """

    gantry_deg: float
    collimator_deg: float = 0.0
    couch_deg: float = 0.0

    def __post_init__(self) -> None:
        for name in ("gantry_deg", "collimator_deg", "couch_deg"):
            value = getattr(self, name)
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ParameterError(f"{name} must be a number of degrees, got {value!r}") from None
            if not np.isfinite(number):
                raise ParameterError(f"{name} must be finite, got {number}")
            object.__setattr__(self, name, number)


def _rot_y(angle_deg: float) -> NDArray[np.float64]:
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(angle_deg: float) -> NDArray[np.float64]:
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _homogeneous(
    rotation: NDArray[np.float64], translation: ArrayLike = (0.0, 0.0, 0.0)
) -> NDArray[np.float64]:
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = np.asarray(translation, dtype=float)
    return m


def _check_distance(name: str, value: float | None) -> float:
    if value is None:
        raise ParameterError(f"{name} is required for the image receptor frame, got None")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ParameterError(f"{name} must be > 0, got {v}")
    return v


def _to_fixed(
    frame: Frame,
    angles: MachineAngles,
    patient_position: PatientPosition,
    isocenter_mm: NDArray[np.float64],
    sid_mm: float | None,
    sad_mm: float,
) -> NDArray[np.float64]:
    """4 × 4 matrix mapping homogeneous coordinates in ``frame`` to IEC FIXED coordinates (mm)."""
    gantry = _homogeneous(_rot_y(angles.gantry_deg))
    support = _homogeneous(_rot_z(angles.couch_deg))
    if frame is Frame.FIXED:
        return np.eye(4)
    if frame is Frame.GANTRY:
        return gantry
    if frame is Frame.BEAM_LIMITING_DEVICE:
        return gantry @ _homogeneous(_rot_z(angles.collimator_deg))
    if frame is Frame.IMAGE_RECEPTOR:
        sid = _check_distance("sid_mm", sid_mm)
        sad = _check_distance("sad_mm", sad_mm)
        return gantry @ _homogeneous(np.eye(3), (0.0, 0.0, sad - sid))
    if frame in (Frame.PATIENT_SUPPORT, Frame.TABLE_TOP):
        return support
    if frame is Frame.PATIENT_LPS:
        lps = _LPS_IN_TABLE_TOP[patient_position]
        return support @ _homogeneous(lps, -lps @ isocenter_mm)
    raise ParameterError(f"frame must be a Frame, got {frame!r}")  # pragma: no cover - enum is closed


def _check_position(patient_position: PatientPosition | str) -> PatientPosition:
    if isinstance(patient_position, PatientPosition):
        return patient_position
    if isinstance(patient_position, str):
        return PatientPosition.from_dicom(patient_position)
    raise ParameterError(f"patient_position must be a PatientPosition, got {patient_position!r}")


def _check_isocenter(isocenter_mm: ArrayLike) -> NDArray[np.float64]:
    iso = np.asarray(isocenter_mm, dtype=float).reshape(-1)
    if iso.size != 3:
        raise ParameterError(f"isocenter_mm must have 3 values (x, y, z), got {iso.size}")
    if not np.all(np.isfinite(iso)):
        raise ParameterError(f"isocenter_mm must be finite, got {iso.tolist()}")
    return iso


def frame_transform(
    source: Frame,
    target: Frame,
    angles: MachineAngles,
    *,
    patient_position: PatientPosition | str = PatientPosition.HFS,
    isocenter_mm: ArrayLike = (0.0, 0.0, 0.0),
    sid_mm: float | None = None,
    sad_mm: float = 1000.0,
) -> NDArray[np.float64]:
    """Homogeneous 4 × 4 matrix mapping point coordinates in ``source`` to coordinates in ``target`` (mm).

    Parameters
    ----------
    source, target : Frame
        The two coordinate systems (see the module docstring for their IEC 61217 definitions).
    angles : MachineAngles
        Gantry, collimator and couch angles in degrees.
    patient_position : PatientPosition or str
        How the patient lies on the table (DICOM Patient Position); used by ``Frame.PATIENT_LPS``.
    isocenter_mm : array_like, 3
        Isocentre in DICOM patient coordinates (LPS, mm), i.e. Isocenter Position (300A,012C).
    sid_mm : float, optional
        Source-to-image-receptor distance in mm; required when either frame is ``IMAGE_RECEPTOR``.
    sad_mm : float
        Source-to-axis distance in mm, locating the receptor plane relative to the isocentre
        (``Z_g = sad_mm - sid_mm``).

    Returns
    -------
    ndarray, shape (4, 4)
        ``p_target = M @ (x, y, z, 1)``. ``frame_transform(b, a, ...) @ frame_transform(a, b, ...)`` is the
        identity.

    Examples
    --------
    >>> m = frame_transform(Frame.GANTRY, Frame.PATIENT_LPS, MachineAngles(0.0))
    >>> (m @ [0.0, 0.0, 1000.0, 1.0]).round(6).tolist()   # the source, HFS, gantry 0: anterior
    [0.0, -1000.0, 0.0, 1.0]
    """
    for name, frame in (("source", source), ("target", target)):
        if not isinstance(frame, Frame):
            raise ParameterError(f"{name} must be a Frame, got {frame!r}")
    if not isinstance(angles, MachineAngles):
        raise ParameterError(f"angles must be MachineAngles, got {type(angles).__name__}")
    position = _check_position(patient_position)
    iso = _check_isocenter(isocenter_mm)
    a = _to_fixed(source, angles, position, iso, sid_mm, sad_mm)
    b = _to_fixed(target, angles, position, iso, sid_mm, sad_mm)
    # b is rigid: its inverse is [R.T, -R.T t].
    b_inv = np.eye(4)
    b_inv[:3, :3] = b[:3, :3].T
    b_inv[:3, 3] = -b[:3, :3].T @ b[:3, 3]
    return np.asarray(b_inv @ a, dtype=float)


def source_position_mm(
    angles: MachineAngles,
    sad_mm: float = 1000.0,
    isocenter_mm: ArrayLike = (0.0, 0.0, 0.0),
    patient_position: PatientPosition | str = PatientPosition.HFS,
) -> NDArray[np.float64]:
    """Position of the radiation source in the DICOM patient frame (LPS, mm).

    The source sits on the gantry axis +Z_g at ``sad_mm`` from the isocentre; for HFS at gantry 0 it is
    anterior (``y = iso_y - sad_mm``), at gantry 90 on the patient's left.

    Returns
    -------
    ndarray, shape (3,)
    """
    sad = _check_distance("sad_mm", sad_mm)
    m = frame_transform(
        Frame.GANTRY, Frame.PATIENT_LPS, angles, patient_position=patient_position, isocenter_mm=isocenter_mm
    )
    return np.asarray(m[:3, :3] @ np.array([0.0, 0.0, sad]) + m[:3, 3], dtype=float)


def beam_direction(
    angles: MachineAngles, patient_position: PatientPosition | str = PatientPosition.HFS
) -> NDArray[np.float64]:
    """Unit vector of the central axis, from the source towards the isocentre, in LPS (−Z_g in the patient).

    Returns
    -------
    ndarray, shape (3,)
    """
    m = frame_transform(Frame.GANTRY, Frame.PATIENT_LPS, angles, patient_position=patient_position)
    return np.asarray(m[:3, :3] @ np.array([0.0, 0.0, -1.0]), dtype=float)


@dataclass(frozen=True)
class DetectorPlane:
    """The image-receptor (EPID) plane in the patient frame.

    Parameters
    ----------
    centre_mm : tuple of 3 float
        LPS position (mm) where the central axis meets the receptor (origin of the IEC image receptor frame).
    u_axis : tuple of 3 float
        Unit LPS vector of increasing image column index i (IEC +X_r).
    v_axis : tuple of 3 float
        Unit LPS vector of increasing image row index j (IEC −Y_r: rows run downwards, as RT Images display).
    normal : tuple of 3 float
        ``u_axis × v_axis`` = IEC −Z_r, pointing away from the source (along the beam).
    sid_mm : float
        Source-to-image distance (mm).
    sad_mm : float
        Source-to-axis distance (mm); a length ``d`` at the isocentre plane appears as ``d · sid/sad``.
    """

    centre_mm: tuple[float, float, float]
    u_axis: tuple[float, float, float]
    v_axis: tuple[float, float, float]
    normal: tuple[float, float, float]
    sid_mm: float
    sad_mm: float

    @property
    def magnification(self) -> float:
        """``sid_mm / sad_mm``: the scale from the isocentre plane to the receptor."""
        return self.sid_mm / self.sad_mm

    def pixel_to_world(self, u_mm: ArrayLike, v_mm: ArrayLike) -> NDArray[np.float64]:
        """LPS positions (mm) of in-plane coordinates ``(u_mm, v_mm)`` measured from the plane centre.

        Parameters
        ----------
        u_mm, v_mm : array_like
            Broadcastable in-plane coordinates along :attr:`u_axis` and :attr:`v_axis`, in mm at the receptor.

        Returns
        -------
        ndarray, shape (..., 3)
        """
        u, v = np.broadcast_arrays(np.asarray(u_mm, dtype=float), np.asarray(v_mm, dtype=float))
        return np.asarray(
            np.asarray(self.centre_mm)
            + u[..., None] * np.asarray(self.u_axis)
            + v[..., None] * np.asarray(self.v_axis),
            dtype=float,
        )

    def world_to_plane(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """In-plane coordinates ``(u, v)`` in mm of the orthogonal projection of LPS points onto the plane.

        Returns
        -------
        ndarray, shape (..., 2)
        """
        p = np.asarray(points_mm, dtype=float)
        if p.ndim == 0 or p.shape[-1] != 3:
            raise ParameterError(f"points_mm must have shape (..., 3) (x, y, z), got {p.shape}")
        d = p - np.asarray(self.centre_mm)
        return np.stack([d @ np.asarray(self.u_axis), d @ np.asarray(self.v_axis)], axis=-1)

    def image_grid(self, shape: tuple[int, int], spacing_mm: tuple[float, float]) -> Grid:
        """2D :class:`Grid` of an image of ``shape = (rows, columns)`` centred on the plane centre.

        Parameters
        ----------
        shape : (int, int)
            Rows and columns.
        spacing_mm : (float, float)
            Pixel spacing at the receptor along u (columns, i) and v (rows, j), in mm.
        """
        rows, cols = (int(s) for s in shape)
        su, sv = (float(s) for s in spacing_mm)
        if su <= 0 or sv <= 0:
            raise ParameterError(f"spacing_mm must be > 0, got {(su, sv)}")
        origin = self.pixel_to_world(-(cols - 1) / 2.0 * su, -(rows - 1) / 2.0 * sv)
        direction = np.column_stack([self.u_axis, self.v_axis, self.normal])
        return Grid((rows, cols), tuple(origin), (su, sv, 1.0), tuple(direction.reshape(-1)))


def detector_plane(
    angles: MachineAngles,
    *,
    sad_mm: float = 1000.0,
    sid_mm: float = 1600.0,
    isocenter_mm: ArrayLike = (0.0, 0.0, 0.0),
    patient_position: PatientPosition | str = PatientPosition.HFS,
) -> DetectorPlane:
    """The image receptor plane at ``sid_mm`` from the source, in the patient frame.

    The receptor is a child of the gantry frame (it does not turn with the collimator). Image columns run
    along IEC +X_r and rows along −Y_r, as DICOM RT Images are displayed; for HFS at gantry 0 the columns run
    towards the patient's left and the rows towards the feet.

    Examples
    --------
    >>> plane = detector_plane(MachineAngles(0.0), sad_mm=1000.0, sid_mm=1600.0)
    >>> [round(c, 6) for c in plane.centre_mm]
    [0.0, 600.0, 0.0]
    """
    sad = _check_distance("sad_mm", sad_mm)
    sid = _check_distance("sid_mm", sid_mm)
    m = frame_transform(
        Frame.IMAGE_RECEPTOR,
        Frame.PATIENT_LPS,
        angles,
        patient_position=patient_position,
        isocenter_mm=isocenter_mm,
        sid_mm=sid,
        sad_mm=sad,
    )
    r = m[:3, :3]
    u = r @ np.array([1.0, 0.0, 0.0])
    v = r @ np.array([0.0, -1.0, 0.0])
    n = np.cross(u, v)
    return DetectorPlane(
        centre_mm=(float(m[0, 3]), float(m[1, 3]), float(m[2, 3])),
        u_axis=(float(u[0]), float(u[1]), float(u[2])),
        v_axis=(float(v[0]), float(v[1]), float(v[2])),
        normal=(float(n[0]), float(n[1]), float(n[2])),
        sid_mm=sid,
        sad_mm=sad,
    )


def project_to_plane(points_mm: ArrayLike, source_mm: ArrayLike, plane: DetectorPlane) -> NDArray[np.float64]:
    """Central projection of points from the source onto the receptor plane.

    Parameters
    ----------
    points_mm : array_like, shape (..., 3)
        LPS points (mm).
    source_mm : array_like, 3
        LPS position of the source (see :func:`source_position_mm`).
    plane : DetectorPlane

    Returns
    -------
    ndarray, shape (..., 2)
        In-plane coordinates (u, v) in mm at the receptor. Rays that do not travel from the source towards
        the plane (parallel to it, or pointing away) give NaN.
    """
    p = np.asarray(points_mm, dtype=float)
    if p.ndim == 0 or p.shape[-1] != 3:
        raise ParameterError(f"points_mm must have shape (..., 3) (x, y, z), got {p.shape}")
    s = np.asarray(source_mm, dtype=float).reshape(-1)
    if s.size != 3:
        raise ParameterError(f"source_mm must have 3 values (x, y, z), got {s.size}")
    n = np.asarray(plane.normal)
    c = np.asarray(plane.centre_mm)
    d = p - s
    denom = d @ n
    dist = float((c - s) @ n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(denom > 1e-12, dist / np.where(denom > 1e-12, denom, 1.0), np.nan)
    hit = s + t[..., None] * d
    return plane.world_to_plane(hit)
