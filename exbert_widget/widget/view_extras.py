"""The kernel side of the model view, the logit-lens panel and export: the view's commands and
``view.save``. ``ExBertView`` keeps only thin methods that call in here.
"""

from __future__ import annotations

import base64
import binascii
import os
import pathlib
import tempfile
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .state import LENS_TOP_K_MAX
from .validation import check_int
from .view_commands import (
    ExportArgs,
    ExportResult,
    LogitLensArgs,
    LogitLensResult,
    ModelViewArgs,
    ModelViewResult,
    PngArgs,
    PngResult,
)

if TYPE_CHECKING:
    from .view import ExBertView

SUFFIXES = (".svg", ".html", ".png")
PNG_REQUEST = "exbert-png-request"
ATTACH = "exbert-attach"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def commands(view: ExBertView) -> dict[str, Any]:
    """The handlers of this module's commands, bound to ``view``."""
    return {
        "model_view": lambda args: model_view_command(view, args),
        "logit_lens": lambda args: logit_lens_command(view, args),
        "export": lambda args: export_command(view, args),
        "png": lambda args: png_command(view, args),
    }


def model_view_command(view: ExBertView, _args: ModelViewArgs) -> ModelViewResult:
    with view._lock:
        thumbs = view.thumbnails()
        return {
            "sentence": view.sentence,
            "masked": list(view.masked),
            "hide_special": view.hide_special,
            "size": int(thumbs.shape[-1]),
            "thumbnails": thumbs,
        }


def lens_position(view: ExBertView, token: int) -> int:
    """The engine's position for the view's token ``token``: the same index, or for an
    encoder–decoder model (whose view lists the source's tokens, then the target's) the index
    in the target, where the decoder's layers are read.

    Raises:
        InputError: no such token, or a source token of an encoder–decoder model.
    """
    if not 0 <= token < len(view.tokens):
        raise InputError(f"No token {token} in the sentence.")
    a = view.analysis
    if a is None or a.target is None:
        return token
    source = len(a.tokens)
    if token < source:
        raise InputError(
            "The logit lens reads the decoder's layers: select a target token "
            f"(tokens {source} to {len(view.tokens) - 1})."
        )
    return token - source


def logit_lens_command(view: ExBertView, args: LogitLensArgs) -> LogitLensResult:
    with view._lock:
        position = args["position"]
        if view.analysis is None:
            raise InputError("No sentence analysed yet.")
        index = lens_position(view, position)
        top_k = check_int("logit_lens top_k", args.get("top_k", 5), 1, LENS_TOP_K_MAX)
        frame = view.lm.logit_lens(view.analysis, index, top_k=top_k)
        layers: list[list[tuple[str, float]]] = []
        for _, rows in frame.groupby("layer", sort=True):
            ordered = rows.sort_values("rank")
            layers.append(
                [
                    (str(tok), round(float(p), 6))
                    for tok, p in zip(ordered.token, ordered.prob, strict=True)
                ]
            )
        return {"sentence": view.sentence, "position": position, "layers": layers}


# -- export -------------------------------------------------------------------------------------


def _suffix(path: pathlib.Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(
            f"Cannot save {str(path)!r}: the suffix must be one of {', '.join(SUFFIXES)} "
            f"(got {suffix or 'none'!r})."
        )
    return suffix


def write_whole(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so
    ``path`` holds the whole file or what it held before, never half of it.

    Raises:
        InputError: the folder does not exist or cannot be written.
    """
    folder = path.parent if str(path.parent) else pathlib.Path(".")
    if not folder.is_dir():
        raise InputError(f"Cannot save {str(path)!r}: the folder {str(folder)!r} does not exist.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise InputError(f"Cannot save {str(path)!r}: {exc.strerror}.") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def save_view(view: ExBertView, path: pathlib.Path) -> pathlib.Path:
    """See :meth:`ExBertView.save`."""
    suffix = _suffix(path)
    if suffix == ".png":
        request_png(view, path)
        return path
    from .html_export import load_bundle, render_html
    from .snapshot import snapshot
    from .svg_export import render_svg

    shot = snapshot(view)
    text = render_svg(shot) if suffix == ".svg" else render_html(shot, *load_bundle())
    write_whole(path, text.encode("utf-8"))
    return path


def _attached(view: ExBertView) -> int:
    return int(getattr(view, "_attached_views", 0))


def attach_message(view: ExBertView, content: object) -> bool:
    """Count the views on screen from their ``{"kind": "exbert-attach", "attached": bool}``
    messages (sent when a view is displayed and removed; no reply); returns whether
    ``content`` was one."""
    if not isinstance(content, dict) or content.get("kind") != ATTACH:
        return False
    step = 1 if content.get("attached") is True else -1
    view._attached_views = max(0, _attached(view) + step)
    return True


def request_png(view: ExBertView, path: pathlib.Path) -> str:
    """Ask the displayed view for a PNG of itself, to be written at ``path`` when it answers.

    Raises:
        InputError: no view is displayed, or the folder of ``path`` does not exist.
    """
    if _attached(view) == 0:
        raise InputError(
            "Saving a .png needs the view displayed (the browser draws it): display the view "
            "first, or save a .svg or .html, which need no view."
        )
    folder = path.parent if str(path.parent) else pathlib.Path(".")
    if not folder.is_dir():
        raise InputError(f"Cannot save {str(path)!r}: the folder {str(folder)!r} does not exist.")
    from .snapshot import snapshot
    from .svg_export import render_svg

    request = uuid.uuid4().hex
    pending: dict[str, pathlib.Path] = view.__dict__.setdefault("_png_requests", {})
    # Where the path points now: the answer comes later, maybe after the working folder changed.
    pending[request] = path.resolve()
    view.send({"kind": PNG_REQUEST, "request": request, "svg": render_svg(snapshot(view))})
    return request


def png_command(view: ExBertView, args: PngArgs) -> PngResult:
    pending: dict[str, pathlib.Path] = view.__dict__.setdefault("_png_requests", {})
    path = pending.pop(args["request"], None)
    if path is None:
        raise InputError("No PNG was asked for with this request (or it was answered already).")
    if args.get("error"):
        raise InputError(f"The view could not draw the PNG for {str(path)!r}: {args['error']}")
    try:
        data = base64.b64decode(args["data"], validate=True)
    except (binascii.Error, ValueError):
        raise InputError("The view's PNG is not valid base64.") from None
    if not data.startswith(PNG_MAGIC):
        raise InputError("The view's answer is not a PNG image.")
    write_whole(path, data)
    return {"path": str(path), "bytes": len(data)}


def export_command(view: ExBertView, args: ExportArgs) -> ExportResult:
    fmt = args["format"]
    # where the path points when the button is pressed, for every format
    path = pathlib.Path(args.get("path") or f"exbert-view.{fmt}").resolve()
    if fmt == "png":  # the button: the view draws it and answers the request
        with view._lock:
            request_png(view, path)
        return {"path": str(path), "bytes": 0}
    view.save(path)
    return {"path": str(path), "bytes": path.stat().st_size}
