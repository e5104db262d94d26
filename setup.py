"""setuptools metadata for installing dit4dit_ros's plain-Python side WITHOUT building ROS interfaces.

What it is for: ``pip install -e .`` on a training or data machine (a GPU cluster, say) that needs the
model, simulation and data code and the console commands, but no ROS graph. The ROS nodes there fail
with a clear ImportError naming the missing generated interfaces.

What it is NOT for: a ROS install (use colcon: package.xml declares ament_cmake, CMakeLists.txt builds
the interfaces) or the full no-ROS set-up (scripts/setup.sh, which builds the interfaces with the same
CMakeLists.txt). Do not use both in one environment.

The console commands come from resource/executables.txt, the list CMakeLists.txt reads too.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
PACKAGE = "dit4dit_ros"
_ENTRY = re.compile(r"^(node|command) +([A-Za-z0-9_.-]+) *= *([A-Za-z0-9_.]+:[A-Za-z0-9_]+)$")


def console_scripts() -> list[str]:
    scripts = []
    for line in (HERE / "resource" / "executables.txt").read_text().splitlines():
        match = _ENTRY.match(line.strip())
        if match:
            kind, name, target = match.groups()
            # Nodes get a package prefix on PATH (ROS puts them in lib/<pkg>/ instead).
            scripts.append(f"{name if kind == 'command' else 'dit4dit-' + name.replace('_', '-')} = {target}")
    return scripts


def share_files(folder: str) -> list[tuple[str, list[str]]]:
    """Every file under ``folder``, subfolders kept (config/train/, checkpoints/<name>/)."""
    groups: dict[str, list[str]] = {}
    for path in sorted((HERE / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            target = f"share/{PACKAGE}/{path.parent.relative_to(HERE)}"
            groups.setdefault(target, []).append(str(path.relative_to(HERE)))
    return sorted(groups.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    description="DiT4DiT video-diffusion robot policy on ROS 2 for the Unitree G1",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.sim": ["assets/*.xml"]},  # the simplified G1 (offline fallback)
    # The same pins as scripts/setup.sh: install with `-c scripts/constraints.txt`.
    install_requires=["numpy", "pyyaml", "torch==2.13.0", "diffusers", "transformers", "safetensors",
                      "huggingface_hub"],
    extras_require={"sim": ["mujoco", "mujoco-menagerie", "mink", "trimesh", "fast-simplification"],
                    "data": ["rosbags", "pyarrow", "av", "accelerate", "matplotlib"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *share_files("launch"),
        *share_files("config"),
        *share_files("checkpoints"),
    ],
    entry_points={"console_scripts": console_scripts()},
)
