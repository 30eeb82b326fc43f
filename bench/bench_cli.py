"""Start-up cost of the `exbert` command and of `import exbert_widget`, as ratios.

Anchors, measured in the same run: a bare `python -c pass` (the floor) and `import torch,
transformers` (what the package import used to pay before its names became lazy).

    python bench/bench_cli.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

from common import ROOT, interleaved

EXBERT = shutil.which("exbert") or ""


def _run(args: list[str]) -> None:
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    cases = {
        "python -c pass": lambda: _run([py, "-c", "pass"]),
        "import exbert_widget": lambda: _run([py, "-c", "import exbert_widget"]),
        "exbert --help": lambda: _run([py, "-m", "exbert_widget.cli", "--help"]),
        "import torch, transformers (old cost)": lambda: _run(
            [py, "-c", "import torch, transformers, faiss, spacy"]
        ),
    }
    started = time.time()
    times = interleaved(cases, repeat=args.repeat)
    floor = times["python -c pass"]
    old = times["import torch, transformers (old cost)"]
    for name, seconds in times.items():
        print(
            f"{name:40s} {seconds * 1000:8.0f} ms   {seconds / floor:5.1f}x bare python   "
            f"{seconds / old:5.2f}x the heavy imports"
        )
    print(f"({args.repeat} runs each, interleaved; {time.time() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
