"""The contract between the kernel and the view, declared once.

Synced state comes in slices, one ``HasTraits`` class per part of the view; :class:`ViewState`
joins them and ``ExBertView`` inherits it. A trait the user controls is writable from the
browser; a trait the kernel computes is ``read_only``: Python code sets it with ``set_trait``
and the browser's attempts are refused. Commands (kernel work started from the view, with a
reply) are declared here too, their arguments and results as ``TypedDict`` types.

``js/src/generated/contract.ts`` and the tables in ``notes/CONTRACT.md`` are generated from this
module by ``python -m exbert_widget.widget.contract``; a test fails when they are stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict

import numpy as np
import traitlets as t

from .traits import JSON, Flag, ListOf, NDArray, OptionalInt, StrictFloat, StrictInt, Text
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

DEFAULT_SENTENCE = "The girl ran to a local pub to escape the din of her city."
SEARCH_K_MAX = 1000
# The most predictions per layer the lens panel may ask for: the reply is JSON, and a whole
# vocabulary per layer would be megabytes (view.logit_lens in Python has no such cap).
LENS_TOP_K_MAX = 100

Kind = Literal["bidirectional", "autoregressive", "seq2seq"]
AttentionMode = Literal["all_heads", "combined"]
SearchBy = Literal["embedding", "context"]
Measure = Literal["attention", "norm", "rollout"]
Compare = Literal["", "unmasked", "model", "side"]
TopK = list[list[tuple[str, float]]]
PairFilter = Literal["all", "A->A", "A->B", "B->A", "B->B"]
PAIR_FILTERS: tuple[str, ...] = ("all", "A->A", "A->B", "B->A", "B->B")
Part = Literal["encoder", "decoder", "cross"]
PARTS: tuple[str, ...] = ("encoder", "decoder", "cross")


class Hit(TypedDict):
    """One corpus hit as the view draws it (``view.hits`` holds the same as a DataFrame).

    ``token_spans`` and ``word_spans`` give, per token of the hit sentence, its characters and
    those of the word it lies in (``[-1, -1]`` for special tokens, and for every token of a
    corpus that stores no offsets): the view draws words, each piece its own span.
    """

    sentence_id: int
    token_index: int
    score: float
    token: str
    pos: str
    dep: str
    ent: str
    sentence: str
    tokens: list[str]
    token_pos: list[str]
    token_dep: list[str]
    token_ent: list[str]
    special: list[bool]
    max_att_index: int
    max_att_token: str
    max_att_pos: str
    max_att_dep: str
    max_att_ent: str
    max_att_offset: int
    att_offset: int
    att_length: int
    describes_next: bool
    whole_word: str
    token_spans: list[tuple[int, int]]
    word_spans: list[tuple[int, int]]
    next_token: NotRequired[str]
    next_pos: NotRequired[str]
    next_dep: NotRequired[str]
    next_ent: NotRequired[str]


class Summaries(TypedDict, total=False):
    """Label counts of the last hits: ``{"match" | "max_att": {field: {label: count}}}``."""

    match: dict[str, dict[str, int]]
    max_att: dict[str, dict[str, int]]


# -- state slices ---------------------------------------------------------------------------------


class ControlsState(t.HasTraits):
    """The control bar: sentence, layer, threshold, special tokens; the model; messages."""

    sentence = Text(DEFAULT_SENTENCE, help="The analysed text.").tag(sync=True)
    layer = StrictInt(0, help="Layer shown, 0-based.").tag(sync=True)
    threshold = StrictFloat(
        0.7, help="Per token, keep its strongest edges up to this share of the row, in (0, 1]."
    ).tag(sync=True)
    hide_special = Flag(
        True, help="Drop special tokens' rows and columns from the drawing, renormalise rows."
    ).tag(sync=True)
    model_name = Text("", read_only=True, help="Short label of the model.").tag(sync=True)
    model_description = Text(
        "",
        read_only=True,
        help='What the model is, where its name does not say it all (the demo head); "" = none.',
    ).tag(sync=True)
    num_layers = StrictInt(0, read_only=True, help="Layers of the model.").tag(sync=True)
    truncated = Flag(
        False, read_only=True, help="The sentence was cut to the model's maximum length."
    ).tag(sync=True)
    error = Text("", read_only=True, help='The last refused edit from the view ("" = none).').tag(
        sync=True
    )


class AttentionState(t.HasTraits):
    """The attention panel: token columns, heads grids, lines."""

    heads = ListOf(StrictInt(), help="Heads combined by their mean (sorted, unique).").tag(
        sync=True
    )
    head_weights = ListOf(
        StrictFloat(),
        default_value=None,
        allow_none=True,
        help="One weight per head (any linear combination), or null to use `heads`.",
    ).tag(sync=True)
    masked = ListOf(StrictInt(), help="Token indices replaced by the mask token.").tag(sync=True)
    selected = OptionalInt(help="Selected token index, or null.").tag(sync=True)
    tokens = ListOf(Text(), read_only=True, help="All tokens, special ones included.").tag(
        sync=True
    )
    special = ListOf(Flag(), read_only=True, help="Which tokens are special.").tag(sync=True)
    kind = JSON(Kind, "bidirectional", read_only=True, help="How the model reads.").tag(sync=True)
    num_heads = StrictInt(0, read_only=True, help="Heads per layer.").tag(sync=True)
    has_lm_head = Flag(False, read_only=True, help="The model predicts tokens.").tag(sync=True)
    top_k = JSON(
        TopK, [], read_only=True, help="Per position, [token, probability] pairs, best first."
    ).tag(sync=True)
    generated = ListOf(
        Flag(), read_only=True, help="Which tokens the model wrote (view.generate); all false else."
    ).tag(sync=True)
    attention_mode = JSON(
        AttentionMode,
        "all_heads",
        read_only=True,
        help="all_heads: `attention` holds every head, the view combines; combined (long "
        "inputs): the kernel sends `lines` and `head_summary` instead.",
    ).tag(sync=True)
    attention = NDArray(
        "float16",
        ("num_heads", "n", "n"),
        read_only=True,
        help="Raw attention of `layer`, every head; rows sum to 1 over all tokens "
        "(all_heads mode, else null).",
    ).tag(sync=True)
    lines = NDArray(
        "uint16",
        ("count", 2),
        read_only=True,
        help="Combined mode: the lines drawn (heads combined, hidden tokens removed, threshold "
        "cut), [column, round(weight / lines_scale * 65535)] each, row by row, strongest first.",
    ).tag(sync=True)
    lines_rows = NDArray(
        "int32",
        ("rows",),
        read_only=True,
        help="Combined mode: row i's lines are lines[lines_rows[i]:lines_rows[i + 1]].",
    ).tag(sync=True)
    lines_scale = StrictFloat(
        0.0, read_only=True, help="Combined mode: the weight of the strongest line."
    ).tag(sync=True)
    head_summary = NDArray(
        "float16",
        (2, "n", "num_heads"),
        read_only=True,
        help="Combined mode, for the heads grids: [0, i, h] head h's strongest attention from "
        "token i, [1, j, h] its mean attention to token j (hidden tokens removed).",
    ).tag(sync=True)


class SearchState(t.HasTraits):
    """The corpus-search panel: hits, their attention, label summaries."""

    search_k = StrictInt(50, help=f"Hits per search, 1..{SEARCH_K_MAX}.").tag(sync=True)
    has_corpus = Flag(False, read_only=True, help="A corpus is attached.").tag(sync=True)
    hit_list = JSON(list[Hit], [], read_only=True, help="The last search's hits.").tag(sync=True)
    hits_attention = NDArray(
        "float16",
        ("total",),
        read_only=True,
        help="Hit i's attention row is [att_offset, att_offset + att_length).",
    ).tag(sync=True)
    summaries = JSON(Summaries, {}, read_only=True, help="Label counts of the hits.").tag(sync=True)


class ReportRelation(TypedDict):
    """One relation of the head report: its instances, and whether they are few (< 100)."""

    relation: str
    count: int
    few: bool


class HeadReportView(TypedDict, total=False):
    """The head report as the heatmap draws it: per relation and direction, ``layers × heads``
    accuracies row by row (layer-major), and the best fixed-offset baseline."""

    num_layers: int
    num_heads: int
    relations: list[ReportRelation]
    directions: list[str]
    accuracy: dict[str, dict[str, list[float]]]
    baseline: dict[str, dict[str, tuple[int, float]]]


class BeyondState(t.HasTraits):
    """Beyond attention weights: the measure drawn, differences, a compare model, head report."""

    measure = JSON(
        Measure,
        "attention",
        help="What the lines show: attention weights, value-weighted norms (Kobayashi et al. "
        "2020) or rollout (Abnar & Zuidema 2020); rows normalised for drawing.",
    ).tag(sync=True)
    compare = JSON(
        Compare,
        "",
        help='The second panel: "" (or None) none, "unmasked" Δ against the sentence without '
        'its mask, "model" Δ against the compare model, "side" the compare model beside it.',
    ).tag(sync=True)
    compare_model_name = Text(
        "", read_only=True, help='Label of the compare model ("" = none).'
    ).tag(sync=True)
    compare_note = Text(
        "", read_only=True, help='Why the second panel draws nothing, or what it shows ("" = none).'
    ).tag(sync=True)
    compare_lines = NDArray(
        "float32",
        ("count", 3),
        read_only=True,
        help="The second panel's lines, [from, to, value] each, row by row, strongest first; "
        "value < 0: less attention than the reference (Δ views).",
    ).tag(sync=True)
    compare_top_k = JSON(
        list[list[tuple[str, float, float]]],
        [],
        read_only=True,
        help="Per position, [token, probability, reference probability]: the shown analysis' "
        "top k with the reference's probability of the same token.",
    ).tag(sync=True)
    report = JSON(
        HeadReportView, {}, read_only=True, help="The head report for the heatmap ({} = none)."
    ).tag(sync=True)


class PairsPartsState(t.HasTraits):
    """Sentence pairs (the second sentence, the pair filter) and encoder–decoder models (the
    target, the part shown)."""

    sentence_b = Text(
        "", help='The second sentence of a pair ("" = no pair); the tokenizer joins the two.'
    ).tag(sync=True)
    takes_pair = Flag(
        False,
        read_only=True,
        help="The model takes a second sentence: its tokenizer has a pair convention (a "
        "separator between the two), and it is not an encoder–decoder model.",
    ).tag(sync=True)
    pair_filter = JSON(
        PairFilter,
        "all",
        help="Lines drawn: all, or only from one segment's tokens (rows) to one segment's "
        "(columns), A the sentence, B sentence_b.",
    ).tag(sync=True)
    segments = ListOf(
        StrictInt(), read_only=True, help="Per token, 0 (sentence A) or 1 (sentence B)."
    ).tag(sync=True)
    target = Text(
        "",
        help='Encoder–decoder models: the target text ("" = the model\'s greedy output).',
    ).tag(sync=True)
    part = JSON(
        Part,
        "encoder",
        help="Encoder–decoder models: the attention shown: encoder (source → source), decoder "
        "(target → target) or cross (target rows → source columns).",
    ).tag(sync=True)
    parts = ListOf(
        Text(), read_only=True, help="The parts the model has ([] for a single stack)."
    ).tag(sync=True)
    target_text = Text(
        "", read_only=True, help="Encoder–decoder models: the target analysed (given or generated)."
    ).tag(sync=True)
    target_generated = Flag(
        False, read_only=True, help='The target was generated by the model (target is "").'
    ).tag(sync=True)
    row_span = ListOf(
        StrictInt(),
        read_only=True,
        help="[start, stop): the tokens of the left column (rows) in this part; [] = all. "
        "Encoder–decoder tokens are the source's, then the target's.",
    ).tag(sync=True)
    column_span = ListOf(
        StrictInt(),
        read_only=True,
        help="[start, stop): the tokens of the right column (columns) in this part; [] = all.",
    ).tag(sync=True)


SLICES: tuple[type[t.HasTraits], ...] = (
    ControlsState,
    AttentionState,
    SearchState,
    PairsPartsState,
    BeyondState,
)


class ViewState(ControlsState, AttentionState, SearchState, PairsPartsState, BeyondState):
    """Every synced trait of the view."""


# -- commands -------------------------------------------------------------------------------------


class SearchArgs(TypedDict):
    by: SearchBy
    k: int
    skip_own_sentence: NotRequired[bool]
    max_per_sentence: NotRequired[int | None]


class SearchResult(TypedDict):
    count: int


class LoadHitArgs(TypedDict):
    index: int


class LoadHitResult(TypedDict):
    sentence: str
    selected: int | None


class GenerateArgs(TypedDict):
    max_new_tokens: int


class GenerateResult(TypedDict):
    sentence: str
    generated: int


class HeadLinesArgs(TypedDict):
    head: int


class HeadLinesResult(TypedDict):
    """One head's lines alone (combined mode), keyed by what they were computed for."""

    head: int
    layer: int
    threshold: float
    hide_special: bool
    lines: np.ndarray
    rows: np.ndarray
    scale: float


class HeadReportArgs(TypedDict):
    refresh: bool


class HeadReportResult(TypedDict):
    rows: int


class ReapplyArgs(TypedDict):
    names: list[str]


class ReapplyResult(TypedDict):
    error: str


# Defaults of optional command arguments (and of the Python methods behind them); generated into
# the view so its controls start from the same values. A varied first list of hits: the view's
# own sentence left out, at most two hits from one sentence.
SKIP_OWN_SENTENCE = True
MAX_PER_SENTENCE = 2
MAX_NEW_TOKENS = 20
DEFAULTS: dict[str, object] = {
    "skip_own_sentence": SKIP_OWN_SENTENCE,
    "max_per_sentence": MAX_PER_SENTENCE,
    "max_new_tokens": MAX_NEW_TOKENS,
}


# Seconds between the kernel's heartbeats while a command runs (commands.py); the view gives a
# command up after ten of them in silence (NO_REPLY_MS in js/src/core/commands.ts), so a kernel
# slowed by load still beats well inside the limit, and a long command is never cut.
HEARTBEAT_S = 2


@dataclass(frozen=True)
class Command:
    """A request from the view with a reply: ``args`` and ``result`` are TypedDict types."""

    args: type
    result: type
    doc: str


COMMANDS: dict[str, Command] = {
    "search": Command(
        SearchArgs,
        SearchResult,
        f"Search the corpus with the selected token (k in 1..{SEARCH_K_MAX}); sets hit_list. "
        "skip_own_sentence leaves out corpus sentences equal to the view's; max_per_sentence "
        "caps the hits from one sentence (null: no cap).",
    ),
    "load_hit": Command(
        LoadHitArgs,
        LoadHitResult,
        "Load hit `index`'s sentence, clear the mask, select the matched token.",
    ),
    "generate": Command(
        GenerateArgs,
        GenerateResult,
        "Append the model's greedy continuation to the sentence (decoders); marks `generated`.",
    ),
    "head_lines": Command(
        HeadLinesArgs,
        HeadLinesResult,
        "Combined mode: the lines of one head alone, for the layer, threshold and hidden tokens "
        "in effect.",
    ),
    "head_report": Command(
        HeadReportArgs,
        HeadReportResult,
        "Compute (or load from the corpus's cache) the head report of the view's corpus; sets "
        "report.",
    ),
    "reapply": Command(
        ReapplyArgs,
        ReapplyResult,
        "The view applied the kernel's own values of the user traits `names` (an unchanged box, "
        "which sends no state): they go through the browser-update path again, so an accepted "
        "update clears `error`; returns the error after.",
    ),
    "model_view": Command(
        ModelViewArgs,
        ModelViewResult,
        "Every layer × head's attention as a uint8 thumbnail [layers, heads, s, s] (s <= 64), "
        "hidden tokens removed, each scaled to its strongest cell.",
    ),
    "logit_lens": Command(
        LogitLensArgs,
        LogitLensResult,
        "The logit lens at token `position`: each layer's top-k predictions (top_k in "
        f"1..{LENS_TOP_K_MAX}, default 5; models with an LM head).",
    ),
    "export": Command(
        ExportArgs,
        ExportResult,
        "Save the view as svg, html or png (png: rendered by this view) at `path` (default "
        "exbert-view.<format> in the kernel's working directory).",
    ),
    "png": Command(
        PngArgs,
        PngResult,
        "The view's PNG (base64) for the kernel's request `request` (view.save of a .png).",
    ),
}


def slice_traits(cls: type[t.HasTraits]) -> dict[str, t.TraitType[object, object]]:
    """The synced traits a slice declares itself, in declaration order."""
    return {
        name: value
        for name, value in vars(cls).items()
        if isinstance(value, t.TraitType) and value.metadata.get("sync")
    }


def synced_traits() -> dict[str, t.TraitType[object, object]]:
    """Every synced trait of the view, slice by slice, in declaration order."""
    return {name: trait for cls in SLICES for name, trait in slice_traits(cls).items()}


def user_traits() -> list[str]:
    """Names the browser may set."""
    return [name for name, trait in synced_traits().items() if not trait.read_only]


def computed_traits() -> list[str]:
    """Names only the kernel sets."""
    return [name for name, trait in synced_traits().items() if trait.read_only]
