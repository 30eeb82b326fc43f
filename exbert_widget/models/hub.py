"""Reaching the Hugging Face hub: use the cache when the model is in it, fail fast when the hub
cannot be reached, instead of the minutes of retries transformers would spend."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ModelLoadError

PROBE_SECONDS = 3.0
_OFFLINE = {"1", "ON", "YES", "TRUE"}


def _offline() -> bool:
    return any(
        os.environ.get(name, "").upper() in _OFFLINE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _cached(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    try:
        found = try_to_load_from_cache(repo, "config.json")
    except ValueError:  # not a valid repo id
        return False
    return isinstance(found, str)


def _reachable(endpoint: str) -> str | None:
    """None when a TCP connection to the hub opens within PROBE_SECONDS, else why not."""
    url = urlparse(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            return None
    except OSError as exc:
        return f"{host}:{port} did not answer within {PROBE_SECONDS:.0f} s ({exc})"


def hub_options(name_or_path: str) -> dict[str, bool]:
    """Extra ``from_pretrained`` options for ``name_or_path``.

    A local directory: none. Offline mode set by the user, or a hub name already in the cache:
    ``local_files_only=True`` (no network round trip at all; huggingface_hub reads
    ``HF_HUB_OFFLINE`` once, at its import, so a variable set later would otherwise still let it
    try the hub). Otherwise the hub is probed once, briefly; behind a proxy (``HTTPS_PROXY``)
    the probe is left to huggingface_hub.

    Raises:
        ModelLoadError: the model is not cached and the hub cannot be reached.
    """
    if Path(name_or_path).exists():
        return {}
    if _offline() or _cached(name_or_path):
        return {"local_files_only": True}
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return {}
    why = _reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    if why is None:
        return {}
    raise ModelLoadError(
        f"{name_or_path!r} is not a local directory, not in the Hugging Face cache, and the hub "
        f"cannot be reached: {why}. Connect to the network (or set HF_ENDPOINT to a mirror), "
        "pass a local directory, or use the offline demo model: load_model('demo')."
    )
