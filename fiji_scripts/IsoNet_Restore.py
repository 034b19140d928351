#@ ImagePlus (label="Anisotropic stack") imp
#@ File (label="Model folder (or type the path of a .onnx / bioimage.io .zip)", style="directory") model
#@ Float (label="Anisotropy factor (0 = from calibration)", value=0, min=0) factor
#@ String (label="Fusion of the xz and yz passes", choices={"model", "mean", "geometric"}, value="model") fusion
#@ String (label="Normalization", choices={"volume", "model"}, value="volume") normalization
#@ String (label="Weights", choices={"best", "last"}, value="best") weights
#@ String (label="Memory budget of inference", value="1G") memory
#@ Integer (label="Batch size (tiles per network call)", value=8, min=1) batch
#@ String (label="Precision", choices={"auto", "fp32", "int8"}, value="auto") precision
#@ Boolean (label="Test-time augmentation (flips, up to 4x slower)", value=false) tta
#@output ImagePlus restored

# IsoNet Restore (Fiji script command, Python mode): restore isotropic resolution of the
# current stack (all channels and frames) with a model trained by IsoNet Train or
# `isonet train`. Same options and result as the "IsoNet Restore" command of
# `isonet imagej`: a new 32-bit stack on the isotropic grid, voxel depth divided by the
# factor. The work is done by isonet_ij (the environment Fiji's Python mode runs in).
from isonet_ij.imagej.commands import restore_imageplus, script_errors

restored = None  # stays so when the command fails (the error is shown by IJ.error)
with script_errors("IsoNet Restore"):
    restored = restore_imageplus(
        imp,
        model=str(model),
        factor=float(factor) or None,
        fusion=None if str(fusion) == "model" else str(fusion),
        normalization=str(normalization),
        weights=str(weights),
        max_memory=str(memory),
        batch_size=int(batch),
        precision=str(precision),
        tta=bool(tta),
    )
