"""Decimated copies of the robot's meshes, made once and cached on disk.

Rendering, not physics, is the cost of the simulation on a CPU: the G1's 49 STL meshes have ~630 k faces
and the 224x224 head camera renders at ~10 Hz with them; at <= 2000 faces per mesh it renders 3x faster
(numbers in bench/bench_sim.py). Decimation (trimesh + fast-simplification) takes a few seconds, so each
result is cached under a key made of the source file's hash and the face budget.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib

import numpy as np

log = logging.getLogger(__name__)


def default_cache_dir() -> pathlib.Path:
    root = os.environ.get("DIT4DIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dit4dit_ros")
    return pathlib.Path(root) / "meshes"


def decimated_mesh(path: str | os.PathLike, max_faces: int,
                   cache_dir: pathlib.Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float32 and faces (F, 3) int32 of `path` with at most `max_faces` faces."""
    data = pathlib.Path(path).read_bytes()
    key = hashlib.sha256(data).hexdigest()[:20]
    cache = (cache_dir or default_cache_dir()) / f"{key}-{max_faces}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as stored:
                return stored["vertices"], stored["faces"]
        except (OSError, ValueError, KeyError) as exc:  # a truncated write from a killed process
            log.warning("mesh cache entry %s is unreadable (%s); rebuilding it", cache, exc)

    import fast_simplification
    import trimesh

    mesh = trimesh.load(pathlib.Path(path), file_type=pathlib.Path(path).suffix.lstrip(".").lower(),
                        force="mesh", process=True)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if len(faces) > max_faces:
        vertices, faces = fast_simplification.simplify(vertices, faces, target_reduction=1.0 - max_faces / len(faces))
    vertices, faces = vertices.astype(np.float32), faces.astype(np.int32)

    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npz")
    np.savez(partial, vertices=vertices, faces=faces)
    os.replace(partial, cache)  # atomic: concurrent processes never read half a file
    return vertices, faces


def decimate_spec_meshes(spec, mesh_root: pathlib.Path, max_faces: int, cache_dir: pathlib.Path | None = None) -> int:
    """Replace every file mesh of a MjSpec by its decimated copy (in place). Returns the number replaced."""
    replaced = 0
    for mesh in spec.meshes:
        if not mesh.file:
            continue
        source = mesh_root / mesh.file
        vertices, faces = decimated_mesh(source, max_faces, cache_dir)
        # Geoms refer to a mesh by name, which MJCF defaults to the file's stem; keep it before the file goes.
        if not mesh.name:
            mesh.name = pathlib.Path(mesh.file).stem
        mesh.file = ""  # the compiler would otherwise re-read the file; scale and offsets still apply
        mesh.uservert = vertices.reshape(-1).tolist()
        mesh.userface = faces.reshape(-1).tolist()
        replaced += 1
    return replaced
