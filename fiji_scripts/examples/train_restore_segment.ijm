// IsoNet: train a model on one stack, restore that stack with it, segment the result.
//
//   isonet imagej --batch train_restore_segment.ijm "/data/stack.tif|/data/model|/data/out"
// An optional 4th part holds more IsoNet Train options, e.g. "...|/data/out|psf=[gaussian:2,8] time=30"
// (default: psf=gaussian:2,8, 100 epochs). Without an argument it asks for the paths.

function join(dir, name) {
    if (endsWith(dir, "/") || endsWith(dir, "\\")) return dir + name;
    return dir + File.separator + name;
}

arg = getArgument();
extra = "";
if (arg != "") {
    parts = split(arg, "|");
    if (parts.length < 3) exit("argument: STACK|MODEL_DIR|OUTPUT_DIR[|TRAIN OPTIONS], got " + arg);
    stack = parts[0]; model = parts[1]; output = parts[2];
    if (parts.length > 3) extra = parts[3];
} else {
    stack = File.openDialog("Anisotropic stack");
    model = getDirectory("Model folder to create");
    output = getDirectory("Output folder");
}
if (!File.isDirectory(output)) File.makeDirectory(output);

setBatchMode(true);
open(stack);
base = replace(getTitle(), "\\.[Tt][Ii][Ff][Ff]?$", "");
run("IsoNet Train", "model=[" + model + "] " + extra);
run("IsoNet Restore", "model=[" + model + "]");
saveAs("Tiff", join(output, base + "_isotropic.tif"));
run("IsoNet Segment", "");
saveAs("Tiff", join(output, base + "_labels.tif"));
print("IsoNet: model in " + model + ", results in " + output);
