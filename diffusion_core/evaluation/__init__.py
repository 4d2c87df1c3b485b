"""Evaluation: the MNIST classifier, classifier-FID and other metrics, the FID monitor, analysis."""
