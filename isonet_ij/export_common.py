"""What the export modules share: the paper citation, the Keras model to convert, package
validation, and the check that a volume graph equals ``restore``."""

from __future__ import annotations

import numpy as np

from .artifacts import ArtifactError
from .backends import TensorFlowBackend
from .model import IsoNetModel, load_model
from .volume_graph import OnnxVolumeNet, compare_restorations

__all__ = ["PAPER", "PAPER_DOI", "keras_model", "validate_package", "check_volume_model"]

PAPER = (
    "Weigert, M., Royer, L., Jug, F., Myers, G. (2017). Isotropic reconstruction of 3D "
    "fluorescence microscopy images using convolutional neural networks. MICCAI 2017."
)
PAPER_DOI = "10.1007/978-3-319-66185-8_15"


def keras_model(model, weights: str = "best") -> IsoNetModel:
    """``model`` with its Keras plane network (what export converts), loaded if a path.

    Raises
    ------
    ArtifactError
        ``model`` is an exported artifact (``.onnx`` / package): export its model directory.
    """
    tm = load_model(model, backend="tensorflow", weights=weights)
    if not isinstance(tm.net, TensorFlowBackend) or tm.net.nchw:
        msg = f"{tm.source!r} is an exported artifact; export from its model directory (of `isonet train`)"
        raise ArtifactError(msg)
    return tm


def check_volume_model(data: bytes, reference: IsoNetModel, volume=None, *, result=None) -> dict:
    """The volume graph through onnxruntime equals ``restore(..., normalization="model")``.

    On ``volume`` (default: a small smooth volume in the training intensity range); see
    :func:`isonet_ij.volume_graph.compare_restorations`. ``result``: the graph's output on
    ``volume`` when the caller already ran it. Raises ArtifactError.
    """
    from scipy.ndimage import gaussian_filter

    from .grid import upsample_z
    from .restoration import restore

    cfg = reference.config
    net = OnnxVolumeNet(data, cfg, source="export")
    if volume is None:
        min_z, min_yx = net.min_sizes()
        v = gaussian_filter(np.random.default_rng(0).random((min_z + 2, min_yx + 20, min_yx + 12)), 1.5)
        lo, hi = float(cfg.normalization["low"]), float(cfg.normalization["high"])
        volume = (lo + (hi - lo) * (v - v.min()) / np.ptp(v)).astype(np.float32)
    ref = restore(volume, reference, normalization="model")
    got = net.predict(volume) if result is None else result
    try:
        return compare_restorations(got, ref, upsample_z(volume, cfg.factor))
    except ValueError as exc:
        raise ArtifactError(f"volume model check failed: {exc}") from exc


def validate_package(path) -> None:
    """Validate a bioimage.io package with bioimageio.spec (format only; offline).

    Raises
    ------
    ArtifactError
        With the validation summary when it fails.
    """
    from bioimageio.spec import load_description
    from bioimageio.spec.model import v0_5

    descr = load_description(path, perform_io_checks=True)
    if not isinstance(descr, v0_5.ModelDescr):
        summary = descr.validation_summary.format() if hasattr(descr, "validation_summary") else str(descr)
        msg = f"{str(path)!r} is not a valid bioimage.io model 0.5 package:\n{summary}"
        raise ArtifactError(msg)
