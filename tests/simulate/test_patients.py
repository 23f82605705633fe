"""Patient-like phantoms with structures for in-vivo cases."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.simulate._patients import PatientSite, make_patient_case_phantom, set_cavity, shrink_body
from intrepid.simulate._phantoms import AIR_HU, LUNG_HU


@pytest.mark.parametrize("site", list(PatientSite))
def test_every_site_has_body_ptv_inside_body_and_iso_in_ptv(site: PatientSite) -> None:
    p = make_patient_case_phantom(site, spacing_mm=5.0)
    assert p.ct.units == "HU" and p.ct.frame_of_reference_uid
    ptv, body = p.structures["PTV"], p.structures["BODY"]
    assert ptv.any() and not np.any(ptv & ~body)
    assert p.roi_types["BODY"] == "EXTERNAL" and p.roi_types["PTV"] == "PTV"
    assert p.organs_at_risk, "each site has organs at risk"
    # the isocentre (PTV centroid) lies within 5 mm of a PTV voxel (C-shape: the centroid may be outside)
    idx = np.argwhere(ptv)[:, ::-1].astype(float)
    d = np.linalg.norm(p.ct.grid.index_to_world(idx) - np.asarray(p.isocenter_mm), axis=1)
    assert d.min() < (30.0 if site is PatientSite.TG119 else 5.0)


def test_thorax_has_lungs_and_a_lesion_in_the_left_lung() -> None:
    p = make_patient_case_phantom("thorax", spacing_mm=4.0)
    hu = p.ct.array
    assert np.median(hu[p.structures["LUNG_R"]]) == pytest.approx(LUNG_HU)
    assert p.isocenter_mm[0] > 40.0  # lesion in the patient's left lung (+x)
    assert np.all(hu[p.structures["TRACHEA"]] == AIR_HU)


def test_shrink_removes_a_rim_of_the_given_thickness() -> None:
    p = make_patient_case_phantom("pelvis", spacing_mm=4.0)
    q = shrink_body(p, 8.0)
    lost = p.structures["BODY"] & ~q.structures["BODY"]
    # the body is an ellipse 360 x 220 mm: an 8 mm rim is about 2 * 8 / 110 of the area in the minor axis...
    frac = lost.sum() / p.structures["BODY"].sum()
    assert 0.05 < frac < 0.2
    assert np.all(q.ct.array[lost] == AIR_HU)
    assert q.structures["PTV"].sum() == p.structures["PTV"].sum()


def test_cavity_fill_and_empty_change_the_ct_in_opposite_directions() -> None:
    p = make_patient_case_phantom("headneck", spacing_mm=4.0)
    cav = p.structures[p.cavity]
    filled = set_cavity(p, filled=True)
    emptied = set_cavity(p, filled=False)
    assert filled.ct.array[cav].mean() > p.ct.array[cav].mean() + 500
    assert (emptied.ct.array == AIR_HU).sum() > (p.ct.array == AIR_HU).sum()


def test_bad_site_and_spacing_are_refused() -> None:
    with pytest.raises(ParameterError, match="site must be one of"):
        make_patient_case_phantom("abdomen")
    with pytest.raises(ParameterError, match="spacing_mm"):
        make_patient_case_phantom("thorax", spacing_mm=0.1)
    with pytest.raises(ParameterError, match="no air cavity"):
        set_cavity(make_patient_case_phantom("tg119", spacing_mm=5.0), filled=True)
