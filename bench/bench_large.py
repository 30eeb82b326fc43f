"""A Llama-shaped model at 2,048 tokens on CPU: memory and time of one-layer-at-a-time analysis.

The model: 16 layers, 32 query heads, 8 key/value heads, hidden 1,024, intermediate 2,816,
vocabulary 32 k, randomly initialised (real transformers LlamaForCausalLM).

1. Peak memory of ``lm.analyze`` + ``a.attention(l)`` against transformers' own
   ``model(..., output_attentions=True)`` (eager) on the same ids. Each runs in its own subprocess;
   the peak is the kernel's high-water mark of resident memory (VmHWM, reset after the model is
   built), printed with and without the model's weights. Target: <= 1/4.
2. ``lm.analyze`` time against a bare forward of transformers' default load (SDPA attention,
   no attentions returned), interleaved in this process. Target: <= 1.3x.
3. One layer change, the kernel's work: ``a.attention(l)`` for a layer not yet computed (plus the
   heads combined, as a view would draw them) against the same bare forward. Target: <= 1/4.

It also prints the largest difference between ``a.attention(l)`` and the eager reference's weights
at this size. Ratios are printed, never asserted. With ``--device cuda`` (and ``--dtype bfloat16``)
the same runs on a GPU, memory then being torch's peak allocation on the device.
Usage: python bench/bench_large.py [--tokens 2048] [--repeat 3] [--device cuda] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT, interleaved, sentence_of_length

SHAPE = {
    "vocab_size": 32000,
    "hidden_size": 1024,
    "intermediate_size": 2816,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 4096,
}
LAYER = 7


def build(attn_implementation: str | None = None, device: str = "cpu", dtype: str = "float32"):
    """The random Llama-shaped model (same weights every time) and a byte-level tokenizer."""
    import transformers

    from tests import tiny_models

    torch.manual_seed(0)
    tok = tiny_models.llama3_tokenizer()
    config = transformers.LlamaConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **SHAPE
    )
    if attn_implementation:
        config._attn_implementation = attn_implementation
    model = transformers.LlamaForCausalLM(config).eval()
    return model.to(device=device, dtype=getattr(torch, dtype)), tok


def _vm(field: str) -> int:
    """A VmXXX line of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS


def _peak_reset(device: str) -> int:
    """Start measuring a peak; returns the memory in use now (bytes)."""
    if device == "cpu":
        _reset_peak()
        return _vm("VmRSS")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def _peak(device: str) -> int:
    if device == "cpu":
        return _vm("VmHWM")
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def child(which: str, args: argparse.Namespace) -> None:
    """One measurement in a fresh process; writes its figures (and weights) under ``args.out``."""
    import exbert_widget as ew

    out, device = args.out, args.device
    model, tok = build("eager" if which == "reference" else None, device, args.dtype)
    if which == "engine":
        lm = ew.load_model(model=model, tokenizer=tok, device=device)
        text = sentence_of_length(lm, args.tokens)
        ids = lm.encode(text).input_ids
    else:
        ids = json.loads(Path(out, "ids.json").read_text())
    base = _peak_reset(device)
    if which == "engine":
        a = lm.analyze(text)
        weights = a.attention_tensor(LAYER)
        Path(out, "ids.json").write_text(json.dumps(a.input_ids))
    else:
        with torch.no_grad():
            output = model(input_ids=torch.tensor([ids], device=device), output_attentions=True)
        weights = output.attentions[LAYER][0]
        np.save(Path(out, "reference.npy"), weights.float().cpu().numpy())
    peak = _peak(device)
    Path(out, f"{which}.json").write_text(json.dumps({"base": base, "peak": peak, "n": len(ids)}))


def _run_child(which: str, args: argparse.Namespace, out: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    options = ["--tokens", str(args.tokens), "--device", args.device, "--dtype", args.dtype]
    subprocess.run(
        [sys.executable, __file__, "--child", which, "--out", out, *options],
        check=True,
        env=env,
    )
    return json.loads(Path(out, f"{which}.json").read_text())


def memory(args: argparse.Namespace, out: str) -> None:
    engine = _run_child("engine", args, out)  # also writes the ids for the reference
    reference = _run_child("reference", args, out)
    gib = 2**30
    how = "VmHWM" if args.device == "cpu" else "torch.cuda.max_memory_allocated"
    print(f"\n== peak memory at n = {engine['n']} (separate processes, {how}) ==")
    for label, m in (("analyze + attention(l)", engine), ("output_attentions=True", reference)):
        print(
            f"{label:<24} peak {m['peak'] / gib:6.2f} GiB   "
            f"above the loaded model {(m['peak'] - m['base']) / gib:6.2f} GiB"
        )
    total = engine["peak"] / reference["peak"]
    extra = (engine["peak"] - engine["base"]) / (reference["peak"] - reference["base"])
    print(
        f"ratio: {total:.3f} of the peak, {extra:.3f} of the memory above the model "
        f"(target <= 0.25: {'ok' if total <= 0.25 else 'MISSED'})"
    )


def speed(args: argparse.Namespace, out: str) -> None:
    import exbert_widget as ew

    tokens, repeat, device = args.tokens, args.repeat, args.device
    model, tok = build(None, device, args.dtype)
    lm = ew.load_model(model=model, tokenizer=tok, device=device)
    bare_model, _ = build(None, device, args.dtype)  # transformers' default: SDPA
    text = sentence_of_length(lm, tokens)
    ids = torch.tensor([lm.encode(text).input_ids], device=device)
    print(f"\n== time at n = {ids.shape[1]}, torch threads {torch.get_num_threads()} ==")
    print(
        f"bare forward: transformers' default load, attn_implementation="
        f"{bare_model.config._attn_implementation!r}, no attentions"
    )

    def sync():
        if device != "cpu":
            torch.cuda.synchronize()

    def bare():
        with torch.no_grad():
            bare_model(input_ids=ids)
        sync()

    def analyze():
        lm.analyze(text)
        sync()

    times = interleaved({"bare": bare, "analyze": analyze}, repeat=repeat)
    ratio = times["analyze"] / times["bare"]
    print(
        f"bare {times['bare']:7.2f} s   analyze {times['analyze']:7.2f} s   {ratio:5.2f}x "
        f"(target <= 1.30x: {'ok' if ratio <= 1.3 else 'MISSED'})"
    )
    a = lm.analyze(text)
    changes, combined = [], []
    for layer in range(repeat):  # layers not computed yet: a real change each time
        start = time.perf_counter()
        weights = a.attention_tensor(layer)
        sync()
        changes.append(time.perf_counter() - start)
        weights.float().mean(0).cpu()  # heads combined on the device, as a view would send them
        combined.append(time.perf_counter() - start)
    change, with_heads = float(np.median(changes)), float(np.median(combined))
    print(
        f"layer change: attention(l) {change:6.2f} s = {change / times['bare']:.3f} of the bare "
        f"forward; with the heads combined {with_heads:6.2f} s = "
        f"{with_heads / times['bare']:.3f} (target <= 0.25: "
        f"{'ok' if with_heads / times['bare'] <= 0.25 else 'MISSED'})"
    )
    reference = Path(out, "reference.npy")
    if reference.exists() and json.loads(Path(out, "ids.json").read_text()) == a.input_ids:
        error = float(np.abs(a.attention(LAYER) - np.load(reference)).max())
        bar = "1e-5" if args.dtype == "float32" else "none: half precision on both sides"
        print(f"max |attention({LAYER}) - eager output_attentions| = {error:.2e} (bar {bar})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--child", choices=("engine", "reference"))
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    print(f"Llama-shaped random model: {SHAPE}, {args.dtype} on {args.device}")
    with tempfile.TemporaryDirectory() as out:
        memory(args, out)
        speed(args, out)


if __name__ == "__main__":
    main()
