"""Evaluation: top-k metrics, per-class accuracy, confusion matrix, test-time augmentation."""
