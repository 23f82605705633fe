"""The InTrEPID-2D demo: simulate a fresh test set, predict it with the default model and the baseline,
evaluate, and write a self-contained HTML report.

The test set is the seed's test split (:data:`intrepid.simulate.PAPER_TEST_SET`: the named phantoms, fields
and rotations of its test-set table) simulated with fresh per-image seeds drawn from ``seed``, so its noise
realisations were never seen in training; ``n_images`` picks an even subset over the four phantom families
(default 12: three per family; 23 = the whole test split).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from intrepid.errors import ParameterError
from intrepid.transit._evaluation import DEFAULT_CRITERIA, Criterion, Evaluation, json_ready

__all__ = ["DemoResult", "demo_specs", "run_demo"]

_log = logging.getLogger(__name__)


def demo_specs(n_images: int = 12, seed: int = 1) -> list[Any]:
    """The demo's test images: ``n_images`` of the seed's test split, spread evenly over the families.

    Parameters
    ----------
    n_images : int
        Number of images, 1 to 23 (the size of the seed's test split).
    seed : int
        Seed (>= 0) of the per-image simulation seeds.

    Returns
    -------
    list of PairSpec
        Marked as test images.
    """
    from intrepid.simulate import PAPER_TEST_SET

    total = len(PAPER_TEST_SET)
    if isinstance(n_images, bool) or int(n_images) != n_images or not 1 <= n_images <= total:
        raise ParameterError(f"n_images must be an integer in [1, {total}], got {n_images!r}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ParameterError(f"seed must be an integer >= 0, got {seed!r}")
    by_family: dict[Any, list[Any]] = defaultdict(list)
    for s in PAPER_TEST_SET:
        by_family[s.family].append(s)
    chosen: list[Any] = []
    queues = [list(v) for v in by_family.values()]
    while len(chosen) < n_images:  # round robin over the families, in Table order
        for q in queues:
            if q and len(chosen) < n_images:
                chosen.append(q.pop(0))
    seeds = np.random.default_rng(np.random.SeedSequence([int(seed), 0xDE70])).integers(
        0, 2**31 - 1, len(chosen)
    )
    return [replace(s, seed=int(k)) for s, k in zip(chosen, seeds, strict=True)]


@dataclass(frozen=True, eq=False)
class DemoResult:
    """What :func:`run_demo` did.

    Attributes
    ----------
    out_dir : Path
    report : Path
        The HTML report.
    summary_json : Path
        The evaluation as JSON (the ``intrepid evaluate --json`` layout).
    evaluation : Evaluation
    seconds : dict
        Wall time per step (``simulate``, ``load``, ``predict_evaluate``, ``report``, ``total``), s.
    """

    out_dir: Path
    report: Path
    summary_json: Path
    evaluation: Evaluation
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths, timings and the evaluation summary."""
        d = self.evaluation.to_dict()
        return {
            "out": str(self.out_dir),
            "report": str(self.report),
            "summary_json": str(self.summary_json),
            "n_images": len(self.evaluation.images),
            "seconds": self.seconds,
            "summary": d["summary"],
            "by_family": d["by_family"],
            "settings": d["settings"],
        }


def _announce(progress: bool, text: str) -> None:
    """One progress line on stderr for a step without its own bar (only when ``progress``)."""
    if progress:
        import sys

        from tqdm import tqdm

        tqdm.write(f"{text}...", file=sys.stderr)


def run_demo(
    out_dir: str | os.PathLike[str] = "intrepid-demo",
    *,
    n_images: int = 12,
    seed: int = 1,
    model: str | os.PathLike[str] | None = None,
    criteria: tuple[Criterion, ...] = DEFAULT_CRITERIA,
    overwrite: bool = False,
    workers: int = 2,
    progress: bool = False,
    effects: str = "all",
) -> DemoResult:
    """Simulate, predict (network and baseline), evaluate and report.

    Parameters
    ----------
    out_dir : path-like
        Output folder: ``data/`` (the simulated pairs and ``manifest.csv``), ``report.html``,
        ``evaluation.json``.
    n_images : int
        Test images (1-23, default 12).
    seed : int
        Seed of the simulation (>= 0).
    model : path-like, optional
        Model or run folder (default: the shipped default model). Its ``baseline.json``, when present, is the
        baseline; otherwise the default model's.
    criteria : tuple of Criterion
        Gamma criteria (global, 10 % cut-off).
    overwrite : bool
        Replace a non-empty ``out_dir``.
    workers : int
        Simulation processes.
    progress : bool
        Progress bars.
    effects : str
        Detector and transit effects of the simulated images (:meth:`intrepid.physics.EffectFlags.parse`,
        default ``"all"``: every effect drawn per image within its published range).

    Returns
    -------
    DemoResult

    Raises
    ------
    ParameterError
        A non-empty output folder without ``overwrite``, bad settings.

    Examples
    --------
    >>> result = run_demo("intrepid-demo")  # doctest: +SKIP
    >>> result.report  # doctest: +SKIP
    PosixPath('intrepid-demo/report.html')
    """
    import json

    from intrepid.dicom._common import atomic_write
    from intrepid.learn import load_dataset
    from intrepid.physics._kernel_baseline import load_baseline
    from intrepid.report._html import write_report
    from intrepid.simulate import generate_pairs
    from intrepid.transit._default_model import load_default_baseline
    from intrepid.transit._evaluation import evaluate_pairs
    from intrepid.transit._model import TransitModel
    from intrepid.transit._predict import load_predictor, resolve_model_path
    from intrepid.transit._signal import CALIBRATED_UNITS_PER_MU

    out = Path(out_dir)
    specs = demo_specs(n_images, seed)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ParameterError(f"{out}: output folder exists and is not empty (use --overwrite)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    generate_pairs(specs, out / "data", seed=seed, workers=workers, progress=progress, effects=effects)
    seconds["simulate"] = time.perf_counter() - t0
    t = time.perf_counter()
    _announce(progress, "loading the model and the simulated pairs")
    model_dir = resolve_model_path(model)
    network = load_predictor(model_dir)
    baseline = (
        load_baseline(model_dir / "baseline.json")
        if (model_dir / "baseline.json").is_file()
        else load_default_baseline()
    )
    # models trained per MU convert each image (vendor units -> CU/MU) and multiply by the manifest's MU
    wrapped = TransitModel.from_ensemble(network, "network")
    per_mu = baseline.input_units == CALIBRATED_UNITS_PER_MU and not wrapped.legacy
    predictors = {
        "network": wrapped,
        "baseline": TransitModel(baseline, wrapped.ranges, "baseline") if per_mu else baseline,
    }
    data = list(load_dataset(out / "data"))
    for pair in data:
        pair.epid.metadata.setdefault("mu", pair.record.mu)
    seconds["load"] = time.perf_counter() - t
    t = time.perf_counter()
    settings = {
        "model": str(model_dir),
        "model_members": network.members,
        "model_working_shape": list(network.preprocess.working_shape),
        "baseline": "kernel model: " + ", ".join(f"σ {s:g} mm" for s in baseline.sigmas_mm),
        "test set": f"{len(specs)} test-split images, simulation seed {seed}, effects {effects}",
    }
    evaluation = evaluate_pairs(
        data,
        predictors,
        criteria=criteria,
        keep_maps=True,
        settings=settings,
        progress=progress,
    )
    seconds["predict_evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    _announce(progress, f"writing the report {out / 'report.html'}")
    report = write_report(
        evaluation,
        out / "report.html",
        title="InTrEPID-2D demo: network vs physics baseline",
        settings={"timings_s": {k: round(v, 1) for k, v in seconds.items()}},
    )
    seconds["report"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    doc = evaluation.to_dict()
    doc["seconds"] = seconds
    text = json.dumps(json_ready(doc), indent=1, allow_nan=False)
    summary_json = out / "evaluation.json"
    atomic_write(summary_json, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
    _log.info("demo done in %.0f s: %s", seconds["total"], report)
    return DemoResult(out, report, summary_json, evaluation, seconds)
