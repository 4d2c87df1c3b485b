"""Speed benchmark of Diffusion Lab against a literal implementation of the report (see run.py)."""
