"""Helpers of the browser tests: Jupyter servers, kernel clients, notebook driving."""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("EXBERT_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [  # Debian's Chromium offline, in a container (also used by bench/)
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOTEBOOKS = ROOT / "notebooks"
SERVER_START_S = 120
KERNEL_READY_MS = 120_000
RUN_ALL_MS = 240_000

_SETTINGS = {
    # No news or update checks: the machine is offline and the toast would cover the page.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # Every cell stays in the DOM, so selectors never race the notebook's virtual scrolling.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # The copies under test stay as they were: no widget outputs saved into them mid-run.
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


# -- servers -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server started in its own process group, its output in ``log_path``."""

    proc: subprocess.Popen | None = None
    log_path: Path

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()


class JupyterServer(ServerProcess):
    """A JupyterLab or Notebook 7 server on 127.0.0.1 with a random port and token."""

    def __init__(self, app: str, base: Path, notebooks: list[str]) -> None:
        self.app = app
        self.root = base / "work"
        self.runtime_dir = base / "runtime"
        self.log_path = base / "server.log"
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        for d in (self.root, self.runtime_dir, base / "settings", base / "workspaces"):
            d.mkdir(parents=True, exist_ok=True)
        for name in notebooks:
            shutil.copy(NOTEBOOKS / name, self.root / name)
        for rel, value in _SETTINGS.items():
            path = base / "settings" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        self.env = {
            **os.environ,
            "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(self.runtime_dir),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> JupyterServer:
        exposed = "LabApp" if self.app == "lab" else "JupyterNotebookApp"
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab" if self.app == "lab" else "notebook",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            f"--{exposed}.expose_app_in_browser=True",
        ]
        if self.app == "lab":
            cmd.append("--LabApp.extension_manager=readonly")  # never asks PyPI
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--ServerApp.allow_root=True")  # CI containers run as root
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kernels die with it
        )
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter {self.app} exited:\n{self.log_tail()}")
            try:
                self.api("status")
                return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"jupyter {self.app} did not answer in {SERVER_START_S} s")

    def api(self, path: str) -> Any:
        req = urllib.request.Request(
            f"{self.url}/api/{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def page_url(self, path: str) -> str:
        return f"{self.url}/{path}?token={self.token}"

    def kernel(self, notebook: str) -> Kernel:
        """A client on the kernel of ``notebook``'s session (opened by the browser)."""
        for session in self.api("sessions"):
            if Path(session["path"]).name == notebook and session.get("kernel"):
                path = self.runtime_dir / f"kernel-{session['kernel']['id']}.json"
                return Kernel(path)
        raise LookupError(f"no kernel session for {notebook}: {self.api('sessions')}")


class Kernel:
    """Reads and sets Python state in a notebook's kernel, beside the browser's own client."""

    def __init__(self, connection_file: Path) -> None:
        from jupyter_client import BlockingKernelClient

        self.client = BlockingKernelClient(connection_file=str(connection_file))
        self.client.load_connection_file()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def eval(self, expr: str, timeout: float = 60) -> Any:
        """The value of ``expr`` in the kernel (JSON-able values only)."""
        reply = self.client.execute_interactive(
            "",
            silent=True,
            store_history=False,
            user_expressions={"r": f"__import__('json').dumps({expr})"},
            timeout=timeout,
        )
        result = reply["content"]["user_expressions"]["r"]
        if result["status"] != "ok":
            raise RuntimeError(f"{expr}: {result.get('ename')}: {result.get('evalue')}")
        return json.loads(ast.literal_eval(result["data"]["text/plain"]))

    def run(self, code: str, timeout: float = 120) -> None:
        """Execute ``code`` in the kernel; raise if it fails."""
        reply = self.client.execute_interactive(
            code, store_history=False, timeout=timeout, output_hook=lambda _msg: None
        )
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(f"{code!r}: {content.get('ename')}: {content.get('evalue')}")

    def wait_for(self, expr: str, expected: Any, timeout: float = 20) -> Any:
        """Poll ``expr`` until it equals ``expected`` (state from the browser arrives async)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.eval(expr)
            if value == expected:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{expr} is {value!r}, expected {expected!r} within {timeout} s")

    def close(self) -> None:
        self.client.stop_channels()


# -- notebook helpers --------------------------------------------------------------------------

WIDGET = "[data-testid=exbert-root]"
# The first error output of the open notebook, as "Name: value", or null.
CELL_ERROR = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    for (const cell of (w && w.content && w.content.widgets) || []) {
        if (cell.model.type !== 'code') continue;
        for (const o of cell.model.outputs.toJSON()) {
            if (o.output_type === 'error') return `${o.ename}: ${o.evalue}`;
        }
    }
    return null;
}"""


def dismiss_toasts(page) -> None:
    """Close any notification toast (news, updates) that would cover the notebook."""
    for button in page.locator(".Toastify__toast .jp-toast-button, .Toastify__close-button").all():
        try:
            button.click(timeout=1000)
        except Exception:
            pass


def open_and_run(page, server: JupyterServer, notebook: str) -> Kernel:
    """Open ``notebook``, wait for its kernel, run every cell and wait for the widget.

    Returns a :class:`Kernel` client on the notebook's kernel, once every cell has run.
    """
    path = f"lab/tree/{notebook}" if server.app == "lab" else f"notebooks/{notebook}"
    # `reset`: a fresh workspace, so a page opens this notebook alone (not the last page's tabs).
    page.goto(server.page_url(path) + ("&reset" if server.app == "lab" else ""))
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
    # The notebook's own kernel connection is up and idle (Lab and Notebook 7 alike).
    page.wait_for_function(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            return !!(w && w.sessionContext && w.sessionContext.session
                && w.sessionContext.session.kernel
                && w.sessionContext.session.kernel.status === 'idle');
        }""",
        timeout=KERNEL_READY_MS,
    )
    if server.app == "lab":
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    kernel = _wait_kernel(server, notebook)
    dismiss_toasts(page)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # The view, or a failed cell (then the run stops there: say why instead of timing out).
    page.wait_for_function(
        f"() => document.querySelector('{WIDGET}') || ({CELL_ERROR})()", timeout=RUN_ALL_MS
    )
    _raise_cell_error(page, notebook)
    page.locator(WIDGET).first.wait_for(state="visible")
    _wait_all_cells_run(page)
    _raise_cell_error(page, notebook)
    dismiss_toasts(page)
    return kernel


def _raise_cell_error(page, notebook: str) -> None:
    error = page.evaluate(CELL_ERROR)
    if error:
        raise RuntimeError(f"{notebook}: a cell failed: {error}")


def _wait_kernel(server: JupyterServer, notebook: str) -> Kernel:
    deadline = time.monotonic() + KERNEL_READY_MS / 1000
    while True:
        try:
            return server.kernel(notebook)
        except (LookupError, FileNotFoundError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _wait_all_cells_run(page) -> None:
    """Every code cell has an execution count (no ``[*]`` or empty prompt left)."""
    page.wait_for_function(
        """() => {
            const panel = window.jupyterapp.shell.currentWidget;
            const prompts = [...panel.node.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every((p) => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=RUN_ALL_MS,
    )


def find(page, name: str):
    """The (first) element with ``data-testid=name`` inside the widget."""
    return page.locator(f"{WIDGET} [data-testid='{name}']").first


def has(cls: str) -> re.Pattern:
    """A class-list pattern for ``expect(...).to_have_class``."""
    return re.compile(rf"(^|\s){re.escape(cls)}(\s|$)")
