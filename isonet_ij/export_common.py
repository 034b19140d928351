"""What the export modules share: the paper citation, the Keras model to convert, package
validation, and the check that a volume graph equals ``restore``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .artifacts import ArtifactError
from .backends import TensorFlowBackend
from .model import IsoNetModel, load_model
from .volume_graph import OnnxVolumeNet, compare_restorations

__all__ = ["PAPER", "PAPER_DOI", "keras_model", "validate_package", "check_volume_model", "calibration_volume",
           "plane_at_precision"]

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


def check_volume_model(data: bytes, reference: IsoNetModel, volume=None, *, result=None,
                       min_psnr: float | None = None) -> dict:
    """The volume graph through onnxruntime equals ``restore(..., normalization="model")``.

    On ``volume`` (default: a small smooth volume in the training intensity range); see
    :func:`isonet_ij.volume_graph.compare_restorations`. ``result``: the graph's output on
    ``volume`` when the caller already ran it. ``min_psnr`` (an int8 graph): instead of
    equality to 1e-4 of the range, a PSNR (dB, peak = the reference's range) of at least
    this against the fp32 restoration. Raises ArtifactError.
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
        report = compare_restorations(got, ref, upsample_z(volume, cfg.factor),
                                      rtol=1e-4 if min_psnr is None else np.inf)
    except ValueError as exc:
        raise ArtifactError(f"volume model check failed: {exc}") from exc
    if min_psnr is not None:
        mse = float(np.mean((np.asarray(got, np.float64) - ref) ** 2))
        report["psnr_vs_fp32_db"] = psnr = 10 * np.log10(report["output_range"] ** 2 / max(mse, 1e-30))
        if not psnr >= min_psnr:
            raise ArtifactError(f"volume model check failed: {psnr:.1f} dB from the fp32 restoration (< {min_psnr:g})")
    return report


def calibration_volume(config, sample) -> np.ndarray:
    """The int8 export's calibration volume (Z, Y, X) float32: ``sample`` (array or path),
    else the training input when it is still there; never a phantom (ValueError)."""
    from .volume_io import read_volume

    if sample is None:
        src = config.train_input
        if not (src and Path(src).is_file()):
            msg = ("int8 export calibrates on a volume like the ones it will restore: pass --sample VOLUME.tif "
                   f"(the training input {src or '(not recorded)'} is not there)")
            raise ValueError(msg)
        sample = src
    data = read_volume(sample).data if isinstance(sample, (str, Path)) else sample
    vol = np.asarray(data, np.float32)
    if vol.ndim != 3:
        raise ValueError(f"the int8 calibration volume must be 3D (z, y, x), got shape {vol.shape}")
    return vol


def plane_at_precision(plane: bytes, config, precision: str, sample) -> tuple[bytes, float | None]:
    """The plane graph an export embeds at ``precision``, and the PSNR floor of its check.

    ``"fp32"``: ``plane`` itself, None (the export is checked for equality). ``"int8"``:
    :func:`isonet_ij.quantization.int8_plane_graph` calibrated on :func:`calibration_volume`,
    and :data:`isonet_ij.quantization.MIN_PSNR_DB`.
    """
    if precision not in ("fp32", "int8"):
        raise ValueError(f"`precision` of an export must be 'fp32' or 'int8', got {precision!r}")
    if precision == "fp32":
        return plane, None
    from .quantization import MIN_PSNR_DB, int8_plane_graph

    return int8_plane_graph(plane, config, calibration_volume(config, sample))[0], MIN_PSNR_DB


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
