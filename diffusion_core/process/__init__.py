"""The diffusion processes: β schedules and the Gaussian forward process, degradations and cold diffusion."""
