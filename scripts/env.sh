#!/usr/bin/env bash
# Create or reuse the project's environment in .venv at the repository root.
# Sourced by scripts/demo and scripts/test; safe to run again (a stamp skips reinstalls).
#
# - With a ROS 2 distribution sourced ($ROS_DISTRO set), the venv sees the system's
#   site-packages so the distribution's rclpy, cv_bridge and vision_msgs are used, and the
#   ros-* PyPI wheels are NOT installed (they would fight the distribution).
# - Without one, the ros-* wheels from requirements-ros.txt give an embedded rclpy + Fast DDS.
# - Dev mode (VIP_ENV_DEV=1, scripts/test) without a distribution also builds the real ROS 2
#   tooling (vision_msgs, launch, launch_ros, ros2cli, colcon) into .venv from its sources:
#   $VIP_ROS2_TOOLING_DIR, else ../shared/ros2-tooling beside the clone (may be read-only; it
#   is extracted and built under .venv/ros2-tooling). About a minute once per environment,
#   beside the last installs in a fresh one (a stamp on the sha256 of src.tar.gz and
#   build.sh); needs cmake and a C/C++ compiler. Dev mode
#   only: the tests need it, while the node runs without it (JSON output instead of
#   vision_msgs), so scripts/demo never waits for it; once built, every mode exports its
#   variables (PATH, AMENT_PREFIX_PATH, ROS_LOG_DIR). Without the sources it says so and the
#   tooling tests skip (test/required_groups.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
WANT_DEV="${VIP_ENV_DEV:-0}"

need_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "error: '$*' needs root; run it once as root (or install it yourself) and retry" >&2; return 1; fi; }

if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] && [ -z "${VIP_FASHION_MNIST_DIR:-}" ]; then
  echo "[env] installing Debian's dataset-fashion-mnist (Fashion-MNIST, offline data)" >&2
  apt_install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist)
  # the package lists a machine already has first (seconds); refreshed only when that fails
  if ! need_root "${apt_install[@]}" >/dev/null 2>&1; then
    need_root apt-get update -qq >/dev/null
    need_root "${apt_install[@]}" >/dev/null
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[env] creating $VENV" >&2
  if [ -n "${ROS_DISTRO:-}" ]; then "$PY" -m venv --system-site-packages "$VENV"; else "$PY" -m venv "$VENV"; fi
fi

TOOLING_DIR="${VIP_ROS2_TOOLING_DIR:-$ROOT/../shared/ros2-tooling}"
TOOLING_WORK="$VENV/ros2-tooling"
tooling_src=0
[ -f "$TOOLING_DIR/src.tar.gz" ] && [ -f "$TOOLING_DIR/build.sh" ] && tooling_src=1
tstamp=""
[ "$tooling_src" = 1 ] && \
  tstamp="$TOOLING_WORK/.stamp_$(cat "$TOOLING_DIR/src.tar.gz" "$TOOLING_DIR/build.sh" | sha256sum | cut -c1-16)"

# Build the ROS 2 tooling into .venv (log: $TOOLING_WORK/build.log); 0 on success, stamped.
build_tooling() {
  rm -rf "$TOOLING_WORK/src" && mkdir -p "$TOOLING_WORK/src"
  tar -xzf "$TOOLING_DIR/src.tar.gz" -C "$TOOLING_WORK/src"
  BUILD_BASE="$TOOLING_WORK/build" bash "$TOOLING_DIR/build.sh" "$VENV" "$TOOLING_WORK/src" \
    > "$TOOLING_WORK/build.log" 2>&1 || return 1
  rm -f "$TOOLING_WORK"/.stamp_* && touch "$tstamp"
}
tooling_failed() {
  tail -30 "$TOOLING_WORK/build.log" >&2
  echo "error: the ROS 2 tooling build failed (log: $TOOLING_WORK/build.log); it needs cmake and" \
    "a C/C++ compiler" >&2
}
want_tooling=0
[ "$WANT_DEV" = 1 ] && [ -z "${ROS_DISTRO:-}" ] && [ "$tooling_src" = 1 ] && [ ! -f "$tstamp" ] && want_tooling=1

# The stamp names what was installed: the base requirements' digest, the ROS source, and in dev
# mode the dev requirements' digest too. A dev install holds everything the demo needs, so
# scripts/demo accepts either stamp and alternating it with scripts/test never reinstalls.
base_stamp="$VENV/.vip_stamp_$(cat "$ROOT/setup.py" "$ROOT/requirements-ros.txt" | sha256sum | cut -c1-16)_${ROS_DISTRO:-embedded}"
if [ "$WANT_DEV" = 1 ]; then stamp="${base_stamp}_dev-$(sha256sum < "$ROOT/requirements-dev.txt" | cut -c1-16)"
else stamp="${base_stamp}_base"; fi
installed=0
[ -f "$stamp" ] && installed=1
[ "$WANT_DEV" != 1 ] && compgen -G "${base_stamp}_dev-*" >/dev/null && installed=1
if [ "$installed" = 0 ]; then
  echo "[env] installing packages into $VENV (first run takes a few minutes)" >&2
  install_started=$SECONDS lap_at=$SECONDS
  lap() { echo "[env]   $1: $((SECONDS - lap_at)) s" >&2; lap_at=$SECONDS; }  # where set-up time goes
  pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
  "${pip[@]}" --upgrade pip >/dev/null
  if [ "$(uname -m)" = x86_64 ]; then torch_pins=("torch==2.14.1" "torchvision==0.29.1")
  else torch_pins=("torch==2.9.1" "torchvision==0.24.1"); fi
  tooling_pid=""
  if [ "$want_tooling" = 1 ]; then
    # A fresh dev environment: the ROS 2 tooling (about a minute of compiling) builds while torch
    # and the rest install and the kernels compile. Its build.sh pip-installs into .venv too
    # (its last step with .venv's setuptools), so what it needs or shares goes in before it
    # starts: the ROS wheels, the dev tools, and the setuptools torch 2.14 asks for, which torch
    # would otherwise upgrade under that step. Should the build still fail, it runs again alone.
    "${pip[@]}" -r "$ROOT/requirements-ros.txt" -r "$ROOT/requirements-dev.txt" "setuptools>=77.0.3"
    lap "ROS wheels and dev tools"
    echo "[env] building the ROS 2 tooling from $TOOLING_DIR into $VENV meanwhile" >&2
    mkdir -p "$TOOLING_WORK" && : > "$TOOLING_WORK/build.log"
    NICE="nice -n 0" build_tooling &  # normal priority: it is the longer of the two
    tooling_pid=$!
    # the rest only once its first pip step is over ("=== ... patch" in its log, or its end):
    # two pips never install the same package (psutil, pyyaml) at once
    while kill -0 "$tooling_pid" 2>/dev/null && ! grep -q '^=== .*patch ' "$TOOLING_WORK/build.log"; do
      sleep 0.5
    done
    lap "the tooling's own pip step"
  fi
  if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then "${pip[@]}" "${torch_pins[@]}"; fi
  lap "torch and torchvision"
  extra=()
  [ -z "${ROS_DISTRO:-}" ] && extra+=(-r "$ROOT/requirements-ros.txt")
  [ "$WANT_DEV" = 1 ] && extra+=(-r "$ROOT/requirements-dev.txt")
  "${pip[@]}" "${extra[@]}" opencv-python-headless -e "$ROOT"
  lap "opencv and this package"
  # Build the native ViP kernels now (cached per source, CPU and torch install), not when a node
  # first loads a bank; without a compiler the fused path falls back to PyTorch and says so.
  "$VENV/bin/python" -c "from vip_perception.fused import native_status; print('[env]', native_status())" >&2 || true
  lap "native kernels"
  if [ -n "$tooling_pid" ] && ! wait "$tooling_pid"; then
    echo "[env] the ROS 2 tooling build failed beside the install; building it again alone" >&2
    if ! build_tooling; then
      tooling_failed
      return 1 2>/dev/null || exit 1
    fi
  fi
  if [ -n "$tooling_pid" ]; then lap "waiting for the ROS 2 tooling build"; fi
  rm -f "$VENV"/.vip_stamp_*
  touch "$stamp"
  echo "[env] installed in $((SECONDS - install_started)) s" >&2
fi

if [ -n "${ROS_DISTRO:-}" ]; then
  : # the distribution's vision_msgs, launch_ros and ros2cli; never build the tooling over them
elif [ "$tooling_src" = 0 ]; then
  if compgen -G "$TOOLING_WORK/.stamp_*" >/dev/null && [ -f "$TOOLING_WORK/build/env.sh" ]; then
    [ "$WANT_DEV" = 1 ] && echo "[env] ROS 2 tooling sources not found ($TOOLING_DIR); using the build" \
      "already in $VENV" >&2
    . "$TOOLING_WORK/build/env.sh"
  elif [ "$WANT_DEV" = 1 ]; then
    echo "[env] ROS 2 tooling sources not found ($TOOLING_DIR/src.tar.gz; set VIP_ROS2_TOOLING_DIR):" \
      "skipping it; no real vision_msgs, launch_ros, ros2cli, so their tests skip" >&2
  fi
else
  if [ "$WANT_DEV" = 1 ] && [ ! -f "$tstamp" ]; then
    echo "[env] building the ROS 2 tooling from $TOOLING_DIR into $VENV (about a minute, once)" >&2
    if ! build_tooling; then
      tooling_failed
      return 1 2>/dev/null || exit 1
    fi
  fi
  if [ -f "$tstamp" ] && [ -f "$TOOLING_WORK/build/env.sh" ]; then
    # shellcheck disable=SC1091 # written by build.sh: PATH, AMENT_PREFIX_PATH, ROS_LOG_DIR
    . "$TOOLING_WORK/build/env.sh"
  fi
fi
export PATH="$VENV/bin:$PATH"
