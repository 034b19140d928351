"""``isonet export``: write ONNX, a TensorFlow SavedModel or a bioimage.io package."""

from __future__ import annotations

import argparse
import json

_DESCRIPTION = """\
Export a trained model directory:
  onnx        MODEL.onnx, the volume model: raw stack (1, 1, Z, Y, X) float32 in,
              restored stack (1, 1, floor((Z-1)*f)+1, Y, X) out; z interpolation,
              training normalization, xz/yz passes and fusion inside the graph; checked
              against `isonet restore --normalization model` before it is written.
              --plane: the plane network instead ((N, 1, H, W) normalized planes)
  savedmodel  a TensorFlow SavedModel folder (serve endpoint returning {"output": ...})
  bioimageio  a bioimage.io model package (spec 0.5, zip) of the volume model: 5D axes
              (batch, channel, z, y, x), output z tied to the input's (integer factors only),
              y/x halo and reflect padding, test tensors, README, training config;
              --author / --maintainer / --git-repo / --model-version fill its metadata.
              --plane: the plane package instead (ONNX, SavedModel and Keras weights,
              scale_linear pre/postprocessing from the training percentiles, cover)

Examples:
  isonet export model/ --format onnx -o model.onnx
  isonet export model/ --format bioimageio -o isonet.bioimageio.zip
  isonet restore input.tif --model isonet.bioimageio.zip --backend onnx -o restored.tif
"""


def register(subparsers) -> None:
    """Add ``export``."""
    p = subparsers.add_parser("export", help="export a model (ONNX, SavedModel, bioimage.io package)",
                              description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL_DIR", help="model directory of `isonet train`")
    p.add_argument("--format", required=True, choices=("onnx", "bioimageio", "savedmodel"), dest="fmt")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help=".onnx file, .zip package or SavedModel folder")
    p.add_argument("--sample", default=None, metavar="VOLUME.tif",
                   help="bioimageio: volume for test tensors and cover (default: the training input, else a phantom); "
                        "--precision int8: the calibration volume (default: the training input)")
    p.add_argument("--sample-attribution", default=None, metavar="TEXT",
                   help="bioimageio (volume): source and licence of --sample, written beside the test tensors")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="onnx / bioimageio volume model: int8 quantizes the network inside the graph, calibrated on "
                        "--sample (default: the training input) and checked against fp32 (>= 40 dB)")
    p.add_argument("--weights", choices=("best", "last"), default="best", help="checkpoint (default best)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    p.add_argument("--plane", action="store_true",
                   help="write the plane network (normalized axial planes) instead of the volume model")
    p.add_argument("--author", action="append", default=[], metavar="NAME",
                   help="bioimageio (volume): an author's name (repeat for several)")
    p.add_argument("--maintainer", action="append", default=[], metavar="GITHUB_USER",
                   help="bioimageio (volume): a maintainer's GitHub user name (repeat for several)")
    p.add_argument("--git-repo", default=None, metavar="URL", help="bioimageio (volume): the source repository")
    p.add_argument("--model-version", default=None, metavar="X.Y.Z", help="bioimageio (volume): package version")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from ..nets import quiet_tensorflow

    quiet_tensorflow()
    from ..model_export import export
    from ..volume_io import check_output_path, check_writable

    if args.fmt == "savedmodel":
        check_writable(args.output, what="SavedModel folder")
    else:
        check_output_path(args.output, force=args.force, inputs=[args.model])
    kw = {}
    if args.fmt != "savedmodel":
        kw["opset"] = args.opset
    if args.fmt != "savedmodel" and args.plane:
        kw["plane"] = True
    if args.precision != "fp32":
        if args.fmt == "savedmodel" or args.plane:
            raise ValueError("--precision int8 is for the onnx and bioimageio volume models "
                             "(not --format savedmodel or --plane)")
        kw["precision"] = args.precision
    if args.fmt == "bioimageio" and not args.plane:
        kw.update(authors=args.author, maintainers=args.maintainer, git_repo=args.git_repo,
                  version=args.model_version, sample_attribution=args.sample_attribution)
    path = export(args.model, args.fmt, args.output, force=args.force, weights=args.weights, sample=args.sample, **kw)
    print(json.dumps({"format": args.fmt, "output": str(path)}))
    return 0
