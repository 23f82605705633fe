"""A transit model: signal per MU in, dose per MU out; member spread and out-of-distribution flags.

:class:`TransitModel` wraps a predictor that maps signal in CU/MU to portal dose in Gy/MU (a hybrid or plain
:class:`intrepid.learn.Ensemble` trained on :func:`canonical_pairs`, or a :class:`KernelBaseline` fitted on
them) and the **training ranges** stored in the model's JSON manifest (``model.json`` key
``training.input``: vendors, SID, equivalent field size at the isocentre, MU, signal level per MU, acquisition
modes). For one EPID image it

1. converts the file's signal to CU/MU (:func:`intrepid.transit.canonical_volume`; refuses what it cannot
   convert, one line naming the file and the reason);
2. refuses an SID outside the training range by more than 10 % (the air gap and the field size at the
   detector change the scatter reaching the panel; nothing in training says how);
3. predicts the dose per MU, multiplies by the MU, and, for an ensemble of several members, returns the
   standard deviation of the members' doses as an uncertainty map (Gy);
4. lists ``ood_reasons``: each quantity (vendor, SID, field size, MU, signal level, acquisition mode) that
   lies outside the training range (a prediction is still made, flagged).

Models trained before this convention (signal as read, no ``training.input``) are wrapped as ``legacy``:
their input is the signal as read, no per-MU conversion, no ranges.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import ParameterError
from intrepid.geometry import Quantity, Volume
from intrepid.transit._signal import CALIBRATED_UNITS_PER_MU, CanonicalSignal, InputRefused, canonical_volume

__all__ = [
    "KERNEL_MODEL_KIND",
    "SID_TOLERANCE",
    "Prediction",
    "TrainingRanges",
    "TransitModel",
    "canonical_pairs",
    "load_kernel_model",
    "save_kernel_model",
    "training_ranges",
]

_log = logging.getLogger(__name__)

#: Relative margin on the SID range beyond which an image is refused (not only flagged).
SID_TOLERANCE = 0.10
#: Relative margin on the other ranges before an out-of-distribution flag is raised.
_MARGIN = 0.05
#: ``kind`` in ``model.json`` of a model folder whose predictor is the kernel baseline alone (no network).
KERNEL_MODEL_KIND = "kernel-baseline"


@dataclass(frozen=True)
class TrainingRanges:
    """What a model was trained on (stored in ``model.json`` ``training.input``).

    Attributes
    ----------
    vendors : tuple of str
    acquisition_modes : tuple of str
    sid_mm, field_size_iso_cm, mu, signal_level_cu_per_mu : (float, float)
        Minimum and maximum over the training images.
    units : str
        Input units (``"CU/MU"``).
    """

    vendors: tuple[str, ...]
    acquisition_modes: tuple[str, ...]
    sid_mm: tuple[float, float]
    field_size_iso_cm: tuple[float, float]
    mu: tuple[float, float]
    signal_level_cu_per_mu: tuple[float, float]
    units: str = CALIBRATED_UNITS_PER_MU

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "units": self.units,
            "vendors": list(self.vendors),
            "acquisition_modes": list(self.acquisition_modes),
            "sid_mm": list(self.sid_mm),
            "field_size_iso_cm": list(self.field_size_iso_cm),
            "mu": list(self.mu),
            "signal_level_cu_per_mu": list(self.signal_level_cu_per_mu),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> TrainingRanges:
        """Inverse of :meth:`to_dict`."""

        def pair(key: str) -> tuple[float, float]:
            v = doc[key]
            return (float(v[0]), float(v[1]))

        return cls(
            tuple(str(v) for v in doc.get("vendors", ())),
            tuple(str(v) for v in doc.get("acquisition_modes", ())),
            pair("sid_mm"),
            pair("field_size_iso_cm"),
            pair("mu"),
            pair("signal_level_cu_per_mu"),
            str(doc.get("units", CALIBRATED_UNITS_PER_MU)),
        )

    def ood_reasons(self, c: CanonicalSignal) -> list[str]:
        """Each quantity of ``c`` outside these ranges, as a phrase (empty: in distribution)."""
        out = []
        if self.vendors and c.vendor not in self.vendors:
            out.append(f"vendor {c.vendor} not in training vendors {list(self.vendors)}")
        if self.acquisition_modes and c.acquisition_mode not in self.acquisition_modes:
            out.append(
                f"acquisition mode {c.acquisition_mode} not in training modes {list(self.acquisition_modes)}"
            )

        def check(name: str, value: float | None, rng: tuple[float, float], unit: str) -> None:
            if value is None or not math.isfinite(value):
                out.append(f"{name} unknown")
                return
            lo, hi = rng
            if value < lo * (1 - _MARGIN) or value > hi * (1 + _MARGIN):
                out.append(f"{name} {value:.4g} {unit} outside the training range [{lo:.4g}, {hi:.4g}]")

        check("SID", c.sid_mm, self.sid_mm, "mm")
        check("field size", c.field_size_iso_cm(), self.field_size_iso_cm, "cm")
        check("MU", c.mu, self.mu, "MU")
        check("signal level", c.level_cu_per_mu, self.signal_level_cu_per_mu, "CU/MU")
        return out

    def sid_refusal(self, c: CanonicalSignal) -> str | None:
        """The refusal reason when the SID lies outside the training range by more than 10 %, else None."""
        if c.sid_mm is None:
            return None
        lo, hi = self.sid_mm
        if c.sid_mm < lo * (1 - SID_TOLERANCE) or c.sid_mm > hi * (1 + SID_TOLERANCE):
            return (
                f"SID {c.sid_mm:g} mm outside the training range [{lo:g}, {hi:g}] mm (more than "
                f"{100 * SID_TOLERANCE:g} % away)"
            )
        return None


def training_ranges(signals: Sequence[CanonicalSignal]) -> TrainingRanges:
    """The ranges covered by some converted training images."""
    if not signals:
        raise ParameterError("training_ranges needs at least one image, got 0")

    def span(values: Sequence[float | None]) -> tuple[float, float]:
        v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
        return (min(v), max(v)) if v else (float("nan"), float("nan"))

    return TrainingRanges(
        tuple(sorted({c.vendor for c in signals})),
        tuple(sorted({c.acquisition_mode for c in signals})),
        span([c.sid_mm for c in signals]),
        span([c.field_size_iso_cm() for c in signals]),
        span([c.mu for c in signals]),
        span([c.level_cu_per_mu for c in signals]),
    )


def canonical_pairs(pairs: Sequence[Any]) -> tuple[list[Any], list[CanonicalSignal]]:
    """Training / test pairs converted to signal in CU/MU and portal dose in Gy/MU.

    Parameters
    ----------
    pairs : sequence of Pair
        Pairs as :func:`intrepid.learn.load_dataset` gives them (``record.mu`` is the MU).

    Returns
    -------
    (list of Pair, list of CanonicalSignal)
        The converted pairs (same records) and what each conversion read.
    """
    from intrepid.learn import Pair

    out, infos = [], []
    for pair in pairs:
        rec = pair.record
        mu = float(getattr(rec, "mu", float("nan")))
        src = str(getattr(rec, "name", "") or pair.epid.metadata.get("source", "pair"))
        mode_hint = ("", "", "", "ACQUIRED_DOSE") if str(pair.epid.units).upper() == "CU" else ()
        c = canonical_volume(
            pair.epid, mu=mu if math.isfinite(mu) else None, source=src, image_type=mode_hint
        )
        dose = pair.portal_dose
        d = Volume(
            np.asarray(dose.array, dtype=np.float64) / c.mu,
            dose.grid,
            Quantity.PORTAL_DOSE,
            "Gy/MU",
            dose.frame_of_reference_uid,
            dict(dose.metadata or {}),
        )
        out.append(Pair(rec, c.signal, d))
        infos.append(c)
    return out, infos


@dataclass(frozen=True, eq=False)
class Prediction:
    """One image's prediction.

    Attributes
    ----------
    dose : Volume
        Portal dose (Gy) on the detector grid.
    uncertainty : Volume or None
        Standard deviation of the ensemble members' doses (Gy), None for a single member or a kernel model.
    input : CanonicalSignal or None
        What was read (None for a legacy model).
    ood_reasons : tuple of str
        Out-of-distribution flags (empty: inside the training ranges).
    """

    dose: Volume
    uncertainty: Volume | None
    input: CanonicalSignal | None
    ood_reasons: tuple[str, ...] = field(default=())


class TransitModel:
    """A per-MU predictor with its training ranges (see the module docstring).

    Parameters
    ----------
    predictor : Ensemble or KernelBaseline
        Maps a signal Volume (CU/MU) to a dose Volume (Gy/MU) with ``predict``.
    ranges : TrainingRanges or None
        Training ranges; None for a legacy model (input as read, no conversion).
    name : str
        Description (``"network"``, a path).
    """

    def __init__(self, predictor: Any, ranges: TrainingRanges | None, name: str = "") -> None:
        if not hasattr(predictor, "predict"):
            raise ParameterError(f"predictor must have predict(volume), got {type(predictor).__name__}")
        self.predictor = predictor
        self.ranges = ranges
        self.name = name
        self._members: list[Any] | None = None

    @classmethod
    def from_ensemble(cls, ensemble: Any, name: str = "") -> TransitModel:
        """Wrap a loaded ensemble, reading its ranges from ``ensemble.training["input"]`` (legacy if none)."""
        doc = (getattr(ensemble, "training", None) or {}).get("input")
        ranges = TrainingRanges.from_dict(doc) if isinstance(doc, Mapping) and "sid_mm" in doc else None
        return cls(ensemble, ranges, name)

    @property
    def legacy(self) -> bool:
        """True for a model without the per-MU convention."""
        return self.ranges is None

    @property
    def members(self) -> int:
        """Ensemble members (1 for a kernel model)."""
        return int(getattr(self.predictor, "members", 1))

    def _member_models(self) -> list[Any]:
        if self._members is None:
            from intrepid.learn import Ensemble

            ens = self.predictor
            self._members = [
                Ensemble(ens.unet, pre, [state], member_preprocess=[pre], base=ens.base, device=ens.device)
                for state, pre in zip(ens.member_states, ens.member_preprocess, strict=True)
            ]
        return self._members

    def check_legacy_vendor(self, epid: Volume) -> None:
        """A legacy model saw one vendor's signal as read; another vendor's units would give a silent,
        wrong dose (a CU image read as Elekta counts is a dark field): refuse it."""
        data = (getattr(self.predictor, "training", None) or {}).get("data") or {}
        trained = str(data.get("vendor") or "").lower()
        vendor = str((epid.metadata or {}).get("vendor") or "").lower()
        if trained and vendor and vendor != trained:
            name = (epid.metadata or {}).get("source", "image")
            raise InputRefused(
                f"{name}: vendor {vendor} differs from the {trained} images this legacy model was trained on "
                "(signal as read, no unit conversion); use a model trained per MU"
            )

    def convert(self, epid: Volume, *, mu: float | None = None, image_type: Any = None) -> CanonicalSignal:
        """The signal per MU of ``epid`` (refusing what cannot be converted or lies beyond the SID range)."""
        c = canonical_volume(epid, mu=mu, image_type=image_type)
        if self.ranges is not None:
            reason = self.ranges.sid_refusal(c)
            if reason is not None:
                raise InputRefused(f"{c.source}: {reason}")
        return c

    def predict_full(
        self, epid: Volume, *, mu: float | None = None, image_type: Any = None, uncertainty: bool = True
    ) -> Prediction:
        """Dose (Gy), member spread (Gy) and OOD flags of one EPID signal Volume.

        Raises
        ------
        InputRefused
            The image cannot be converted or its SID is far outside the training range.
        """
        if self.ranges is None:
            self.check_legacy_vendor(epid)
            dose = self.predictor.predict(epid)
            return Prediction(dose, None, None, ())
        c = self.convert(epid, mu=mu, image_type=image_type)
        per_mu = self.predictor.predict(c.signal)
        arr = np.asarray(per_mu.array, dtype=np.float64) * c.mu
        meta = {**dict(per_mu.metadata or {}), "mu": c.mu, "source": c.source}
        dose = Volume(arr, epid.grid, Quantity.PORTAL_DOSE, "Gy", epid.frame_of_reference_uid, meta)
        spread = None
        if uncertainty and self.members > 1:
            stack = np.stack(
                [np.asarray(m.predict(c.signal).array, dtype=np.float64) for m in self._member_models()]
            )
            sd: NDArray[np.float64] = stack.std(axis=0, ddof=1) * c.mu
            spread = Volume(
                sd,
                epid.grid,
                Quantity.PORTAL_DOSE,
                "Gy",
                epid.frame_of_reference_uid,
                {"meaning": "standard deviation of the ensemble members' doses"},
            )
        reasons = tuple(self.ranges.ood_reasons(c))
        return Prediction(dose, spread, c, reasons)

    def predict(self, epid: Volume) -> Volume:
        """Portal dose (Gy) of one EPID signal Volume (metadata ``mu`` or ``meterset`` needed)."""
        return self.predict_full(epid, uncertainty=False).dose


def save_kernel_model(
    baseline: Any, ranges: TrainingRanges, folder: Any, training: Mapping[str, Any] | None = None
) -> Any:
    """Write a model folder whose predictor is the kernel baseline alone: ``model.json`` (``kind``
    ``"kernel-baseline"``, ``training.input`` = the ranges) and ``baseline.json``. Used when the network does
    not beat the baseline; :func:`intrepid.transit.load_transit_model` reads it."""
    import json
    from pathlib import Path

    from intrepid.dicom._common import atomic_write

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    baseline.save(out / "baseline.json")
    doc = {
        "kind": KERNEL_MODEL_KIND,
        "baseline_file": "baseline.json",
        "training": {**dict(training or {}), "input": ranges.to_dict()},
    }
    text = json.dumps(doc, indent=1, allow_nan=False)
    atomic_write(out / "model.json", lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
    return out


def load_kernel_model(folder: Any, doc: Mapping[str, Any]) -> TransitModel:
    """The :class:`TransitModel` of a kernel-baseline model folder (``doc`` is its parsed ``model.json``)."""
    from pathlib import Path

    from intrepid.errors import ModelError
    from intrepid.physics._kernel_baseline import load_baseline

    rng = (doc.get("training") or {}).get("input")
    if not isinstance(rng, Mapping) or "sid_mm" not in rng:
        raise ModelError(f"{folder}: model.json of a kernel-baseline model lacks training.input ranges")
    baseline = load_baseline(Path(folder) / str(doc.get("baseline_file", "baseline.json")))
    return TransitModel(baseline, TrainingRanges.from_dict(rng), str(folder))
