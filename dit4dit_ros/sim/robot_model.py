"""Where the G1's MuJoCo model comes from: mujoco_menagerie (real meshes), or the project's simplified G1.

`load_g1_spec("auto")` tries the menagerie's `unitree_g1` (scene `scene_with_hands`, read from
MENAGERIE_ROOT when set, otherwise downloaded once into the menagerie cache) and falls back to
`assets/g1_simplified.xml` with a log line saying why, so that a fresh machine with no internet still runs
the main job. The simplified G1 has the same joint names, kinematic tree, joint limits, actuators and head
camera; only the geometry is primitive (scripts/make_simplified_g1.py derives it from the menagerie model).
"""

from __future__ import annotations

import logging
import os
import pathlib
import socket
import urllib.parse
from dataclasses import dataclass

import mujoco

from dit4dit_ros.sim.mesh_cache import decimate_spec_meshes

log = logging.getLogger(__name__)

SOURCES = ("auto", "menagerie", "simplified")
MENAGERIE_ROBOT = "unitree_g1"
MENAGERIE_ENTRY = "g1_with_hands"  # the robot file of scene_with_hands; the project builds its own scene
SIMPLIFIED_XML = pathlib.Path(__file__).with_name("assets") / "g1_simplified.xml"
DEFAULT_MAX_FACES = 2000


class RobotModelError(RuntimeError):
    """The requested G1 model cannot be loaded (the message says why and what to do)."""


@dataclass
class RobotSpec:
    spec: mujoco.MjSpec
    source: str  # "menagerie" | "simplified"
    detail: str  # where it came from, for logs and diagnostics


def _menagerie_reachable(timeout: float = 3.0) -> bool:
    """A quick look for the menagerie's download host, so that an offline machine does not wait on retries."""
    from mujoco_menagerie import _cache

    base = os.environ.get("MENAGERIE_BASE_URL") or _cache.DEFAULT_BASE_URL
    url = urllib.parse.urlparse(base)
    if url.scheme == "file":
        return True
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_menagerie_spec(max_faces: int | None = DEFAULT_MAX_FACES) -> RobotSpec:
    """The menagerie's G1 with Dex3 hands; meshes decimated to `max_faces` (None: the original meshes)."""
    import mujoco_menagerie

    robot = mujoco_menagerie.get(MENAGERIE_ROBOT)
    cache = mujoco_menagerie.Cache()
    if cache.root is None and not cache.is_cached(robot) and not _menagerie_reachable():
        raise RobotModelError("mujoco_menagerie's unitree_g1 is not cached, MENAGERIE_ROOT is unset and the "
                              "download host is unreachable")
    try:
        xml = robot.xml(MENAGERIE_ENTRY, cache)
        spec = mujoco.MjSpec.from_file(str(xml))
    except (mujoco_menagerie.MenagerieError, OSError, ValueError) as exc:
        raise RobotModelError(f"mujoco_menagerie could not provide {MENAGERIE_ROBOT}: {exc}") from exc
    mesh_root = xml.parent / (spec.meshdir or "")
    if max_faces is not None:
        decimate_spec_meshes(spec, mesh_root, max_faces)
    faces = "original meshes" if max_faces is None else f"meshes decimated to <= {max_faces} faces"
    return RobotSpec(spec, "menagerie", f"{xml} ({faces})")


def load_simplified_spec() -> RobotSpec:
    """The project's simplified G1 (primitive geometry, the menagerie's joints, limits and masses)."""
    if not SIMPLIFIED_XML.is_file():
        raise RobotModelError(f"{SIMPLIFIED_XML} is missing from the installed package")
    return RobotSpec(mujoco.MjSpec.from_file(str(SIMPLIFIED_XML)), "simplified", str(SIMPLIFIED_XML))


def load_g1_spec(source: str = "auto", max_faces: int | None = DEFAULT_MAX_FACES) -> RobotSpec:
    """The G1 robot spec from `source` ("auto" | "menagerie" | "simplified")."""
    if source not in SOURCES:
        raise ValueError(f"robot model source {source!r}; expected one of {SOURCES}")
    if source == "simplified":
        return load_simplified_spec()
    try:
        return load_menagerie_spec(max_faces)
    except RobotModelError as exc:
        if source == "menagerie":
            raise
        log.warning("Using the simplified G1 (primitive geometry, same joints, limits and camera): %s. "
                    "Set MENAGERIE_ROOT to a menagerie checkout, or go online once, for the real meshes.", exc)
        return load_simplified_spec()
