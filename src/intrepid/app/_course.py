"""A simulated treatment course for the demo and the tests: one phantom patient, a plan of a few beams,
several fractions of transit EPID images as the linac would export them (RT Image, Elekta iView encoding),
with a known delivery error in one fraction.

Every image is simulated by :func:`intrepid.physics.simulate_transit` with its own seed (fresh noise); the
error is a monitor-unit error of ``mu_error_percent`` on the first beam of fraction ``error_fraction`` (a
classical delivery error that the isocentre ratio and gamma must catch).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intrepid.errors import ParameterError

__all__ = ["SimulatedCourse", "simulate_course"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulatedCourse:
    """Files written by :func:`simulate_course` and what is known about them."""

    folder: Path
    files: tuple[Path, ...]
    patient_id: str
    plan_uid: str
    n_fractions: int
    beams: tuple[str, ...]
    error_fraction: int | None
    mu_error_percent: float


def simulate_course(
    folder: str | os.PathLike[str],
    *,
    n_fractions: int = 4,
    fields: tuple[str, ...] = ("10x10", "5x5"),
    mu: float = 100.0,
    error_fraction: int | None = 3,
    mu_error_percent: float = 8.0,
    patient_id: str = "DEMO-001",
    patient_name: str = "Demo^Phantom",
    seed: int = 7,
) -> SimulatedCourse:
    """Simulate and write a course: ``n_fractions`` × ``len(fields)`` EPID RT Images.

    Parameters
    ----------
    folder : path-like
        Output folder (created); files ``fx<NN>_beam<N>.dcm``.
    n_fractions : int
        Fractions (>= 1).
    fields : tuple of str
        Square or rectangular field names (``"10x10"`` cm at the isocentre), one beam each, numbered from 1.
    mu : float
        Planned monitor units per beam.
    error_fraction : int or None
        Fraction (1-based) whose first beam is delivered with ``mu_error_percent`` more MU; None for none.
    mu_error_percent : float
        The MU error, %.
    patient_id, patient_name : str
        DICOM identification of the phantom patient.
    seed : int
        Seed of the per-image noise.

    Returns
    -------
    SimulatedCourse
    """
    import pydicom

    from intrepid.dicom import Vendor, new_uid, write_rtimage
    from intrepid.geometry import Quantity
    from intrepid.physics import DetectorModel, Field, simulate_transit
    from intrepid.simulate import PhantomFamily, field_size_cm, make_phantom

    if n_fractions < 1:
        raise ParameterError(f"n_fractions must be >= 1, got {n_fractions}")
    if not fields:
        raise ParameterError("fields must name at least one field, got none")
    if error_fraction is not None and not 1 <= error_fraction <= n_fractions:
        raise ParameterError(f"error_fraction must be in [1, {n_fractions}] or None, got {error_fraction}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    phantom = make_phantom(PhantomFamily.CIRS)
    detector = DetectorModel.elekta_iview()
    plan_uid, study_uid = new_uid(), new_uid()
    rng = np.random.default_rng(seed)
    start = dt.date(2026, 1, 5)
    files = []
    for fx in range(1, n_fractions + 1):
        for b, name in enumerate(fields, start=1):
            x, y, ellipse = field_size_cm(name)
            if ellipse:
                raise ParameterError(f"fields must be squares or rectangles, got {name!r}")
            fld = Field.square(x) if x == y else Field.rectangle(x, y)
            delivered = mu * (1 + mu_error_percent / 100.0) if (fx == error_fraction and b == 1) else mu
            images = simulate_transit(
                phantom.ct,
                fld,
                detector=detector,
                isocenter_mm=phantom.isocenter_mm,
                mu=delivered,
                seed=int(rng.integers(0, 2**31 - 1)),
            )
            path = out / f"fx{fx:02d}_beam{b}.dcm"
            write_rtimage(
                path,
                65535.0 - np.asarray(images.raw, dtype=np.float64),
                vendor=Vendor.ELEKTA,
                quantity=Quantity.EPID_SIGNAL,
                units=None,
                pixel_spacing_mm=(images.epid.grid.spacing_mm[1], images.epid.grid.spacing_mm[0]),
                sid_mm=float(images.metadata.get("sid_mm", 1600.0)),
                gantry_deg=0.0,
                patient_id=patient_id,
                patient_name=patient_name,
                study_instance_uid=study_uid,
                frame_of_reference_uid=phantom.ct.frame_of_reference_uid,
                meterset=mu,
                referenced_plan_uid=plan_uid,
                referenced_beam_number=b,
                description=f"{name} fx{fx}",
            )
            ds = pydicom.dcmread(path)
            ds.FractionNumber = fx  # (3002,0029)
            ds.AcquisitionDate = (start + dt.timedelta(days=fx - 1)).strftime("%Y%m%d")
            ds.save_as(path)
            files.append(path)
            _log.info("simulated fraction %d beam %d", fx, b)
    return SimulatedCourse(
        out, tuple(files), patient_id, plan_uid, n_fractions, tuple(fields), error_fraction, mu_error_percent
    )
