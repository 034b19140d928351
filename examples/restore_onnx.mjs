// Restore an anisotropic stack with an IsoNet volume model on onnxruntime-node.
//
//   node restore_onnx.mjs MODEL.onnx INPUT.raw Z Y X OUTPUT.raw
//
// INPUT.raw: the (Z, Y, X) stack as little-endian float32, C order (z slowest).
// OUTPUT.raw: the restored (Z', Y, X) stack, Z' = floor((Z-1)*f)+1, float32; the shape is
// printed as JSON. Install: npm install --ignore-scripts onnxruntime-node@1.30.0
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import ort from "onnxruntime-node";

function fail(msg) {
  console.error(`error: ${msg}`);
  process.exit(2);
}

const [modelPath, inPath, zs, ys, xs, outPath] = process.argv.slice(2);
if (!outPath) fail("usage: node restore_onnx.mjs MODEL.onnx INPUT.raw Z Y X OUTPUT.raw");
const [Z, Y, X] = [zs, ys, xs].map(Number);
if (![Z, Y, X].every((n) => Number.isInteger(n) && n > 0)) fail(`Z Y X must be positive integers, got ${zs} ${ys} ${xs}`);
const buf = readFileSync(inPath);
if (buf.length !== Z * Y * X * 4) fail(`${inPath} holds ${buf.length} bytes, not Z*Y*X*4 = ${Z * Y * X * 4}`);
const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
if (!data.every(Number.isFinite)) fail("the input holds NaN or infinite values");

const session = await ort.InferenceSession.create(modelPath);
// metadata (isonet.min_z, isonet.min_yx) is not exposed by onnxruntime-node: check what the graph needs
const minZ = Number(process.env.ISONET_MIN_Z || 2);
if (Z < minZ) fail(`the input has ${Z} z slices; this model needs at least ${minZ}`);
if (Math.min(Y, X) < 16) fail(`the input is ${Y}x${X} in y, x; the model needs at least 16x16`);
let result;
try {
  result = await session.run({ input: new ort.Tensor("float32", data, [1, 1, Z, Y, X]) });
} catch (e) {
  fail(`the model refused the input (${e.message}); too few z slices for this factor?`);
}
const out = result.output;
writeFileSync(outPath + ".part", Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
renameSync(outPath + ".part", outPath);
console.log(JSON.stringify({ output: outPath, shape: out.dims.slice(2) }));
