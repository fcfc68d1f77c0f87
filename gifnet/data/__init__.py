"""Training data: image I/O, MFIF/MEIF synthesis, joint-sample datasets, loaders and previews."""

from ..io import (
    DataError,
    EmptyFolderError,
    ImageReadError,
    PairingError,
    SizeMismatchError,
    is_gray,
    list_images,
    match_pairs,
    read_image,
    to_luma,
    write_image_atomic,
)
from .datasets import (
    MEMBERS,
    JointFusionDataset,
    Scene,
    build_dataloader,
    build_dataset,
    demo_dataset,
    official_dataset,
    pairs_dataset,
    set_epoch,
)
from .preview import make_preview_grid
from .synthesis import ExposureConfig, FocusConfig, synthesize_exposure_pair, synthesize_focus_pair

__all__ = [
    "MEMBERS",
    "JointFusionDataset",
    "Scene",
    "build_dataloader",
    "build_dataset",
    "demo_dataset",
    "official_dataset",
    "pairs_dataset",
    "set_epoch",
    "DataError",
    "EmptyFolderError",
    "ImageReadError",
    "PairingError",
    "SizeMismatchError",
    "is_gray",
    "list_images",
    "match_pairs",
    "read_image",
    "to_luma",
    "write_image_atomic",
    "make_preview_grid",
    "ExposureConfig",
    "FocusConfig",
    "synthesize_exposure_pair",
    "synthesize_focus_pair",
]
