"""Datasets: the synthetic histology-like benchmark and the CAMELYON16 patch-sampling protocol."""

from wsolkit.data.camelyon import CamelyonPatches, PatchProtocol, Slide, extract_patches, split_slides
from wsolkit.data.synthetic import CLASS_NAMES, SyntheticHistology

__all__ = [
    "SyntheticHistology",
    "CLASS_NAMES",
    "CamelyonPatches",
    "PatchProtocol",
    "Slide",
    "extract_patches",
    "split_slides",
]
