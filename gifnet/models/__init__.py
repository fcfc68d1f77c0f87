"""GIFNet model, its checkpoint format and the importer of the released weights."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .gifnet import GIFNet, GIFNetConfig

__all__ = ["GIFNet", "GIFNetConfig", "CheckpointError", "load_checkpoint", "save_checkpoint"]
