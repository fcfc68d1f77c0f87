"""GIFNet: task-agnostic image fusion (Cheng et al., CVPR 2025), reimplemented."""

__version__ = "0.1.0"
