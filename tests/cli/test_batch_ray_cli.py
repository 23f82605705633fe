"""Batch ``intrepid predict --ray`` and ``intrepid invivo STUDY... --ray`` on a real local Ray cluster.

The cluster (Ray's ``cluster_utils.Cluster``: a head without CPUs and two one-CPU worker nodes, ~10 s to
start on a 2-core machine) runs one task per input / study. Each batch holds a bad item: it must be named in
the JSON and on stderr while the others complete, with the same outputs as a local run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from intrepid.cli._main import main
from intrepid.dicom import read_rtdose, read_rtimage, write_rtimage
from intrepid.geometry import Quantity

pytest.importorskip("torch")
ray = pytest.importorskip("ray", reason="Ray is not installed (extra intrepid-rt[ray])")
cluster_utils = pytest.importorskip("ray.cluster_utils")


@pytest.fixture(scope="module")
def cluster():
    head = {"num_cpus": 0, "include_dashboard": False}
    c = cluster_utils.Cluster(initialize_head=True, head_node_args=head)
    for _ in range(2):
        c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def _tiny_model(folder: Path) -> Path:
    from intrepid.learn import Ensemble, PreprocessConfig, UNetConfig, build_unet

    unet = UNetConfig(depth=2, initial_filters=2)
    state = {k: v.detach().numpy().copy() for k, v in build_unet(unet).state_dict().items()}
    pre = PreprocessConfig(working_shape=(16, 16), input_scale=100.0, target_scale=1.0, fitted=True)
    return Ensemble(unet, pre, [state]).save(folder)


def _epid(path: Path, level: float) -> Path:
    a = np.zeros((32, 32))
    a[8:24, 8:24] = level
    return write_rtimage(path, a, pixel_spacing_mm=1.6, quantity=Quantity.EPID_SIGNAL, units="CU")


def test_predict_on_ray_equals_local_and_names_a_bad_input(
    cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _tiny_model(tmp_path / "model")
    good = [_epid(tmp_path / "one.dcm", 50.0), _epid(tmp_path / "two.dcm", 80.0)]
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"not a DICOM file")
    out = tmp_path / "ray"
    args = ["predict", str(good[0]), str(bad), str(good[1]), "--out", str(out), "--model", str(model)]
    assert main([*args, "--ray", "auto", "--json"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert [Path(o["source"]).name for o in doc["outputs"]] == ["one.dcm", "two.dcm"]
    assert [Path(f["source"]).name for f in doc["failed"]] == ["broken.dcm"]
    assert "broken.dcm" in doc["failed"][0]["error"]
    assert captured.err.strip().startswith("intrepid predict: error:") and "broken.dcm" in captured.err
    assert doc["model_members"] == 1 and doc["model_convention"] == "legacy"
    assert not (out / "broken.dcm").exists()
    local = tmp_path / "local"
    assert main(["predict", *map(str, good), "--out", str(local), "--model", str(model)]) == 0
    for name in ("one.dcm", "two.dcm"):
        a = read_rtimage(out / name).image.array
        b = read_rtimage(local / name).image.array
        assert np.array_equal(a, b), name


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("studies") / "fraction_a"
    args = ["simulate", "invivo", "--out", str(path), "--phantom", "tg119", "--plan", "box4"]
    assert main([*args, "--seed", "2", "--spacing-mm", "8"]) == 0
    return path


def test_invivo_batch_on_ray_equals_local_and_names_a_bad_study(
    cluster, study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fraction_b"
    bad.mkdir()
    (bad / "notes.txt").write_text("no DICOM here")
    common = [str(study), str(bad), "--model", "baseline", "--no-report", "--json"]
    out = tmp_path / "ray"
    assert main(["invivo", *common[:2], "--out", str(out), *common[2:], "--ray", "auto"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert set(doc) == {"out", "studies", "failed", "seconds"}
    assert [s["study"] for s in doc["studies"]] == ["fraction_a", "fraction_b"]
    assert doc["failed"] == ["fraction_b"]
    ok, failed = doc["studies"]
    assert ok["ok"] and ok["error"] is None and ok["result"]["verdict"] in ("pass", "alert")
    assert not failed["ok"] and failed["result"] is None and "no CT" in failed["error"]
    assert "intrepid invivo: error: fraction_b:" in captured.err
    # the good study complete, the bad one absent, no partial folder left
    assert sorted(p.name for p in out.iterdir()) == ["fraction_a"]
    assert (out / "fraction_a" / "result.json").is_file()
    local = tmp_path / "local"
    assert main(["invivo", *common[:2], "--out", str(local), *common[2:]]) == 1
    local_doc = json.loads(capsys.readouterr().out)
    assert local_doc["studies"][0]["result"]["gamma_3pct2mm_percent"] == ok["result"]["gamma_3pct2mm_percent"]
    a = read_rtdose(out / "fraction_a" / "reconstructed_dose.dcm").volume.array
    b = read_rtdose(local / "fraction_a" / "reconstructed_dose.dcm").volume.array
    assert np.array_equal(a, b)


def test_simulate_invivo_count_on_ray_equals_local(
    cluster, study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim"
    args = ["simulate", "invivo", "--out", str(out), "--phantom", "tg119", "--plan", "box4", "--seed", "2"]
    assert main([*args, "--spacing-mm", "8", "--count", "2", "--ray", "auto", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [Path(c["study"]).name for c in listed] == ["case_2", "case_3"]
    assert [c["seed"] for c in listed] == [2, 3]
    # seed 2 on Ray is the locally simulated fixture, file for file
    for name in ("delivered_dose.dcm", "RTDOSE_plan.dcm"):
        a = read_rtdose(out / "case_2" / name).volume.array
        assert np.array_equal(a, read_rtdose(study / name).volume.array), name
    transit = sorted(p.name for p in (study / "transit").glob("*.dcm"))
    assert transit
    for t in transit:
        a = read_rtimage(out / "case_2" / "transit" / t).image.array
        assert np.array_equal(a, read_rtimage(study / "transit" / t).image.array), t
