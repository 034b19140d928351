"""A bioimage.io package (spec 0.5) holding the volume model of :mod:`isonet_ij.volume_graph`.

Input ``input`` (batch=1, channel, z, y, x): the raw anisotropic stack; output ``output``
(batch, channel, z, y, x): the isotropic stack. The output z size is tied to the input's by
a ``SizeReference``: input z scale ``f``, output z scale 1, offset ``1 - f``, i.e.
``Z' = Z*f + 1 - f = (Z-1)*f + 1``. bioimageio.spec 0.5.12 allows an integer offset only,
so a non-integer factor is refused (export the ONNX volume model, which takes any factor,
or the plane package). The output y and x axes declare a halo (the network's receptive
field rounded to 4) and the input ``pad: reflect`` in y and x, so that bioimageio.core can
tile in y and x: each block's output agrees with the whole-volume result at least a halo
away from the block's inner edges. z is not tiled (the z interpolation and the z border
need every slice: declare nothing that would let a runner cut z).

Weights: ``onnx`` only (the volume graph). No pre/postprocessing: the normalization is
inside the graph. Test tensors: a small volume (``sample``, else a phantom) and the
graph's output on it. Authors, maintainers, ``git_repo`` and version come from the
export options only (nothing is invented: without ``authors`` the package has none, which
bioimage.io accepts with a warning).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import __version__
from .artifacts import PACKAGE_CONFIG, ArtifactError
from .export_common import PAPER, PAPER_DOI, check_volume_model, keras_model, plane_at_precision, validate_package
from .onnx_graph import DEFAULT_OPSET
from .volume_graph import OnnxVolumeNet, min_sizes, volume_onnx_bytes

__all__ = ["export_bioimageio_volume", "volume_package_axes", "min_yx"]


def _integer_offset(factor: float) -> int:
    if float(factor) != int(factor):
        msg = (f"factor {factor:g} is not an integer: a bioimage.io 0.5 package ties the output z size to the "
               "input's with an integer offset (1 - f) only; export the ONNX volume model "
               "(`isonet export --format onnx`, any factor) or the plane package (`--plane`)")
        raise ArtifactError(msg)
    return 1 - int(factor)


def min_yx(halo: int) -> int:
    """Smallest y / x of the package: the spec wants more than the two halos."""
    return 2 * halo + 8


def z_scales(input_z_scale: float, factor: float, *, max_z: int = 1 << 20) -> tuple[float, float]:
    """``(input z scale, output z scale)`` whose ratio is ``f`` exactly for every z size.

    A runner computes the output z size as ``Z * input scale / output scale + offset``
    (bioimageio.spec validates it unrounded, bioimageio.core truncates it with ``int``):
    with ``dz`` and ``dz / f`` as they come, rounding of ``Z * dz`` lands a hair off
    ``Z * f`` (1.16 um / 4: Z = 57 gives 224.99999..., truncated to 224). So the output
    scale is rounded to a multiple of 2**-24 (6e-8 of the unit) and the input scale is
    ``f`` times it: both products are then exact in float64 and the quotient is ``Z * f``
    exactly (checked for every ``Z <= max_z``).
    """
    f = float(factor)
    out = round(float(input_z_scale) / f * 2.0**24) / 2.0**24
    inp = out * f
    z = np.arange(1, max_z + 1, dtype=np.float64)
    if out <= 0 or not np.array_equal(z * inp / out, z * f):
        msg = f"no z scales reproduce factor {f:g} from the input z spacing {input_z_scale!r} for every z size"
        raise ArtifactError(msg)
    return inp, out


def volume_package_axes(factor: float, min_z: int, halo: int, *, output: bool, voxel_size=None) -> list:
    """bioimage.io axes of the volume model: batch, channel, z, y, x.

    ``voxel_size``: the training volume's ``(dz, dy, dx)`` in micrometres, declared as the
    axes' scales with ``unit: micrometer`` (output z scale ``dz / f``, both z scales as
    :func:`z_scales` makes them exact); ``None``: unitless relative scales (input z ``f``,
    the rest 1).
    """
    from bioimageio.spec.model import v0_5 as bio

    ref = bio.TensorId("input")
    unit = "micrometer" if voxel_size else None
    dz, dy, dx = (float(v) for v in voxel_size) if voxel_size else (float(factor), 1.0, 1.0)
    dz, dz_out = z_scales(dz, factor)
    if output:
        return [
            bio.BatchAxis(),
            bio.ChannelAxis(channel_names=[bio.Identifier("restored")]),
            bio.SpaceOutputAxis(id=bio.AxisId("z"), scale=dz_out, unit=unit,
                                size=bio.SizeReference(tensor_id=ref, axis_id=bio.AxisId("z"),
                                                       offset=_integer_offset(factor))),
            bio.SpaceOutputAxisWithHalo(id=bio.AxisId("y"), halo=halo, scale=dy, unit=unit,
                                        size=bio.SizeReference(tensor_id=ref, axis_id=bio.AxisId("y"))),
            bio.SpaceOutputAxisWithHalo(id=bio.AxisId("x"), halo=halo, scale=dx, unit=unit,
                                        size=bio.SizeReference(tensor_id=ref, axis_id=bio.AxisId("x"))),
        ]
    return [
        bio.BatchAxis(size=1),
        bio.ChannelAxis(channel_names=[bio.Identifier("raw")]),
        bio.SpaceInputAxis(id=bio.AxisId("z"), size=bio.ParameterizedSize(min=min_z, step=1), scale=dz, unit=unit,
                           description=f"acquired slices (z spacing = {factor:g} x xy spacing)"),
        bio.SpaceInputAxis(id=bio.AxisId("y"), size=bio.ParameterizedSize(min=min_yx(halo), step=1), scale=dy,
                           unit=unit),
        bio.SpaceInputAxis(id=bio.AxisId("x"), size=bio.ParameterizedSize(min=min_yx(halo), step=1), scale=dx,
                           unit=unit),
    ]


def _sample(tm, sample, min_z: int, side: int):
    """A small test volume: ``sample`` (array or path) cropped, else a nuclei phantom crop."""
    if sample is None:
        from .phantoms import synthesize

        f = int(tm.config.factor)
        n = side + 16
        syn = synthesize("nuclei", size=n, psf=tm.config.psf or "gaussian:2,8", factor=f, seed=0)
        vol, desc = np.asarray(syn["input"], np.float32), f"nuclei phantom {n}^3 (factor {f}, seed 0), cropped"
    elif isinstance(sample, (str, Path)):
        from .volume_io import read_volume

        vol, desc = np.asarray(read_volume(sample).data, np.float32), f"{sample}, cropped"
    else:
        vol, desc = np.asarray(sample, np.float32), "given array, cropped"
    z = max(min_z, min(vol.shape[0], min_z + 4))
    if min(vol.shape[1:]) < side:
        msg = f"the sample volume {vol.shape} is smaller than {side} in y or x (the package's minimum)"
        raise ArtifactError(msg)
    return np.ascontiguousarray(vol[:z, :side, : side + 4]), desc


def _readme(cfg, desc: str, check: dict, halo: int, min_z: int) -> str:
    n = cfg.normalization
    return f"""# IsoNet ({cfg.arch}) volume model, factor {cfg.factor:g} — exported by isonet-ij {__version__}

Input `input` (1, 1, Z, Y, X) float32: the raw anisotropic stack (z spacing = {cfg.factor:g} x xy
spacing; Z >= {min_z}, Y, X >= {min_yx(halo)}). Output `output` (1, 1, (Z-1)*{cfg.factor:g}+1, Y, X): the isotropic
stack, acquired slice i at output slice {cfg.factor:g}*i. Inside the graph: Keys-cubic z interpolation
(mirror boundary), normalization by the training volume's percentiles (low {n.get('low')}, high
{n.get('high')}: `isonet restore --normalization model`), the network on xz and yz planes, fusion
`{cfg.fusion}`, denormalization. Tiling: y and x with a halo of {halo} px and reflect padding; z must
not be tiled (give whole stacks along z).

Test tensors: {desc}. Check at export: the graph vs `isonet restore --normalization model`, max abs
difference {check.get('relative', float('nan')):.1e} of the output range.

Cite: {PAPER} doi:{PAPER_DOI}
"""


def _maintainers(names) -> list:
    """``Maintainer``s (bioimageio.spec checks GitHub user names online: the caller builds
    them without IO checks; validating the package later checks them, online)."""
    from bioimageio.spec.model import v0_5 as bio

    return [bio.Maintainer(github_user=m) for m in names]


#: the software the package was made with and runs on, cited besides the paper
SOFTWARE = (
    ("TensorFlow / Keras: trained the network (Abadi et al. 2015)", "https://www.tensorflow.org"),
    ("tf2onnx: converted the network to ONNX", "https://github.com/onnx/tensorflow-onnx"),
    ("ONNX and ONNX Runtime: the graph format and the runtime that checked it", "https://onnxruntime.ai"),
)


def _cite(git_repo):
    from bioimageio.spec.model import v0_5 as bio

    cite = [bio.CiteEntry(text=PAPER, doi=bio.Doi(PAPER_DOI))]
    if git_repo:
        cite.append(bio.CiteEntry(text=f"isonet-ij {__version__}", url=git_repo))
    return cite + [bio.CiteEntry(text=text, url=url) for text, url in SOFTWARE]


def _training_data(cfg):
    """The training volume, described (self-supervised: the one volume the network learned from)."""
    from bioimageio.spec.dataset import v0_3 as ds

    fp = cfg.train_fingerprint or {}
    shape = "x".join(str(n) for n in fp.get("shape") or ()) or "unknown shape"
    voxel = (f", voxel (z, y, x) {' x '.join(f'{v:g}' for v in cfg.voxel_size)} um" if cfg.voxel_size
             else ", no voxel size stored")
    name = Path(cfg.train_input).name if cfg.train_input else "training volume"
    return ds.DatasetDescr(name=name[:128] or "training volume", description=(
        f"IsoNet learns from the very volume it restores: one anisotropic stack, {shape} {fp.get('dtype', '')}"
        f"{voxel}, factor {cfg.factor:g}; pairs made from its lateral slices (eq. 2 of the paper)."))


def _descr(cfg, td: Path, *, name, authors, maintainers, git_repo, version, min_z: int, halo: int, opset: int,
           check: dict):
    """The package's ``ModelDescr`` over the files in ``td``."""
    from bioimageio.spec.model import v0_5 as bio

    vs = cfg.voxel_size
    return bio.ModelDescr(
        name=name or f"IsoNet {cfg.arch} volume factor {cfg.factor:g}",
        description=(f"IsoNet ({cfg.arch}) restores isotropic resolution of anisotropic 3D fluorescence stacks "
                     f"(factor {cfg.factor:g}, PSF {cfg.psf or 'none'}): raw stack in, isotropic stack out."),
        authors=[bio.Author(name=a) for a in authors],
        maintainers=_maintainers(maintainers),
        git_repo=git_repo, version=version, cite=_cite(git_repo), license=bio.LicenseId("BSD-3-Clause"),
        documentation=bio.FileDescr(source=td / "README.md"),
        attachments=[bio.FileDescr(source=td / PACKAGE_CONFIG)],
        training_data=_training_data(cfg),
        tags=["isonet", "isotropic-reconstruction", "deconvolution", "fluorescence-light-microscopy", "3d", "onnx"],
        inputs=[bio.InputTensorDescr(
            id=bio.TensorId("input"), description="raw anisotropic stack", pad=bio.ReflectPadding(mode="reflect"),
            axes=volume_package_axes(cfg.factor, min_z, halo, output=False, voxel_size=vs),
            test_tensor=bio.FileDescr(source=td / "test_input.npy"))],
        outputs=[bio.OutputTensorDescr(
            id=bio.TensorId("output"), description="restored isotropic stack, raw intensities",
            axes=volume_package_axes(cfg.factor, min_z, halo, output=True, voxel_size=vs),
            test_tensor=bio.FileDescr(source=td / "test_output.npy"))],
        weights=bio.WeightsDescr(onnx=bio.OnnxWeightsDescr(source=td / "volume.onnx", opset_version=int(opset))),
        config={"isonet": {"graph": "volume", "factor": cfg.factor, "arch": cfg.arch, "fusion": cfg.fusion,
                           "normalization": cfg.normalization, "export_check": check}},
    )


def _volume_graph(tm, sample, precision: str, opset: int) -> tuple[bytes, float | None]:
    """The volume graph of ``tm`` at ``precision`` and its check's PSNR floor (:func:`plane_at_precision`)."""
    from .onnx_graph import plane_onnx_bytes

    plane, min_psnr = plane_at_precision(plane_onnx_bytes(tm.net.net, tm.config, opset=opset), tm.config,
                                         precision, sample)
    return volume_onnx_bytes(None, tm.config, plane_bytes=plane, opset=opset), min_psnr


def export_bioimageio_volume(model, path, *, sample=None, force: bool = False, name: str | None = None,
                             authors=(), maintainers=(), git_repo: str | None = None, version: str | None = None,
                             sample_attribution: str | None = None, precision: str = "fp32",
                             opset: int = DEFAULT_OPSET, validate: bool = True) -> Path:
    """Write the volume model as a bioimage.io package (zip); see the module docstring.

    ``authors`` / ``maintainers``: names (maintainers: GitHub user names, which
    bioimageio.spec verifies online: with maintainers, ``validate=True`` needs the network);
    ``git_repo``: URL; ``version``: the package's version; ``sample_attribution``: source and
    licence of the ``sample`` volume the test tensors are cut from (written to the README).
    The training volume's voxel size (``config.voxel_size``, um) becomes the axes' scales.
    ``precision="int8"``: the plane network inside the graph quantized, calibrated on the
    whole ``sample`` (else the training input), checked >= 40 dB against fp32.
    """
    from bioimageio.spec import ValidationContext, save_bioimageio_package

    from .tiling import default_border, halo_of

    tm = keras_model(model)
    cfg = tm.config
    _integer_offset(cfg.factor)
    path = Path(path)
    if path.exists() and not force:
        msg = f"{str(path)!r} exists; pass --force to replace it"
        raise FileExistsError(msg)
    data, min_psnr = _volume_graph(tm, sample, precision, opset)
    min_z, _ = min_sizes(cfg.factor, default_border(cfg.factor)[0])
    halo = halo_of(cfg.arch)
    vol, desc = _sample(tm, sample, min_z, min_yx(halo))
    if sample_attribution:
        desc = f"{desc}; source and licence: {sample_attribution}"
    restored = OnnxVolumeNet(data, cfg, source="export").predict(vol)  # once: the check and the test tensor
    check = check_volume_model(data, tm, vol, result=restored, min_psnr=min_psnr)
    with tempfile.TemporaryDirectory(prefix="isonet_bioimageio_volume_") as td:
        td = Path(td)
        (td / "volume.onnx").write_bytes(data)
        (td / PACKAGE_CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2))
        np.save(td / "test_input.npy", vol[None, None])
        np.save(td / "test_output.npy", restored[None, None])
        (td / "README.md").write_text(_readme(cfg, desc, check, halo, min_z))
        tmp_zip = td / "package.zip"
        with ValidationContext(perform_io_checks=not maintainers):  # GitHub names are checked online
            descr = _descr(cfg, td, name=name, authors=authors, maintainers=maintainers, git_repo=git_repo,
                           version=version, min_z=min_z, halo=halo, opset=opset, check=check)
            save_bioimageio_package(descr, output_path=tmp_zip, compression_level=9)
        if validate:
            validate_package(tmp_zip)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        shutil.move(str(tmp_zip), str(path))
    return path
