// IsoNet: restore and segment every TIFF stack of a folder.
//
// Shell or cluster job (no display needed):
//   isonet imagej --batch batch_restore_and_segment.ijm "/data/stacks|/data/model|/data/out"
// Fiji / ImageJ: Plugins > IsoNet > Examples > batch restore and segment (asks for the
// folders). Writes <name>_isotropic.tif (32-bit, isotropic grid) and <name>_labels.tif
// (16-bit labels of the restored stack) per input stack. The anisotropy factor of each
// stack comes from its calibration (voxel depth / pixel width).

function join(dir, name) {
    if (endsWith(dir, "/") || endsWith(dir, "\\")) return dir + name;
    return dir + File.separator + name;
}

arg = getArgument();
if (arg != "") {
    parts = split(arg, "|");
    if (parts.length != 3) exit("argument: INPUT_DIR|MODEL_DIR|OUTPUT_DIR, got " + arg);
    input = parts[0]; model = parts[1]; output = parts[2];
} else {
    input = getDirectory("Folder of anisotropic stacks");
    model = getDirectory("IsoNet model folder");
    output = getDirectory("Output folder");
}
if (!File.isDirectory(output)) File.makeDirectory(output);

setBatchMode(true);
list = getFileList(input);
n = 0;
for (i = 0; i < list.length; i++) {
    name = list[i];
    lower = toLowerCase(name);
    if (!endsWith(lower, ".tif") && !endsWith(lower, ".tiff")) continue;
    base = replace(name, "\\.[Tt][Ii][Ff][Ff]?$", "");
    open(join(input, name));
    print("IsoNet: " + name + " (" + getWidth() + " x " + getHeight() + " x " + nSlices + ")");
    run("IsoNet Restore", "model=[" + model + "]");
    saveAs("Tiff", join(output, base + "_isotropic.tif"));
    run("IsoNet Segment", "");
    saveAs("Tiff", join(output, base + "_labels.tif"));
    close("*");
    n++;
}
print("IsoNet: restored and segmented " + n + " stacks into " + output);
