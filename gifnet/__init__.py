"""GIFNet: task-agnostic image fusion (Cheng et al., CVPR 2025), reimplemented."""

__version__ = "0.1.0"


def fuse(*args, **kwargs):
    """Fuse arrays, files or folders with a checkpoint; see :func:`gifnet.inference.fusion.fuse`."""
    from gifnet.inference.fusion import fuse as _fuse

    return _fuse(*args, **kwargs)
