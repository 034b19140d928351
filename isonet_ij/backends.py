"""Inference backends: the stage between a trained network and restoration.

A backend applies a trained IsoNet to a batch of *normalized* planes. Two exist:

* ``"tensorflow"``: the Keras network (from a model directory, a ``.keras`` file loaded in
  Keras' safe mode, or the ``keras_v3`` weights of a bioimage.io package);
* ``"onnx"``: onnxruntime on the ONNX graph written by :func:`isonet_ij.export.export_onnx`
  (a ``.onnx`` file, the ``onnx`` weights of a bioimage.io package, or a model directory
  converted in memory).

Artifacts are the ones :mod:`isonet_ij.export` writes: a model directory, ``MODEL.onnx``
(isonet metadata in ``metadata_props``: the full config, normalization, factor), or a
bioimage.io package ``.zip`` (``isonet_config.json`` attached).

:func:`trained_model` returns a :class:`isonet_ij.config.TrainedModel` whose ``net`` is
the backend, so :func:`isonet_ij.restore.restore` asks the backend for planes without
knowing which one it is (the ONNX backend enters restoration's ``tf.function`` through
``tf.numpy_function``). Exported graphs take ``(N, 1, H, W)`` float32 (bioimage.io's
``batch, channel, y, x``); :meth:`Backend.predict` takes and returns ``(N, H, W)``.

Nothing heavy is imported at module import time.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from .config import Config, TrainedModel, load_model

__all__ = [
    "BACKENDS",
    "ArtifactError",
    "Backend",
    "TensorFlowBackend",
    "OnnxBackend",
    "load_backend",
    "trained_model",
    "default_backend",
    "safe_extract",
    "read_package_config",
    "ONNX_META_KEY",
    "PACKAGE_CONFIG",
    "DEMO_PACKAGE",
    "find_demo_package",
]

log = logging.getLogger(__name__)

BACKENDS = ("tensorflow", "onnx")
#: metadata_props key of an exported ONNX graph holding the model's config (JSON).
ONNX_META_KEY = "isonet.config"
#: File of a bioimage.io package holding the training config (``Config.to_dict()``).
PACKAGE_CONFIG = "isonet_config.json"
#: Largest total uncompressed size accepted when extracting a package (bytes).
MAX_PACKAGE_BYTES = 2 << 30


class ArtifactError(ValueError):
    """An exported artifact is missing, damaged, of another format, or not an IsoNet."""


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

    # restoration calls ``net(x, training=False)`` on (B, H, W, 1) tensors inside a tf.function
    def __call__(self, x, training=False):  # pragma: no cover - overridden
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
        self._nchw = nchw
        self._fns = {}

    def __call__(self, x, training=False):
        if not self._nchw:
            return self.net(x, training=training)
        import tensorflow as tf

        y = self.net(tf.transpose(x, [0, 3, 1, 2]), training=training)
        return tf.transpose(y, [0, 2, 3, 1])

    def predict_nchw(self, x):
        import tensorflow as tf

        key = x.shape
        if key not in self._fns:
            spec = tf.TensorSpec(list(x.shape), tf.float32)
            net, nchw = self.net, self._nchw

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


class OnnxBackend(Backend):
    """onnxruntime on an exported ``(N, 1, H, W) -> (N, 1, H, W)`` graph."""

    name = "onnx"

    def __init__(self, model_bytes: bytes, config: Config, *, psf=None, source: str = "",
                 threads: int | None = None):
        super().__init__(config, psf=psf, source=source)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        if _exact_growth_arena(ort):
            opts.add_session_config_entry("session.use_env_allocators", "1")
        try:
            self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            msg = f"onnxruntime cannot load {source or 'the ONNX graph'} ({exc}); re-export with `isonet export`"
            raise ArtifactError(msg) from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def predict_nchw(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def _run_nhwc(self, x):
        x = np.asarray(x, np.float32)
        y = self.predict_nchw(x.reshape(x.shape[0], 1, x.shape[1], x.shape[2]))
        return y.reshape(x.shape)

    def __call__(self, x, training=False):
        import tensorflow as tf

        y = tf.numpy_function(self._run_nhwc, [x], tf.float32, stateful=False)
        y.set_shape(x.shape)
        return y


# --------------------------------------------------------------------------- artifacts


def _kind(path: Path) -> str:
    if path.is_dir():
        return "dir"
    if not path.exists():
        msg = f"model {str(path)!r} not found; give a model directory, MODEL.onnx or PACKAGE.zip"
        raise FileNotFoundError(msg)
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".zip", ".keras"):
        return suffix[1:]
    msg = f"model {str(path)!r} is not a model directory, .onnx, .keras or bioimage.io .zip"
    raise ArtifactError(msg)


def read_onnx(path_or_bytes, *, source: str = "") -> tuple[bytes, Config]:
    """Read an exported ONNX graph: its bytes and the isonet config in its metadata.

    Raises
    ------
    ArtifactError
        Not an ONNX file, or an ONNX graph without isonet metadata (another model), or a
        graph whose input is not ``(N, 1, H, W)``.
    """
    import onnx

    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
    else:
        source = source or str(path_or_bytes)
        data = Path(path_or_bytes).read_bytes()
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf DecodeError and friends
        msg = f"{source!r} is not a readable ONNX file ({type(exc).__name__}: {exc})"
        raise ArtifactError(msg) from exc
    meta = {p.key: p.value for p in proto.metadata_props}
    if ONNX_META_KEY not in meta:
        msg = (
            f"{source!r} is an ONNX graph without isonet metadata ({ONNX_META_KEY!r} missing; "
            f"producer {proto.producer_name!r}): not exported by `isonet export`"
        )
        raise ArtifactError(msg)
    inputs = proto.graph.input
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim] if inputs else []
    if len(inputs) != 1 or len(proto.graph.output) != 1 or len(dims) != 4 or dims[1] != 1:
        msg = f"{source!r} must have one (N, 1, H, W) input and one output, got input dims {dims}"
        raise ArtifactError(msg)
    try:
        config = Config.from_dict(json.loads(meta[ONNX_META_KEY]), source=f"{source} metadata")
    except (TypeError, ValueError) as exc:
        msg = f"{source!r}: isonet metadata is damaged ({exc})"
        raise ArtifactError(msg) from exc
    return data, config


def safe_extract(zip_path, target, *, max_bytes: int = MAX_PACKAGE_BYTES) -> Path:
    """Extract a zip into ``target``, refusing members that would land outside it.

    Absolute names, ``..`` components, drive letters and symlinks are refused
    (zip-slip); so is a total uncompressed size above ``max_bytes``.

    Raises
    ------
    ArtifactError
        A corrupted zip or an unsafe member.
    """
    target = Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = zf.infolist()
            total = sum(m.file_size for m in members)
            if total > max_bytes:
                msg = f"{str(zip_path)!r} would extract to {total} bytes (> {max_bytes}); refusing"
                raise ArtifactError(msg)
            for m in members:
                name = m.filename
                dest = (target / name).resolve()
                is_link = (m.external_attr >> 16) & 0o170000 == 0o120000
                if (
                    name.startswith(("/", "\\")) or ":" in name or is_link
                    or (dest != target and target not in dest.parents)
                ):
                    msg = f"{str(zip_path)!r} holds an unsafe member {name!r} (outside the target folder); refusing"
                    raise ArtifactError(msg)
            bad = zf.testzip()
            if bad is not None:
                msg = f"{str(zip_path)!r} is corrupted (bad CRC in {bad!r}); download or export it again"
                raise ArtifactError(msg)
            zf.extractall(target)
    except zipfile.BadZipFile as exc:
        msg = f"{str(zip_path)!r} is not a valid zip ({exc}); download or export it again"
        raise ArtifactError(msg) from exc
    return target


def _package_rdf(folder: Path) -> dict:
    import yaml

    rdf = folder / "rdf.yaml"
    if not rdf.is_file():
        rdf = folder / "bioimageio.yaml"
    if not rdf.is_file():
        msg = f"{str(folder)!r}: no rdf.yaml / bioimageio.yaml; not a bioimage.io package"
        raise ArtifactError(msg)
    try:
        data = yaml.safe_load(rdf.read_text())
    except yaml.YAMLError as exc:
        msg = f"{str(rdf)!r} is not valid YAML ({exc})"
        raise ArtifactError(msg) from exc
    if not isinstance(data, dict) or data.get("type") != "model":
        msg = f"{str(rdf)!r} does not describe a bioimage.io model"
        raise ArtifactError(msg)
    fv = str(data.get("format_version", ""))
    if not fv.startswith("0.5."):
        msg = (
            f"{str(rdf)!r} has bioimage.io format_version {fv!r}; isonet reads model spec 0.5.x "
            "packages written by `isonet export --format bioimageio`"
        )
        raise ArtifactError(msg)
    return data


def read_package_config(folder) -> Config:
    """The isonet config of an extracted bioimage.io package (``isonet_config.json``)."""
    folder = Path(folder)
    _package_rdf(folder)
    path = folder / PACKAGE_CONFIG
    if not path.is_file():
        msg = f"{str(folder)!r}: bioimage.io package without {PACKAGE_CONFIG}; not exported by isonet"
        raise ArtifactError(msg)
    try:
        return Config.from_dict(json.loads(path.read_text()), source=str(path))
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        msg = f"{str(path)!r}: {exc}"
        raise ArtifactError(msg) from exc


def _load_keras_safe(path):
    """Load a ``.keras`` file in safe mode (no lambda / arbitrary code deserialization)."""
    from .nets import keras_module as _keras

    keras = _keras()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many types (incl. ValueError for unsafe lambdas)
        msg = f"cannot load {str(path)!r} in Keras safe mode ({type(exc).__name__}: {exc})"
        raise ArtifactError(msg) from exc


def _weights_file(rdf: dict, fmt: str, folder: Path) -> Path | None:
    entry = (rdf.get("weights") or {}).get(fmt)
    if not entry:
        return None
    src = Path(str(entry.get("source", "")))
    path = (folder / src).resolve()
    if folder.resolve() not in path.parents:
        msg = f"package weights {fmt} source {str(src)!r} points outside the package"
        raise ArtifactError(msg)
    return path


def _package_backend(folder: Path, path: Path, backend: str, threads) -> Backend:
    rdf = _package_rdf(folder)
    config = read_package_config(folder)
    psf = None
    if (folder / "psf.tif").is_file():  # attached by isonet export (modes full/split)
        import tifffile

        psf = tifffile.imread(folder / "psf.tif").astype(np.float32)
    if backend == "onnx":
        w = _weights_file(rdf, "onnx", folder)
        if w is None or not w.is_file():
            msg = f"{str(path)!r} has no onnx weights; use --backend tensorflow"
            raise ArtifactError(msg)
        data, _ = read_onnx(w, source=f"{path}:{w.name}")
        return OnnxBackend(data, config, psf=psf, source=str(path), threads=threads)
    w = _weights_file(rdf, "keras_v3", folder)
    if w is None or not w.is_file():
        msg = f"{str(path)!r} has no keras_v3 weights; use --backend onnx"
        raise ArtifactError(msg)
    return TensorFlowBackend(_load_keras_safe(w), config, psf=psf, source=str(path), nchw=True)


def load_backend(source, *, backend: str | None = None, weights: str = "best",
                 threads: int | None = None, workdir=None) -> Backend:
    """Load an artifact for inference.

    Parameters
    ----------
    source : str or Path or TrainedModel
        Model directory, ``MODEL.onnx``, ``MODEL.keras`` or bioimage.io ``PACKAGE.zip``
        (or an extracted package folder holding ``rdf.yaml``).
    backend : {"tensorflow", "onnx"}, optional
        Default :func:`default_backend` (TensorFlow when installed) where the artifact allows both (an ``.onnx``
        file runs on onnxruntime only, a ``.keras`` file on TensorFlow only).
    weights : {"best", "last"}
        Checkpoint of a model directory.
    threads : int, optional
        onnxruntime intra-op threads.
    workdir : str or Path, optional
        Where a ``.zip`` package is extracted (default: a temporary folder).

    Raises
    ------
    ArtifactError, ModelDirError, FileNotFoundError
        Clear messages for missing, corrupted or foreign artifacts.
    """
    if backend is not None and backend not in BACKENDS:
        msg = f"`backend` must be one of {BACKENDS}, got {backend!r}"
        raise ValueError(msg)
    if isinstance(source, TrainedModel):
        tm = source
        kind = "trained"
    else:
        path = Path(source)
        kind = _kind(path)
        if kind == "dir" and not (path / "config.json").is_file() and (
            (path / "rdf.yaml").is_file() or (path / "bioimageio.yaml").is_file()
        ):
            kind = "package"
    if kind == "onnx":
        if backend == "tensorflow":
            msg = f"{str(path)!r} is an ONNX file: use --backend onnx (or export a model directory)"
            raise ValueError(msg)
        data, config = read_onnx(path)
        return OnnxBackend(data, config, source=str(path), threads=threads)
    if kind == "keras":
        if backend == "onnx":
            msg = f"{str(path)!r} is a Keras file: use --backend tensorflow"
            raise ValueError(msg)
        msg = f"{str(path)!r}: a bare .keras file carries no isonet config; use its model directory or package"
        raise ArtifactError(msg)
    backend = backend or default_backend()
    if kind in ("zip", "package"):
        created = None
        if kind == "zip":
            import tempfile

            if workdir is not None:
                folder = Path(workdir)
            else:
                folder = created = Path(tempfile.mkdtemp(prefix="isonet_pkg_"))
        else:
            folder = path
        try:
            if kind == "zip":
                safe_extract(path, folder)
            return _package_backend(folder, path, backend, threads)
        finally:
            if created is not None:  # everything was read into memory
                import shutil

                shutil.rmtree(created, ignore_errors=True)
    if kind == "dir":
        tm = load_model(path, weights=weights)
    if backend == "tensorflow":
        be = TensorFlowBackend(tm.net, tm.config, psf=tm.psf, source=str(tm.path or "memory"))
    else:
        from .export import onnx_bytes

        be = OnnxBackend(onnx_bytes(tm), tm.config, psf=tm.psf, source=str(tm.path or "memory"), threads=threads)
    be.weights = tm.weights
    return be


def trained_model(source, *, backend: str | None = None, weights: str = "best",
                  threads: int | None = None) -> TrainedModel:
    """A :class:`TrainedModel` whose ``net`` is a backend, for :func:`isonet_ij.restore.restore`.

    Examples
    --------
    >>> tm = trained_model("models/isonet2_nuclei_demo.bioimageio.zip", backend="onnx")  # doctest: +SKIP
    >>> restored = restore(volume, tm)  # doctest: +SKIP
    """
    be = source if isinstance(source, Backend) else load_backend(source, backend=backend, weights=weights, threads=threads)
    path = Path(be.source) if be.source and be.source != "memory" else None
    return TrainedModel(be.config, be, be.psf, path, be.weights)


#: The committed demo package (IsoNet-2, split, nuclei, gaussian 2/8, factor 8); see models/README.md.
DEMO_PACKAGE = "isonet2_nuclei_demo.bioimageio.zip"


def find_demo_package() -> Path:
    """Path of the committed demo package (``models/`` of the source checkout).

    Raises
    ------
    FileNotFoundError
        Not a source checkout, or the package was not generated (see models/README.md).
    """
    path = Path(__file__).resolve().parents[1] / "models" / DEMO_PACKAGE
    if not path.is_file():
        msg = (
            f"demo model {str(path)!r} not found; regenerate it with "
            "`python models/make_demo_model.py --force` (about 7 minutes) or train one with `isonet demo`"
        )
        raise FileNotFoundError(msg)
    return path
