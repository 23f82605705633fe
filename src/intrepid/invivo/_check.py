"""One in-vivo check of a fraction: STUDY_DIR → reconstruction → comparison with the plan → verdict.

:func:`check_study` is what ``intrepid invivo`` runs; :class:`InvivoResult` holds everything the JSON and the
HTML report are rendered from.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from intrepid.errors import ParameterError
from intrepid.geometry import Volume
from intrepid.invivo._baseline import InvivoBaseline, load_baseline
from intrepid.invivo._compare import ActionLevels, Comparison, compare_doses, verdict
from intrepid.invivo._reconstruct import BeamRefiner, Method, Reconstruction, reconstruct
from intrepid.invivo._study import Study, load_study, portal_images

__all__ = ["InvivoResult", "check_study", "write_outputs"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class InvivoResult:
    """Result of one in-vivo check (see :meth:`to_json` for the CLI contract)."""

    study: Study
    reconstruction: Reconstruction
    plan_comparison: Comparison
    beam_comparisons: dict[int, Comparison]
    verdict: str
    alert_reasons: list[str]
    levels: ActionLevels
    compute_seconds: float
    accuracy: Comparison | None = None
    accuracy_mae_percent: float | None = None
    model_description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON contract of ``intrepid invivo --json`` (keys documented in docs/invivo.md)."""
        c = self.plan_comparison
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "alert_reasons": list(self.alert_reasons),
            "gamma_3pct2mm_percent": c.gamma_3pct2mm.pass_rate_percent,
            "gamma_2pct2mm_percent": c.gamma_2pct2mm.pass_rate_percent,
            "mean_gamma_3pct2mm": c.gamma_3pct2mm.mean_gamma,
            "isocenter_ratio": c.isocenter_ratio,
            "dvh": c.dvh_json(),
            "beams": [
                {
                    "number": n,
                    "name": next((b.name for b in self.study.plan.beams if b.number == n), ""),
                    "gamma_3pct2mm_percent": bc.gamma_3pct2mm.pass_rate_percent,
                    "gamma_2pct2mm_percent": bc.gamma_2pct2mm.pass_rate_percent,
                    "isocenter_ratio": bc.isocenter_ratio,
                }
                for n, bc in sorted(self.beam_comparisons.items())
            ],
            "method": self.reconstruction.method.value,
            "model": self.model_description,
            "action_levels": self.levels.to_dict(),
            "prescription_gy": c.prescription_gy,
            "compute_seconds": self.compute_seconds,
        }
        if self.accuracy is not None:
            out["accuracy"] = {
                "gamma_3pct2mm_percent": self.accuracy.gamma_3pct2mm.pass_rate_percent,
                "gamma_2pct2mm_percent": self.accuracy.gamma_2pct2mm.pass_rate_percent,
                "mae_percent": self.accuracy_mae_percent,
            }
        return out


def _isocenter(study: Study) -> tuple[float, float, float]:
    return study.plan.beams[0].isocenter_mm


def check_study(
    study_dir: str | os.PathLike[str],
    *,
    network: BeamRefiner | None = None,
    method: Method | str | None = None,
    baseline: InvivoBaseline | None = None,
    truth: Volume | None = None,
    levels: ActionLevels | None = None,
    exclude: tuple[str | os.PathLike[str], ...] = (),
    model_description: str = "",
) -> InvivoResult:
    """Reconstruct the delivered dose of a STUDY_DIR and compare it with the plan.

    Parameters
    ----------
    study_dir : path-like
    network : BeamRefiner, optional
        The 3D network; default method is ``network`` when given, else ``baseline``.
    method : Method or str, optional
    baseline : InvivoBaseline, optional
        Default the shipped parameters.
    truth : Volume, optional
        A reference dose (e.g. the simulator's delivered dose) for the ``accuracy`` block.
    levels : ActionLevels, optional
    exclude : paths
        Folders not to read (the output folder when it lies inside the study).

    Returns
    -------
    InvivoResult
    """
    t0 = time.perf_counter()
    study = load_study(study_dir, exclude=exclude)
    m = Method(method) if isinstance(method, str) else method
    if m is None:
        m = Method.NETWORK if network is not None else Method.BASELINE
    images = portal_images(study)
    rec = reconstruct(images, study.ct, method=m, baseline=baseline or load_baseline(), network=network)
    iso = _isocenter(study)
    cmp_plan = compare_doses(
        study.planned_dose,
        rec.total,
        structures=study.structures,
        roi_types=study.roi_types,
        isocenter_mm=iso,
        with_dvh_curves=True,
    )
    beams: dict[int, Comparison] = {}
    for n, planned in study.planned_beam_doses.items():
        if n in rec.beam_doses and float(np.max(planned.array)) > 0:
            beams[n] = compare_doses(
                planned, rec.beam_doses[n], isocenter_mm=iso, prescription_gy=cmp_plan.prescription_gy
            )
    lv = levels or ActionLevels()
    v, reasons = verdict(cmp_plan, lv)
    acc = None
    mae = None
    if truth is not None:
        if not truth.grid.is_close(study.ct.grid):
            from intrepid.geometry import resample

            truth = resample(truth, study.ct.grid)
        acc = compare_doses(truth, rec.total, isocenter_mm=iso, prescription_gy=cmp_plan.prescription_gy)
        ta = np.asarray(truth.array, dtype=np.float64)
        region = ta >= 0.1 * float(ta.max())
        mae = float(
            100.0
            * np.abs(np.asarray(rec.total.array, dtype=np.float64) - ta)[region].mean()
            / cmp_plan.prescription_gy
        )
    seconds = time.perf_counter() - t0
    return InvivoResult(
        study, rec, cmp_plan, beams, v, reasons, lv, seconds, acc, mae, model_description or m.value
    )


def write_outputs(result: InvivoResult, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``reconstructed_dose.dcm`` (plan sum) and ``reconstructed_beam_<n>.dcm`` into ``out_dir``."""
    from intrepid.dicom import write_rtdose

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ct = result.study.ct
    uid = ct.frame_of_reference_uid
    written = []
    if result.reconstruction.total.frame_of_reference_uid not in (None, uid):
        raise ParameterError("the reconstruction is not in the CT's Frame of Reference")
    written.append(
        write_rtdose(
            result.reconstruction.total,
            out / "reconstructed_dose.dcm",
            summation_type="PLAN",
            frame_of_reference_uid=uid,
            description="InTrEPID in-vivo reconstructed dose",
        )
    )
    for n, v in result.reconstruction.beam_doses.items():
        written.append(
            write_rtdose(
                v,
                out / f"reconstructed_beam_{n}.dcm",
                summation_type="BEAM",
                frame_of_reference_uid=uid,
                description=f"InTrEPID in-vivo reconstructed dose beam {n}",
            )
        )
    return written
