"""Commission the 6 MV spectrum's filtration to the reference 10 × 10 cm² depth dose (docs/physics.md §2).

The default 6 MV beam uses the functional form of Ali & Rogers 2012 (Phys Med Biol 57:31,
doi:10.1088/0031-9155/57/1/31). Its end point E_e and the parameters c1 (tungsten) and c3 are those of
conehead's Varian Clinac 6 MV file; with its filtration c2 = 5.147 the beam is too soft (TERMA μ_eff
0.056 cm⁻¹, TPR20,10 0.628 where a 6 MV beam has 0.66–0.68). Like a planning system's beam commissioning
(and the spectral unfolding from depth-dose data the paper proposes its function for), this tool fits the
one filtration parameter c2 (Al-equivalent, c2² in g/cm²) so that the dose engine's 10 × 10 cm² depth dose
at SSD 100 cm matches the reference at 5, 10 and 20 cm (least squares of the relative deviations), with the
spectrum-consistent kernel. The other fields (5 × 5, 20 × 20), the profiles and the heterogeneity checks are
not used by the fit and stay independent validation.

It also prints what the shared beam model would then do to the EPID simulator: the narrow-beam attenuation
of collision kerma through 20 cm of water. Run (about 30 s on 2 cores):
``python3 tools/commission_spectrum.py``.
Result (2026-12-04) and why it was not adopted: docs/dose.md, "Spectrum commissioning".
``--kernel spectrum`` fits with the spectrum-built kernel instead (``DoseSettings(kernel_source="spectrum")``;
result 2026-12-05, c2 = 6.32, not adopted: docs/dose.md, "Spectrum-built kernel").
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "dose" / "data" / "reference_6mv.json"
DEPTHS_MM = (50, 100, 200)


def _pdd(c2: float, field_mm: int = 100, kernel: str = "share") -> tuple[dict[int, float], float]:
    """Central-axis PDD (%) at DEPTHS_MM and the mean energy (MeV) of the beam with filtration ``c2``.

    ``kernel``: "share" (the shipped table rescaled to the spectrum-consistent primary share, the third pass)
    or "spectrum" (the kernel built for the spectrum from monoenergetic EDKnrc kernels, the fourth pass).
    """
    from intrepid.dose import (
        DoseSettings,
        central_axis_depth_dose,
        compute_dose,
        open_field_plan,
        water_phantom,
    )
    from intrepid.dose._kernel import spectrum_primary_share
    from intrepid.physics import BeamModel, LinacHead

    head = replace(LinacHead(), spectrum=BeamModel.six_mv(filtration_c2=c2))
    f = float(field_mm)
    ct = water_phantom((max(f, 100.0) + 150.0, 300.0, max(f, 100.0) + 150.0), 2.5)
    if kernel == "spectrum":
        settings = DoseSettings(kernel_source="spectrum")
    else:
        share = round(spectrum_primary_share(head.spectrum.energies, head.spectrum.weights), 3)
        settings = DoseSettings(kernel_primary_share=share)
    dose = compute_dose(ct, open_field_plan(f, f, mu=100.0), settings=settings, head=head)
    y, axis = central_axis_depth_dose(dose.total)
    pdd = {d: float(100.0 * np.interp(d, y, axis) / axis.max()) for d in DEPTHS_MM}
    return pdd, head.spectrum.mean_energy_mev


def _cost(c2: float, ref: dict[str, float], kernel: str) -> float:
    pdd, _ = _pdd(c2, 100, kernel)
    return math.sqrt(sum((pdd[d] / ref[str(d)] - 1.0) ** 2 for d in DEPTHS_MM) / len(DEPTHS_MM))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--low", type=float, default=6.0, help="lower bound of c2 (default 6)")
    parser.add_argument("--high", type=float, default=11.0, help="upper bound of c2 (default 11)")
    parser.add_argument("--tol", type=float, default=0.02, help="search tolerance in c2 (default 0.02)")
    parser.add_argument(
        "--kernel", choices=("share", "spectrum"), default="share",
        help="share: table with the spectrum-consistent primary share (default); spectrum: spectrum-built",
    )  # fmt: skip
    args = parser.parse_args()
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))["pdd_percent"]
    # Golden-section search of the RMS relative deviation of the 10 x 10 PDD.
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = args.low, args.high
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = _cost(c, ref["100"], args.kernel), _cost(d, ref["100"], args.kernel)
    for _ in itertools.count():
        if b - a < args.tol:
            break
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = _cost(c, ref["100"], args.kernel)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = _cost(d, ref["100"], args.kernel)
    best = round(0.5 * (a + b), 2)
    print(f"commissioned filtration c2 = {best:.2f} (c2^2 = {best**2:.1f} g/cm2 Al-equivalent)")
    print("| field | PDD 5 / 10 / 20 cm | reference | deviation (%) | used by the fit |")
    print("|---|---|---|---|---|")
    for f in (50, 100, 200):
        pdd, mean = _pdd(best, f, args.kernel)
        r = ref[str(f)]
        dev = " / ".join(f"{100 * (pdd[d] / r[str(d)] - 1):+.1f}" for d in DEPTHS_MM)
        got = " / ".join(f"{pdd[d]:.1f}" for d in DEPTHS_MM)
        want = " / ".join(str(r[str(d)]) for d in DEPTHS_MM)
        print(f"| {f // 10} × {f // 10} | {got} | {want} | {dev} | {'yes' if f == 100 else 'no'} |")
    print(f"mean photon energy {mean:.3f} MeV")
    from intrepid.physics import BeamModel, water_mass_attenuation_cm2_g, water_mass_energy_absorption_cm2_g

    for label, c2 in (("conehead", 5.147), ("commissioned", best)):
        b = BeamModel.six_mv(filtration_c2=c2)
        mu, mu_en = water_mass_attenuation_cm2_g(b.energies), water_mass_energy_absorption_cm2_g(b.energies)
        k = b.weights * mu_en
        mu_k = -math.log(float(np.sum(k * np.exp(-20.0 * mu)) / np.sum(k))) / 20.0
        print(f"{label} c2 = {c2:.3f}: kerma attenuation 0-20 cm water {mu_k:.4f} /cm")


if __name__ == "__main__":
    main()
