"""Inference backends: a trained plane network behind one calling convention.

A backend applies a trained IsoNet to a batch of *normalized* planes. Two exist:

* ``"tensorflow"``: the Keras network (a model directory's, or the ``keras_v3`` weights of a
  bioimage.io package, loaded in Keras' safe mode);
* ``"onnx"``: onnxruntime on the ONNX graph of :mod:`isonet_ij.onnx_graph` (a ``.onnx``
  file, the ``onnx`` weights of a package, or a model directory converted in memory).

Restoration calls :meth:`Backend.predict_batch` on fixed-shape ``(B, H, W, 1)`` batches of
tiles and never asks which backend it has; :meth:`Backend.predict` takes whole planes
``(N, H, W)``. :func:`isonet_ij.model.load_model` chooses and builds the backend.

Nothing heavy is imported at module import time.
"""

from __future__ import annotations

import logging

import numpy as np

from .artifacts import ArtifactError
from .config import Config

__all__ = ["BACKENDS", "Backend", "TensorFlowBackend", "OnnxBackend", "default_backend", "onnx_session_options"]

log = logging.getLogger(__name__)

BACKENDS = ("tensorflow", "onnx")


def default_backend() -> str:
    """``"tensorflow"`` when TensorFlow is installed, else ``"onnx"``.

    Both give the same restoration (max abs difference about 3e-7 in normalized units,
    asserted <= 1e-4 by the tests); the faster one is the default.
    ``benchmarks/results/backends.md``: on 2 shared CPU cores TensorFlow (oneDNN) restored
    1.1-1.15x faster than onnxruntime for both networks, so TensorFlow is the default
    where it is installed; ``.onnx`` files always run on onnxruntime.
    """
    import importlib.util

    return "tensorflow" if importlib.util.find_spec("tensorflow") is not None else "onnx"


# --------------------------------------------------------------------------- backends


class Backend:
    """Applies a network to normalized planes.

    Attributes
    ----------
    name : str
        ``"tensorflow"`` or ``"onnx"``.
    config : Config
        The model's config (factor, normalization, arch, ...).
    psf : ndarray or None
        The model's 3D PSF when the artifact carries it (model directories).
    source : str
        Where it was loaded from.
    """

    name = "base"

    def __init__(self, config: Config, *, psf=None, source: str = ""):
        self.config = config
        self.psf = psf
        self.source = source
        self.weights = "exported"  # or the checkpoint ("best"/"last") of a model directory
        self.precision = "fp32"  # "int8" for a statically quantized graph (isonet_ij.quantization)

    def predict_batch(self, x: np.ndarray) -> np.ndarray:
        """(B, H, W, 1) float32 -> (B, H, W, 1) float32: one fixed-shape batch of tiles.

        Restoration calls this with one shape per run, so a backend may compile per shape.
        """
        raise NotImplementedError

    def predict_nchw(self, x: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) float32 -> (N, 1, H, W) float32 (normalized units)."""
        raise NotImplementedError

    def predict(self, planes) -> np.ndarray:
        """Apply the network to whole planes.

        Parameters
        ----------
        planes : (N, H, W) or (H, W) array_like
            Normalized planes; H and W multiples of :attr:`size_multiple`.

        Returns
        -------
        ndarray of float32, same shape
        """
        x = np.asarray(planes, dtype=np.float32)
        squeeze = x.ndim == 2
        if squeeze:
            x = x[None]
        if x.ndim != 3:
            msg = f"`planes` must be (N, H, W) or (H, W), got shape {x.shape}"
            raise ValueError(msg)
        m = self.size_multiple
        if x.shape[1] % m or x.shape[2] % m:
            msg = f"`planes` height and width must be multiples of {m} for {self.config.arch}, got {x.shape[1:]}"
            raise ValueError(msg)
        y = self.predict_nchw(np.ascontiguousarray(x[:, None]))[:, 0]
        return y[0] if squeeze else y

    @property
    def size_multiple(self) -> int:
        from .nets import size_multiple

        return size_multiple(self.config.arch)

    def __repr__(self):
        return f"{type(self).__name__}({self.config.arch}, factor={self.config.factor:g}, source={self.source!r})"


class TensorFlowBackend(Backend):
    """The Keras network (NHWC, single channel)."""

    name = "tensorflow"

    def __init__(self, net, config: Config, *, psf=None, source: str = "", nchw: bool = False):
        super().__init__(config, psf=psf, source=source)
        self.net = net
        self.nchw = nchw
        self._fns = {}

    def predict_batch(self, x):
        import tensorflow as tf

        key = ("nhwc", x.shape)
        if key not in self._fns:
            spec = tf.TensorSpec(list(x.shape), tf.float32)
            net, nchw = self.net, self.nchw

            @tf.function(input_signature=[spec])
            def fn(t):
                if not nchw:
                    return net(t, training=False)
                y = net(tf.transpose(t, [0, 3, 1, 2]), training=False)
                return tf.transpose(y, [0, 2, 3, 1])

            self._fns[key] = fn
        return self._fns[key](x).numpy()

    def predict_nchw(self, x):
        import tensorflow as tf

        key = x.shape
        if key not in self._fns:
            spec = tf.TensorSpec(list(x.shape), tf.float32)
            net, nchw = self.net, self.nchw

            @tf.function(input_signature=[spec], autograph=False)
            def fn(t):
                if nchw:
                    return net(t, training=False)
                return tf.transpose(net(tf.transpose(t, [0, 2, 3, 1]), training=False), [0, 3, 1, 2])

            self._fns[key] = fn
        return self._fns[key](x).numpy()


_ARENA = {"registered": None}


def _exact_growth_arena(ort) -> bool:
    """Register, once per process, a CPU arena that grows by what is requested.

    onnxruntime's default CPU arena doubles each extension and never shrinks: a worker's
    resident memory then overshoots its working set by up to 2x, which breaks a
    ``--max-memory`` plan. ``kSameAsRequested`` keeps the arena's speed (buffers reused
    across calls; without an arena inference is ~18 % slower here) at the working set's size
    (measured: 160 instead of 177 MiB RSS for IsoNet-1 on 8x64x232 tiles, same throughput).
    Returns False where this onnxruntime lacks the API (sessions then use their own arena).
    """
    if _ARENA["registered"] is None:
        try:
            cfg = ort.OrtArenaCfg({"arena_extend_strategy": 1})  # 1 = kSameAsRequested
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, cfg)
            _ARENA["registered"] = True
        except Exception:  # noqa: BLE001 - older / other builds: keep the default arena
            _ARENA["registered"] = False
    return _ARENA["registered"]


def onnx_session_options(ort, threads: int | None = None):
    """onnxruntime session options of isonet's graphs: ``threads`` intra-op threads, warnings only."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    return opts


class OnnxBackend(Backend):
    """onnxruntime on an exported ``(N, 1, H, W) -> (N, 1, H, W)`` graph."""

    name = "onnx"

    def __init__(self, model_bytes: bytes, config: Config, *, psf=None, source: str = "",
                 threads: int | None = None):
        super().__init__(config, psf=psf, source=source)
        import onnxruntime as ort

        opts = onnx_session_options(ort, threads)
        if _exact_growth_arena(ort):
            opts.add_session_config_entry("session.use_env_allocators", "1")
        try:
            self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            msg = f"onnxruntime cannot load {source or 'the ONNX graph'} ({exc}); re-export with `isonet export`"
            raise ArtifactError(msg) from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.graph_bytes = bytes(model_bytes)  # the serialized graph (quantization reads it)

    def predict_nchw(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def predict_batch(self, x):
        # (B, H, W, 1) and (B, 1, H, W) hold the same bytes for one channel: a view, no copy
        return self.predict_nchw(x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])).reshape(x.shape)
