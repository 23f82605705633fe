"""``intrepid invivo``: reconstruct the delivered 3D dose of a fraction from its transit EPID images and
compare it with the plan; and ``intrepid simulate invivo`` (registered from :mod:`intrepid.cli._simulate`):
write a simulated STUDY_DIR.

With several STUDY_DIRs (a batch, optionally on Ray with ``--ray [ADDRESS]``) each study is written to
``OUT/<study folder name>/`` — first into a hidden partial folder, renamed when complete, so a study's outputs
are all there or not at all — and ``--json`` prints ``{"out", "studies", "failed", "seconds"}``: ``studies``
has one object per STUDY_DIR, in order, with ``study`` (folder name), ``study_dir``, ``out``, ``ok`` (bool),
``error`` (one line, or null) and ``result`` (the single-study JSON, or null). A failing study is named on
stderr (``intrepid invivo: error: <study>: <reason>``) without stopping the others; the exit status is 1 when
any failed.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intrepid.errors import ParameterError

__all__ = ["add_simulate_invivo", "register", "run", "run_simulate"]


def register(subparsers: Any) -> None:
    """Add ``invivo`` to the ``intrepid`` parser."""
    p = subparsers.add_parser(
        "invivo",
        help="3D in-vivo dose from transit EPID images, compared with the plan (InTrEPID-3D)",
        description=(
            "Reconstruct the delivered 3D dose of one fraction from the transit RT Images in STUDY_DIR "
            "(back-projection through the planning CT + physics baseline or 3D network), compare it with the "
            "planned RTDOSE (3D gamma 3%%/2mm and 2%%/2mm global, 10%% cut-off; DVH differences in %% of the "
            "prescription; isocentre ratio) and give a verdict under the action levels. STUDY_DIR holds a CT "
            "series, one RTPLAN, an RTSTRUCT, the planned RTDOSE (per beam and/or plan) and the RT Images "
            "(matched to beams by Referenced Beam Number, else by gantry angle). Writes "
            "OUT/reconstructed_dose.dcm, OUT/reconstructed_beam_<n>.dcm, OUT/report.html and "
            "OUT/result.json. "
            "Units: Gy, mm, degrees."
        ),
    )
    p.add_argument(
        "study_dirs", type=Path, nargs="+", metavar="STUDY_DIR",
        help="folder of the fraction's DICOM files; several: a batch, each written to OUT/<folder name>/",
    )  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument(
        "--model",
        default=None,
        help="3D network model folder (default: the shipped model when present, else the physics "
        "baseline); 'baseline' or 'fod' force those methods",
    )
    p.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="RTDOSE of the truly delivered dose (simulated cases): adds the 'accuracy' block",
    )
    p.add_argument(
        "--gamma-pass-min",
        type=float,
        default=95.0,
        help="alert below this 3%%/2mm pass rate of the plan sum, %% (default 95)",
    )
    p.add_argument(
        "--mean-gamma-max", type=float, default=0.5, help="alert above this mean gamma (default 0.5)"
    )
    p.add_argument(
        "--ptv-d50-max",
        type=float,
        default=3.0,
        help="alert when |delta D50| of a PTV exceeds this %% of the prescription (default 3)",
    )
    p.add_argument(
        "--iso-ratio-range",
        type=float,
        nargs=2,
        default=(0.95, 1.05),
        metavar=("LOW", "HIGH"),
        help="alert when the isocentre dose ratio leaves this range (default 0.95 1.05)",
    )
    p.add_argument(
        "--device", default="cpu", help="device of the 3D network's inference: cpu (default), cuda or auto"
    )
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="reconstruct the studies as Ray tasks (extra intrepid-rt[ray]), one per study: without ADDRESS "
        "on a local Ray instance, 'auto' or HOST:PORT on a running cluster (STUDY_DIRs and OUT must be "
        "visible to every node; Ray costs ~5 s to start and ~1 s a task)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON (keys in docs/invivo.md)")
    p.set_defaults(func=run)


def _network(model: str | None, device: str = "cpu") -> tuple[Any, str | None, str]:
    """(network or None, method name or None, description)."""
    if model in ("baseline", "fod"):
        return None, model, model
    from intrepid.invivo._network import default_invivo_model_path, load_invivo_model

    if model is None:
        path = default_invivo_model_path()
        if path is None:
            return None, "baseline", "baseline (no shipped network)"
        return load_invivo_model(path, device=device), "network", f"network {path.name}"
    p = Path(model)
    if not p.exists():
        raise ParameterError(f"--model {model}: no such model folder")
    return load_invivo_model(p, device=device), "network", f"network {p}"


@dataclass(frozen=True)
class _Options:
    """What every study of one ``intrepid invivo`` call shares (picklable: sent once to Ray's store)."""

    model: str | None
    truth: Path | None
    levels: Any
    report: bool
    device: str = "cpu"


def run(args: argparse.Namespace) -> int:
    """Run ``intrepid invivo``."""
    from intrepid.cli._common import write_json
    from intrepid.invivo import ActionLevels

    for study in args.study_dirs:
        if not study.is_dir():
            raise ParameterError(f"STUDY_DIR {study} is not a folder")
    levels = ActionLevels(
        gamma_pass_min_percent=args.gamma_pass_min,
        mean_gamma_max=args.mean_gamma_max,
        ptv_d50_max_diff_percent=args.ptv_d50_max,
        isocenter_ratio_range=(float(args.iso_ratio_range[0]), float(args.iso_ratio_range[1])),
    )
    if args.truth is not None and not args.truth.is_file():
        raise ParameterError(f"--truth {args.truth}: no such file")
    if args.model not in (None, "baseline", "fod") and not Path(args.model).exists():
        raise ParameterError(f"--model {args.model}: no such model folder")
    options = _Options(
        model=args.model, truth=args.truth, levels=levels, report=not args.no_report, device=args.device
    )
    if len(args.study_dirs) > 1:
        return _run_batch(args, options)
    if args.ray is not None:  # one study, one task: the same outputs as a local run
        from intrepid.learn import ray_map

        data = ray_map(_study_task, [(args.study_dirs[0], args.out)], _ray_options(args.ray), shared=options,
                       describe=lambda item: item[0].name, progress=False)[0]  # fmt: skip
    else:
        data = _one_study(args.study_dirs[0], args.out, options)
    if args.json:
        write_json(data)
    else:
        sys.stdout.write(_summary_line(data))
        for reason in data["alert_reasons"]:
            sys.stdout.write(f"  - {reason}\n")
        sys.stdout.write(f"outputs in {args.out}\n")
    return 0


def _summary_line(data: dict[str, Any]) -> str:
    return (
        f"{data['verdict'].upper()}: gamma 3%/2mm {data['gamma_3pct2mm_percent']:.1f} %, 2%/2mm "
        f"{data['gamma_2pct2mm_percent']:.1f} %, isocentre ratio {data['isocenter_ratio']:.3f} "
        f"({data['method']}, {data['compute_seconds']:.1f} s)\n"
    )


def _ray_options(address: str) -> Any:
    from intrepid.learn import RayOptions

    return RayOptions(address=None if address == "local" else address)


@functools.lru_cache(maxsize=4)
def _cached_network(model: str | None, device: str = "cpu") -> tuple[Any, str | None, str]:
    """The network of ``--model``, loaded once per process (a Ray worker reuses it for its next study)."""
    return _network(model, device)


def _one_study(study_dir: Path, out: Path, options: _Options) -> dict[str, Any]:
    """Reconstruct and compare one study, write its outputs in ``out``; its JSON document."""
    import json

    from intrepid.cli._common import to_jsonable
    from intrepid.dicom import atomic_write, read_rtdose
    from intrepid.invivo import check_study, write_outputs

    truth = read_rtdose(options.truth).volume if options.truth is not None else None
    network, method, description = _cached_network(options.model, options.device)
    result = check_study(
        study_dir,
        network=network,
        method=method,
        truth=truth,
        levels=options.levels,
        exclude=(out,),
        model_description=description,
    )
    t0 = time.perf_counter()
    write_outputs(result, out)
    data: dict[str, Any] = result.to_json()
    if options.report:
        from intrepid.report import write_invivo_report

        write_invivo_report(result, out / "report.html")
    data["output_seconds"] = time.perf_counter() - t0
    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n"
    atomic_write(out / "result.json", lambda tmp: tmp.write_text(text))
    return data


def _study_task(item: tuple[Path, Path], options: _Options) -> dict[str, Any]:
    """Body of one Ray task (module level, so that workers import it by name): one single-layout study."""
    return _one_study(item[0], item[1], options)


def _batch_task(item: tuple[Path, Path], options: _Options) -> dict[str, Any]:
    """One study of a batch, written to a partial folder renamed to ``out`` when complete; never raises
    for a bad study: the error's first line is returned instead."""
    import shutil
    import uuid

    from intrepid.errors import IntrepidError

    study_dir, out = item
    entry: dict[str, Any] = {
        "study": study_dir.name, "study_dir": str(study_dir), "out": str(out), "ok": False, "error": None,
        "result": None,
    }  # fmt: skip
    partial = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        data = _one_study(study_dir, partial, options)
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
        entry.update(ok=True, result=data)
    except (IntrepidError, OSError, ValueError) as exc:
        lines = str(exc).strip().splitlines()
        entry["error"] = lines[0] if lines else type(exc).__name__
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return entry


def _run_batch(args: argparse.Namespace, options: _Options) -> int:
    """Every STUDY_DIR into OUT/<name>/, locally or on Ray; a failing study does not stop the others."""
    from intrepid.cli._common import to_jsonable, write_json

    names = [s.name for s in args.study_dirs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ParameterError(
            f"two STUDY_DIRs share the folder name {twice[0]!r}; their outputs would collide"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    items = [(s, args.out / s.name) for s in args.study_dirs]
    t0 = time.perf_counter()
    if args.ray is not None:
        from intrepid.learn import ray_map

        entries = ray_map(
            _batch_task, items, _ray_options(args.ray), shared=options, describe=lambda item: item[0].name,
            progress=False, desc="studies (ray)",
        )  # fmt: skip
    else:
        entries = [_batch_task(item, options) for item in items]
    failed = [e["study"] for e in entries if not e["ok"]]
    doc = {"out": str(args.out), "studies": entries, "failed": failed, "seconds": time.perf_counter() - t0}
    if args.json:
        write_json(to_jsonable(doc))
    else:
        for e in entries:
            if e["ok"]:
                sys.stdout.write(f"{e['study']}: {_summary_line(e['result'])}")
        sys.stdout.write(f"{len(entries) - len(failed)} of {len(entries)} studies in {args.out}\n")
    for e in entries:
        if not e["ok"]:
            sys.stderr.write(f"intrepid invivo: error: {e['study']}: {e['error']}\n")
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------ simulate invivo
def add_simulate_invivo(sub: Any) -> None:
    """Add ``invivo`` to the ``intrepid simulate`` sub-parsers."""
    p = sub.add_parser(
        "invivo",
        help="a simulated 3D in-vivo fraction as a DICOM STUDY_DIR (CT, RTSTRUCT, RTPLAN, RTDOSE, RT Images)",
        description=(
            "Simulate one fraction of a patient-like phantom treated with a plan, with optional delivery "
            "errors, and write a STUDY_DIR: CT/ series, RTSTRUCT.dcm, RTPLAN.dcm (MU calibrated so the PTV "
            "D50 is the prescription), RTDOSE_plan.dcm and RTDOSE_beam_<n>.dcm (planned), delivered_dose.dcm "
            "(dose engine on the delivered geometry), transit/ (EPID RT Images per beam or arc sector), "
            "portal_dose/ (their noise-free portal dose) and case.json, in one Frame of Reference. SPEC "
            "strings: mu:+5 (%%), setup:7,0,0 (mm, patient x,y,z), rotation:0,0,3 (deg), mlc:A:+3 (mm), "
            "leaf:A:20:+10 (leaf pair, mm), gantry:+3, collimator:+3 (deg), anatomy:shrink:8 (mm), "
            "anatomy:cavity:fill|empty, plan:wrong."
        ),
    )
    p.add_argument("--out", required=True, type=Path, help="the STUDY_DIR to write (must be new or empty)")
    p.add_argument("--phantom", default="thorax", help="thorax, pelvis, headneck or tg119 (default thorax)")
    p.add_argument("--plan", default="box4", help="box4, imrt7 or vmat (default box4)")
    p.add_argument(
        "--error",
        action="append",
        default=[],
        metavar="SPEC",
        help="delivery error (repeatable); see the description",
    )
    p.add_argument("--seed", type=int, default=0, help="seed (>= 0): EPID noise and random error draws")
    p.add_argument("--spacing-mm", type=float, default=4.0, help="CT and dose grid spacing, mm (default 4)")
    p.add_argument(
        "--anatomy-seed", type=int, default=None, metavar="N",
        help="another patient of the site (size and organ positions drawn from N >= 0); default: the "
        "site's reference anatomy",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty STUDY_DIR")
    p.add_argument(
        "--count", type=int, default=1,
        help="simulate N fractions (seeds SEED .. SEED+N-1) into OUT/case_<seed>/ (default 1: OUT itself)",
    )  # fmt: skip
    p.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="simulate the fractions as Ray tasks (extra intrepid-rt[ray]), one per fraction: without "
        "ADDRESS on a local Ray instance, 'auto' or HOST:PORT on a running cluster (OUT visible to every "
        "node)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print case.json (with --count > 1: the list)")
    p.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``intrepid simulate invivo``."""
    import json

    from intrepid.cli._common import write_json
    from intrepid.simulate._invivo_cases import make_invivo_case, spec_from_args, write_invivo_case

    if args.seed < 0:
        raise ParameterError(f"--seed must be >= 0, got {args.seed}")
    site = str(args.phantom).lower()
    if site not in ("thorax", "pelvis", "headneck", "tg119"):
        raise ParameterError(f"--phantom must be thorax, pelvis, headneck or tg119, got {args.phantom!r}")
    if args.out.exists() and not args.out.is_dir():
        raise ParameterError(f"--out {args.out} exists and is not a folder")
    if args.out.is_dir() and any(args.out.iterdir()) and not args.overwrite:
        raise ParameterError(f"--out {args.out} is not empty; pass --overwrite to replace it")
    if args.count < 1:
        raise ParameterError(f"--count must be >= 1, got {args.count}")
    if args.anatomy_seed is not None and args.anatomy_seed < 0:
        raise ParameterError(f"--anatomy-seed must be >= 0, got {args.anatomy_seed}")
    spec = spec_from_args(
        site, str(args.plan).lower(), args.error, args.seed, args.spacing_mm, args.anatomy_seed
    )
    t0 = time.perf_counter()
    if args.count > 1 or args.ray is not None:
        return _simulate_many(args, spec, t0)
    case = make_invivo_case(spec)
    write_invivo_case(case, args.out, overwrite=True)
    info = json.loads((args.out / "case.json").read_text())
    if args.json:
        write_json(info)
    else:
        errs = ", ".join(args.error) or "none"
        sys.stdout.write(
            f"{site}/{getattr(spec.plan, 'value', spec.plan)}, errors: {errs}; PTV D50 "
            f"planned {info['ptv_d50_planned_gy']:.3f} Gy, delivered {info['ptv_d50_delivered_gy']:.3f} Gy "
            f"({time.perf_counter() - t0:.1f} s)\nstudy: {args.out}\n"
        )
    return 0


def _simulate_task(item: tuple[Any, Path], shared: None = None) -> dict[str, Any]:
    """Body of one Ray task (module level, so that workers import it by name): simulate and write one case."""
    import json

    from intrepid.simulate._invivo_cases import make_invivo_case, write_invivo_case

    spec, out = item
    write_invivo_case(make_invivo_case(spec), out, overwrite=True)
    info: dict[str, Any] = json.loads((out / "case.json").read_text())
    return info


def _simulate_many(args: argparse.Namespace, spec: Any, t0: float) -> int:
    """``--count N`` fractions (seeds SEED..SEED+N-1) into OUT/case_<seed>/, locally or as Ray tasks; with
    ``--ray`` and N = 1 the single case goes to OUT itself."""
    from dataclasses import replace

    from intrepid.cli._common import write_json

    seeds = range(args.seed, args.seed + args.count)
    if args.count == 1:
        items = [(spec, args.out)]
    else:
        items = [(replace(spec, seed=s), args.out / f"case_{s}") for s in seeds]
    if args.ray is not None:
        from intrepid.learn import ray_map

        infos = ray_map(
            _simulate_task, items, _ray_options(args.ray), describe=lambda item: item[1].name,
            progress=False, desc="fractions (ray)",
        )  # fmt: skip
    else:
        infos = [_simulate_task(item) for item in items]
    seconds = time.perf_counter() - t0
    listed = [{"study": str(item[1]), **info} for item, info in zip(items, infos, strict=True)]
    if args.json:
        write_json(infos[0] if args.count == 1 else listed)
    else:
        names = ", ".join(str(item[1]) for item in items)
        sys.stdout.write(f"{len(items)} fraction(s) in {seconds:.1f} s: {names}\n")
    return 0
