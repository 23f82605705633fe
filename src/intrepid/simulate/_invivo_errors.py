"""Delivery errors for in-vivo cases: SPEC strings, their parsing, their effect on the plan and the patient.

SPEC strings (``intrepid simulate invivo --error SPEC``; several may be combined):

==============================  ============================================================================
``mu:+5``                       every beam's meterset × (1 + 5/100)
``setup:7,0,0``                 patient shifted by (7, 0, 0) mm along patient x, y, z (LPS) against the beams
``rotation:0,0,3``              patient rotated by 0, 0, 3 degrees about the x, y, z axes through the
                                isocentre
``mlc:A:+3``                    every leaf of bank A (or B) shifted by +3 mm (along IEC x_b) in every
                                control point (field shift / systematic bank offset)
``leaf:A:20:+10``               leaf pair 20 (1-based, DICOM order) of bank A displaced by +10 mm in every
                                control point (a stuck or mis-calibrated leaf)
``gantry:+3``                   every control point's gantry angle + 3°
``collimator:+3``               every control point's collimator angle + 3°
``anatomy:shrink:8``            body contour shrunk by 8 mm in every axial slice (weight loss)
``anatomy:cavity:fill|empty``   the site's air cavity filled with tissue, or emptied and grown by 5 mm
``plan:wrong``                  another patient's plan: the same technique planned on a target 20 mm away (in
                                a direction drawn from the seed), MU × a factor in [0.85, 1.15]
==============================  ============================================================================

Ranges the issue asks for (MU ±2/5/10 %, MLC 1–5 mm, angles 2–5°, set-up 3–10 mm, shrink 5–10 mm) are all
accepted; values far outside the physical range are refused with the SPEC in the message.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from intrepid.dicom import BeamLimitingDeviceType, RTPlan
from intrepid.errors import ParameterError
from intrepid.simulate._invivo_plans import make_plan, scale_plan_mu
from intrepid.simulate._patients import PatientPhantom, set_cavity, shrink_body

__all__ = ["DeliveryError", "ErrorKind", "apply_patient_errors", "apply_plan_errors", "parse_error_spec"]


class ErrorKind(enum.Enum):
    """The kinds of delivery error."""

    MU = "mu"
    SETUP = "setup"
    ROTATION = "rotation"
    MLC = "mlc"
    LEAF = "leaf"
    GANTRY = "gantry"
    COLLIMATOR = "collimator"
    ANATOMY_SHRINK = "anatomy:shrink"
    ANATOMY_CAVITY = "anatomy:cavity"
    PLAN_WRONG = "plan:wrong"


#: Largest magnitude accepted per kind (percent, mm or degrees).
_LIMITS = {ErrorKind.MU: 50.0, ErrorKind.SETUP: 50.0, ErrorKind.ROTATION: 15.0, ErrorKind.MLC: 20.0,
           ErrorKind.LEAF: 100.0, ErrorKind.GANTRY: 30.0, ErrorKind.COLLIMATOR: 30.0}


@dataclass(frozen=True)
class DeliveryError:
    """One parsed delivery error.

    Parameters
    ----------
    kind : ErrorKind
    values : tuple of float
        Percent (MU), mm (setup, mlc, leaf, shrink) or degrees (rotation, gantry, collimator).
    bank : str
        ``"A"`` or ``"B"`` for MLC errors, else ``""``.
    leaf : int
        1-based leaf pair for ``leaf`` errors, else 0.
    mode : str
        ``"fill"`` / ``"empty"`` for cavity errors, else ``""``.
    spec : str
        The SPEC string as given.
    """

    kind: ErrorKind
    values: tuple[float, ...] = ()
    bank: str = ""
    leaf: int = 0
    mode: str = ""
    spec: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON form for ``case.json``."""
        return {"spec": self.spec, "kind": self.kind.value, "values": list(self.values), "bank": self.bank,
                "leaf": self.leaf, "mode": self.mode}


def _numbers(spec: str, text: str, n: int) -> tuple[float, ...]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ParameterError(f"--error {spec!r}: expected {n} number(s), got {text!r}") from None
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise ParameterError(f"--error {spec!r}: expected {n} finite number(s), got {text!r}")
    return values


def parse_error_spec(spec: str) -> DeliveryError:
    """Parse a SPEC string (see the module table).

    Raises
    ------
    ParameterError
        Unknown kind or malformed values; the message quotes the SPEC.

    Examples
    --------
    >>> parse_error_spec("mlc:A:+3").values
    (3.0,)
    """
    s = str(spec).strip()
    head, _, rest = s.partition(":")
    head = head.lower()
    try:
        if head in ("mu", "gantry", "collimator"):
            kind = ErrorKind(head)
            err = DeliveryError(kind, _numbers(s, rest, 1), spec=s)
        elif head in ("setup", "rotation"):
            err = DeliveryError(ErrorKind(head), _numbers(s, rest, 3), spec=s)
        elif head == "mlc":
            bank, _, value = rest.partition(":")
            err = DeliveryError(ErrorKind.MLC, _numbers(s, value, 1), bank=bank.strip().upper(), spec=s)
        elif head == "leaf":
            bank, _, tail = rest.partition(":")
            number, _, value = tail.partition(":")
            if not number.strip().isdigit() or int(number) < 1:
                raise ParameterError(f"--error {s!r}: the leaf pair number must be an integer >= 1")
            err = DeliveryError(ErrorKind.LEAF, _numbers(s, value, 1), bank=bank.strip().upper(),
                                leaf=int(number), spec=s)
        elif head == "anatomy":
            what, _, value = rest.partition(":")
            if what == "shrink":
                err = DeliveryError(ErrorKind.ANATOMY_SHRINK, _numbers(s, value, 1), spec=s)
                if not 0 < err.values[0] <= 30:
                    raise ParameterError(f"--error {s!r}: the shrink margin must be in (0, 30] mm")
            elif what == "cavity" and value in ("fill", "empty"):
                err = DeliveryError(ErrorKind.ANATOMY_CAVITY, mode=value, spec=s)
            else:
                raise ParameterError(
                    f"--error {s!r}: expected anatomy:shrink:MM or anatomy:cavity:fill|empty"
                )
        elif head == "plan" and rest == "wrong":
            err = DeliveryError(ErrorKind.PLAN_WRONG, spec=s)
        else:
            kinds = ("mu, setup, rotation, mlc, leaf, gantry, collimator, anatomy:shrink, anatomy:cavity, "
                     "plan:wrong")
            raise ParameterError(f"--error {s!r}: unknown kind {head!r} (one of {kinds})")
    except ValueError as exc:
        if isinstance(exc, ParameterError):
            raise
        raise ParameterError(f"--error {s!r}: {exc}") from None
    if err.kind in (ErrorKind.MLC, ErrorKind.LEAF) and err.bank not in ("A", "B"):
        raise ParameterError(f"--error {s!r}: the leaf bank must be A or B, got {err.bank!r}")
    limit = _LIMITS.get(err.kind)
    if limit is not None and any(abs(v) > limit for v in err.values):
        raise ParameterError(f"--error {s!r}: magnitude above the accepted {limit:g} for {err.kind.value}")
    return err


def _map_control_points(plan: RTPlan, fn: object) -> RTPlan:
    beams = tuple(replace(b, control_points=tuple(fn(cp) for cp in b.control_points))  # type: ignore[operator]
                  for b in plan.beams)
    return replace(plan, beams=beams)


def _shift_leaves(cp: object, bank: int, delta: float, pair: int | None) -> object:
    positions = dict(cp.device_positions_mm)  # type: ignore[attr-defined]
    mlc = positions.get(BeamLimitingDeviceType.MLCX)
    if mlc is None:
        return cp
    leaves = np.asarray(mlc, dtype=float).reshape(2, -1).copy()
    if pair is None:
        is_open = leaves[1] - leaves[0] > 1e-6
        leaves[bank, is_open] += delta
    else:
        if pair > leaves.shape[1]:
            raise ParameterError(f"leaf pair {pair} does not exist: the MLC has {leaves.shape[1]} pairs")
        leaves[bank, pair - 1] += delta
    # leaves cannot cross: the moved bank pushes the other one
    if bank == 0:
        leaves[1] = np.maximum(leaves[1], leaves[0])
    else:
        leaves[0] = np.minimum(leaves[0], leaves[1])
    positions[BeamLimitingDeviceType.MLCX] = leaves.reshape(-1)
    return replace(cp, device_positions_mm=positions)  # type: ignore[type-var]


def apply_plan_errors(
    plan: RTPlan, errors: Sequence[DeliveryError], *, target_points_mm: np.ndarray | None = None,
    isocenter_mm: tuple[float, float, float] | None = None, kind: str | None = None, seed: int = 0,
) -> RTPlan:
    """The plan as delivered under the machine errors among ``errors`` (MU, MLC, leaf, angles, set-up,
    wrong plan); patient errors (rotation, anatomy) are ignored here.

    A set-up shift ``d`` of the patient moves the beams by ``-d`` relative to the anatomy, so the delivered
    plan's isocentre is ``planned − d`` in the planning CT's frame. ``plan:wrong`` needs the target points,
    the
    isocentre and the plan kind to re-plan on a displaced target; it is drawn from ``seed``.
    """
    out = plan
    for e in errors:
        if e.kind is ErrorKind.MU:
            out = scale_plan_mu(out, 1.0 + e.values[0] / 100.0)
        elif e.kind is ErrorKind.MLC:
            bank = 0 if e.bank == "A" else 1
            out = _map_control_points(out, lambda cp, b=bank, d=e.values[0]: _shift_leaves(cp, b, d, None))
        elif e.kind is ErrorKind.LEAF:
            bank = 0 if e.bank == "A" else 1
            out = _map_control_points(
                out, lambda cp, b=bank, d=e.values[0], n=e.leaf: _shift_leaves(cp, b, d, n))
        elif e.kind is ErrorKind.GANTRY:
            out = _map_control_points(
                out, lambda cp, d=e.values[0]: replace(cp, gantry_deg=(cp.gantry_deg + d) % 360.0))
        elif e.kind is ErrorKind.COLLIMATOR:
            out = _map_control_points(
                out, lambda cp, d=e.values[0]: replace(cp, collimator_deg=(cp.collimator_deg + d) % 360.0))
        elif e.kind is ErrorKind.SETUP:
            d = np.asarray(e.values, dtype=float)
            out = _map_control_points(
                out, lambda cp, d=d: replace(
                    cp, isocenter_mm=tuple(float(v) for v in np.asarray(cp.isocenter_mm) - d)))
        elif e.kind is ErrorKind.PLAN_WRONG:
            if target_points_mm is None or isocenter_mm is None or kind is None:
                raise ParameterError("plan:wrong needs the target points, isocentre and plan kind")
            rng = np.random.default_rng([int(seed), 7919])
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            shift = 20.0 * direction
            iso = tuple(float(v) for v in np.asarray(isocenter_mm) + shift)
            wrong = make_plan(kind, np.asarray(target_points_mm) + shift, iso,  # type: ignore[arg-type]
                              frame_of_reference_uid=plan.frame_of_reference_uid, label=plan.label)
            mu = sum(float(b.meterset or 0) for b in plan.beams) / max(1, len(plan.beams))
            out = scale_plan_mu(wrong, mu / 100.0 * float(rng.uniform(0.85, 1.15)))
    return out


def apply_patient_errors(phantom: PatientPhantom, errors: Sequence[DeliveryError]) -> PatientPhantom:
    """The patient as treated under the patient errors among ``errors`` (rotation, anatomy changes).

    Rotations turn the CT (trilinear, air outside) about the isocentre; structures keep their planned masks
    (they describe the plan, the reconstruction evaluates on them).
    """
    out = phantom
    for e in errors:
        if e.kind is ErrorKind.ANATOMY_SHRINK:
            out = shrink_body(out, e.values[0])
        elif e.kind is ErrorKind.ANATOMY_CAVITY:
            out = set_cavity(out, filled=e.mode == "fill")
        elif e.kind is ErrorKind.ROTATION:
            out = _rotate(out, e.values)
    return out


def _rotate(phantom: PatientPhantom, angles_deg: tuple[float, ...]) -> PatientPhantom:
    g = phantom.ct.grid
    r = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    iso = np.asarray(phantom.isocenter_mm)
    # output voxel (world p) takes the input value at R^-1 (p - iso) + iso; index = (world - origin) / s
    s = np.asarray(g.spacing_mm)  # (x, y, z)
    o = np.asarray(g.origin_mm)
    rinv = r.T
    # in (k, j, i) index order: world = o + s * idx_xyz
    perm = [2, 1, 0]
    a_xyz = (rinv * s[None, :]) / s[:, None]
    offset_xyz = (rinv @ (o - iso) + iso - o) / s
    matrix = a_xyz[np.ix_(perm, perm)]
    offset = offset_xyz[perm]
    hu = ndimage.affine_transform(np.asarray(phantom.ct.array, dtype=np.float32), matrix, offset=offset,
                                  order=1, mode="constant", cval=-1000.0)
    return PatientPhantom(phantom.ct.with_array(hu.astype(np.float32)), phantom.site, phantom.isocenter_mm,
                          dict(phantom.structures), dict(phantom.roi_types), phantom.cavity)
