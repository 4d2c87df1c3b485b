"""Training: the trainer, its objectives, precision (bf16 where native) and distributed data parallel."""
