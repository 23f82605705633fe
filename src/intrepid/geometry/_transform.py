"""Rigid transforms (rotation + translation, in mm) between frames of reference.

A :class:`RigidTransform` is how a registration travels through InTrEPID: for instance the result of a
CT-to-CBCT registration, read from a DICOM Spatial Registration object, is handed to
:func:`intrepid.geometry.resample` so that a dose computed on the planning CT can be compared with one
reconstructed on the treatment-day images.

Convention: a transform maps *points*, ``p_out = R @ p_in + t`` (homogeneous ``p_out = M @ [p_in, 1]``),
in mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from intrepid.errors import ParameterError

__all__ = ["RigidTransform"]

#: Tolerance (dimensionless) on ``R.T @ R = I`` and ``det R = 1``.
ROTATION_TOLERANCE = 1e-6


@dataclass(frozen=True, eq=False)
class RigidTransform:
    """A proper rigid transform (rotation and translation, no scaling, no reflection) in mm.

    Parameters
    ----------
    matrix : (4, 4) array_like
        Homogeneous matrix mapping a point ``(x, y, z, 1)`` (mm) to the transformed point. The upper-left
        3 × 3 block must be a rotation (orthonormal, determinant +1) within 1e-6 and the last row
        ``[0, 0, 0, 1]``. The matrix is stored as a read-only float64 copy.

    Examples
    --------
    >>> t = RigidTransform.from_rotation_translation(np.eye(3), (10.0, 0.0, -5.0))
    >>> t.apply([[0.0, 0.0, 0.0]]).tolist()
    [[10.0, 0.0, -5.0]]
    >>> t.inverse().compose(t).is_identity()
    True
    """

    matrix: NDArray[np.float64]

    def __post_init__(self) -> None:
        m = np.array(self.matrix, dtype=float, copy=True)
        if m.shape != (4, 4):
            raise ParameterError(f"matrix must be 4 x 4 (homogeneous), got shape {m.shape}")
        if not np.all(np.isfinite(m)):
            raise ParameterError("matrix must be finite, got NaN or infinite values")
        if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=ROTATION_TOLERANCE):
            raise ParameterError(f"matrix last row must be [0, 0, 0, 1], got {m[3].tolist()}")
        r = m[:3, :3]
        if not np.allclose(r.T @ r, np.eye(3), atol=ROTATION_TOLERANCE):
            raise ParameterError(
                "matrix rotation block must be orthonormal (R.T @ R = I within "
                f"{ROTATION_TOLERANCE}), got {np.round(r, 6).tolist()}"
            )
        det = float(np.linalg.det(r))
        if det < 0:
            raise ParameterError(
                f"matrix rotation block must have determinant +1 (no reflection), got {det:.6f}"
            )
        m[3] = (0.0, 0.0, 0.0, 1.0)
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    # ------------------------------------------------------------------ construction
    @classmethod
    def identity(cls) -> RigidTransform:
        """The transform that leaves every point where it is."""
        return cls(np.eye(4))

    @classmethod
    def from_rotation_translation(cls, rotation: ArrayLike, translation_mm: ArrayLike) -> RigidTransform:
        """Build from a 3 × 3 rotation matrix and a translation (x, y, z) in mm: ``p' = R @ p + t``."""
        r = np.asarray(rotation, dtype=float)
        if r.shape != (3, 3):
            raise ParameterError(f"rotation must be 3 x 3, got shape {r.shape}")
        t = np.asarray(translation_mm, dtype=float).reshape(-1)
        if t.size != 3:
            raise ParameterError(f"translation_mm must have 3 values (x, y, z), got {t.size}")
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = t
        return cls(m)

    @classmethod
    def from_translation(cls, translation_mm: ArrayLike) -> RigidTransform:
        """A pure translation (x, y, z) in mm."""
        return cls.from_rotation_translation(np.eye(3), translation_mm)

    # ------------------------------------------------------------------ properties
    @property
    def rotation(self) -> NDArray[np.float64]:
        """The 3 × 3 rotation block (a copy)."""
        return np.array(self.matrix[:3, :3])

    @property
    def translation_mm(self) -> NDArray[np.float64]:
        """The translation (x, y, z) in mm (a copy)."""
        return np.array(self.matrix[:3, 3])

    # ------------------------------------------------------------------ operations
    def inverse(self) -> RigidTransform:
        """The inverse transform (``R.T``, ``-R.T @ t``), exact for a rigid transform."""
        r = self.matrix[:3, :3]
        return RigidTransform.from_rotation_translation(r.T, -r.T @ self.matrix[:3, 3])

    def compose(self, other: RigidTransform) -> RigidTransform:
        """``self ∘ other``: applies ``other`` first, then ``self`` (matrix ``M_self @ M_other``)."""
        if not isinstance(other, RigidTransform):
            raise ParameterError(f"other must be a RigidTransform, got {type(other).__name__}")
        return RigidTransform(self.matrix @ other.matrix)

    def apply(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """Transform points.

        Parameters
        ----------
        points_mm : array_like, shape (..., 3)
            Points (x, y, z) in mm.

        Returns
        -------
        ndarray, shape (..., 3)
            ``R @ p + t`` for every point, in mm.
        """
        p = np.asarray(points_mm, dtype=float)
        if p.ndim == 0 or p.shape[-1] != 3:
            raise ParameterError(f"points_mm must have shape (..., 3) (x, y, z), got {p.shape}")
        return np.asarray(p @ self.matrix[:3, :3].T + self.matrix[:3, 3], dtype=float)

    def is_identity(self, tolerance_mm: float = 1e-6) -> bool:
        """True when the rotation is the identity and the translation below ``tolerance_mm``."""
        return bool(np.allclose(self.matrix, np.eye(4), atol=tolerance_mm))

    def is_close(self, other: RigidTransform, tolerance_mm: float = 1e-6) -> bool:
        """True when both matrices agree within ``tolerance_mm`` (and 1e-6 on the rotation)."""
        return bool(
            np.allclose(self.matrix[:3, :3], other.matrix[:3, :3], atol=ROTATION_TOLERANCE)
            and np.allclose(self.matrix[:3, 3], other.matrix[:3, 3], atol=tolerance_mm)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: ``{"matrix": 4 × 4 nested list}`` (row-major, mm)."""
        return {"matrix": self.matrix.tolist()}
