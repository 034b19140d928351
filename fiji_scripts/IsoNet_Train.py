#@ ImagePlus (label="Anisotropic stack") imp
#@ File (label="Model folder (output)", style="directory") model
#@ String (label="PSF (gaussian:SXY,SZ, confocal:..., or a .tif)", value="gaussian:2,8") psf
#@ String (label="Mode", choices={"split", "full", "none"}, value="split") mode
#@ String (label="Network", choices={"isonet2", "isonet1"}, value="isonet2") arch
#@ Float (label="Anisotropy factor (0 = from calibration)", value=0, min=0) factor
#@ Integer (label="Epochs", value=100, min=1) epochs
#@ Integer (label="Steps per epoch", value=50, min=1) steps
#@ Integer (label="Patch size (pixels, multiple of 4; 0 = 64 or the largest that fits)", value=0, min=0) patch
#@ Integer (label="Batch size (patches per step)", value=16, min=1) batch
#@ Float (label="Time budget (minutes, 0 = none)", value=0, min=0) time
#@ Integer (label="Seed", value=0, min=0) seed
#@ Integer (label="Channel (0 = current)", value=0, min=0) channel
#@ Integer (label="Frame (0 = current)", value=0, min=0) frame
#@ Boolean (label="Resume an interrupted training", value=false) resume
#@ Boolean (label="Overwrite an existing model folder", value=false) overwrite
#@ String (label="Rounds (auto: 2 for a strong axial blur)", choices={"auto", "1", "2"}, value="auto") rounds
#@output String summary

# IsoNet Train (Fiji script command, Python mode): train IsoNet on the current stack
# itself (self-supervised) and write a model folder that IsoNet Restore and
# `isonet restore` use. Same options as the "IsoNet Train" command of `isonet imagej`.
# A long training blocks only this script's thread; progress goes to the model folder
# (training_log.csv, training_curve.png).
import json

from isonet_ij.imagej.commands import script_errors, train_imageplus

summary = ""  # stays so when the command fails (the error is shown by IJ.error)
with script_errors("IsoNet Train"):
    result = train_imageplus(
        imp,
        model_dir=str(model),
        psf=str(psf),
        mode=str(mode),
        arch=str(arch),
        factor=float(factor) or None,
        epochs=int(epochs),
        steps_per_epoch=int(steps),
        patch_size=int(patch),
        batch_size=int(batch),
        time_budget=60.0 * float(time) or None,
        seed=int(seed),
        rounds=str(rounds),
        channel=int(channel) or None,
        frame=int(frame) or None,
        resume=bool(resume),
        force=bool(overwrite),
    )
    summary = json.dumps(result)
