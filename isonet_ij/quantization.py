"""int8 inference: the plane network quantized statically with onnxruntime, cached beside the model.

``restore(..., precision="int8")`` runs the model's plane network as an int8 ONNX graph
(QDQ format, per-channel int8 weights, uint8 activations: the u8s8 kernels that VNNI, AVX2
and AMX speed up). Its activation ranges are calibrated on axial planes of the volume being
restored (:func:`calibration_planes`: a fixed, seeded set of xz and yz planes,
interpolated, normalized and framed exactly as restoration frames them), so the same volume
and model always give the same quantized graph. That graph is cached beside the model
(:func:`cache_dir_for`) under a key of the fp32 graph, the calibration planes and the
onnxruntime version: a second restoration of the volume pays nothing, and a retrained
model (another graph) never reuses a stale one.

Every quantized graph is checked before use (:func:`check_quantized`): its output on the
calibration planes must stay within :data:`MIN_PSNR_DB` of the fp32 network's. A
quantization that saturates (ranges too narrow) or collapses (too coarse) fails there.
``precision="auto"`` quantizes, checks, times both on one batch and keeps the faster; fp32
where the CPU has no int8 dot-product instructions (:func:`cpu_int8_features`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import numpy as np

from . import grid
from .backends import OnnxBackend, TensorFlowBackend
from .model import IsoNetModel, load_model
from .tiling import border_pair, plane_layout

__all__ = [
    "PRECISIONS",
    "MIN_PSNR_DB",
    "AUTO_MIN_VOXELS",
    "calibration_planes",
    "quantize_model",
    "check_quantized",
    "with_precision",
    "cpu_int8_features",
    "cache_dir_for",
    "output_nodes",
    "int8_plane_graph",
]

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8", "auto")
#: Smallest PSNR (dB, normalized units, peak = fp32 output range) of the int8 network's
#: output against the fp32 network's on the calibration planes. 40 dB is an RMS deviation
#: of 1 % of the output range: about 10x below the restoration's own error against the
#: isotropic ground truth on the phantoms (20-30 dB); measured deviations are 50-55 dB.
MIN_PSNR_DB = 40.0
#: Calibration: this many xz and as many yz planes.
N_CALIBRATION = 4
#: ``precision="auto"`` considers int8 from this many output voxels on: below it, quantizing
#: (about 2 s once, plus timing both networks) costs more than int8 can save (the demo model
#: restores about 0.6 M voxels/s in fp32 here, 1.1 M in int8: 16 M voxels save ~12 s).
AUTO_MIN_VOXELS = 16_000_000


def cpu_int8_features() -> list[str]:
    """The int8 dot-product features of this CPU (``avx512_vnni``, ``avx_vnni``, ``amx_int8``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: no claim
        return []
    return sorted({f for f in flags if f in ("avx512_vnni", "avx_vnni", "amx_int8")})


def calibration_planes(volume, factor: float, low: float, high: float, *, border, multiple: int = 4,
                       n: int = N_CALIBRATION, seed: int = 0) -> np.ndarray:
    """Normalized, framed axial planes for calibration: ``n`` xz and ``n`` yz planes.

    Parameters
    ----------
    volume : (Z, Y, X) array_like
        Acquired slices (sliceable: an on-disk volume is read plane by plane).
    factor : float
        Anisotropy factor.
    low, high : float
        Normalization intensities (the restoration's).
    border : int or (int, int)
        The restoration's reflected margin (rows, cols).
    n : int
        Planes per orientation, at seeded positions.
    seed : int
        Positions of the planes.

    Returns
    -------
    list of (H, W) ndarray of float32
        Planes padded as restoration pads them (reflect by the border, then to the frame
        of a multiple of 4): xz planes (H, frame of X), then yz planes (H, frame of Y).
    """
    Z, Y, X = volume.shape
    weights = grid.interpolation_matrix(Z, grid.output_coordinates(Z, factor)).astype(np.float32)
    rng = np.random.default_rng(seed)
    ys, xs = np.sort(rng.choice(Y, min(n, Y), replace=False)), np.sort(rng.choice(X, min(n, X), replace=False))
    raw = [np.asarray(volume[:, y, :]) for y in ys] + [np.asarray(volume[:, :, x]) for x in xs]
    scale = np.float32(1.0 / (high - low))
    planes = [(weights @ r.astype(np.float32) - np.float32(low)) * scale for r in raw]
    plan = {"border": border_pair(border), "halo": 0, "tile": (1 << 30, 1 << 30)}
    br, bc = plan["border"]
    framed = []
    for p in planes:
        (fr, fc), _, _, _ = plane_layout(plan, *p.shape)
        pad = ((br, fr - p.shape[0] - br), (bc, fc - p.shape[1] - bc))
        framed.append(np.ascontiguousarray(np.pad(p, pad, mode="reflect" if min(p.shape) > 1 else "edge")))
    return framed


def _fp32_graph(model: IsoNetModel) -> bytes:
    """The model's plane network as an fp32 ONNX graph."""
    if isinstance(model.net, OnnxBackend):
        return model.net.graph_bytes
    if isinstance(model.net, TensorFlowBackend) and not model.net.nchw:
        from .onnx_graph import plane_onnx_bytes

        return plane_onnx_bytes(model.net.net, model.config)
    return load_model(model.path, backend="onnx").net.graph_bytes  # a package: its onnx weights


def cache_dir_for(model: IsoNetModel) -> Path:
    """Where quantized graphs of ``model`` are kept: beside it, else the user's cache folder."""
    if model.path is not None:
        beside = model.path / "int8_cache" if model.path.is_dir() else model.path.with_name(model.path.name + ".int8_cache")
        try:
            beside.mkdir(exist_ok=True)
            if os.access(beside, os.W_OK):
                return beside
        except OSError:  # a read-only model folder: the user's cache
            pass
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "isonet-ij" / "int8"
    root.mkdir(parents=True, exist_ok=True)
    return root


def output_nodes(graph: bytes) -> list[str]:
    """Names of the nodes kept in fp32: the one producing the output and the Convs feeding it.

    IsoNet's last step adds the network's correction to its input (the residual ``Add``):
    quantized, that sum would pass the input through at 8 bits, an error of up to half a
    step of 1/255 of the range on every pixel. In fp32 the input passes exactly and only
    the correction carries the int8 error; the 1x1 output Conv costs little in fp32.
    """
    import onnx

    g = onnx.load_model_from_string(graph).graph
    outputs = {o.name for o in g.output}
    producer = {out: n for n in g.node for out in n.output}
    keep = [n for n in g.node if outputs & set(n.output)]
    keep += [producer[i] for n in list(keep) if n.op_type == "Add" for i in n.input
             if i in producer and producer[i].op_type == "Conv"]
    return [n.name for n in keep]


def _quantize_bytes(graph: bytes, planes: np.ndarray, workdir: Path, *, fp32_output: bool = True) -> bytes:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Planes(CalibrationDataReader):
        def __init__(self):
            self._it = iter({"input": np.asarray(p, np.float32)[None, None]} for p in planes)

        def get_next(self):
            return next(self._it, None)

    src, dst = workdir / "fp32.onnx", workdir / "int8.onnx"
    src.write_bytes(graph)
    quantize_static(str(src), str(dst), _Planes(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=output_nodes(graph) if fp32_output else [])
    return _with_metadata(dst.read_bytes(), graph)


def _with_metadata(quantized: bytes, original: bytes) -> bytes:
    """The quantized graph carrying the original's metadata (config, factor, ...)."""
    import onnx

    q, o = onnx.load_model_from_string(quantized), onnx.load_model_from_string(original)
    props = {p.key: p.value for p in o.metadata_props}
    props["isonet.precision"] = "int8"
    onnx.helper.set_model_props(q, props)
    return q.SerializeToString()


def _model_digest(model: IsoNetModel) -> bytes:
    """What identifies the network: a model folder's config and weights file, else its graph.

    Keras -> ONNX conversion does not give the same bytes twice, so a model folder is
    identified by its files (retraining or replacing the weights changes the digest).
    """
    from .config import CONFIG_JSON, WEIGHTS_BEST, WEIGHTS_LAST

    if model.path is not None and model.path.is_dir() and model.weights in ("best", "last"):
        weights = model.path / (WEIGHTS_BEST if model.weights == "best" else WEIGHTS_LAST)
        h = hashlib.sha256((model.path / CONFIG_JSON).read_bytes())
        with open(weights, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.digest()
    return hashlib.sha256(_fp32_graph(model)).digest()


def _planes_digest(planes) -> bytes:
    h = hashlib.sha256()
    for p in planes:
        p = np.ascontiguousarray(p, np.float32)
        h.update(str(p.shape).encode() + p.tobytes())
    return h.digest()


#: what the quantized graph is made by (part of the cache key): "q2" keeps the output Conv
#: and the residual Add in fp32 (:func:`output_nodes`); "q1" quantized every node
RECIPE = "q2"


def quantize_model(model: IsoNetModel, planes, *, threads: int | None = None, fp32_output: bool = True) -> IsoNetModel:
    """``model`` with its plane network quantized to int8, calibrated on ``planes`` (cached).

    Parameters
    ----------
    model : IsoNetModel
    planes : list of (H, W) ndarray of float32
        Normalized, framed calibration planes (:func:`calibration_planes`).
    fp32_output : bool
        Keep the output Conv and the residual Add in fp32 (:func:`output_nodes`; default);
        False quantizes every node (the first recipe, kept for comparison).

    Returns
    -------
    IsoNetModel
        Same config and PSF; ``net`` an onnxruntime backend with ``precision == "int8"``,
        ``path`` the cached graph.
    """
    import tempfile

    import onnxruntime as ort

    recipe = (RECIPE if fp32_output else "q1").encode()
    key = hashlib.sha256(_model_digest(model) + _planes_digest(planes) + ort.__version__.encode() + recipe)
    path = cache_dir_for(model) / f"int8_{key.hexdigest()[:24]}.onnx"
    if not path.is_file():
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="isonet_int8_") as td:
            data = _quantize_bytes(_fp32_graph(model), planes, Path(td), fp32_output=fp32_output)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a concurrent run reads a whole graph or none
        log.info("quantized the plane network to int8 in %.1f s (cached as %s)", time.perf_counter() - t0, path)
    net = OnnxBackend(path.read_bytes(), model.config, psf=model.psf, source=str(path), threads=threads)
    net.precision, net.weights = "int8", model.weights
    return IsoNetModel(model.config, net, model.psf, path, model.weights)


def int8_plane_graph(graph: bytes, config, volume) -> tuple[bytes, float]:
    """The fp32 plane graph quantized for export: ``(int8 graph, PSNR vs fp32 in dB)``.

    Calibrated on :func:`calibration_planes` of ``volume`` normalized with the model's
    stored training percentiles (what the volume model normalizes with), the recipe of
    :func:`quantize_model`, no cache; checked as :func:`check_quantized` (raises below
    :data:`MIN_PSNR_DB`).
    """
    import tempfile

    from .tiling import default_border

    lo, hi = float(config.normalization["low"]), float(config.normalization["high"])
    planes = calibration_planes(volume, config.factor, lo, hi, border=default_border(config.factor))
    with tempfile.TemporaryDirectory(prefix="isonet_int8_") as td:
        quantized = _quantize_bytes(graph, planes, Path(td))
    fp32 = IsoNetModel(config, OnnxBackend(graph, config, source="fp32 plane graph"))
    int8 = IsoNetModel(config, OnnxBackend(quantized, config, source="int8 plane graph"))
    return quantized, check_quantized(fp32, int8, planes)


def check_quantized(reference: IsoNetModel, quantized: IsoNetModel, planes) -> float:
    """PSNR (dB) of the int8 network's output against the fp32 one's on ``planes`` (all together).

    Raises
    ------
    ValueError
        Below :data:`MIN_PSNR_DB`: the quantization saturated or collapsed.
    """
    pairs = [(reference.net.predict(p), quantized.net.predict(p)) for p in planes]
    ref = np.concatenate([r.ravel() for r, _ in pairs])
    got = np.concatenate([g.ravel() for _, g in pairs])
    peak = float(ref.max() - ref.min())
    mse = float(np.mean((ref - got) ** 2))
    psnr = 10 * np.log10(peak**2 / max(mse, 1e-30)) if peak > 0 else -np.inf
    if not psnr >= MIN_PSNR_DB:
        msg = (f"the int8 network deviates from the fp32 one by {psnr:.1f} dB PSNR (< {MIN_PSNR_DB:g}) on "
               "this volume's planes; restore with --precision fp32")
        raise ValueError(msg)
    return float(psnr)


def _seconds_per_batch(model: IsoNetModel, x: np.ndarray, repeats: int = 3) -> float:
    model.net.predict(x)  # warm-up (compile / allocate)
    t0 = time.perf_counter()
    for _ in range(repeats):
        model.net.predict(x)
    return (time.perf_counter() - t0) / repeats


def with_precision(model: IsoNetModel, precision: str, volume, factor, low, high, *, border,
                   threads: int | None = None) -> tuple[IsoNetModel, dict]:
    """The model to restore ``volume`` with at ``precision``, and what was decided (for provenance).

    ``"fp32"``: ``model`` itself. ``"int8"``: quantized and checked (a failed check raises).
    ``"auto"`` (the default of every interface): int8 where the CPU has int8 dot products,
    the output has at least :data:`AUTO_MIN_VOXELS` voxels, the check holds and a timed
    batch runs faster than the fp32 network; else fp32 (the reason is in the returned dict).
    """
    if precision not in PRECISIONS:
        msg = f"`precision` must be one of {PRECISIONS}, got {precision!r}"
        raise ValueError(msg)
    if model.net is None:  # a volume graph (issue 27) runs as exported
        if precision == "int8" and model.volume_net.precision != "int8":
            msg = ("this is an exported fp32 volume model: its precision was fixed at export (`isonet export "
                   "--precision int8`); restore with --precision fp32 or auto")
            raise ValueError(msg)
        return model, {"precision": model.volume_net.precision, "reason": "volume model (precision fixed at export)"}
    if precision == "fp32" or model.net.precision == "int8":
        return model, {"precision": model.net.precision}
    features = cpu_int8_features()
    if precision == "auto" and not features:
        return model, {"precision": "fp32", "reason": "no int8 dot-product instructions on this CPU"}
    n_out = grid.n_output_slices(volume.shape[0], factor) * volume.shape[1] * volume.shape[2]
    if precision == "auto" and n_out < AUTO_MIN_VOXELS:
        return model, {"precision": "fp32", "reason": f"{n_out:,} output voxels: too few for quantizing to pay "
                                                       f"(int8 from {AUTO_MIN_VOXELS:,})"}
    planes = calibration_planes(volume, factor, low, high, border=border)
    quantized = quantize_model(model, planes, threads=threads)
    try:
        psnr = check_quantized(model, quantized, planes)
    except ValueError as exc:
        if precision == "int8":
            raise
        return model, {"precision": "fp32", "reason": str(exc)}
    info = {"precision": "int8", "psnr_vs_fp32_db": round(psnr, 2), "cpu_features": features,
            "cache": str(quantized.path)}
    if precision == "int8":
        return quantized, info
    x = np.stack([p for p in planes if p.shape == planes[0].shape])  # one batch of the xz frames
    t32, t8 = _seconds_per_batch(model, x), _seconds_per_batch(quantized, x)
    if t8 >= t32:
        return model, {"precision": "fp32", "reason": f"int8 not faster here ({t8:.3f} s vs {t32:.3f} s a batch)"}
    return quantized, {**info, "speedup": round(t32 / t8, 2)}
