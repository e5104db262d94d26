"""Package hygiene: package.xml (format 3, every run-time dependency declared), the installed share/
and executables, and the setup.py distribution for ROS-free machines."""

import ast
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from ament_index_python.packages import get_package_prefix, get_package_share_directory, get_resources
from catkin_pkg.package import parse_package

REPO = Path(__file__).resolve().parents[1]

# Python imports that are not ROS packages -> their rosdep key in package.xml and pip name in requirements.
PYTHON_DEPENDENCIES = {
    "numpy": ("python3-numpy", "numpy"),
    "yaml": ("python3-yaml", "pyyaml"),
    "torch": ("python3-torch", "torch"),
    "safetensors": ("python3-safetensors-pip", "safetensors"),
    "diffusers": ("python3-diffusers-pip", "diffusers"),
    "transformers": ("python3-transformers-pip", "transformers"),
    "huggingface_hub": ("python3-huggingface-hub-pip", "huggingface_hub"),
    "mujoco": ("python3-mujoco-pip", "mujoco"),
    "mujoco_menagerie": ("python3-mujoco-menagerie-pip", "mujoco-menagerie"),
    "mink": ("python3-mink-pip", "mink"),
    "trimesh": ("python3-trimesh", "trimesh"),
    "fast_simplification": ("python3-fast-simplification-pip", "fast-simplification"),
    "PIL": ("python3-pil", "pillow"),
    "rosbags": ("python3-rosbags-pip", "rosbags"),
    "pyarrow": ("python3-pyarrow", "pyarrow"),
    "av": ("python3-av", "av"),
    "accelerate": ("python3-accelerate-pip", "accelerate"),
    "matplotlib": ("python3-matplotlib", "matplotlib"),
    "mcap": ("python3-mcap-pip", "mcap"),
    "tqdm": ("python3-tqdm", "tqdm"),
}
# ROS packages the wheels do not provide (so they are not in this venv's ament index).
ROS_PACKAGES_WITHOUT_WHEELS = {"launch", "launch_ros", "cv_bridge"}


def _package():
    return parse_package(str(REPO / "package.xml"))  # validates, raises InvalidPackage on errors


def _imported_top_level_modules() -> dict[str, set[str]]:
    """top-level module -> files importing it, over the installed code (dit4dit_ros/ and launch/)."""
    found: dict[str, set[str]] = {}
    for path in [*REPO.glob("dit4dit_ros/**/*.py"), *REPO.glob("launch/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def test_package_xml_is_format_3_and_valid():
    package = _package()
    assert package.package_format == 3
    assert package.name == "dit4dit_ros"
    assert package.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [group.name for group in package.member_of_groups]
    assert {"rosidl_default_generators", "ament_cmake"} <= {d.name for d in package.buildtool_depends}


def test_every_runtime_dependency_is_declared():
    package = _package()
    run_depends = {d.name for d in package.exec_depends}
    ros_packages = set(get_resources("packages")) | ROS_PACKAGES_WITHOUT_WHEELS
    missing = []
    for module, files in sorted(_imported_top_level_modules().items()):
        if module == "dit4dit_ros" or module in sys.stdlib_module_names or module == "__future__":
            continue
        if module in PYTHON_DEPENDENCIES:
            key = PYTHON_DEPENDENCIES[module][0]
        elif module in ros_packages:
            key = module
        else:
            missing.append(f"{module} (imported by {sorted(files)}) is neither a known ROS package nor "
                          "listed in PYTHON_DEPENDENCIES: declare it in package.xml and here")
            continue
        if key not in run_depends:
            missing.append(f"{key} (for `import {module}` in {sorted(files)}) is not an exec_depend")
    assert not missing, "\n".join(missing)


def _requirement_names(text: str) -> set[str]:
    """Normalised (PEP 503) project names of a requirements/constraints file, markers and pins dropped."""
    names = set()
    for line in text.lower().splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if line:
            names.add(re.split(r"[=<>!~\[ ]", line, maxsplit=1)[0].replace("_", "-"))
    return names


def test_python_rosdep_keys_have_pinned_pip_requirements():
    requirements = _requirement_names((REPO / "scripts" / "requirements.txt").read_text())
    constraints_text = (REPO / "scripts" / "constraints.txt").read_text().lower()
    pinned = {line.split("==", 1)[0].replace("_", "-") for line in constraints_text.splitlines() if "==" in line}
    keys = {d.name for d in _package().exec_depends}
    for rosdep_key, pip_name in PYTHON_DEPENDENCIES.values():
        if rosdep_key in keys:
            assert pip_name.replace("_", "-") in requirements, pip_name
            assert pip_name.replace("_", "-") in pinned, f"{pip_name} is not pinned in scripts/constraints.txt"
    constraints = constraints_text
    assert "\ntorch==2.13.0\n" in constraints


def _assert_share_installed(share: Path):
    for folder in ("launch", "config", "checkpoints"):
        for source in (REPO / folder).rglob("*"):
            if not source.is_file():
                continue
            source = source.relative_to(REPO / folder)
            installed, source = share / folder / source, REPO / folder / source
            assert installed.is_file(), f"{installed} missing"
            assert installed.read_bytes() == source.read_bytes(), f"{installed} differs from {source}"
    assert (share / "package.xml").is_file()


def test_share_and_executables_installed_by_the_setup_script():
    _assert_share_installed(Path(get_package_share_directory("dit4dit_ros")))
    prefix = Path(get_package_prefix("dit4dit_ros"))
    for line in (REPO / "resource" / "executables.txt").read_text().splitlines():
        if line.startswith(("node ", "command ")):
            kind, name = line.split()[:2]
            path = prefix / ("lib/dit4dit_ros" if kind == "node" else "bin") / name
            assert path.is_file() and os.access(path, os.X_OK), f"{path} is not an installed executable"


def test_setup_py_builds_a_ros_free_distribution(tmp_path):
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools is not installed in this environment")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("dit4dit_ros-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "dit4dit_ros/ros/task_server.py" in names and "dit4dit_ros/interfaces.py" in names
    assert "dit4dit_ros/sim/assets/g1_simplified.xml" in names  # the offline G1 must travel with the code
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    assert {"share/dit4dit_ros/launch/g1.launch.py", "share/dit4dit_ros/config/g1.yaml",
            "share/dit4dit_ros/package.xml", "share/ament_index/resource_index/packages/dit4dit_ros"} <= data
    assert not any(n.startswith("test/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dit4dit-task-server = dit4dit_ros.ros.task_server:main" in \
        zipfile.ZipFile(wheel).read(entry_points).decode()
