"""Datasets: the synthetic histology-like benchmark."""

from wsolkit.data.synthetic import CLASS_NAMES, SyntheticHistology

__all__ = ["SyntheticHistology", "CLASS_NAMES"]
