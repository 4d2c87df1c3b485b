"""Files: checkpoints (safetensors + JSON), datasets, model cards, images, atomic writes."""
