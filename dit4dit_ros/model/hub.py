"""Where pretrained weights come from: a local diffusers directory or a Hugging Face hub id.

One job: turn ``path_or_hub_id`` (+ revision, + component subfolder) into a local directory that holds the
component (``config.json`` and its weights), or fail with a message that names what is missing and says
how to get it. Loading the weights is left to the caller (``from_pretrained`` on the returned folder), so
no library's own hub logic (and its import-time reading of ``HF_HUB_OFFLINE`` / ``HF_HOME``) is involved.

Rules:
- an existing directory is used as is: ``<dir>/<subfolder>`` if it exists, else ``<dir>`` itself when it
  already is the component folder (has a ``config.json``);
- something that is not shaped like a hub id (absolute, ``./``, ``~``, more than one ``/``) and does not exist ->
  :class:`PretrainedNotFoundError` naming the path;
- a hub id (``owner/name``): the local cache is tried first (no network); then, unless offline
  (``HF_HUB_OFFLINE=1``, read at call time), the hub. Only ``<subfolder>/*`` is fetched.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class PretrainedNotFoundError(FileNotFoundError):
    """Pretrained weights are neither at the given path nor in the local hub cache (and cannot be fetched)."""


def is_offline() -> bool:
    """True when the environment forbids hub access (read now, not at import time)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_cache_dir() -> Path:
    """The hub cache as the environment says now: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def looks_like_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and not name.startswith((".", "~"))


def download_hint(repo_id: str, revision: str | None = None, subfolder: str | None = None) -> str:
    rev = f" --revision {revision}" if revision else ""
    include = f" --include '{subfolder}/*'" if subfolder else ""
    return (
        f"download it first with `huggingface-cli download {repo_id}{rev}` (add{include} for this component "
        f"only; with newer huggingface_hub the command is `hf download`), then retry, or set the pretrained "
        f"path to a local diffusers directory that contains '{subfolder or '<component>'}/config.json'"
    )


def _component_in(directory: Path, subfolder: str | None) -> Path | None:
    if subfolder and (directory / subfolder).is_dir():
        return directory / subfolder
    if (directory / "config.json").is_file() or not subfolder:
        return directory
    return None


def resolve_component(path_or_hub_id: str | os.PathLike, revision: str | None = None,
                      subfolder: str | None = None) -> Path:
    """The local folder of one component (e.g. ``subfolder="transformer"``) of a pretrained model."""
    name = os.fspath(path_or_hub_id)
    local = Path(name).expanduser()
    if local.is_dir():
        found = _component_in(local, subfolder)
        if found is None:
            raise PretrainedNotFoundError(
                f"pretrained directory '{name}' has no '{subfolder}' component (expected '{local / subfolder}' "
                f"with a config.json)")
        return found
    if local.exists() or not looks_like_hub_id(name):
        raise PretrainedNotFoundError(
            f"pretrained path '{name}' does not exist (not a directory); give a local diffusers directory "
            f"(with '{subfolder or '<component>'}/config.json') or a hub id such as nvidia/Cosmos-Predict2.5-2B")
    return _resolve_hub(name, revision, subfolder)


def _resolve_hub(repo_id: str, revision: str | None, subfolder: str | None) -> Path:
    from huggingface_hub import snapshot_download

    kwargs = dict(revision=revision, cache_dir=str(hub_cache_dir()),
                  allow_patterns=[f"{subfolder}/*"] if subfolder else None)
    where = f"'{repo_id}'" + (f" (revision '{revision}')" if revision else "") + (
        f", component '{subfolder}'" if subfolder else "")
    try:
        snapshot = Path(snapshot_download(repo_id, local_files_only=True, **kwargs))
    except Exception as local_err:  # not in the cache (LocalEntryNotFoundError and friends)
        if is_offline():
            raise PretrainedNotFoundError(
                f"pretrained weights {where} are not in the local hub cache ({hub_cache_dir()}) and the hub is "
                f"offline (HF_HUB_OFFLINE=1): {download_hint(repo_id, revision, subfolder)}") from local_err
        try:
            snapshot = Path(snapshot_download(repo_id, **kwargs))
        except Exception as err:  # no network, unknown repo/revision, gated repo, ...
            raise PretrainedNotFoundError(
                f"could not get pretrained weights {where} from the hub or the local cache ({hub_cache_dir()}): "
                f"{type(err).__name__}: {err}; {download_hint(repo_id, revision, subfolder)}") from err
    found = _component_in(snapshot, subfolder)
    if found is None or not (found / "config.json").is_file():
        raise PretrainedNotFoundError(
            f"the cached snapshot of {where} at '{snapshot}' has no '{subfolder}/config.json': "
            f"{download_hint(repo_id, revision, subfolder)}")
    return found
