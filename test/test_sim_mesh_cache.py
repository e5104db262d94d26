"""Mesh decimation and its on-disk cache (no menagerie needed: the test makes its own mesh)."""

import numpy as np
import trimesh

from dit4dit_ros.sim.mesh_cache import decimated_mesh


def test_decimation_bounds_faces_and_is_cached(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=5)  # 20480 faces
    source = tmp_path / "sphere.stl"
    sphere.export(source)
    cache = tmp_path / "cache"
    vertices, faces = decimated_mesh(source, 500, cache)
    assert 100 < len(faces) <= 500 and faces.max() < len(vertices)
    assert np.abs(np.linalg.norm(vertices, axis=1) - 1.0).max() < 0.1  # still the unit sphere
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(b"truncated")  # a killed writer: rebuilt, not a crash
    again_vertices, again_faces = decimated_mesh(source, 500, cache)
    np.testing.assert_array_equal(again_faces, faces)
    first_mtime = entry.stat().st_mtime_ns
    decimated_mesh(source, 500, cache)
    assert entry.stat().st_mtime_ns == first_mtime  # served from the cache
