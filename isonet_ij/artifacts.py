"""Exported artifacts on disk: ONNX graphs, bioimage.io packages, the demo package.

Reading only: what a file is, whether it is safe and isonet's own, and what it holds.
:mod:`isonet_ij.model` builds models from them; :mod:`isonet_ij.model_export` writes them.

* ``MODEL.onnx``: the graph written by :func:`isonet_ij.model_export.export_onnx`, with the
  model's config in ``metadata_props`` (:data:`ONNX_META_KEY`);
* a bioimage.io package (``.zip`` or an extracted folder holding ``rdf.yaml``) with the
  config attached as :data:`PACKAGE_CONFIG`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from .config import Config

__all__ = [
    "ArtifactError",
    "ONNX_META_KEY",
    "PACKAGE_CONFIG",
    "MAX_PACKAGE_BYTES",
    "DEMO_PACKAGE",
    "artifact_kind",
    "read_onnx",
    "safe_extract",
    "verify_package_files",
    "MAX_EXPANSION",
    "read_package_rdf",
    "read_package_config",
    "load_keras_safe",
    "package_weights_file",
    "find_demo_package",
]

#: metadata_props key of an exported ONNX graph holding the model's config (JSON).
ONNX_META_KEY = "isonet.config"
#: File of a bioimage.io package holding the training config (``Config.to_dict()``).
PACKAGE_CONFIG = "isonet_config.json"
#: Largest total uncompressed size accepted when extracting a package (bytes).
MAX_PACKAGE_BYTES = 2 << 30


class ArtifactError(ValueError):
    """An exported artifact is missing, damaged, of another format, or not an IsoNet."""


def artifact_kind(path: Path) -> str:
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


def read_onnx(path_or_bytes, *, source: str = "") -> tuple[bytes, Config, dict]:
    """Read an exported ONNX graph: its bytes, the isonet config in its metadata, and all of
    its ``metadata_props`` (parsed once here).

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
    if len(inputs) != 1 or len(proto.graph.output) != 1 or len(dims) not in (4, 5) or dims[1] != 1:
        msg = f"{source!r} must have one (N, 1, H, W) or (1, 1, Z, Y, X) input and one output, got input dims {dims}"
        raise ArtifactError(msg)
    try:
        config = Config.from_dict(json.loads(meta[ONNX_META_KEY]), source=f"{source} metadata")
    except (TypeError, ValueError) as exc:
        msg = f"{source!r}: isonet metadata is damaged ({exc})"
        raise ArtifactError(msg) from exc
    return data, config, meta


#: A package may extract to at most this many times its own size (above the floor below).
MAX_EXPANSION = 50
#: Extraction is always allowed this many bytes (small packages of well-compressed tensors).
MIN_EXTRACT_BYTES = 256 << 20


def _extract_limit(zip_path, max_bytes: int) -> int:
    size = Path(zip_path).stat().st_size
    return min(max_bytes, max(MIN_EXTRACT_BYTES, MAX_EXPANSION * size))


def _check_member(zip_path, target: Path, m: zipfile.ZipInfo) -> None:
    name = m.filename
    dest = (target / name).resolve()
    is_link = (m.external_attr >> 16) & 0o170000 == 0o120000
    if name.startswith(("/", "\\")) or ":" in name or is_link or (dest != target and target not in dest.parents):
        msg = f"{str(zip_path)!r} holds an unsafe member {name!r} (outside the target folder); refusing"
        raise ArtifactError(msg)


def _copy_member(zf: zipfile.ZipFile, m: zipfile.ZipInfo, target: Path, budget: int, zip_path) -> int:
    """Write one member, counting the bytes actually written; returns them."""
    dest = target / m.filename
    if m.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        return 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(m) as src, open(dest, "wb") as out:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > m.file_size or written > budget:
                msg = (f"{str(zip_path)!r}: member {m.filename!r} extracts to more than it declares or than the "
                       "extraction limit; refusing (a crafted or damaged package): download or export it again")
                raise ArtifactError(msg)
            out.write(chunk)
    return written


def safe_extract(zip_path, target, *, max_bytes: int = MAX_PACKAGE_BYTES) -> Path:
    """Extract a zip into ``target``, refusing members that would land outside it.

    Absolute names, ``..`` components, drive letters and symlinks are refused
    (zip-slip); so is a declared uncompressed size above the limit: ``max_bytes``, and
    at most :data:`MAX_EXPANSION` times the package's size (but always
    :data:`MIN_EXTRACT_BYTES`). Members are streamed and the bytes actually written are
    counted, so a member that holds more than its header declares is stopped there.

    Raises
    ------
    ArtifactError
        A corrupted zip or an unsafe member.
    """
    target = Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    limit = _extract_limit(zip_path, max_bytes)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = zf.infolist()
            total = sum(m.file_size for m in members)
            if total > limit:
                msg = (f"{str(zip_path)!r} would extract to {total} bytes (limit {limit} for a package of this "
                       "size); refusing: a crafted or damaged package, download or export it again")
                raise ArtifactError(msg)
            for m in members:
                _check_member(zip_path, target, m)
            for m in members:
                limit -= _copy_member(zf, m, target, limit, zip_path)
    except zipfile.BadZipFile as exc:
        msg = f"{str(zip_path)!r} is not a valid zip or is corrupted ({exc}); download or export it again"
        raise ArtifactError(msg) from exc
    return target


def _listed_files(node, found: list) -> list:
    """Every ``{"source": ..., "sha256": ...}`` entry of an rdf (weights, attachments, tensors, docs)."""
    if isinstance(node, dict):
        if isinstance(node.get("source"), str):
            found.append(node)
        for v in node.values():
            _listed_files(v, found)
    elif isinstance(node, list):
        for v in node:
            _listed_files(v, found)
    return found


def verify_package_files(rdf: dict, folder, source) -> None:
    """Check the sha256 of every file of the package that the rdf lists (with its hash).

    Raises
    ------
    ArtifactError
        A listed file is missing or altered (names the file), or weights without sha256.
    """
    from .fingerprints import file_sha256

    folder = Path(folder)
    for entry in _listed_files(rdf, []):
        src = entry["source"]
        if "://" in src:
            continue
        path = (folder / src).resolve()
        if folder.resolve() not in path.parents:
            msg = f"{str(source)!r}: rdf file {src!r} points outside the package"
            raise ArtifactError(msg)
        want = entry.get("sha256")
        if not path.is_file():
            msg = f"{str(source)!r} lacks {src!r} listed in its rdf; download or export the package again"
            raise ArtifactError(msg)
        if want is None:
            continue
        if file_sha256(path) != str(want).lower():
            msg = (f"{str(source)!r}: {src!r} does not match the sha256 in its rdf (altered or damaged); "
                   "download or export the package again (`isonet export --format bioimageio`)")
            raise ArtifactError(msg)
    for fmt, entry in (rdf.get("weights") or {}).items():
        if isinstance(entry, dict) and not entry.get("sha256"):
            msg = (f"{str(source)!r}: its {fmt} weights carry no sha256 in the rdf, so they cannot be "
                   "checked; export the package again with `isonet export --format bioimageio`")
            raise ArtifactError(msg)


def read_package_rdf(folder: Path) -> dict:
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
    read_package_rdf(folder)
    path = folder / PACKAGE_CONFIG
    if not path.is_file():
        msg = f"{str(folder)!r}: bioimage.io package without {PACKAGE_CONFIG}; not exported by isonet"
        raise ArtifactError(msg)
    try:
        return Config.from_dict(json.loads(path.read_text()), source=str(path))
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        msg = f"{str(path)!r}: {exc}"
        raise ArtifactError(msg) from exc


def load_keras_safe(path):
    """Load a ``.keras`` file in safe mode (no lambda / arbitrary code deserialization)."""
    from .nets import keras_module

    keras = keras_module()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many types (incl. ValueError for unsafe lambdas)
        msg = f"cannot load {str(path)!r} in Keras safe mode ({type(exc).__name__}: {exc})"
        raise ArtifactError(msg) from exc


def package_weights_file(rdf: dict, fmt: str, folder: Path) -> Path | None:
    entry = (rdf.get("weights") or {}).get(fmt)
    if not entry:
        return None
    src = Path(str(entry.get("source", "")))
    path = (folder / src).resolve()
    if folder.resolve() not in path.parents:
        msg = f"package weights {fmt} source {str(src)!r} points outside the package"
        raise ArtifactError(msg)
    return path


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
