"""Ingest: grouping, first-fraction baseline, verdicts, uploaded references, quarantine, idempotence, logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intrepid.app import open_ingestor
from intrepid.app._db import Beam, BeamReference, Fraction, Image, Patient, Plan, Quarantined, Result
from intrepid.geometry import Quantity

from .conftest import PATIENT_NAME, linear_predictor, write_epid


def _results(ing, beam: int = 1) -> dict[int, Result]:  # type: ignore[no-untyped-def]
    """Fraction number -> result of beam ``beam``."""
    with ing.sessions() as s:
        rows = s.execute(
            select(Result, Fraction, Beam)
            .join(Fraction, Result.fraction_id == Fraction.id)
            .join(Beam, Result.beam_id == Beam.id)
        ).all()
    return {f.number: r for r, f, b in rows if b.number == beam}


def test_course_is_grouped_judged_and_reingest_is_idempotent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    drop = tmp_path / "drop"
    drop.mkdir()
    write_epid(drop / "f1.dcm", fraction=1)
    write_epid(drop / "f2.dcm", fraction=2, scale=1.01)
    write_epid(drop / "f3.dcm", fraction=3, scale=1.08)  # an 8 % MU error
    write_epid(drop / "f3b2.dcm", fraction=3, beam=2)
    ing = open_ingestor(tmp_path / "data", predictor=linear_predictor)
    outcomes = ing.ingest_paths([drop])
    assert [o.status for o in outcomes] == ["ingested"] * 4
    with ing.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 1
        assert s.scalar(select(func.count()).select_from(Plan)) == 1
        assert s.scalar(select(func.count()).select_from(Beam)) == 2
        assert s.scalar(select(func.count()).select_from(Fraction)) == 3
        refs = s.scalars(select(BeamReference)).all()
    assert sorted(r.kind for r in refs) == ["first_fraction", "first_fraction"]
    res = _results(ing)
    assert res[1].reference_kind == "baseline" and res[1].passed is None and res[1].gamma_pass_percent is None
    assert res[2].passed is True and res[2].iso_ratio == pytest.approx(1.01, abs=2e-3)
    assert res[2].gamma_pass_percent == pytest.approx(100.0)
    assert res[3].passed is False
    fired = json.loads(res[3].fired)
    assert any(f.startswith("isocentre ratio 1.08") for f in fired), fired
    assert res[3].iso_ratio == pytest.approx(1.08, abs=2e-3)
    assert (tmp_path / "data" / res[3].figure_path).read_bytes().startswith(b"\x89PNG")
    assert _results(ing, beam=2)[3].reference_kind == "baseline"  # beam 2 first seen in fraction 3
    # Re-ingesting the same files changes nothing.
    again = ing.ingest_paths([drop])
    assert {o.status for o in again} == {"duplicate"}
    with ing.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == 4
        assert s.scalar(select(func.count()).select_from(Result)) == 4
    # No patient name in the logs.
    assert PATIENT_NAME not in caplog.text and "Secretname" not in caplog.text


def test_uploaded_reference_replaces_the_baseline(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    write_epid(drop / "f1.dcm", fraction=1, scale=1.06)  # the first fraction itself was wrong
    write_epid(drop / "f2.dcm", fraction=2)
    ing = open_ingestor(tmp_path / "data", predictor=linear_predictor)
    ing.ingest_paths([drop])
    res = _results(ing)
    assert res[1].passed is None and res[2].iso_ratio == pytest.approx(1 / 1.06, abs=2e-3)
    ref = write_epid(tmp_path / "ref.dcm", fraction=None, quantity=Quantity.PORTAL_DOSE)
    assert ing.ingest_file(ref).status == "reference"
    res = _results(ing)
    assert {r.reference_kind for r in res.values()} == {"upload"}
    assert res[1].passed is False and res[1].iso_ratio == pytest.approx(1.06, abs=2e-3)
    assert res[2].passed is True


def test_bad_files_are_quarantined_with_the_reason(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "notes.txt").write_text("not DICOM at all")
    write_epid(drop / "nofraction.dcm", fraction=None)
    write_epid(drop / "nopatient.dcm", fraction=1, patient_id="X")
    import pydicom

    ds = pydicom.dcmread(drop / "nopatient.dcm")
    ds.PatientID = ""
    ds.save_as(drop / "nopatient.dcm")
    ing = open_ingestor(tmp_path / "data", predictor=linear_predictor)
    outcomes = {Path(o.path).name: o for o in ing.ingest_paths([drop])}
    assert {o.status for o in outcomes.values()} == {"quarantined"}
    assert "Modality" in outcomes["notes.txt"].reason
    assert "Fraction Number (3002,0029)" in outcomes["nofraction.dcm"].reason
    assert "Patient ID (0010,0020)" in outcomes["nopatient.dcm"].reason
    with ing.sessions() as s:
        rows = s.scalars(select(Quarantined)).all()
    assert len(rows) == 3 and all((tmp_path / "data" / r.stored_path).is_file() for r in rows)
    assert {o.status for o in ing.ingest_paths([drop])} == {"duplicate"}


def test_a_failing_predictor_quarantines_instead_of_crashing(tmp_path: Path) -> None:
    def broken(_v):  # type: ignore[no-untyped-def]
        raise RuntimeError("model exploded")

    f = write_epid(tmp_path / "f1.dcm", fraction=1)
    ing = open_ingestor(tmp_path / "data", predictor=broken)
    out = ing.ingest_file(f)
    assert out.status == "quarantined" and "model exploded" in out.reason


def test_migrations_create_every_table_and_are_rerunnable(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from intrepid.app._db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    migrate(engine)
    migrate(engine)
    names = set(inspect(engine).get_table_names())
    assert {
        "patients",
        "studies",
        "plans",
        "beams",
        "fractions",
        "images",
        "beam_references",
        "results",
        "comments",
        "approvals",
        "quarantine",
        "users",
        "alembic_version",
    } <= names
