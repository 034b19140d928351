#!/usr/bin/env bash
# Set up everything isonet-ij needs on a fresh Debian/Ubuntu machine:
# Java + Debian's ImageJ 1.x jar + Xvfb (for the ImageJ bridge and its tests), then a
# virtual environment in .venv with the package and the extras named in $ISONET_EXTRAS.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${ISONET_EXTRAS:-cpu,export,imagej,dask,napari,test}"

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)
[ -n "$(ls /usr/share/java/ij*.jar 2>/dev/null)" ] || need_apt+=(libij-java)
command -v Xvfb >/dev/null 2>&1 || need_apt+=(xvfb)
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)
# napari extra: what PyPI's Qt (PyQt5) loads from the system, and a virtual display for tests
if [[ ",${extras}," == *",napari,"* ]]; then
  for lib in libgl1 libegl1 libdbus-1-3 libfontconfig1 libxkbcommon-x11-0 libxcb-icccm4 \
             libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 \
             libxcb-xfixes0 libxcb-shape0 libxcb-xkb1 libxcb-cursor0; do
    dpkg -s "$lib" >/dev/null 2>&1 || need_apt+=("$lib")
  done
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "installing Debian packages: ${need_apt[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${extras}]"
echo "isonet-ij installed in $(pwd)/.venv (extras: ${extras})"

# examples/restore_onnx.mjs (and its test) run on onnxruntime-node: installed beside the
# example when Node.js and npm exist (--ignore-scripts: its install script only fetches
# optional GPU libraries; the CPU library ships in the package)
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    && [ ! -d examples/node_modules/onnxruntime-node ]; then
  npm install --ignore-scripts --no-audit --no-fund --prefix examples onnxruntime-node@1.30.0 >/dev/null \
    && echo "onnxruntime-node installed in examples/node_modules" \
    || echo "npm install onnxruntime-node failed: the JavaScript example's test will skip"
fi
