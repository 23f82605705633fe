"""Tests of the pair generator: manifest, DICOM files that load back, determinism, atomicity, bad input."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from intrepid.dicom import read_rtimage
from intrepid.errors import ParameterError
from intrepid.geometry import Quantity
from intrepid.simulate import PAPER_TEST_SET, IsocenterMode, make_phantom, random_composition
from intrepid.simulate._pairs import MANIFEST_COLUMNS, generate_pairs, pair_seed, read_manifest

# A 64-pixel-wide panel of the vendor's physical size and 5 mm phantom voxels keep one pair well under a
# second.
FAST = {"progress": False, "detector_pixels": 64, "phantom_spacing_mm": 5.0}
REQUIRED = ("epid_file", "portal_dose_file", "phantom", "field", "rotation_deg", "mu", "seed", "split")


@pytest.fixture(scope="module")
def specs():
    # two of the seed's test images: a thorax with the isocentre at the lesion, and the titanium multi-plug
    by_name = {s.name: s for s in PAPER_TEST_SET}
    return [
        replace(by_name["CIRS_90gradi_ISOlesione_7"], seed=11),
        replace(by_name["Multiplug_Ti_tondo_180g"], seed=12),
    ]


@pytest.fixture(scope="module")
def elekta_run(tmp_path_factory, specs):
    out = tmp_path_factory.mktemp("elekta")
    return out, generate_pairs(specs, out, vendor="elekta", seed=3, **FAST)


def pixel_bytes(path: Path) -> bytes:
    return pydicom.dcmread(path, force=True).PixelData


def test_manifest_columns_and_rows(elekta_run, specs):
    out, manifest = elekta_run
    assert manifest == out / "manifest.csv"
    with manifest.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == MANIFEST_COLUMNS
        rows = list(reader)
    assert set(REQUIRED) <= set(MANIFEST_COLUMNS)
    assert [r["name"] for r in rows] == [s.name for s in specs]
    for row, spec in zip(rows, specs, strict=True):
        assert not Path(row["epid_file"]).is_absolute()
        assert (out / row["epid_file"]).is_file() and (out / row["portal_dose_file"]).is_file()
        assert row["phantom"] == spec.phantom and row["family"] == spec.family.value
        assert row["field"] == spec.field and int(row["rotation_deg"]) == spec.rotation_deg
        assert float(row["mu"]) == spec.mu and row["split"] == "test" and row["vendor"] == "elekta"
        assert int(row["seed"]) == pair_seed(3, spec.seed)
        assert row["isocenter"] == spec.isocenter.value
    assert read_manifest(manifest) == rows


def test_files_load_back_with_geometry(elekta_run, specs):
    out, manifest = elekta_run
    rows = read_manifest(manifest)
    for row, spec in zip(rows, specs, strict=True):
        epid = read_rtimage(out / row["epid_file"])
        dose = read_rtimage(out / row["portal_dose_file"])
        assert epid.image.quantity is Quantity.EPID_SIGNAL
        assert epid.vendor.value == "elekta" and epid.signal_convention.value == "inverted"
        assert dose.image.quantity is Quantity.PORTAL_DOSE and dose.pixel_units == "Gy"
        # the 1024 x 1024, 0.405 mm iView panel resampled to 64 columns: 6.48 mm pixels, same SID
        assert epid.image.shape == (64, 64) and dose.image.shape == (64, 64)
        assert epid.pixel_spacing_mm == pytest.approx((0.405 * 16, 0.405 * 16))
        assert epid.sid_mm == 1600.0 and epid.sad_mm == 1000.0 and epid.gantry_deg == 0.0
        assert epid.meterset == spec.mu and dose.meterset == spec.mu
        phantom = make_phantom(spec.family, spec.parameters(), spacing_mm=5.0, rotation_deg=spec.rotation_deg,
                               isocenter=spec.isocenter)
        assert epid.frame_of_reference_uid == phantom.ct.frame_of_reference_uid == dose.frame_of_reference_uid
        assert float(row["portal_dose_max_gy"]) == pytest.approx(dose.signal.max(), rel=1e-4)
        # more dose on the beam axis than in the panel corner (a 10 x 2 field and a round 5 cm field)
        centre = dose.signal[28:36, 28:36].mean()
        assert centre > 5 * dose.signal[:4, :4].mean() and centre > 0.01


def test_same_seed_gives_identical_pixels(elekta_run, specs, tmp_path):
    out, manifest = elekta_run
    again = generate_pairs(specs, tmp_path, vendor="elekta", seed=3, **FAST)
    for a, b in zip(read_manifest(manifest), read_manifest(again), strict=True):
        assert pixel_bytes(out / a["epid_file"]) == pixel_bytes(tmp_path / b["epid_file"])
        assert pixel_bytes(out / a["portal_dose_file"]) == pixel_bytes(tmp_path / b["portal_dose_file"])


def test_other_seed_changes_the_noise(elekta_run, specs, tmp_path):
    out, manifest = elekta_run
    other = generate_pairs(specs[:1], tmp_path, vendor="elekta", seed=4, **FAST)
    a, b = read_manifest(manifest)[0], read_manifest(other)[0]
    assert pixel_bytes(out / a["epid_file"]) != pixel_bytes(tmp_path / b["epid_file"])


def test_two_workers_give_the_same_pixels(elekta_run, specs, tmp_path):
    out, manifest = elekta_run
    par = generate_pairs(specs, tmp_path, vendor="elekta", seed=3, workers=2, **FAST)
    assert [r["name"] for r in read_manifest(par)] == [s.name for s in specs]
    for a, b in zip(read_manifest(manifest), read_manifest(par), strict=True):
        assert pixel_bytes(out / a["epid_file"]) == pixel_bytes(tmp_path / b["epid_file"])


def test_varian_calibrated_units(specs, tmp_path):
    manifest = generate_pairs(specs[:1], tmp_path, vendor="varian", seed=0, **FAST)
    row = read_manifest(manifest)[0]
    epid = read_rtimage(tmp_path / row["epid_file"])
    assert row["vendor"] == "varian" and row["epid_units"] == "CU"
    assert epid.vendor.value == "varian" and epid.pixel_units == "CU"
    ds = pydicom.dcmread(tmp_path / row["epid_file"])
    assert float(ds.RescaleSlope) < 0  # the aS1000 negative-slope encoding
    # 768 x 1024 at 0.392 mm resampled to 64 columns keeps the 3:4 panel: 48 rows of 6.272 mm, SID 1500 mm
    assert epid.image.shape == (48, 64) and epid.sid_mm == 1500.0
    assert epid.pixel_spacing_mm == pytest.approx((0.392 * 16, 0.392 * 16))


def test_failed_run_leaves_no_manifest(specs, tmp_path, monkeypatch):
    import intrepid.simulate._pairs as pairs

    (tmp_path / "manifest.csv").write_text("stale\n")
    real = pairs._simulate_one

    def flaky(index, spec, settings, out_dir):
        if index == 1:
            raise RuntimeError("simulated failure")
        return real(index, spec, settings, out_dir)

    monkeypatch.setattr(pairs, "_simulate_one", flaky)
    with pytest.raises(RuntimeError, match="simulated failure"):
        generate_pairs(specs, tmp_path, seed=0, **FAST)
    assert not (tmp_path / "manifest.csv").exists()
    assert not list(tmp_path.rglob(".tmp-*"))  # no half-written temporary files


def test_lesion_isocentre_is_recorded(elekta_run):
    _, manifest = elekta_run
    row = read_manifest(manifest)[0]
    assert row["isocenter"] == IsocenterMode.LESION.value
    # CIRS lesion at (+65, -5, 0) rolled by 90 deg: (+5, +65, 0)
    assert (float(row["isocenter_x_mm"]), float(row["isocenter_y_mm"])) == (5.0, 65.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"specs": []}, "specs must hold at least one PairSpec"),
        ({"specs": ["x"]}, "specs must be PairSpec objects"),
        ({"vendor": "siemens"}, "vendor must be one of elekta, varian, got 'siemens'"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"workers": 0}, "workers must be an integer >= 1, got 0"),
        ({"detector_pixels": 30}, r"detector_pixels must be a multiple of 4 in \[16, 4096\], got 30"),
        ({"phantom_spacing_mm": 0.1}, r"phantom_spacing_mm must be in \[0.5, 10\] mm"),
    ],
)
def test_bad_parameters(kwargs, match, tmp_path):
    args = {"specs": random_composition(1, 0), "out_dir": tmp_path, "progress": False}
    args.update(kwargs)
    with pytest.raises(ParameterError, match=match):
        generate_pairs(**args)
    assert not (tmp_path / "manifest.csv").exists()


def test_read_manifest_requires_columns(tmp_path):
    p = tmp_path / "manifest.csv"
    p.write_text("epid_file,phantom\na.dcm,x\n")
    with pytest.raises(ParameterError, match="lacks the column"):
        read_manifest(p)


def test_pair_seed_mixes_both_seeds():
    seeds = {pair_seed(g, s) for g in range(5) for s in range(5)}
    assert len(seeds) == 25
    assert pair_seed(1, 2) == pair_seed(1, 2)
    assert np.iinfo(np.uint32).min <= pair_seed(0, 0) <= np.iinfo(np.uint32).max


def test_elekta_file_stores_the_detector_model_encoding(elekta_run, specs):
    # the stored pixels are exactly the detector model's inverted 16-bit raw image (no re-quantisation)
    from intrepid.physics import simulate_transit
    from intrepid.simulate._pairs import GenerationSettings, SimulationVendor, _detector, _field

    out, manifest = elekta_run
    row, spec = read_manifest(manifest)[0], specs[0]
    phantom = make_phantom(spec.family, spec.parameters(), spacing_mm=5.0, rotation_deg=spec.rotation_deg,
                           isocenter=spec.isocenter)
    det = _detector(GenerationSettings(SimulationVendor.ELEKTA, 3, 5.0, 64))
    images = simulate_transit(phantom.ct, _field(spec.field), detector=det, isocenter_mm=phantom.isocenter_mm,
                              mu=spec.mu, seed=int(row["seed"]))
    stored = pydicom.dcmread(out / row["epid_file"]).pixel_array
    assert np.array_equal(stored, images.raw)
    dose = read_rtimage(out / row["portal_dose_file"]).signal
    # portal dose: 16-bit linear encoding, error <= half a step = max / 65534 / 2
    assert np.max(np.abs(dose - images.portal_dose.array)) <= images.portal_dose.array.max() / 65534


def test_pairs_with_effects_record_the_draws_and_stay_deterministic(specs, tmp_path):
    import json

    from intrepid.physics import EffectFlags

    mlc = replace(specs[0], field="sns 10x10", name="mlc", seed=99)
    a = generate_pairs([specs[0], mlc], tmp_path / "a", seed=3, effects="all", **FAST)
    b = generate_pairs([specs[0], mlc], tmp_path / "b", seed=3, effects=EffectFlags.all_on(), **FAST)
    rows = read_manifest(a)
    assert [r["effects"] for r in rows] == ["all", "all"] and rows[1]["field_group"] == "MLC step-and-shoot"
    for r in rows:
        assert pixel_bytes(a.parent / r["epid_file"]) == pixel_bytes(b.parent / r["epid_file"])
    values = json.loads((a.parent / "effects.json").read_text())
    assert set(values) == {"0", "1"} and values["0"]["response_strength"] != values["1"]["response_strength"]
    assert 0.75 <= values["0"]["response_strength"] <= 1.25
    c = generate_pairs([specs[0]], tmp_path / "c", seed=3, effects="all-glare", **FAST)
    assert read_manifest(c)[0]["effects"] != "all"
    legacy = generate_pairs([specs[0]], tmp_path / "d", seed=3, **FAST)
    assert read_manifest(legacy)[0]["effects"] == "legacy" and not (legacy.parent / "effects.json").exists()


def test_one_panel_per_data_set_shares_the_panel_values(specs, tmp_path):
    import json

    from intrepid.physics import PANEL_FIELDS

    other = replace(specs[0], seed=77, name="other")
    m = generate_pairs([specs[0], other], tmp_path / "p", seed=5, effects="all", panel="dataset", **FAST)
    values = json.loads((m.parent / "effects.json").read_text())
    for name in PANEL_FIELDS:
        assert values["0"][name] == values["1"][name]
    assert values["0"]["gain"] != values["1"]["gain"]  # per acquisition
    with pytest.raises(ParameterError, match="panel must be 'image' or 'dataset'"):
        generate_pairs([specs[0]], tmp_path / "q", effects="all", panel="clinic", **FAST)
