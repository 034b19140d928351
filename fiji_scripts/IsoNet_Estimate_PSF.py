#@ ImagePlus (label="Anisotropic stack") imp
#@ Float (label="Anisotropy factor (0 = from calibration)", value=0, min=0) factor
#@ Float (label="Lateral sigma in voxels (0 = fit)", value=0, min=0) sigma_xy
#@ String (label="PSF .tif to write (empty = none)", value="") psf_output
#@ Boolean (label="Plot the spectra", value=false) plot
#@ Integer (label="Channel (0 = current)", value=0, min=0) channel
#@ Integer (label="Frame (0 = current)", value=0, min=0) frame
#@output String psf_spec

# IsoNet Estimate PSF (Fiji script command, Python mode): estimate the axial Gaussian blur
# of the current stack from its own lateral and axial power spectra. Same options and
# results as the "IsoNet Estimate PSF" command of `isonet imagej`: the table
# "IsoNet PSF estimate", a Log line with the psf= spec for IsoNet Train, optionally the
# Gaussian PSF as a .tif and the spectra plot. Output: the spec, e.g. "gaussian:2.1,7.9".
from isonet_ij.imagej.commands import estimate_psf_imageplus, script_errors, show_psf_estimate

psf_spec = ""  # stays so when the command fails (the error is shown by IJ.error)
with script_errors("IsoNet Estimate PSF"):
    summary, spectra = estimate_psf_imageplus(
        imp,
        factor=float(factor) or None,
        sigma_xy=float(sigma_xy) or None,
        psf_output=str(psf_output).strip() or None,
        plot=bool(plot),
        channel=int(channel) or None,
        frame=int(frame) or None,
    )
    show_psf_estimate(summary, spectra)
    psf_spec = summary["psf_spec"]
