"""Datasets (synthetic benchmark, folders and CSVs, CAMELYON16 patches, GlaS, the wsolevaluation metadata format),
augmentation and model preprocessing."""

from wsolkit.data.camelyon import CamelyonPatches, PatchProtocol, Slide, extract_patches, split_slides
from wsolkit.data.folder import CSVDataset, FileDataset, ImageFolderDataset, read_image, read_mask
from wsolkit.data.glas import GlaS, glas_fold
from wsolkit.data.masks import BINARY, BINARY_255, MaskConvention, read_dataset_json, write_dataset_json
from wsolkit.data.preprocessing import IMAGENET, INCEPTION, Preprocessing, PreprocessingWarning, preprocessing
from wsolkit.data.synthetic import CLASS_NAMES, SyntheticHistology
from wsolkit.data.transforms import Compose, HEDJitter, RandomCrop, RandomDihedral, default_augmentation
from wsolkit.data.wsolevaluation import WSOLEvalDataset, camelyon_fold, read_metadata

__all__ = [
    "SyntheticHistology",
    "CLASS_NAMES",
    "CamelyonPatches",
    "PatchProtocol",
    "Slide",
    "extract_patches",
    "split_slides",
    "GlaS",
    "glas_fold",
    "WSOLEvalDataset",
    "camelyon_fold",
    "read_metadata",
    "ImageFolderDataset",
    "CSVDataset",
    "FileDataset",
    "read_image",
    "read_mask",
    "MaskConvention",
    "BINARY",
    "BINARY_255",
    "read_dataset_json",
    "write_dataset_json",
    "preprocessing",
    "Preprocessing",
    "PreprocessingWarning",
    "IMAGENET",
    "INCEPTION",
    "Compose",
    "RandomDihedral",
    "RandomCrop",
    "HEDJitter",
    "default_augmentation",
]
