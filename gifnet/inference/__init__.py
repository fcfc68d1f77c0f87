"""Inference: the fusion API (:class:`~gifnet.inference.fusion.Fuser`, :func:`~gifnet.inference.fusion.fuse`), colour
handling (:mod:`~gifnet.inference.color`) and remote sensing (:mod:`~gifnet.inference.remote`). Images are read and
written by :mod:`gifnet.io`; the training-data package is not imported."""
