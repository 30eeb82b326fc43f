"""Commands from the view: one request/reply channel with ids, over the widget's custom messages.

The view sends ``{"kind": "exbert-command", "id": ..., "name": ..., "args": {...}}``; the kernel
answers ``{"kind": "exbert-reply", "id": ..., "ok": true, "result": {...}}`` or
``{"kind": "exbert-reply", "id": ..., "ok": false, "error": {"type": ..., "message": ...}}``.
Arguments are checked against the command's ``TypedDict`` in :mod:`.state` before the handler
runs, so a handler only sees well-typed arguments (ranges are the handler's to check). Arrays in
a result travel as array traits do (``{view, dtype, shape}``), their bytes as the message's binary
buffers, with ``buffer_paths`` saying where each goes back.

While a handler runs, a heartbeat ``{"kind": "exbert-working", "id": ...}`` goes out every
:data:`HEARTBEAT_S` seconds from a helper thread: the view gives up on a command only after a
silence of many heartbeats (a reply lost, the kernel dead or restarted, or busy with another
cell), so a long search is never cut however long it takes.

anywidget 0.11's experimental ``@command`` has the same shape but no error reply (a failing
handler leaves the view's promise waiting until it times out, an unknown name raises
``KeyError`` in the kernel) and no way to drop a superseded request; the view side of this
channel (``js/src/core/commands.ts``) sends one request per command at a time and keeps only
the newest waiting, so superseded requests never reach the kernel.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from ..errors import ExbertError, InputError
from .arrays import array_to_json
from .state import COMMANDS, HEARTBEAT_S

REQUEST = "exbert-command"
REPLY = "exbert-reply"
WORKING = "exbert-working"

Handler = Callable[[Any], Mapping[str, Any]]
Send = Callable[[dict[str, Any], list[memoryview]], None]
Beat = Callable[[dict[str, Any]], None]
_log = logging.getLogger(__name__)


def check_json(value: object, tp: object, path: str) -> None:
    """Raise :class:`InputError` unless ``value`` (decoded JSON) fits the Python type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if typing.is_typeddict(tp):
        _check_typeddict(value, typing.cast(type, tp), path)
    elif origin is typing.Literal:
        if value not in args:
            _refuse(path, " or ".join(repr(a) for a in args), value)
    elif origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                check_json(value, option, path)
                return
            except InputError:
                continue
        _refuse(path, " or ".join(_name(a) for a in args), value)
    elif origin is list:
        if not isinstance(value, list):
            _refuse(path, "a list", value)
        for i, item in enumerate(value):
            check_json(item, args[0], f"{path}[{i}]")
    elif not _is_scalar(value, tp):
        _refuse(path, _name(tp), value)


def _is_scalar(value: object, tp: object) -> bool:
    if tp is None or tp is type(None):
        return value is None
    if tp is int:  # JSON true is not a number here
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp in (str, bool):
        return isinstance(value, typing.cast(type, tp))
    raise TypeError(f"check_json cannot check {tp!r}")


def _check_typeddict(value: object, cls: type, path: str) -> None:
    if not isinstance(value, dict):
        _refuse(path, "an object", value)
    hints = typing.get_type_hints(cls, include_extras=True)
    unknown = sorted(set(value) - set(hints))
    if unknown:
        raise InputError(f"{path} has no field {unknown[0]!r} (fields: {', '.join(hints)}).")
    # With postponed annotations, Python 3.11's TypedDict misses NotRequired[...] in
    # __optional_keys__; the resolved hint still carries it.
    optional: frozenset[str] = getattr(cls, "__optional_keys__", frozenset())
    for key, tp in hints.items():
        not_required = typing.get_origin(tp) is typing.NotRequired
        if key in value:
            check_json(value[key], typing.get_args(tp)[0] if not_required else tp, f"{path}.{key}")
        elif key not in optional and not not_required:
            raise InputError(f"{path} needs the field {key!r}.")


def _name(tp: object) -> str:
    if tp is None or tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        typing.cast(type, tp), str(tp)
    )


def _refuse(path: str, expected: str, value: object) -> typing.NoReturn:
    shown = repr(value) if len(repr(value)) <= 40 else type(value).__name__
    raise InputError(f"{path} must be {expected}, not {shown}.")


class Dispatcher:
    """Runs the view's commands with ``handlers`` and sends each reply with ``send``, and while
    one runs, heartbeats with ``beat`` (none without it)."""

    def __init__(
        self, handlers: Mapping[str, Handler], send: Send, beat: Beat | None = None
    ) -> None:
        missing = set(COMMANDS) - set(handlers)
        if missing:
            raise TypeError(f"no handler for command(s) {sorted(missing)}")
        self.handlers = dict(handlers)
        self.send = send
        self.beat = beat

    def run(self, name: object, args: object) -> Mapping[str, Any]:
        """Check ``args`` against command ``name``'s declaration and run it.

        Raises:
            InputError: an unknown command, or arguments that do not fit its declaration.
            ExbertError: whatever the command itself refuses.
        """
        if not isinstance(name, str) or name not in COMMANDS:
            known = ", ".join(sorted(COMMANDS))
            raise InputError(f"Unknown command {name!r} (commands: {known}).")
        check_json(args, COMMANDS[name].args, f"{name} args")
        return self.handlers[name](args)

    def handle(self, content: object) -> bool:
        """Answer one custom message if it is a command; returns whether it was one."""
        if not isinstance(content, dict) or content.get("kind") != REQUEST:
            return False
        request_id = content.get("id")
        try:
            with self._heartbeat(request_id):
                result = self.run(content.get("name"), content.get("args", {}))
        except ExbertError as exc:
            self._reply(request_id, error=exc)
        except Exception as exc:  # a bug: the view still gets its reply, the log the traceback
            _log.exception("exbert-widget: command %r failed", content.get("name"))
            self._reply(request_id, error=exc)
        else:
            self._reply(request_id, result=dict(result))
        return True

    @contextlib.contextmanager
    def _heartbeat(self, request_id: object) -> Iterator[None]:
        """Beat for ``request_id`` every HEARTBEAT_S seconds until the block ends; the last beat
        is sent before the reply (the thread is joined first)."""
        beat = self.beat
        if beat is None:
            yield
            return
        done = threading.Event()

        def run() -> None:
            while not done.wait(HEARTBEAT_S):
                try:
                    beat({"kind": WORKING, "id": request_id})
                except Exception:  # a beat that cannot go out must not end the command
                    _log.debug("exbert-widget: heartbeat not sent", exc_info=True)

        thread = threading.Thread(target=run, name="exbert-command-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _reply(
        self,
        request_id: object,
        result: dict[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        reply: dict[str, Any] = {"kind": REPLY, "id": request_id}
        paths: list[list[str | int]] = []
        buffers: list[memoryview] = []
        if error is None:
            reply.update(ok=True, result=_wire(result, ["result"], paths, buffers))
        else:
            reply.update(ok=False, error={"type": type(error).__name__, "message": str(error)})
        if paths:
            reply["buffer_paths"] = paths
        self.send(reply, buffers)


def _wire(
    value: Any, path: list[str | int], paths: list[list[str | int]], buffers: list[memoryview]
) -> Any:
    """``value`` with each numpy array as ``{dtype, shape}``, its bytes appended to ``buffers``
    and the place they go back (``[..., "view"]``) to ``paths``, as ipywidgets does for state."""
    if isinstance(value, np.ndarray):
        payload = array_to_json(value)
        assert payload is not None
        buffers.append(payload.pop("view"))
        paths.append([*path, "view"])
        return payload
    if isinstance(value, dict):
        return {key: _wire(item, [*path, key], paths, buffers) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(item, [*path, i], paths, buffers) for i, item in enumerate(value)]
    return value
