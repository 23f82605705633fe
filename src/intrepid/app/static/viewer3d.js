// The 3D view of a fraction: CT with dose overlays and isodose lines in three planes, drawn by the vendored
// NiiVue (static/vendor/niivue, BSD-2-Clause). Volumes come from /volumes/<fraction>/ (same origin only).
import { Niivue, SLICE_TYPE } from "./vendor/niivue/niivue.min.js";

const canvas = document.getElementById("viewer3d");
const status = document.getElementById("viewer-status");
const base = `/volumes/${canvas.dataset.fraction}/`;

async function main() {
  const view = await (await fetch(base + "view.json", { credentials: "same-origin" })).json();
  const p = view.prescription_gy;
  const nv = new Niivue({
    backColor: [0, 0, 0, 1],
    crosshairWidth: 0.5,
    crosshairColor: [1, 1, 0, 0.6],
    isColorbar: true,
  });
  await nv.attachToCanvas(canvas);
  // order = index: 0 CT, 1 reconstructed, 2 planned, 3 gamma, 4 plan isodoses, 5 reconstruction isodoses
  await nv.loadVolumes([
    { url: base + "ct.nii.gz", colormap: "gray", cal_min: -400, cal_max: 400 },
    { url: base + "reconstructed.nii.gz", colormap: "warm", opacity: 0.45, cal_min: 0.1 * p, cal_max: 1.1 * p },
    { url: base + "planned.nii.gz", colormap: "warm", opacity: 0.0, cal_min: 0.1 * p, cal_max: 1.1 * p },
    { url: base + "gamma.nii.gz", colormap: "red", opacity: 0.0, cal_min: 1.0, cal_max: 2.0 },
    { url: base + "isodose_planned.nii.gz", colormap: "winter", opacity: 1.0, cal_min: 40, cal_max: 110 },
    { url: base + "isodose_reconstructed.nii.gz", colormap: "winter", opacity: 0.0, cal_min: 40, cal_max: 110 },
  ]);
  nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
  const overlays = { reconstructed: 1, planned: 2, gamma: 3 };
  const isodoses = { planned: 4, reconstructed: 5 };
  for (const b of document.querySelectorAll("button[data-overlay]")) {
    b.addEventListener("click", () => {
      for (const [name, i] of Object.entries(overlays)) {
        nv.setOpacity(i, name === b.dataset.overlay ? (name === "gamma" ? 0.8 : 0.45) : 0.0);
      }
    });
  }
  for (const b of document.querySelectorAll("button[data-iso]")) {
    b.addEventListener("click", () => {
      for (const [name, i] of Object.entries(isodoses)) nv.setOpacity(i, name === b.dataset.iso ? 1.0 : 0.0);
    });
  }
  status.textContent = "";
  canvas.dataset.ready = "1";
}

main().catch((err) => {
  status.textContent = `the 3D viewer failed: ${err}`;
  canvas.dataset.ready = "error";
});
