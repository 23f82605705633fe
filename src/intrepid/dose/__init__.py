"""intrepid.dose: the photon dose engine (collapsed-cone convolution/superposition from CT + RTPLAN)."""
