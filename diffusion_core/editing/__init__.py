"""Editing with a noise model, on the process's own forward map: SDEdit and re-noising (sdedit), DDIM
inversion and interpolation (inversion), inpainting (inpainting) and guidance by a classifier or a loss
(guidance)."""
