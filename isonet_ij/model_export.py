"""Export a trained IsoNet: ONNX, TensorFlow SavedModel, bioimage.io model package (spec 0.5).

Every exported graph maps normalized planes ``(N, 1, H, W)`` float32 to restored planes
of the same shape (bioimage.io axes ``batch, channel, y, x``; rows are the axial
direction, already interpolated to the isotropic grid). H and W are dynamic; IsoNet-2
needs multiples of 4. The graph is the network of the model directory, unchanged.

* ONNX (tf2onnx, opset >= 17): input ``input``, output ``output``; ``metadata_props``
  hold the config (``isonet.config``: JSON, incl. the normalization percentiles and
  values), the anisotropy factor, the architecture and the size multiple.
* SavedModel: a ``serve`` endpoint returning ``{"output": tensor}`` (the form
  bioimageio.core's TensorFlow adapter expects).
* bioimage.io package (zip): ``onnx``, ``tensorflow_saved_model_bundle`` and
  ``keras_v3`` weights; preprocessing ``scale_linear`` with the training volume's
  percentile values (``x' = (x - low) / (high - low)``) and postprocessing its inverse,
  so a plane in raw intensities gives a restored plane in raw intensities, as
  ``isonet restore --normalization model`` does for that plane (away from the plane
  borders: restoration reflect-pads tiles, the bare graph zero-pads). Test tensors, a
  cover (an xz slice before and after restoration), a README and ``isonet_config.json``.

:func:`check_artifact` proves an artifact: it compares a backend with the TensorFlow
reference on real planes (max abs difference in normalized units) and refuses a network
whose output is (nearly) constant or unrelated to its input.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import __version__
from .artifacts import PACKAGE_CONFIG, ArtifactError
from .backends import Backend, OnnxBackend
from .model import IsoNetModel
from .onnx_graph import DEFAULT_OPSET, nchw_model, plane_onnx_bytes
from .export_common import PAPER, PAPER_DOI, check_volume_model, keras_model, plane_at_precision, validate_package
from .volume_graph import volume_onnx_bytes

__all__ = [
    "FORMATS",
    "DEFAULT_OPSET",
    "onnx_bytes",
    "export_onnx",
    "export_savedmodel",
    "export_bioimageio",
    "export",
    "check_artifact",
    "check_volume_model",
    "sample_planes",
    "validate_package",
]

log = logging.getLogger(__name__)

FORMATS = ("onnx", "bioimageio", "savedmodel")


def onnx_bytes(model, *, opset: int = DEFAULT_OPSET) -> bytes:
    """The serialized ONNX plane graph of a model (model directory or :class:`IsoNetModel`)."""
    tm = keras_model(model)
    return plane_onnx_bytes(tm.net.net, tm.config, opset=opset)


def _prepare_out(path, force: bool, *, is_dir=False) -> Path:
    path = Path(path)
    if path.exists():
        if not force:
            msg = f"{str(path)!r} exists; pass --force to replace it"
            raise FileExistsError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _atomic_write_bytes(path: Path, data: bytes, force: bool) -> Path:
    from .volume_io import atomic_path

    with atomic_path(path, force=force) as tmp:
        Path(tmp).write_bytes(data)
    return path


def export_onnx(model, path, *, opset: int = DEFAULT_OPSET, force: bool = False, check: bool = True,
                plane: bool = False, precision: str = "fp32", sample=None) -> Path:
    """Write the model as ONNX (see module docstring); verified with onnxruntime.

    Parameters
    ----------
    model : IsoNetModel or str or Path
        Model or model directory.
    path : str or Path
        ``.onnx`` file to write (atomically).
    check : bool
        Run :func:`check_artifact` (onnxruntime vs TensorFlow) before writing, and for the
        volume model :func:`check_volume_model` (the graph vs ``restore``).
    plane : bool
        Write the plane network (normalized planes in and out) instead of the volume model
        (:mod:`isonet_ij.volume_graph`: the raw stack in, the isotropic stack out).
    precision : {"fp32", "int8"}
        ``"int8"``: the plane network quantized (:func:`isonet_ij.quantization.int8_plane_graph`),
        calibrated on ``sample`` (array or path; default the training input when it is
        still there) and checked against fp32 (>= 40 dB on the calibration planes and on
        the volume model's output).
    sample : array_like or str or Path, optional
        The calibration volume of ``precision="int8"``.
    """
    tm = keras_model(model)
    path = _prepare_out(path, force)
    data = onnx_bytes(tm, opset=opset)
    if check:
        check_artifact(OnnxBackend(data, tm.config, source=str(path)), tm)
    data, min_psnr = plane_at_precision(data, tm.config, precision, sample)
    if not plane:
        data = volume_onnx_bytes(None, tm.config, plane_bytes=data)
        if check:
            check_volume_model(data, tm, min_psnr=min_psnr)
    return _atomic_write_bytes(path, data, force)


def _replace_dir(tmp_dir: Path, path: Path, force: bool) -> Path:
    if path.exists():
        if not force:
            msg = f"{str(path)!r} exists; pass --force to replace it"
            raise FileExistsError(msg)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    os.replace(tmp_dir, path)
    return path


def _savedmodel_to(tm: IsoNetModel, folder: Path) -> None:
    """SavedModel with a ``serve`` signature/function returning ``{"output": y}`` (NCHW).

    A plain ``tf.Module`` holding the network's variables once (Keras' ExportArchive
    stored every variable twice: a package twice as large).
    """
    import tensorflow as tf

    net = tm.net.net
    module = tf.Module()
    module.variables_ = [getattr(w, "value", w) for w in net.weights]

    @tf.function(input_signature=[tf.TensorSpec((None, 1, None, None), tf.float32, name="input")])
    def serve(x):
        y = net(tf.transpose(x, [0, 2, 3, 1]), training=False)
        return {"output": tf.transpose(y, [0, 3, 1, 2])}

    module.serve = serve
    tf.saved_model.save(module, str(folder), signatures={"serve": serve})


def export_savedmodel(model, path, *, force: bool = False) -> Path:
    """Write a TensorFlow SavedModel folder with a ``serve`` endpoint (``{"output": y}``)."""
    tm = keras_model(model)
    path = _prepare_out(path, force)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp_savedmodel_", dir=path.parent))
    try:
        _savedmodel_to(tm, tmp / "m")
        os.replace(tmp / "m", tmp / "final")
        _replace_dir(tmp / "final", path, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


# --------------------------------------------------------------------------- checks


def sample_planes(volume, factor, lo, hi, *, n: int = 3, size=None, seed: int = 0):
    """Normalized xz planes of ``volume`` interpolated to the isotropic grid (as restore does).

    Returns an ``(n, H, W)`` float32 array cropped to multiples of 4 (or to ``size``).
    """
    from . import grid

    vol = np.asarray(volume, np.float32)
    Z, Y, X = vol.shape
    W = grid.interpolation_matrix(Z, grid.output_coordinates(Z, factor)).astype(np.float32)
    ys = np.linspace(Y * 0.25, Y * 0.75, n).astype(int)
    planes = np.tensordot(W, vol[:, ys, :], axes=(1, 0)).transpose(1, 0, 2)
    planes = (planes - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    h, w = planes.shape[1:]
    if size is not None:
        h, w = min(h, size[0]), min(w, size[1])
    h, w = h - h % 4, w - w % 4
    r0, c0 = (planes.shape[1] - h) // 2, (planes.shape[2] - w) // 2
    return np.ascontiguousarray(planes[:, r0 : r0 + h, c0 : c0 + w])


def check_artifact(backend: Backend, reference, planes=None, *, atol: float = 1e-4,
                   min_std_ratio: float = 0.05, min_corr: float = 0.3) -> dict:
    """Prove an artifact: same planes as the TensorFlow reference, and a non-trivial network.

    Parameters
    ----------
    backend : Backend
        The artifact under test (e.g. an :class:`~isonet_ij.backends.OnnxBackend`).
    reference : IsoNetModel or Backend
        The TensorFlow model it was exported from.
    planes : (N, H, W) ndarray, optional
        Normalized planes; default smooth random planes of three sizes (one non-square).
    atol : float
        Largest allowed max abs difference (normalized units).
    min_std_ratio, min_corr : float
        The output's standard deviation must be at least ``min_std_ratio`` times the
        input's, and its correlation with the input at least ``min_corr``: a network that
        learned nothing (constant output) fails.

    Returns
    -------
    dict
        ``max_abs_diff``, ``std_ratio``, ``corr`` per plane size.

    Raises
    ------
    ArtifactError
        Parity or sanity check failed.
    """
    ref = reference.net if isinstance(reference, IsoNetModel) else reference
    if planes is None:
        planes = _default_planes(backend.size_multiple)
    groups = planes if isinstance(planes, (list, tuple)) else [planes]
    report = []
    for p in groups:
        p = np.asarray(p, np.float32)
        a = backend.predict(p)
        b = ref.predict(p)
        diff = float(np.max(np.abs(a - b)))
        std_in = float(np.std(p))
        std_out = float(np.min([np.std(x) for x in a]))
        corr = float(np.min([np.corrcoef(x.ravel(), y.ravel())[0, 1] if np.std(x) > 0 else 0.0
                             for x, y in zip(a, p)]))
        report.append({"shape": list(p.shape), "max_abs_diff": diff, "std_ratio": std_out / max(std_in, 1e-12),
                       "corr": corr})
        if not diff <= atol:
            msg = f"{backend.name} output differs from TensorFlow by {diff:.3g} (> {atol:g}) on planes {p.shape}"
            raise ArtifactError(msg)
        if not std_out >= min_std_ratio * std_in or not corr >= min_corr:
            msg = (
                f"the network output is (nearly) constant or unrelated to its input on planes {p.shape} "
                f"(std ratio {std_out / max(std_in, 1e-12):.3g} < {min_std_ratio} or correlation {corr:.3g} "
                f"< {min_corr}): the model learned nothing; retrain before exporting"
            )
            raise ArtifactError(msg)
    return {"backend": backend.name, "checks": report, "max_abs_diff": max(r["max_abs_diff"] for r in report)}


def _default_planes(m: int):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    out = []
    for shape in ((2, 64, 64), (1, 48, 96), (1, 100, 36)):
        h, w = shape[1] - shape[1] % m, shape[2] - shape[2] % m
        v = gaussian_filter(rng.random((shape[0], h, w)), (0, 2, 2))
        out.append(((v - v.min()) / np.ptp(v)).astype(np.float32))
    return out


# --------------------------------------------------------------------------- bioimage.io


def _sample_volume(tm: IsoNetModel, sample):
    """A volume for the test tensors and cover: ``sample``, the training input, or a phantom."""
    if sample is not None:
        if isinstance(sample, (str, Path)):
            from .volume_io import read_volume

            return np.asarray(read_volume(sample).data, np.float32), str(sample)
        return np.asarray(sample, np.float32), "given array"
    src = tm.config.train_input
    if src and Path(src).is_file():
        from .volume_io import read_volume

        try:
            vol = read_volume(src)
            if vol.data.ndim == 3:
                return np.asarray(vol.data, np.float32), src
        except (OSError, ValueError):
            pass
    from .phantoms import synthesize

    f = max(2, int(round(tm.config.factor)))
    syn = synthesize("nuclei", size=64, psf=tm.config.psf or "gaussian:2,8", factor=f, seed=0)
    return np.asarray(syn["input"], np.float32), f"nuclei phantom 64^3 (factor {f}, seed 0)"


def _cover(path: Path, before: np.ndarray, after: np.ndarray, factor: float) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lo, hi = np.percentile(before, [1, 99.8])
    fig = Figure(figsize=(8, 4), dpi=80)
    FigureCanvasAgg(fig)
    for i, (img, title) in enumerate(((before, f"input xz (bicubic x{factor:g} in z)"), (after, "IsoNet restored xz"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.imshow(img, cmap="magma", vmin=lo, vmax=hi, interpolation="nearest", aspect="equal")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path)


def _readme(tm: IsoNetModel, sample_desc: str, check: dict) -> str:
    cfg = tm.config
    n = cfg.normalization
    return f"""# IsoNet ({cfg.arch}) — isotropic restoration, exported by isonet-ij {__version__}

## What it restores
Anisotropic 3D fluorescence volumes whose z spacing is **{cfg.factor:g}x** the xy spacing
(anisotropy factor {cfg.factor:g}). The model works on **axial planes** (xz or yz): rows are z,
already interpolated (bicubic) to the isotropic grid; it removes the axial blur the
network was trained for. Full volumes: `isonet restore VOLUME.tif --model THIS.zip -o OUT.tif`
(interpolation, tiling, both plane orientations and their fusion).

## PSF and training
- PSF: `{cfg.psf or 'none'}` (mode `{cfg.mode}`: {dict(full='rotated PSF', split='h_split kernel', none='no PSF, SRCNN-like').get(cfg.mode, cfg.mode)})
- Architecture: {cfg.arch}; patch {cfg.patch_size}, batch {cfg.batch_size}, learning rate {cfg.learning_rate:g},
  loss {cfg.loss}, dropout {cfg.dropout:g}, seed {cfg.seed}; self-supervised on one volume
  (lateral slices blurred and subsampled as the axial direction, eq. 2 of the paper).
- Training input: `{cfg.train_input}`
- Full training config: `{PACKAGE_CONFIG}` (isonet-ij `Config`).

## Inputs, outputs, normalization
Tensor `input` / `output`: float32 `(batch, channel=1, y, x)`, y and x multiples of
{4 if cfg.arch == 'isonet2' else 1} (minimum 16). Preprocessing `scale_linear`
`x' = (x - {n.get('low')}) / ({n.get('high')} - {n.get('low')})` (the training volume's
{n.get('p_low')} / {n.get('p_high')} percentiles); postprocessing the inverse. This reproduces
`isonet restore --normalization model` on a plane, except within ~36 px of the plane
borders (restore reflect-pads its tiles, the bare network zero-pads). A per-sample
`scale_range` is not used because it cannot be inverted.

## Checks at export
onnxruntime vs TensorFlow on {sample_desc}: max abs difference {check.get('max_abs_diff', float('nan')):.2e}
(normalized units).

## Cite
{PAPER} doi:{PAPER_DOI}
"""


def export_bioimageio(model, path, *, sample=None, force: bool = False, name: str | None = None,
                      opset: int = DEFAULT_OPSET, validate: bool = True) -> Path:
    """Write a bioimage.io model package (spec 0.5, zip); see the module docstring.

    Parameters
    ----------
    model : IsoNetModel or str or Path
    path : str or Path
        ``.zip`` to write.
    sample : (Z, Y, X) ndarray or path, optional
        Volume for the test tensors and the cover; default the training input when it
        exists, else a 64^3 nuclei phantom.
    validate : bool
        Validate the description with bioimageio.spec before writing (offline).
    """
    from bioimageio.spec import save_bioimageio_package

    from .nets import size_multiple

    tm = keras_model(model)
    cfg = tm.config
    path = _prepare_out(path, force)
    lo, hi = _package_normalization(cfg)
    step = size_multiple(cfg.arch)
    vol, sample_desc = _sample_volume(tm, sample)
    planes = sample_planes(vol, cfg.factor, lo, hi, n=3, size=(96, 128))
    data = onnx_bytes(tm, opset=opset)
    check = check_artifact(OnnxBackend(data, cfg, source="export"), tm,
                           planes=[planes, planes[:, :, : planes.shape[2] // 2 // step * step]])
    with tempfile.TemporaryDirectory(prefix="isonet_bioimageio_") as td:
        td = Path(td)
        attachments = _write_package_files(tm, td, data, planes, vol, (lo, hi), sample_desc, check)
        descr = _model_descr(tm, td, attachments, (lo, hi), check, name=name, opset=opset, step=step)
        tmp_zip = td / "package.zip"
        save_bioimageio_package(descr, output_path=tmp_zip, compression_level=9)
        if validate:
            validate_package(tmp_zip)
        if path.exists() and force:
            path.unlink()
        shutil.move(str(tmp_zip), str(path))
    return path


def _package_normalization(cfg) -> tuple[float, float]:
    """The training volume's (low, high): the package's fixed pre/postprocessing."""
    lo, hi = cfg.normalization.get("low"), cfg.normalization.get("high")
    if lo is None or hi is None or not float(hi) > float(lo):
        msg = (
            f"the model stores no usable normalization values (low={lo!r}, high={hi!r}); "
            "a bioimage.io package needs the training percentiles: retrain with `isonet train`"
        )
        raise ArtifactError(msg)
    return float(lo), float(hi)


def _write_package_files(tm: IsoNetModel, td: Path, data: bytes, planes, vol, low_high, sample_desc,
                         check) -> list:
    """Weights in three formats, test tensors, cover, README, config (and PSF) into ``td``.

    Returns the attachments (``FileDescr``) of the package.
    """
    from bioimageio.spec.model import v0_5 as bio

    from .restoration import axial_weights, restore

    lo, hi = low_high
    cfg = tm.config
    (td / "model.onnx").write_bytes(data)
    _savedmodel_to(tm, td / "tf_saved_model")
    shutil.make_archive(str(td / "tf_saved_model"), "zip", td / "tf_saved_model")
    nchw_model(tm.net.net).save(td / "model.keras")
    (td / PACKAGE_CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2))
    # test tensors in raw intensity units: one plane, as the package's pre/post chain sees it
    x_norm = planes[:1, None]
    y_norm = tm.net.predict_nchw(x_norm)
    np.save(td / "test_input.npy", (x_norm * np.float32(hi - lo) + np.float32(lo)).astype(np.float32))
    np.save(td / "test_output.npy", (y_norm * np.float32(hi - lo) + np.float32(lo)).astype(np.float32))
    # cover: one xz slice of the sample, bicubic vs restored (full restore pipeline)
    restored = restore(vol, tm, normalization=(lo, hi))
    yc = vol.shape[1] // 2
    before = axial_weights(vol.shape[0], cfg.factor) @ vol[:, yc, :]
    _cover(td / "cover.png", before, restored[:, yc, :], cfg.factor)
    (td / "README.md").write_text(_readme(tm, sample_desc, check))
    attachments = [bio.FileDescr(source=td / PACKAGE_CONFIG)]
    if tm.psf is not None:
        from .volume_io import write_volume

        write_volume(td / "psf.tif", np.asarray(tm.psf, np.float32), force=True)
        attachments.append(bio.FileDescr(source=td / "psf.tif"))
    return attachments


def _package_axes(step: int, *, output: bool) -> list:
    """bioimage.io axes of a plane: batch, channel, y (axial), x; the output's tied to the input's."""
    from bioimageio.spec.model import v0_5 as bio

    if output:
        return [
            bio.BatchAxis(),
            bio.ChannelAxis(channel_names=[bio.Identifier("restored")]),
            bio.SpaceOutputAxis(id=bio.AxisId("y"), size=bio.SizeReference(tensor_id=bio.TensorId("input"), axis_id=bio.AxisId("y"))),
            bio.SpaceOutputAxis(id=bio.AxisId("x"), size=bio.SizeReference(tensor_id=bio.TensorId("input"), axis_id=bio.AxisId("x"))),
        ]
    return [
        bio.BatchAxis(),
        bio.ChannelAxis(channel_names=[bio.Identifier("raw")]),
        bio.SpaceInputAxis(id=bio.AxisId("y"), size=bio.ParameterizedSize(min=16, step=step),
                           description="axial direction (z interpolated to the isotropic grid)"),
        bio.SpaceInputAxis(id=bio.AxisId("x"), size=bio.ParameterizedSize(min=16, step=step),
                           description="lateral direction"),
    ]


def _package_weights(td: Path, opset: int):
    import tensorflow as tf
    from bioimageio.spec.model import v0_5 as bio

    from .nets import keras_module

    tf_version = bio.Version(tf.__version__)
    return bio.WeightsDescr(
        onnx=bio.OnnxWeightsDescr(source=td / "model.onnx", opset_version=int(opset)),
        tensorflow_saved_model_bundle=bio.TensorflowSavedModelBundleWeightsDescr(
            source=td / "tf_saved_model.zip", tensorflow_version=tf_version),
        keras_v3=bio.KerasV3WeightsDescr(
            source=td / "model.keras", keras_version=bio.Version(keras_module().__version__), backend=("tensorflow", tf_version)),
    )


def _model_descr(tm: IsoNetModel, td: Path, attachments, low_high, check, *, name, opset: int, step: int):
    """The package's bioimage.io ``ModelDescr`` (spec 0.5) over the files in ``td``."""
    from bioimageio.spec.model import v0_5 as bio

    lo, hi = low_high
    cfg = tm.config
    pre = [bio.ScaleLinearDescr(kwargs=bio.ScaleLinearKwargs(gain=1.0 / (hi - lo), offset=-lo / (hi - lo)))]
    post = [bio.ScaleLinearDescr(kwargs=bio.ScaleLinearKwargs(gain=hi - lo, offset=lo))]
    return bio.ModelDescr(
        name=name or f"IsoNet {cfg.arch} {cfg.mode} factor {cfg.factor:g}",
        description=(
            f"IsoNet ({cfg.arch}) restores isotropic resolution of anisotropic 3D fluorescence volumes "
            f"(anisotropy factor {cfg.factor:g}, PSF {cfg.psf or 'none'}) plane by plane; trained "
            "self-supervised with isonet-ij."
        ),
        authors=[bio.Author(name="isonet-ij")],
        cite=[bio.CiteEntry(text=PAPER, doi=bio.Doi(PAPER_DOI))],
        license=bio.LicenseId("BSD-3-Clause"),
        documentation=bio.FileDescr(source=td / "README.md"),
        covers=[bio.FileDescr(source=td / "cover.png")],
        attachments=attachments,
        tags=["isonet", "isotropic-reconstruction", "deconvolution", "fluorescence-light-microscopy", "3d", "onnx", "tensorflow"],
        inputs=[bio.InputTensorDescr(
            id=bio.TensorId("input"), description="axial plane, raw intensities, z interpolated",
            axes=_package_axes(step, output=False), test_tensor=bio.FileDescr(source=td / "test_input.npy"),
            preprocessing=pre,
        )],
        outputs=[bio.OutputTensorDescr(
            id=bio.TensorId("output"), description="restored axial plane, raw intensities",
            axes=_package_axes(step, output=True), test_tensor=bio.FileDescr(source=td / "test_output.npy"),
            postprocessing=post,
        )],
        weights=_package_weights(td, opset),
        config={"isonet": {"factor": cfg.factor, "arch": cfg.arch, "mode": cfg.mode, "psf": cfg.psf,
                           "normalization": cfg.normalization, "export_check": check}},
    )


def export(model_dir, fmt: str, path, *, force: bool = False, sample=None, weights: str = "best", **kw) -> Path:
    """Export a model directory in one of :data:`FORMATS` (what ``isonet export`` runs).

    ``onnx`` and ``bioimageio`` write the volume model unless ``plane=True``; ``bioimageio``
    of the volume model takes ``authors``, ``maintainers``, ``git_repo``, ``version``.
    """
    if fmt not in FORMATS:
        msg = f"`format` must be one of {FORMATS}, got {fmt!r}"
        raise ValueError(msg)
    from .volume_io import check_not_input

    check_not_input(path, [model_dir if isinstance(model_dir, (str, Path)) else None, sample])
    tm = keras_model(model_dir, weights)
    if fmt == "onnx":
        return export_onnx(tm, path, force=force, sample=sample, **kw)
    if fmt == "savedmodel":
        return export_savedmodel(tm, path, force=force)
    if kw.pop("plane", False):
        return export_bioimageio(tm, path, sample=sample, force=force, **kw)
    from .bioimageio_volume import export_bioimageio_volume

    return export_bioimageio_volume(tm, path, sample=sample, force=force, **kw)
