// IsoNet: segment the nuclei of one stack (no model needed).
//   isonet imagej --batch segment_stack.ijm "/data/stack.tif|/data/stack_labels.tif"
args = split(getArgument(), "|");
if (args.length != 2) exit("argument: STACK.tif|LABELS.tif");
open(args[0]);
run("IsoNet Segment", "");
saveAs("Tiff", args[1]);
