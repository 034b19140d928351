"""The one model type: :class:`IsoNetModel`, and :func:`load_model` for every artifact.

Every entry point (Python API, CLI, ImageJ commands, Fiji scripts, chunked workers,
export, benchmarks) gets its model from :func:`load_model` (or from training, which wraps
its Keras network the same way), so a model directory, an exported ``MODEL.onnx`` and a
bioimage.io ``PACKAGE.zip`` behave the same everywhere::

    model = load_model("model_dir")                    # TensorFlow where installed
    model = load_model("model.onnx")                   # onnxruntime
    model = load_model("pkg.zip", backend="onnx")      # either runtime of a package
    restored = restore(volume, model)

The model's ``net`` is a :class:`isonet_ij.backends.Backend` (the plane network);
``volume_net`` a graph that restores a whole anisotropic stack
(:class:`isonet_ij.volume_graph.OnnxVolumeNet`, from a volume ``MODEL.onnx`` of ``isonet
export``). A volume model has ``net`` None; :func:`isonet_ij.restoration.restore_with_info`
then runs the graph (with ``normalization="model"``).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import (
    ArtifactError,
    artifact_kind,
    load_keras_safe,
    package_weights_file,
    read_onnx,
    read_package_config,
    read_package_rdf,
    safe_extract,
    verify_package_files,
)
from .backends import BACKENDS, Backend, OnnxBackend, TensorFlowBackend, default_backend
from .config import WEIGHTS_BEST, WEIGHTS_LAST, Config, ModelDirError, load_psf_file, read_config
from .locks import remove_stale
from .volume_graph import OnnxVolumeNet, is_volume_graph

__all__ = ["IsoNetModel", "load_model", "load_model_cached", "cached_models", "model_from_keras", "WEIGHTS"]

WEIGHTS = ("best", "last")


@dataclass(eq=False)  # a model is itself: identity equality, usable as a cache key
class IsoNetModel:
    """A trained IsoNet ready to restore.

    Attributes
    ----------
    config : Config
        Architecture, mode, factor, PSF spec, normalization of the training volume.
    net : Backend or None
        The plane network behind its runtime (``net.name``: ``"tensorflow"`` or ``"onnx"``);
        None for a volume model.
    psf : (z, y, x) ndarray of float32 or None
        The PSF it was trained for, when the artifact carries it (None for mode ``"none"``).
    path : Path or None
        Where it was loaded from (None when trained in memory).
    weights : str
        ``"best"`` or ``"last"`` (model directories), ``"exported"`` or ``"memory"``.
    volume_net : OnnxVolumeNet or None
        A graph that restores a whole anisotropic stack (raw stack in, isotropic stack
        out; factor, fusion and normalization baked in), when the artifact holds one.
    """

    config: Config
    net: Backend | None
    psf: np.ndarray | None = None
    path: Path | None = None
    weights: str = "best"
    volume_net: object = None

    @property
    def backend(self) -> str:
        """``"tensorflow"`` or ``"onnx"``."""
        return self.net.name if self.net is not None else self.volume_net.name

    @property
    def source(self) -> str:
        """The artifact's path as text, or ``"memory"``."""
        return str(self.path) if self.path is not None else "memory"

    def __repr__(self):
        cfg = self.config
        return (f"IsoNetModel({cfg.arch}, mode={cfg.mode}, factor={cfg.factor:g}, "
                f"backend={self.backend}, source={self.source!r})")


def model_from_keras(net, config: Config, *, psf=None, path=None, weights: str = "memory",
                     backend: str = "tensorflow", threads: int | None = None) -> IsoNetModel:
    """Wrap a Keras plane network (NHWC, single channel) as an :class:`IsoNetModel`."""
    source = str(path) if path is not None else "memory"
    if backend == "onnx":
        from .onnx_graph import plane_onnx_bytes

        be = OnnxBackend(plane_onnx_bytes(net, config), config, psf=psf, source=source, threads=threads)
    else:
        be = TensorFlowBackend(net, config, psf=psf, source=source)
    be.weights = weights
    return IsoNetModel(config, be, psf, Path(path) if path is not None else None, weights)


def _model_dir_weights(model_dir: Path, weights: str) -> tuple[Path, str]:
    path = model_dir / (WEIGHTS_BEST if weights == "best" else WEIGHTS_LAST)
    if not path.is_file() and weights == "best" and (model_dir / WEIGHTS_LAST).is_file():
        warnings.warn(f"{str(path)!r} missing; using the last weights", stacklevel=3)
        path, weights = model_dir / WEIGHTS_LAST, "last"
    if not path.is_file():
        msg = f"{str(model_dir)!r} has no weights ({path.name}); training did not finish an epoch"
        raise ModelDirError(msg)
    return path, weights


def _load_model_dir(model_dir: Path, backend: str, weights: str, threads) -> IsoNetModel:
    """Config (validated), network and weights, PSF of a model directory."""
    from .nets import build_model

    config = read_config(model_dir)
    path, weights = _model_dir_weights(model_dir, weights)
    net = build_model(config.arch, dropout=config.dropout)
    try:
        net.load_weights(path)
    except Exception as exc:  # h5py / keras raise many types
        msg = f"cannot load weights {str(path)!r} into {config.arch} ({exc}); retrain"
        raise ModelDirError(msg) from exc
    return model_from_keras(net, config, psf=load_psf_file(model_dir), path=model_dir, weights=weights,
                            backend=backend, threads=threads)


def _package_psf(folder: Path):
    if not (folder / "psf.tif").is_file():  # attached by isonet export (modes full/split)
        return None
    import tifffile

    return tifffile.imread(folder / "psf.tif").astype(np.float32)


def _package_backend(folder: Path, rdf: dict, source: Path, backend: str, threads, onnx_bytes) -> Backend:
    """The plane network of an extracted bioimage.io package on ``backend``.

    ``onnx_bytes``: the package's onnx weights, already read (None when it has none).
    """
    config = read_package_config(folder)
    psf = _package_psf(folder)
    if backend == "onnx":
        if onnx_bytes is None:
            msg = f"{str(source)!r} has no onnx weights; use --backend tensorflow"
            raise ArtifactError(msg)
        return OnnxBackend(onnx_bytes, config, psf=psf, source=str(source), threads=threads)
    w = package_weights_file(rdf, "keras_v3", folder)
    if w is None or not w.is_file():
        msg = f"{str(source)!r} has no keras_v3 weights; use --backend onnx"
        raise ArtifactError(msg)
    return TensorFlowBackend(load_keras_safe(w), config, psf=psf, source=str(source), nchw=True)


#: Extraction folders ``isonet_pkg_<pid>_*`` of dead processes older than this are removed.
STALE_PACKAGE_S = 600.0


def _package_onnx(folder: Path, rdf: dict, source: Path):
    """``(bytes, config, metadata)`` of the package's onnx weights, or None when it has none."""
    w = package_weights_file(rdf, "onnx", folder)
    if w is None or not w.is_file():
        return None
    return read_onnx(w, source=f"{source}:{w.name}")


def _load_package(path: Path, kind: str, backend: str, threads, workdir) -> IsoNetModel:
    """A bioimage.io package, zipped or extracted; a zip is extracted, read, then removed.

    The temporary folder carries this process's id (``isonet_pkg_<pid>_*``); the folders
    of processes killed while loading are removed by the next load.
    """
    import shutil
    import tempfile

    created = None
    folder = path
    if kind == "zip" and workdir is None:
        remove_stale(tempfile.gettempdir(), "isonet_pkg_", min_age_s=STALE_PACKAGE_S)
    if kind == "zip":
        folder = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=f"isonet_pkg_{os.getpid()}_"))
        created = None if workdir is not None else folder
    try:
        if kind == "zip":
            safe_extract(path, folder)
        rdf = read_package_rdf(folder)
        verify_package_files(rdf, folder, path)  # every file the rdf lists, before any is used
        onnx = _package_onnx(folder, rdf, path)
        if onnx is not None and is_volume_graph(onnx[2]):  # runs on onnxruntime, whatever the default
            vnet = OnnxVolumeNet(onnx[0], onnx[1], source=str(path), threads=threads, meta=onnx[2])
            return IsoNetModel(vnet.config, None, None, path, "exported", volume_net=vnet)
        be = _package_backend(folder, rdf, path, backend, threads, None if onnx is None else onnx[0])
    finally:
        if created is not None:  # everything was read into memory
            shutil.rmtree(created, ignore_errors=True)
    return IsoNetModel(be.config, be, be.psf, path, "exported")


def _artifact(source) -> tuple[Path, str]:
    """(path, kind): kind one of dir, package, onnx, zip, keras."""
    path = Path(source)
    kind = artifact_kind(path)
    if kind == "dir" and not (path / "config.json").is_file() and (
        (path / "rdf.yaml").is_file() or (path / "bioimageio.yaml").is_file()
    ):
        kind = "package"
    return path, kind


def _check_backend_fits(path: Path, kind: str, backend: str | None) -> None:
    if kind == "onnx" and backend == "tensorflow":
        msg = f"{str(path)!r} is an ONNX file: use --backend onnx (or export a model directory)"
        raise ValueError(msg)
    if kind == "keras":
        if backend == "onnx":
            msg = f"{str(path)!r} is a Keras file: use --backend tensorflow"
            raise ValueError(msg)
        msg = f"{str(path)!r}: a bare .keras file carries no isonet config; use its model directory or package"
        raise ArtifactError(msg)


def load_model(source, *, backend: str | None = None, weights: str = "best",
               threads: int | None = None, workdir=None) -> IsoNetModel:
    """Load a trained model from any artifact isonet-ij writes.

    Parameters
    ----------
    source : str or Path or IsoNetModel
        Model directory (of ``isonet train``), ``MODEL.onnx``, bioimage.io ``PACKAGE.zip``
        or an extracted package folder holding ``rdf.yaml``; an :class:`IsoNetModel` is
        returned as it is (or moved to ``backend`` when it names another one).
    backend : {"tensorflow", "onnx"}, optional
        Default :func:`isonet_ij.backends.default_backend` (TensorFlow when installed)
        where the artifact allows both; an ``.onnx`` file runs on onnxruntime only.
    weights : {"best", "last"}
        Checkpoint of a model directory (``"best"`` falls back to ``"last"``, with a warning,
        when training never validated).
    threads : int, optional
        onnxruntime intra-op threads.
    workdir : str or Path, optional
        Where a ``.zip`` package is extracted (default: a temporary folder, removed after).

    Returns
    -------
    IsoNetModel

    Raises
    ------
    ArtifactError, ModelDirError, FileNotFoundError
        Missing, damaged or foreign artifacts, with what to do.
    ValueError
        An unknown ``backend`` or ``weights``, or a backend the artifact cannot run on.
    """
    if backend is not None and backend not in BACKENDS:
        msg = f"`backend` must be one of {BACKENDS}, got {backend!r}"
        raise ValueError(msg)
    if weights not in WEIGHTS:
        msg = f"`weights` must be one of {WEIGHTS}, got {weights!r}"
        raise ValueError(msg)
    if isinstance(source, IsoNetModel):
        return _on_backend(source, backend, threads)
    path, kind = _artifact(source)
    _check_backend_fits(path, kind, backend)
    if kind == "onnx":
        data, config, meta = read_onnx(path)
        if is_volume_graph(meta):
            vnet = OnnxVolumeNet(data, config, source=str(path), threads=threads, meta=meta)
            return IsoNetModel(config, None, None, path, "exported", volume_net=vnet)
        return IsoNetModel(config, OnnxBackend(data, config, source=str(path), threads=threads), None, path,
                           "exported")
    backend = backend or default_backend()
    if kind in ("zip", "package"):
        return _load_package(path, kind, backend, threads, workdir)
    return _load_model_dir(path, backend, weights, threads)


def _on_backend(model: IsoNetModel, backend: str | None, threads) -> IsoNetModel:
    """``model`` itself, or the same network on another backend."""
    if backend is None or backend == model.backend:
        return model
    if model.net is None:
        msg = f"{model.source!r} is a volume model: it runs on onnxruntime only (--backend onnx)"
        raise ValueError(msg)
    if backend == "onnx" and isinstance(model.net, TensorFlowBackend) and not model.net.nchw:
        return model_from_keras(model.net.net, model.config, psf=model.psf, path=model.path,
                                weights=model.weights, backend="onnx", threads=threads)
    if model.path is not None:
        return load_model(model.path, backend=backend, weights=model.weights if model.weights in WEIGHTS else "best",
                          threads=threads)
    msg = f"this in-memory model runs on {model.backend} only; save it to use --backend {backend}"
    raise ValueError(msg)


# --------------------------------------------------------------------------- cache

_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def _signature(path: Path) -> tuple:
    """What changes when a model is retrained or replaced: its files' sizes and times."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def load_model_cached(source, *, backend: str | None = None, weights: str = "best",
                      threads: int | None = None) -> IsoNetModel:
    """:func:`load_model`, cached per process while the artifact's files are unchanged.

    For processes that restore many times with one model (ImageJ sessions, dask workers):
    retraining into the same directory or replacing the file loads the new model.
    """
    if isinstance(source, IsoNetModel):
        return load_model(source, backend=backend, threads=threads)
    path = Path(source).resolve()
    key = (str(path), backend, weights, threads)
    with _CACHE_LOCK:
        sig = _signature(path) if path.exists() else None
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1]
        model = load_model(path, backend=backend, weights=weights, threads=threads)
        _CACHE[key] = (sig, model)
        return model


def cached_models() -> list[str]:
    """Sources of the models :func:`load_model_cached` holds in this process."""
    with _CACHE_LOCK:
        return [key[0] for key in _CACHE]
