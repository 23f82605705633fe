"""Generate the simulated in-vivo cases used to fit / train and to evaluate InTrEPID-3D.

    python benchmarks/invivo/make_cases.py train OUT_DIR [--seeds 3]
    python benchmarks/invivo/make_cases.py test OUT_DIR [--seeds 2]

Each site and seed is one patient (``--anatomy varied``, default: :func:`intrepid.simulate.vary_anatomy` with
anatomy seeds 1000 + 16 seed + site for training and 5000 + 16 seed + site for testing, so no test patient is
a training patient); ``--anatomy reference`` puts every case on the site's reference anatomy.

``train`` writes one ``<name>.npz`` per case (CT, structures, portal-dose frames with geometry, delivered beam
doses): sites × plans × seeds, each with a random delivery error or none (so the models see delivered
geometries that differ from the plan). ``test`` writes one STUDY_DIR per case (what ``intrepid invivo``
reads) for unseen seeds: error-free fractions and the error types of the goals. Grids are 4 mm.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from intrepid.simulate import InvivoCaseSpec, make_invivo_case, write_invivo_case

SITES = ("thorax", "pelvis", "headneck", "tg119")
PLANS = ("box4", "imrt7", "vmat")
#: Training errors drawn per case (None: error-free).
TRAIN_ERRORS = (
    None,
    None,
    "mu:+4",
    "mu:-6",
    "setup:4,-3,0",
    "mlc:A:+2",
    "mlc:B:-3",
    "gantry:+2",
    "anatomy:shrink:6",
    "rotation:0,0,2",
)
#: Test errors per site × plan (besides the error-free fractions).
TEST_ERRORS = ("mu:+5", "setup:5,0,0", "mlc:A:+3", "mu:-5", "setup:0,0,-5")
#: Further error kinds, for the thorax and pelvis IMRT plans only (CPU budget).
EXTRA_ERRORS = (
    "mu:+2",
    "setup:3,0,0",
    "mlc:B:-1",
    "gantry:+3",
    "collimator:+3",
    "leaf:A:41:+10",
    "anatomy:shrink:8",
    "anatomy:cavity:fill",
    "rotation:0,0,3",
    "plan:wrong",
)


def _npz(case, path: Path) -> None:  # type: ignore[no-untyped-def]
    ph = case.phantom
    g = ph.ct.grid
    frames = case.transit
    # the portal dose block-averaged 2x2 (1.62 mm pixels at the detector) keeps the files small
    pds = []
    for f in frames:
        a = np.asarray(f.portal_dose.array, dtype=np.float32)
        pds.append(a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2).mean(axis=(1, 3)))
    np.savez_compressed(
        path,
        ct=np.asarray(ph.ct.array, dtype=np.float32),
        origin_mm=np.asarray(g.origin_mm),
        spacing_mm=np.asarray(g.spacing_mm),
        isocenter_mm=np.asarray(ph.isocenter_mm),
        ptv=ph.structures["PTV"],
        body=ph.structures["BODY"],
        portal_dose=np.stack(pds),
        pixel_mm=np.asarray([2 * f.epid.grid.spacing_mm[1] for f in frames]),
        gantry_deg=np.asarray([f.gantry_deg for f in frames]),
        sid_mm=np.asarray([f.sid_mm for f in frames]),
        sad_mm=np.asarray([f.sad_mm for f in frames]),
        beam_number=np.asarray([f.beam_number for f in frames]),
        delivered_beam_numbers=np.asarray(sorted(case.delivered_beam_doses)),
        delivered_beam_doses=np.stack(
            [
                np.asarray(case.delivered_beam_doses[n].array, dtype=np.float32)
                for n in sorted(case.delivered_beam_doses)
            ]
        ),
        info=json.dumps(case.describe()),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["train", "test"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--sites", default=",".join(SITES))
    ap.add_argument("--plans", default=None)
    ap.add_argument("--free", type=int, default=3, help="test: error-free fractions per site x plan x seed")
    ap.add_argument(
        "--anatomy",
        choices=("varied", "reference"),
        default="varied",
        help="varied (default): one patient per site and seed (vary_anatomy; training and test patients "
        "never coincide); reference: every case on the site's reference anatomy (the data sets of the "
        "first two 3D networks)",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sites = args.sites.split(",")
    t0 = time.perf_counter()
    n = 0
    if args.what == "train":
        plans = (args.plans or ",".join(PLANS)).split(",")
        for seed in range(args.seeds or 3):
            for si, site in enumerate(sites):
                for pi, plan in enumerate(plans):
                    name = f"{site}_{plan}_s{seed}"
                    path = args.out / f"{name}.npz"
                    if path.exists():
                        continue
                    err = TRAIN_ERRORS[(seed * 7 + si * 3 + pi) % len(TRAIN_ERRORS)]
                    if err and err.startswith("anatomy:cavity") and site == "tg119":
                        err = None
                    anatomy = 1000 + 16 * seed + si if args.anatomy == "varied" else None
                    case = make_invivo_case(
                        InvivoCaseSpec(
                            site, plan, (err,) if err else (), seed=1000 + seed, anatomy_seed=anatomy
                        )
                    )
                    _npz(case, path)
                    n += 1
                    print(f"{name} {err or '-'} {time.perf_counter() - t0:.0f} s", flush=True)
    else:
        plans = (args.plans or "box4,imrt7").split(",")
        todo = []
        for seed in range(args.seeds or 1):
            for site in sites:
                for plan in plans:
                    errors = list(TEST_ERRORS)
                    if plan == "imrt7" and site in ("thorax", "pelvis"):
                        errors += EXTRA_ERRORS
                    err_jobs = [
                        (e.replace(":", "_").replace(",", "_").replace("+", "p").replace("-", "m"), (e,))
                        for e in errors
                    ]
                    # interleave: free0, three goal errors, free1, two goal errors, free2, the rest
                    free = [(f"free{k}", ()) for k in range(args.free)]
                    jobs = free[:1] + err_jobs[:3] + free[1:2] + err_jobs[3:5] + free[2:] + err_jobs[5:]
                    todo += [(rank, seed, site, plan, tag, errs) for rank, (tag, errs) in enumerate(jobs)]
        # round-robin over sites and plans, so that a partial run covers every site
        for _, seed, site, plan, tag, errs in sorted(todo, key=lambda t: t[0]):
            name = f"{site}_{plan}_s{seed}_{tag}"
            if (args.out / name / "case.json").exists():
                continue
            anatomy = 5000 + 16 * seed + sites.index(site) if args.anatomy == "varied" else None
            case = make_invivo_case(
                InvivoCaseSpec(
                    site,
                    plan,
                    errs,
                    seed=5000 + 97 * seed + zlib.crc32(tag.encode()) % 997,
                    anatomy_seed=anatomy,
                )
            )
            write_invivo_case(case, args.out / name, overwrite=True)
            n += 1
            print(f"{name} {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"{n} cases in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
