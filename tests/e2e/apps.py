"""Servers of the other front ends (marimo, Voilà), each in its own process group."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .jupyter import ROOT, ServerProcess, _free_port

START_S = 180


class AppServer(ServerProcess):
    """A web app on 127.0.0.1 started by ``args`` (a random port is passed as ``{port}``)."""

    def __init__(self, args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [a.format(port=self.port) for a in args]
        self.cwd, self.log_path = cwd, log
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None

    def start(self, ready_path: str = "/") -> AppServer:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.args],
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=5):
                    return self
            except urllib.error.HTTPError:
                return self  # it answers
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.args[0]} did not answer in {START_S} s:\n{self.log_tail()}")
