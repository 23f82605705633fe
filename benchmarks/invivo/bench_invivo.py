"""Time InTrEPID-3D on one simulated 7-beam study: FOD per beam, network, gamma + DVH, the whole check.

    python benchmarks/invivo/bench_invivo.py STUDY_DIR

Reports wall-clock and CPU (process) seconds: on a shared machine the CPU time is what a quiet 2-core machine
would need (the work is single-threaded except the numba gamma). No peer: no open implementation of EPID
back-projection in-vivo dosimetry exists (issue 11).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from intrepid.invivo import (
    back_project,
    check_study,
    default_invivo_model_path,
    load_invivo_model,
    load_study,
    portal_images,
    relative_electron_density,
)


def _t(fn):  # type: ignore[no-untyped-def]
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> int:
    study_dir = Path(sys.argv[1])
    st = load_study(study_dir)
    images = portal_images(st)
    red = relative_electron_density(st.ct)
    back_project(images[0], st.ct, red=red)  # compile / load the numba kernels
    rows = []
    for im in images:
        _, w, c = _t(lambda im=im: back_project(im, st.ct, red=red))
        rows.append((w, c))
    out_all = {}
    for name in ("baseline", "network"):
        if name == "network" and default_invivo_model_path() is None:
            continue
        net = load_invivo_model() if name == "network" else None
        check_study(study_dir, network=net)  # warm
        res, w_all, c_all = _t(lambda net=net: check_study(study_dir, network=net))
        out_all[name] = {
            "check_wall_s": w_all,
            "check_cpu_s": c_all,
            "model_s": res.reconstruction.seconds["model"],
        }
    out = {
        "study": study_dir.name,
        "beams": len(images),
        "grid": list(st.ct.shape),
        "fod_per_beam_wall_s": sum(r[0] for r in rows) / len(rows),
        "fod_per_beam_cpu_s": sum(r[1] for r in rows) / len(rows),
        "check": out_all,
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
