"""Ingest: DICOM files in, grouped by patient / plan / fraction / beam, predicted, compared, stored.

Each file is hashed (SHA-256) first: a file already ingested or quarantined is skipped, so re-ingesting a
folder is idempotent. Then, by DICOM content:

- an RT Image of EPID signal is a fraction's beam: Patient ID (0010,0020), the referenced RT Plan
  (300C,0002 in the Referenced RT Plan Sequence; the study, 0020,000D, when absent), Referenced Beam Number
  (300C,0006) and Fraction Number (3002,0029) place it; the portal dose is predicted
  (:mod:`intrepid.transit`), stored, and compared with the beam's reference;
- an RT Image of portal dose (Image Type value 4 ``PORTAL_DOSE``) is a user-supplied reference for its beam;
  every fraction of that beam is compared again;
- CT, RTPLAN, RTSTRUCT and RTDOSE files are kept (content-addressed) for the plan-based reference and the 3D
  reconstruction (:func:`intrepid.app._pipeline.plan_reference`,
  :func:`~intrepid.app._pipeline.reconstruct_3d`);
- anything else, or a file that fails at any step, is **quarantined**: moved into ``quarantine/`` of the
  data folder with the reason stored and shown in the application. Nothing is deleted.

The reference of a beam is, in order of preference, the plan-based portal dose (from the RTPLAN and CT),
an uploaded reference, or the first fraction of the beam (fraction-to-fraction consistency, as PerFRACTION
does; the first fraction is then the baseline and gets no verdict of its own).

Logs name database ids and file hashes, never patient names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intrepid.app._db import (
    Beam,
    BeamReference,
    Dose3DResult,
    Fraction,
    Image,
    Patient,
    Plan,
    Quarantined,
    Result,
    Study,
)
from intrepid.app._pipeline import PortalDosePredictor, compare_portal_doses, epid_volume, plan_reference
from intrepid.errors import IntrepidError
from intrepid.report import DEFAULT_ACTION_LEVELS, ActionLevels

__all__ = ["IngestOutcome", "Ingestor", "iter_files"]

_log = logging.getLogger(__name__)

#: Modalities kept for the plan-based reference and the 3D reconstruction.
KEPT_MODALITIES = ("CT", "RTPLAN", "RTSTRUCT", "RTDOSE")


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one file: ``status`` is ``ingested``, ``reference``, ``kept``, ``duplicate`` or
    ``quarantined`` (``reason`` says why), with the fraction id where one was made or updated."""

    path: str
    status: str
    reason: str = ""
    fraction_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "fraction_id": self.fraction_id,
        }


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files named or found (recursively, sorted) under the folders named; hidden files are skipped."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(
                f for f in p.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.parts)
            )
        elif p.is_file():
            out.append(p)
        else:
            raise IntrepidError(f"{p}: no such file or folder")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Rejected(Exception):
    """A file that is quarantined, with the reason."""


class Ingestor:
    """Ingests files into one data folder and database.

    Parameters
    ----------
    data_dir : Path
        The data folder (``store/``, ``doses/``, ``figures/``, ``quarantine/`` live under it).
    sessions : sessionmaker
        Sessions of the database.
    predictor : callable
        EPID Volume -> portal dose Volume (Gy); loaded lazily by :meth:`predictor` when None.
    levels : ActionLevels
        Gamma criterion and action levels of the verdicts.
    predictor_kind : str
        ``"network"`` or ``"baseline"`` when ``predictor`` is None.
    figure_processes : int
        Draw the figures in this many worker processes (0: in the ingesting thread). The server uses worker
        processes so that Matplotlib does not hold the interpreter lock while pages are being served.
    """

    def __init__(
        self,
        data_dir: Path,
        sessions: Any,
        *,
        predictor: PortalDosePredictor | None = None,
        levels: ActionLevels = DEFAULT_ACTION_LEVELS,
        predictor_kind: str = "network",
        figure_processes: int = 0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.sessions = sessions
        self.levels = levels
        self._predictor = predictor
        self._predictor_kind = predictor_kind
        #: Held for every database write of this process (grouping, results, reviews): SQLite allows one
        #: writer at a time, and the get-or-create grouping must not race.
        self.write_lock = threading.RLock()
        self._predict_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._figure_processes = int(figure_processes)
        self._figure_pool: Any = None
        #: Beams whose plan-based reference was attempted (not again in this process when it gave None).
        self._plan_ref_tried: set[int] = set()
        for sub in ("store", "doses", "figures", "quarantine"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)

    # -- helpers -------------------------------------------------------------------------------------------
    def predictor(self) -> PortalDosePredictor:
        """The portal-dose predictor (the shipped network unless one was given)."""
        with self._predict_lock:
            if self._predictor is None:
                from intrepid.app._pipeline import default_predictor

                self._predictor = default_predictor(self._predictor_kind)
            return self._predictor

    def _render(self, **kwargs: Any) -> bytes:
        """Draw a comparison figure, in a worker process when ``figure_processes`` > 0."""
        from intrepid.report import comparison_figure

        if self._figure_processes <= 0:
            return comparison_figure(**kwargs)
        with self._predict_lock:
            if self._figure_pool is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                self._figure_pool = ProcessPoolExecutor(
                    self._figure_processes, mp_context=multiprocessing.get_context("spawn")
                )
            pool = self._figure_pool
        from concurrent.futures.process import BrokenProcessPool

        try:
            return pool.submit(comparison_figure, **kwargs).result()  # type: ignore[no-any-return]
        except BrokenProcessPool:  # a worker died (killed, out of memory): draw here, start afresh next time
            _log.warning("figure worker process failed; drawing in the ingest thread")
            with self._predict_lock:
                if self._figure_pool is pool:
                    self._figure_pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return comparison_figure(**kwargs)

    def close(self) -> None:
        """Stop the figure worker processes (if any)."""
        with self._predict_lock:
            if self._figure_pool is not None:
                self._figure_pool.shutdown(wait=True, cancel_futures=True)
                self._figure_pool = None

    def _store(self, path: Path, sha: str, folder: str = "store") -> str:
        rel = f"{folder}/{sha[:2]}/{sha}.dcm"
        dest = self.data_dir / rel
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{dest.name}")
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        return rel

    def _quarantine(self, path: Path, sha: str, reason: str) -> IngestOutcome:
        rel = self._store(path, sha, "quarantine")
        with self.write_lock, self.sessions() as s:
            if s.scalar(select(Quarantined).where(Quarantined.sha256 == sha)) is None:
                s.add(Quarantined(sha256=sha, original_name=path.name[:300], stored_path=rel, reason=reason))
                s.commit()
        _log.warning("quarantined file %s…: %s", sha[:12], reason)
        return IngestOutcome(str(path), "quarantined", reason)

    # -- public --------------------------------------------------------------------------------------------
    def ingest_paths(
        self, paths: Sequence[str | os.PathLike[str]], *, workers: int = 1
    ) -> list[IngestOutcome]:
        """Ingest files and folders; ``workers`` files at a time (threads). Returns one outcome per file."""
        files = iter_files(paths)
        if workers <= 1:
            out = [self.ingest_file(f) for f in files]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                out = list(pool.map(self.ingest_file, files))
        self.plan_references_pending()
        self.reconstruct_pending()
        return out

    def ingest_file(self, path: str | os.PathLike[str]) -> IngestOutcome:
        """Ingest one file (see the module docstring); never raises for a bad file, quarantines it."""
        p = Path(path)
        try:
            sha = _sha256(p)
        except OSError as exc:
            return IngestOutcome(str(p), "quarantined", f"unreadable: {exc.strerror or exc}")
        with self.sessions() as s:
            if s.scalar(select(Image.id).where(Image.sha256 == sha)) is not None:
                return IngestOutcome(str(p), "duplicate", "already ingested")
            if s.scalar(select(Quarantined.id).where(Quarantined.sha256 == sha)) is not None:
                return IngestOutcome(str(p), "duplicate", "already quarantined")
        try:
            return self._ingest(p, sha)
        except _Rejected as exc:
            return self._quarantine(p, sha, str(exc))
        except IntrepidError as exc:
            return self._quarantine(p, sha, str(exc).replace(str(p), p.name))
        except Exception as exc:
            _log.exception("ingest of %s… failed", sha[:12])
            return self._quarantine(p, sha, f"internal error: {type(exc).__name__}: {exc}")

    def _ingest(self, p: Path, sha: str) -> IngestOutcome:
        import pydicom
        from pydicom.errors import InvalidDicomError

        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
        except (InvalidDicomError, OSError, ValueError, TypeError) as exc:
            raise _Rejected(f"not a readable DICOM file ({type(exc).__name__})") from exc
        modality = str(ds.get("Modality", "")).upper()
        if not modality:
            raise _Rejected("not a DICOM file with a Modality (0008,0060)")
        if modality in KEPT_MODALITIES:
            return self._keep(p, sha, ds, modality)
        if modality != "RTIMAGE":
            raise _Rejected(
                f"unsupported modality {modality!r} (expected RTIMAGE, CT, RTPLAN, RTSTRUCT, RTDOSE)"
            )
        patient_key = str(ds.get("PatientID", "")).strip()
        if not patient_key:
            raise _Rejected("RT Image without Patient ID (0010,0020)")
        from intrepid.dicom import read_rtimage
        from intrepid.geometry import Quantity

        rt = read_rtimage(p)
        beam_number = rt.referenced_beam_number
        if beam_number is None:
            raise _Rejected("RT Image without Referenced Beam Number (300C,0006)")
        study_uid = str(ds.get("StudyInstanceUID", "")) or None
        plan_uid = rt.referenced_plan_uid or (f"study:{study_uid}" if study_uid else None)
        if plan_uid is None:
            raise _Rejected("RT Image names neither an RT Plan (300C,0002) nor a study (0020,000D)")
        ident = {
            "patient_key": patient_key,
            "patient_name": str(ds.get("PatientName", "")),
            "study_uid": study_uid,
            "plan_uid": plan_uid,
            "plan_label": str(ds.get("RTPlanLabel", "") or f"plan …{plan_uid[-6:]}")[:80],
            "beam_number": beam_number,
        }
        rel = self._store(p, sha)
        if rt.image.quantity is Quantity.PORTAL_DOSE:
            return self._add_reference(p, sha, rel, ds, rt, ident)
        number = ds.get("FractionNumber")
        if number in (None, ""):
            raise _Rejected("EPID RT Image without Fraction Number (3002,0029)")
        ident["fraction_number"] = int(number)
        day = str(ds.get("AcquisitionDate", "") or ds.get("ContentDate", ""))
        iso_day = f"{day[:4]}-{day[4:6]}-{day[6:8]}" if len(day) == 8 and day.isdigit() else day[:16]
        ident["delivered_on"] = iso_day
        return self._add_fraction_image(p, sha, rel, ds, rt, ident)

    def _keep(self, p: Path, sha: str, ds: Any, modality: str) -> IngestOutcome:
        rel = self._store(p, sha)
        with self.write_lock, self.sessions() as s:
            patient = self._patient(s, str(ds.get("PatientID", "")).strip(), str(ds.get("PatientName", "")))
            s.add(
                Image(
                    sha256=sha,
                    sop_uid=str(ds.get("SOPInstanceUID", ""))[:80],
                    kind=modality,
                    stored_path=rel,
                    original_name=p.name[:300],
                    patient_id=patient.id if patient else None,
                )
            )
            s.commit()
        return IngestOutcome(str(p), "kept", modality)

    # -- grouping ------------------------------------------------------------------------------------------
    @staticmethod
    def _patient(s: Session, key: str, name: str) -> Patient | None:
        if not key:
            return None
        patient = s.scalar(select(Patient).where(Patient.patient_key == key))
        if patient is None:
            patient = Patient(patient_key=key[:64], name=name[:200])
            s.add(patient)
            s.flush()
        return patient

    def _beam(self, s: Session, ident: dict[str, Any]) -> Beam:
        patient = self._patient(s, ident["patient_key"], ident["patient_name"])
        assert patient is not None
        study = None
        if ident["study_uid"]:
            study = s.scalar(select(Study).where(Study.study_uid == ident["study_uid"]))
            if study is None:
                study = Study(patient_id=patient.id, study_uid=ident["study_uid"][:64])
                s.add(study)
                s.flush()
        plan = s.scalar(select(Plan).where(Plan.plan_uid == ident["plan_uid"]))
        if plan is None:
            plan = Plan(
                patient_id=patient.id,
                study_id=study.id if study else None,
                plan_uid=ident["plan_uid"][:80],
                label=ident["plan_label"],
            )
            s.add(plan)
            s.flush()
        beam = s.scalar(select(Beam).where(Beam.plan_id == plan.id, Beam.number == ident["beam_number"]))
        if beam is None:
            beam = Beam(plan_id=plan.id, number=ident["beam_number"], name=f"beam {ident['beam_number']}")
            s.add(beam)
            s.flush()
        return beam

    def _with_retry(self, fn: Any) -> Any:
        """Run a grouping transaction; one retry after a unique-constraint race with another process."""
        for attempt in (0, 1):
            try:
                with self.write_lock, self.sessions() as s:
                    out = fn(s)
                    s.commit()
                    return out
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _add_fraction_image(
        self, p: Path, sha: str, rel: str, ds: Any, rt: Any, ident: dict[str, Any]
    ) -> IngestOutcome:
        from intrepid.dicom import write_npz

        def group(s: Session) -> tuple[int, int, int]:
            beam = self._beam(s, ident)
            frac = s.scalar(
                select(Fraction).where(
                    Fraction.plan_id == beam.plan_id, Fraction.number == ident["fraction_number"]
                )
            )
            if frac is None:
                frac = Fraction(
                    plan_id=beam.plan_id, number=ident["fraction_number"], delivered_on=ident["delivered_on"]
                )
                s.add(frac)
                s.flush()
            elif frac.status != "new":
                frac.status = "new"  # new data for an approved fraction: review it again
            stale = s.scalar(select(Dose3DResult).where(Dose3DResult.fraction_id == frac.id))
            if stale is not None:  # a new image of the fraction: its 3D check is made again
                s.delete(stale)
            img = Image(
                sha256=sha,
                sop_uid=rt.sop_instance_uid[:80],
                kind="epid",
                stored_path=rel,
                original_name=p.name[:300],
                patient_id=beam.plan.patient_id,
                beam_id=beam.id,
                fraction_id=frac.id,
            )
            s.add(img)
            s.flush()
            return beam.id, frac.id, img.id

        beam_id, fraction_id, image_id = self._with_retry(group)
        t = time.perf_counter()
        try:
            predict = self.predictor()
            with self._run_lock:  # one prediction at a time: the model's own threads use the cores
                measured = predict(epid_volume(rt))
        except Exception:  # refused or failed: the file is quarantined, its image row must not stay
            with self.write_lock, self.sessions() as s:
                row = s.get(Image, image_id)
                if row is not None:
                    s.delete(row)
                    s.commit()
            raise
        predict_s = time.perf_counter() - t
        dose_rel = f"doses/image-{image_id}.npz"
        write_npz(measured, self.data_dir / dose_rel)
        self._compare(beam_id, fraction_id, image_id, dose_rel, rt.image, measured, predict_s)
        _log.info("fraction %d beam %d ingested (image %d)", fraction_id, beam_id, image_id)
        return IngestOutcome(str(p), "ingested", "", fraction_id)

    def _add_reference(
        self, p: Path, sha: str, rel: str, ds: Any, rt: Any, ident: dict[str, Any]
    ) -> IngestOutcome:
        from intrepid.dicom import write_npz

        def group(s: Session) -> tuple[int, int]:
            beam = self._beam(s, ident)
            img = Image(
                sha256=sha,
                sop_uid=rt.sop_instance_uid[:80],
                kind="reference",
                stored_path=rel,
                original_name=p.name[:300],
                patient_id=beam.plan.patient_id,
                beam_id=beam.id,
            )
            s.add(img)
            s.flush()
            return beam.id, img.id

        beam_id, image_id = self._with_retry(group)
        dose_rel = f"doses/reference-{image_id}.npz"
        write_npz(rt.image, self.data_dir / dose_rel)
        with self.write_lock, self.sessions() as s:
            s.add(BeamReference(beam_id=beam_id, kind="upload", image_id=image_id, dose_path=dose_rel))
            s.commit()
        self.recompare_beam(beam_id)
        _log.info("reference uploaded for beam %d (image %d)", beam_id, image_id)
        return IngestOutcome(str(p), "reference")

    # -- comparison ----------------------------------------------------------------------------------------
    def _reference_for(self, s: Session, beam_id: int, fraction_id: int, dose_rel: str) -> BeamReference:
        """The beam's current reference; the first fraction becomes the baseline when there is none."""
        refs = s.scalars(select(BeamReference).where(BeamReference.beam_id == beam_id)).all()
        for kind in ("plan", "upload", "first_fraction"):
            chosen = [r for r in refs if r.kind == kind]
            if chosen:
                return max(chosen, key=lambda r: r.id)
        ref = BeamReference(
            beam_id=beam_id, kind="first_fraction", fraction_id=fraction_id, dose_path=dose_rel
        )
        s.add(ref)
        s.flush()
        return ref

    def _compare(
        self,
        beam_id: int,
        fraction_id: int,
        image_id: int,
        dose_rel: str,
        epid: Any,
        measured: Any,
        predict_s: float,
    ) -> None:
        from intrepid.dicom import read_npz

        with self.write_lock, self.sessions() as s:
            ref = self._reference_for(s, beam_id, fraction_id, dose_rel)
            frac = s.get(Fraction, fraction_id)
            beam = s.get(Beam, beam_id)
            assert frac is not None and beam is not None
            ref_kind, ref_path, ref_fraction = ref.kind, ref.dose_path, ref.fraction_id
            title = f"plan {beam.plan_id} · fraction {frac.number} · beam {beam.number}"
            ref_label = (
                "uploaded reference"
                if ref_kind == "upload"
                else "plan-based reference"
                if ref_kind == "plan"
                else "first fraction"
            )
            s.commit()
        baseline_self = ref_kind == "first_fraction" and ref_fraction == fraction_id
        reference = None if baseline_self else read_npz(self.data_dir / ref_path)
        cmp = compare_portal_doses(
            epid,
            measured,
            reference,
            levels=self.levels,
            reference_label=ref_label,
            title=title,
            render=self._render,
        )
        fig_rel = f"figures/fraction-{fraction_id}-beam-{beam_id}.png"
        fig = self.data_dir / fig_rel
        tmp = fig.with_name(f".tmp-{threading.get_ident()}-{fig.name}")
        tmp.write_bytes(cmp.figure_png)
        os.replace(tmp, fig)
        settings = dict(cmp.settings)
        settings["reference"] = "this fraction is the baseline" if baseline_self else ref_label
        settings["predict_seconds"] = round(predict_s, 3)

        def nan_none(v: float | None) -> float | None:
            return None if v is None or v != v else float(v)

        def upsert(s: Session) -> None:
            row = s.scalar(select(Result).where(Result.fraction_id == fraction_id, Result.beam_id == beam_id))
            if row is None:
                row = Result(fraction_id=fraction_id, beam_id=beam_id, image_id=image_id)
                s.add(row)
            row.image_id = image_id
            row.reference_kind = "baseline" if baseline_self else ref_kind
            row.gamma_pass_percent = nan_none(cmp.pass_rate_percent)
            row.mean_gamma = nan_none(cmp.mean_gamma)
            row.gamma_1percent = nan_none(cmp.gamma_1percent)
            row.iso_ratio = nan_none(cmp.iso_ratio)
            row.max_dose_gy = cmp.max_dose_gy
            row.passed = None if cmp.verdict is None else cmp.verdict.passed
            row.fired = json.dumps([] if cmp.verdict is None else list(cmp.verdict.fired))
            row.settings = json.dumps(settings)
            row.dose_path = dose_rel
            row.figure_path = fig_rel
            row.seconds = predict_s + cmp.seconds

        self._with_retry(upsert)

    def recompare_beam(self, beam_id: int) -> int:
        """Compare every fraction of a beam with its current reference again; returns how many."""
        from intrepid.dicom import read_npz, read_rtimage

        with self.sessions() as s:
            rows = s.execute(
                select(Image.id, Image.fraction_id, Image.stored_path)
                .where(Image.beam_id == beam_id, Image.kind == "epid")
                .order_by(Image.id)
            ).all()
        for image_id, fraction_id, stored in rows:
            dose_rel = f"doses/image-{image_id}.npz"
            if not (self.data_dir / dose_rel).is_file():
                continue  # no portal dose (being ingested, or its prediction failed)
            epid = read_rtimage(self.data_dir / stored).image
            self._compare(
                beam_id, fraction_id, image_id, dose_rel, epid, read_npz(self.data_dir / dose_rel), 0.0
            )
        return len(rows)

    # -- plan-based references ------------------------------------------------------------------------------
    def plan_references_pending(self) -> int:
        """Compute the plan-based reference (:func:`intrepid.app._pipeline.plan_reference`) of every beam that
        has none yet, once its plan's RTPLAN and CT are ingested, and compare the beam's fractions with it
        again; returns how many beams got one. A beam the model cannot handle (arc, rotated collimator) keeps
        its uploaded or first-fraction reference."""
        from intrepid.app._three_d import study_files_for
        from intrepid.dicom import read_rtimage, write_npz

        with self.sessions() as s:
            have = set(s.scalars(select(BeamReference.beam_id).where(BeamReference.kind == "plan")).all())
            tried = set(self._plan_ref_tried)
            beams = [
                (b.id, b.number, p.plan_uid, p.patient_id)
                for b, p in s.execute(select(Beam, Plan).join(Plan, Beam.plan_id == Plan.id)).all()
                if b.id not in have and b.id not in tried
            ]
        made = 0
        for beam_id, number, plan_uid, patient_id in beams:
            with self.sessions() as s:
                kept = s.execute(
                    select(Image.kind, Image.stored_path, Image.original_name).where(
                        Image.patient_id == patient_id, Image.kind.in_(("CT", "RTPLAN"))
                    )
                ).all()
                epid_path = s.scalar(
                    select(Image.stored_path).where(Image.beam_id == beam_id, Image.kind == "epid").limit(1)
                )
            if not kept or epid_path is None:
                continue
            try:
                files = study_files_for(
                    [(k, self.data_dir / p, n) for k, p, n in kept], plan_uid, need_dose=False
                )
                if files is None:
                    continue
                self._plan_ref_tried.add(beam_id)
                with self._run_lock:
                    ref = plan_reference(files, number, read_rtimage(self.data_dir / epid_path).image)
            except Exception as exc:  # a bad kept file: no plan reference, the others stay
                _log.warning("plan reference of beam %d failed: %s", beam_id, exc)
                continue
            if ref is None:
                continue
            dose_rel = f"doses/plan-reference-beam-{beam_id}.npz"
            write_npz(ref, self.data_dir / dose_rel)
            with self.write_lock, self.sessions() as s:
                s.add(BeamReference(beam_id=beam_id, kind="plan", dose_path=dose_rel))
                s.commit()
            _log.info("plan-based reference computed for beam %d", beam_id)
            self.recompare_beam(beam_id)
            made += 1
        return made

    # -- 3D ------------------------------------------------------------------------------------------------
    def _3d_inputs(self, fraction_id: int) -> tuple[list[Path], list[Path]] | None:
        """The study files and EPID images of a fraction when every beam of its RTPLAN has an image."""
        from intrepid.app._three_d import study_files_for

        with self.sessions() as s:
            frac = s.get(Fraction, fraction_id)
            if frac is None:
                return None
            plan = s.get(Plan, frac.plan_id)
            assert plan is not None
            kept = s.execute(
                select(Image.kind, Image.stored_path, Image.original_name).where(
                    Image.patient_id == plan.patient_id, Image.kind.in_(KEPT_MODALITIES)
                )
            ).all()
            images = s.execute(
                select(Image.stored_path, Beam.number)
                .join(Beam, Image.beam_id == Beam.id)
                .where(Image.fraction_id == fraction_id, Image.kind == "epid")
            ).all()
            plan_uid = plan.plan_uid
        if not kept or not images:
            return None
        study = study_files_for([(k, self.data_dir / p, n) for k, p, n in kept], plan_uid)
        if study is None:
            return None
        from intrepid.dicom import read_rtplan

        beams = {b.number for b in read_rtplan(study[0]).beams}
        if not beams <= {int(n) for _, n in images}:
            return None  # the fraction is not complete yet
        return study, [self.data_dir / p for p, _ in images]

    def reconstruct_pending(self) -> int:
        """Run the 3D check of every fraction that has none yet and whose inputs are complete (CT, RTPLAN,
        planned RTDOSE, an EPID image per beam); returns how many were made. A failure is stored with its
        reason (status ``failed``) and not retried until the fraction receives a new image."""
        with self.sessions() as s:
            done = set(s.scalars(select(Dose3DResult.fraction_id)).all())
            todo = [i for i in s.scalars(select(Fraction.id).order_by(Fraction.id)).all() if i not in done]
        made = 0
        for fraction_id in todo:
            try:
                inputs = self._3d_inputs(fraction_id)
            except Exception as exc:  # a kept file that cannot be read must not stop the ingest
                _log.warning("3D inputs of fraction %d unreadable: %s", fraction_id, type(exc).__name__)
                continue
            if inputs is not None:
                self.run_3d(fraction_id, *inputs)
                made += 1
        return made

    def run_3d(self, fraction_id: int, study_files: list[Path], image_files: list[Path]) -> None:
        """Reconstruct, compare and store the 3D check of one fraction (see :meth:`reconstruct_pending`)."""
        from intrepid.app._pipeline import reconstruct_3d
        from intrepid.app._three_d import write_volumes

        folder_rel = f"volumes/fraction-{fraction_id}"
        row: dict[str, Any] = {"folder": folder_rel}
        try:
            with self._run_lock:
                result = reconstruct_3d(study_files, image_files, self.predictor())
            if result is None:
                return
            write_volumes(result, self.data_dir / folder_rel)
            c = result.comparison

            def finite(v: float | None) -> float | None:
                return None if v is None or not math.isfinite(v) else float(v)

            row.update(
                status="done",
                verdict=result.verdict,
                reasons=json.dumps(result.reasons + result.notes),
                gamma_3pct2mm_percent=finite(c.gamma_3pct2mm.pass_rate_percent),
                gamma_2pct2mm_percent=finite(c.gamma_2pct2mm.pass_rate_percent),
                mean_gamma_3pct2mm=finite(c.gamma_3pct2mm.mean_gamma),
                isocenter_ratio=finite(c.isocenter_ratio),
                prescription_gy=finite(c.prescription_gy),
                dvh=json.dumps(_none_nan(c.dvh_json())),
                method=result.method,
                seconds=result.seconds,
            )
            _log.info("fraction %d: 3D check %s in %.1f s", fraction_id, result.verdict, result.seconds)
        except Exception as exc:
            _log.warning("fraction %d: 3D check failed: %s", fraction_id, exc)
            row.update(status="failed", verdict="", reasons=json.dumps([f"3D check failed: {exc}"]))

        def upsert(s: Session) -> None:
            r = s.scalar(select(Dose3DResult).where(Dose3DResult.fraction_id == fraction_id))
            if r is None:
                r = Dose3DResult(fraction_id=fraction_id)
                s.add(r)
            for k, v in row.items():
                setattr(r, k, v)
            frac = s.get(Fraction, fraction_id)
            if frac is not None and frac.status != "new":
                frac.status = "new"

        self._with_retry(upsert)


def _none_nan(value: Any) -> Any:
    """JSON-ready copy with NaN / inf replaced by None."""
    if isinstance(value, dict):
        return {k: _none_nan(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
