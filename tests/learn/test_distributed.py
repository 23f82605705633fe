"""Runs of the protocol on a Ray cluster (``intrepid.learn._distributed``), with a worker killed mid-run.

The test starts a real local cluster: a head that runs no task and two worker nodes of one CPU each (Ray's
``cluster_utils.Cluster``, about 10 s of start-up on a 2-core machine), runs a small protocol on it, and
removes one worker node while its run is training. Ray retries the lost task on the surviving node, which
continues from the run's last checkpointed epoch; every run must be accounted for and the summary must equal
that of a local run with the same seeds.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from intrepid.learn import (
    PreprocessConfig,
    ProtocolConfig,
    RayOptions,
    UNetConfig,
    load_dataset,
    run_protocol,
)

pytest.importorskip("torch")
ray = pytest.importorskip("ray", reason="Ray is not installed (extra intrepid-rt[ray])")
cluster_utils = pytest.importorskip("ray.cluster_utils")


def _cfg() -> ProtocolConfig:
    return ProtocolConfig(
        filters=(4,),
        learning_rates=(1e-3,),
        batch_sizes=(4,),
        repeats=2,
        folds=2,
        epochs=6,
        seed=4,
        device="cpu",
        unet=UNetConfig(depth=3, initial_filters=4),
        preprocess=PreprocessConfig(working_shape=(16, 16)),
    )


@pytest.fixture(scope="module")
def two_worker_cluster():
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False},
    )
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_ray_map_keeps_order_and_names_failures(two_worker_cluster):
    import math

    from intrepid.errors import IntrepidError
    from intrepid.learn import ray_map

    opts = RayOptions(address="auto")
    assert ray_map(math.factorial, [5, 3, 4, 0], opts, progress=False) == [120, 6, 24, 1]
    assert ray_map(math.pow, [1.0, 2.0], opts, shared=3.0, progress=False) == [1.0, 8.0]
    with pytest.raises(IntrepidError, match=r"study-b: .*math domain error"):
        ray_map(math.sqrt, [4.0, -1.0], opts, describe=lambda x: "study-b" if x < 0 else "study-a",
                progress=False)


def test_simulate_pairs_on_ray_equals_local(two_worker_cluster, tmp_path):
    import pydicom

    from intrepid.simulate import generate_pairs, random_composition, read_manifest

    specs = random_composition(3, 2)
    kw = dict(seed=1, progress=False, detector_pixels=64, phantom_spacing_mm=5.0)
    local = generate_pairs(specs, tmp_path / "local", **kw)
    remote = generate_pairs(specs, tmp_path / "ray", ray=RayOptions(address="auto"), **kw)
    rows_l, rows_r = read_manifest(local), read_manifest(remote)
    assert [r["epid_file"] for r in rows_l] == [r["epid_file"] for r in rows_r]
    for a, b in zip(rows_l, rows_r, strict=True):
        for col in ("epid_file", "portal_dose_file"):
            va = pydicom.dcmread(tmp_path / "local" / a[col]).pixel_array
            vb = pydicom.dcmread(tmp_path / "ray" / b[col]).pixel_array
            assert va.shape == vb.shape and (va == vb).all()


def test_protocol_survives_a_killed_worker(dicom_dataset, tmp_path, two_worker_cluster):
    cluster, workers = two_worker_cluster
    ds = load_dataset(dicom_dataset, split="train")
    out = tmp_path / "ray"
    killed = {}

    def killer() -> None:
        # wait until a run has checkpointed an epoch, then pull the plug on one worker node
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if list((out / "runs").rglob("*.ckpt.safetensors")):
                cluster.remove_node(workers[0], allow_graceful=False)
                killed["at"] = time.monotonic()
                return
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    result = run_protocol(ds, _cfg(), out, progress=False, ray=RayOptions(cpus_per_run=1, max_retries=3))
    t.join(timeout=1)
    assert "at" in killed, "no worker was killed: the runs never checkpointed"
    assert result.runs == 4
    manifests = [json.loads(p.read_text()) for p in sorted((out / "runs").rglob("r*_f*.json"))]
    assert sorted((m["repeat"], m["fold"]) for m in manifests) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert not list((out / "runs").rglob("*.ckpt.safetensors")), "checkpoints are removed when runs end"

    # same seeds, same results as a local run (the retried run resumed or restarted deterministically)
    local = run_protocol(ds, _cfg(), tmp_path / "local", progress=False)
    for a, b in zip(local.summaries, result.summaries, strict=True):
        assert b.gamma_pass_rate_mean_percent == pytest.approx(a.gamma_pass_rate_mean_percent, abs=1e-6)
        assert b.val_loss_mean == pytest.approx(a.val_loss_mean, rel=1e-5)
