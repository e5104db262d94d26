"""Static checks over the package, tests, launch files and benchmarks (pyflakes-class errors: undefined
names, unused imports and variables, syntax errors), the job ament_flake8 does in ROS packages."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_no_errors():
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: run scripts/setup.sh")
    result = subprocess.run([str(ruff), "check", "--no-cache", "--select", "F,E9", "--line-length", "120",
                             "dit4dit_ros", "test", "bench", "launch", "setup.py"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
