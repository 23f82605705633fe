"""The 3D hook of the review application: a simulated in-vivo fraction (CT, RTSTRUCT, RTPLAN, planned RTDOSE,
transit images) is ingested, reconstructed by ``intrepid.invivo``, compared with the plan and stored; the
viewer's files are served (and nothing else)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from intrepid.app import AppConfig, create_app
from intrepid.app._db import BeamReference, Dose3DResult, Fraction, Result
from intrepid.app._pipeline import plan_reference, reconstruct_3d
from intrepid.app._three_d import ISODOSE_PERCENT, isodose_shells, study_files_for


def test_isodose_shells_are_boundaries() -> None:
    z, y, x = np.mgrid[-10:11, -10:11, -10:11]
    dose = 2.0 * np.exp(-(x**2 + y**2 + z**2) / 60.0)
    shells = isodose_shells(dose, 2.0)
    assert set(np.unique(shells)) <= {0.0, *ISODOSE_PERCENT}
    for level in (50.0, 80.0, 95.0):
        r = np.sqrt(x**2 + y**2 + z**2)[shells == level]
        expected = np.sqrt(-60.0 * np.log(level / 100.0))  # radius of the level
        assert r.size > 0 and abs(float(r.mean()) - expected) < 1.5
    assert not np.any(shells == 107.0)  # the maximum is 100 %: no 107 % shell


def test_study_files_need_plan_ct_and_planned_dose(invivo_study: Any) -> None:
    folder = invivo_study.folder
    cands = [("CT", p, p.name) for p in sorted((folder / "CT").glob("*.dcm"))]
    cands += [("RTPLAN", folder / "RTPLAN.dcm", "RTPLAN.dcm"), ("RTSTRUCT", folder / "RTSTRUCT.dcm", "x")]
    import pydicom

    plan_uid = str(pydicom.dcmread(folder / "RTPLAN.dcm", stop_before_pixels=True).SOPInstanceUID)
    assert study_files_for(cands, plan_uid) is None  # no planned RTDOSE yet
    cands.append(("RTDOSE", folder / "RTDOSE_plan.dcm", "RTDOSE_plan.dcm"))
    cands.append(("RTDOSE", folder / "RTDOSE_plan.dcm", "delivered_dose.dcm"))  # truth: never used
    files = study_files_for(cands, plan_uid)
    assert files is not None and files[0].name == "RTPLAN.dcm"
    assert sum(1 for f in files if f.name == "RTDOSE_plan.dcm") == 1
    assert study_files_for(cands, "1.2.3.4") is None  # another plan


def test_reconstruct_3d_is_linear_in_the_portal_dose(invivo_study: Any) -> None:
    folder = invivo_study.folder
    study = [folder / "RTPLAN.dcm", folder / "RTSTRUCT.dcm", folder / "RTDOSE_plan.dcm"]
    study += sorted((folder / "CT").glob("*.dcm"))
    images = sorted((folder / "transit").glob("*.dcm"))
    res = reconstruct_3d(study, images, invivo_study.predictor)
    assert res is not None
    assert res.reconstructed.grid.is_close(res.ct.grid) and res.planned.grid.is_close(res.ct.grid)
    assert res.verdict in ("pass", "alert")
    c = res.comparison
    assert 0.85 < c.isocenter_ratio < 1.15  # perfect portal dose, no error: near the plan at the isocentre
    assert c.gamma_3pct2mm.pass_rate_percent > 50.0
    assert "PTV" in c.dvh_json()

    def hotter(epid: Any) -> Any:
        d = invivo_study.predictor(epid)
        return d.with_array(np.asarray(d.array) * 1.10)

    res_hot = reconstruct_3d(study, images, hotter)
    assert res_hot is not None
    assert res_hot.comparison.isocenter_ratio == pytest.approx(1.10 * c.isocenter_ratio, rel=1e-3)
    assert res_hot.verdict == "alert"  # +10 % everywhere fires the in-vivo levels
    assert reconstruct_3d([], images, invivo_study.predictor) is None


def test_plan_reference_is_the_transit_model_of_the_plan(invivo_study: Any) -> None:
    from intrepid.dicom import read_rtimage

    folder = invivo_study.folder
    files = [folder / "RTPLAN.dcm", *sorted((folder / "CT").glob("*.dcm"))]
    epid = read_rtimage(folder / "transit" / "beam_2.dcm").image
    ref = plan_reference(files, 2, epid)
    assert ref is not None and ref.shape == epid.shape and ref.units == "Gy"
    # no delivery error: the simulator's noise-free portal dose of this fraction (same physics, so this
    # checks the plan -> apertures -> MU plumbing and the image orientation, not the model)
    truth = np.asarray(invivo_study.predictor(epid).array)
    assert np.max(np.abs(np.asarray(ref.array) - truth)) < 1e-3 * truth.max()
    assert plan_reference(files, 99, epid) is None  # no such beam
    assert plan_reference(files[:1], 2, epid) is None  # no CT
    assert plan_reference([], 2, epid) is None


def test_ingest_stores_3d_result_and_serves_only_viewer_files(invivo_study: Any, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    config = AppConfig(data_dir=tmp_path / "data", figure_processes=0)
    app = create_app(config, predictor=invivo_study.predictor)
    state = app.state.intrepid
    outcomes = state.ingestor.ingest_paths([invivo_study.folder])
    assert {o.status for o in outcomes} == {"ingested", "kept"}
    with state.sessions() as s:
        row = s.scalars(select(Dose3DResult)).one()
        fraction = s.scalars(select(Fraction)).one()
    assert row.status == "done" and row.verdict in ("pass", "alert") and row.fraction_id == fraction.id
    assert row.gamma_3pct2mm_percent is not None and row.isocenter_ratio is not None
    assert "PTV" in json.loads(row.dvh)
    with state.sessions() as s:
        kinds = {r.kind for r in s.scalars(select(BeamReference))}
        results = s.scalars(select(Result)).all()
    assert "plan" in kinds  # the RTPLAN and CT came with the images: the plan-based reference wins
    assert len(results) == 4 and all(r.reference_kind == "plan" and r.passed for r in results)
    assert state.ingestor.plan_references_pending() == 0
    assert state.ingestor.reconstruct_pending() == 0  # done once, not again
    with TestClient(app) as client:
        f = client.get(f"/api/fractions/{fraction.id}").json()
        assert f["dose3d"]["verdict"] == row.verdict
        page = client.get(f"/fractions/{fraction.id}/3d")
        assert page.status_code == 200 and 'id="viewer3d"' in page.text and "/static/viewer3d.js" in page.text
        ct = client.get(f"/volumes/{fraction.id}/ct.nii.gz")
        assert ct.status_code == 200 and ct.content[:2] == b"\x1f\x8b"  # gzip NIfTI
        assert client.get(f"/volumes/{fraction.id}/dvh.png").content.startswith(b"\x89PNG")
        assert client.get("/static/vendor/niivue/niivue.min.js").status_code == 200
        for bad in ("../intrepid.sqlite", "..%2Fsecret.key", "secret.key", "view.json/.."):
            assert client.get(f"/volumes/{fraction.id}/{bad}").status_code == 404
        assert client.get("/volumes/999/ct.nii.gz").status_code == 404
