#!/usr/bin/env bash
# Create or reuse the project's environment in .venv at the repository root.
# Sourced by scripts/demo and scripts/test; safe to run again (a stamp skips reinstalls).
#
# - With a ROS 2 distribution sourced ($ROS_DISTRO set), the venv sees the system's
#   site-packages so the distribution's rclpy, cv_bridge and vision_msgs are used, and the
#   ros-* PyPI wheels are NOT installed (they would fight the distribution).
# - Without one, the ros-* wheels from requirements-ros.txt give an embedded rclpy + Fast DDS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
WANT_DEV="${VIP_ENV_DEV:-0}"

need_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "error: '$*' needs root; run it once as root (or install it yourself) and retry" >&2; return 1; fi; }

if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] && [ -z "${VIP_FASHION_MNIST_DIR:-}" ]; then
  echo "[env] installing Debian's dataset-fashion-mnist (Fashion-MNIST, offline data)" >&2
  need_root apt-get update -qq >/dev/null
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[env] creating $VENV" >&2
  if [ -n "${ROS_DISTRO:-}" ]; then "$PY" -m venv --system-site-packages "$VENV"; else "$PY" -m venv "$VENV"; fi
fi

reqs=("$ROOT/setup.py" "$ROOT/requirements-ros.txt")
[ "$WANT_DEV" = 1 ] && reqs+=("$ROOT/requirements-dev.txt")
stamp="$VENV/.vip_stamp_$(cat "${reqs[@]}" | sha256sum | cut -c1-16)_${ROS_DISTRO:-embedded}_dev${WANT_DEV}"
if [ ! -f "$stamp" ]; then
  echo "[env] installing packages into $VENV (first run takes a few minutes)" >&2
  pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
  "${pip[@]}" --upgrade pip >/dev/null
  if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
    if [ "$(uname -m)" = x86_64 ]; then "${pip[@]}" "torch==2.14.1" "torchvision==0.29.1"
    else "${pip[@]}" "torch==2.9.1" "torchvision==0.24.1"; fi
  fi
  extra=()
  [ -z "${ROS_DISTRO:-}" ] && extra+=(-r "$ROOT/requirements-ros.txt")
  [ "$WANT_DEV" = 1 ] && extra+=(-r "$ROOT/requirements-dev.txt")
  "${pip[@]}" "${extra[@]}" opencv-python-headless -e "$ROOT"
  # Build the native ViP kernels now (cached per source and CPU), not when a node first loads
  # a bank; without a compiler the fused path falls back to PyTorch and says so.
  "$VENV/bin/python" -c "from vip_perception.fused import native_status; print('[env]', native_status())" >&2 || true
  rm -f "$VENV"/.vip_stamp_*
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
