#@ ImagePlus (label="Stack (bright nuclei)") imp
#@ String (label="Threshold (intermodes, otsu or a value)", value="intermodes") threshold
#@ String (label="Fill holes", choices={"3d", "2d", "off"}, value="3d") fill
#@ Float (label="Dynamic of watershed seeds (pixels)", value=2, min=0) dynamic
#@ String (label="Connectivity", choices={"6", "26"}, value="6") connectivity
#@ Integer (label="Minimum size (voxels)", value=0, min=0) minimum
#@ Integer (label="Channel (0 = current)", value=0, min=0) channel
#@ Integer (label="Frame (0 = current)", value=0, min=0) frame
#@output ImagePlus labels

# IsoNet Segment (Fiji script command, Python mode): the nuclei pipeline of the IsoNet
# paper on the current stack -- ImageJ's Intermodes threshold (dark background, stack
# histogram), fill holes, 3D distance-transform watershed with the image's voxel size.
# Same options and result as the "IsoNet Segment" command of `isonet imagej`: a 16-bit
# label stack with a label LUT.
from isonet_ij.imagej.commands import script_errors, segment_imageplus

labels = None  # stays so when the command fails (the error is shown by IJ.error)
with script_errors("IsoNet Segment"):
    labels = segment_imageplus(
        imp,
        threshold=str(threshold),
        fill_holes=str(fill),
        dynamic=float(dynamic),
        connectivity=int(str(connectivity)),
        min_size=int(minimum),
        channel=int(channel) or None,
        frame=int(frame) or None,
    )
