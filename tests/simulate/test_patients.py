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


@pytest.mark.parametrize("site", list(PatientSite))
def test_anatomy_seed_draws_another_patient_deterministically(site: PatientSite) -> None:
    from intrepid.simulate._patients import ANATOMY_SCALE_RANGE

    ref = make_patient_case_phantom(site, spacing_mm=5.0)
    a = make_patient_case_phantom(site, spacing_mm=5.0, anatomy_seed=3)
    again = make_patient_case_phantom(site, spacing_mm=5.0, anatomy_seed=3)
    other = make_patient_case_phantom(site, spacing_mm=5.0, anatomy_seed=4)
    np.testing.assert_array_equal(a.ct.array, again.ct.array)  # same seed, same patient
    assert a.isocenter_mm == again.isocenter_mm
    assert a.ct.grid.shape != other.ct.grid.shape or not np.array_equal(a.ct.array, other.ct.array)
    assert a.ct.grid.spacing_mm == ref.ct.grid.spacing_mm
    assert a.ct.frame_of_reference_uid == ref.ct.frame_of_reference_uid
    assert (a.ct.quantity, a.ct.units) == (ref.ct.quantity, ref.ct.units)
    scale = a.ct.metadata["anatomy_scale"]
    for v, (lo, hi) in zip(scale, ANATOMY_SCALE_RANGE, strict=True):
        assert lo <= v <= hi
    # the body volume follows the drawn scale (nearest-neighbour resampling: within 6 %)
    ratio = a.structures["BODY"].sum() / ref.structures["BODY"].sum()
    assert ratio == pytest.approx(float(np.prod(scale)), rel=0.06)
    body = a.structures["BODY"]
    for name, mask in a.structures.items():
        assert not (mask & ~body).any(), name
    assert a.structures["PTV"].any()
    # the isocentre is the new PTV centroid (C-shape of tg119: the centroid lies in the concavity)
    idx = np.argwhere(a.structures["PTV"])[:, ::-1].astype(float)
    pts = a.ct.grid.index_to_world(idx)
    np.testing.assert_allclose(pts.mean(axis=0), a.isocenter_mm, atol=0.06)
    if a.cavity is not None:  # the cavity is still air
        assert float(np.max(a.ct.array[a.structures[a.cavity]])) <= -990.0
