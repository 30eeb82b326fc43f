"""Sharded corpora (issue 14), built in this process: the same sentences and token table as one
unsharded build of the same source, search equal to one index over the same codes, global
sentence ids, layer/kind selection, and the refusals (missing, extra, half-written, foreign
shards; resume of another plan)."""

from __future__ import annotations

import json
import shutil

import faiss
import numpy as np
import pandas as pd
import pytest

import exbert_widget as ew
from exbert_widget.corpus import index as ix
from exbert_widget.corpus import manifest as mf
from exbert_widget.errors import CorpusError, InputError
from tests.test_corpus import PARAGRAPHS

SOURCE = PARAGRAPHS[:10]
SHARDS = 3


@pytest.fixture(scope="module")
def plain(minilm, tmp_path_factory) -> ew.Corpus:
    return ew.build_corpus(SOURCE, minilm, tmp_path_factory.mktemp("p") / "c", progress=False)


@pytest.fixture(scope="module")
def sharded(minilm, tmp_path_factory) -> ew.Corpus:
    out = tmp_path_factory.mktemp("s") / "c"
    return ew.build_corpus(SOURCE, minilm, out, shards=SHARDS, progress=False)


def _queries(minilm):
    sentence = "The harbour was quiet at night, and the boats lay still."
    embedding, contexts = minilm.token_vectors([minilm.encode(sentence)])
    return embedding.numpy(), contexts.numpy()


def test_layout_and_same_table_as_one_build(plain, sharded):
    root = sharded.root
    assert sorted(p.name for p in (root / mf.SHARDS).iterdir()) == ["0000", "0001", "0002"]
    assert len(sharded.shards) == SHARDS
    assert sharded.sentences[:] == plain.sentences[:]
    assert [sharded.sentences[i] for i in range(len(plain.sentences))] == plain.sentences[:]
    pd.testing.assert_frame_equal(sharded.tokens, plain.tokens)
    for sid in (0, len(plain.sentences) // 2, len(plain.sentences) - 1):
        pd.testing.assert_frame_equal(sharded.sentence_tokens(sid), plain.sentence_tokens(sid))
    counts = sharded.manifest["counts"]
    assert counts["sentences"] == sum(len(s.sentences) for s in sharded.shards)
    # every shard is a corpus of its own, holding a contiguous run of the sentences
    first = sharded.shards[1]
    offset = len(sharded.shards[0].sentences)
    assert first.sentences[0] == plain.sentences[offset]


def _merged(sharded, kind: str, layer: int) -> faiss.Index:
    """One index holding every shard's codes, in shard order."""
    parts = [shard._index(kind, layer) for shard in sharded.shards]
    inners = [faiss.downcast_index(faiss.downcast_index(p).index) for p in parts]
    merged = faiss.clone_index(inners[0])
    for inner in inners[1:]:
        merged.merge_from(faiss.clone_index(inner))  # merge_from empties its argument
    dim = merged.d
    index = faiss.IndexPreTransform(ix.rotation(dim), merged)
    ix.prepare(index, sharded.manifest["nprobe"])
    return index


@pytest.mark.parametrize("kind,layer", [("embedding", 0), ("embedding", 5), ("context", 3)])
def test_search_equals_one_index_over_the_same_codes(minilm, sharded, kind, layer):
    embedding, contexts = _queries(minilm)
    merged = _merged(sharded, kind, layer)
    source = embedding if kind == "embedding" else contexts
    for token in (1, 3, 7):
        q = source[layer, token]
        ids, scores = ix.search(merged, q, 50)
        rows = sharded._index_rows[ids]
        hits = sharded.search(q, layer, by=kind, k=50)
        assert len(hits) == 50
        tokens = sharded.tokens
        np.testing.assert_array_equal(hits["sentence_id"], tokens["sentence_id"].to_numpy()[rows])
        np.testing.assert_array_equal(hits["token_index"], tokens["token_index"].to_numpy()[rows])
        np.testing.assert_allclose(hits["score"], scores, rtol=0, atol=1e-6)


def test_head_restricted_search_and_filters_on_shards(minilm, sharded, plain):
    _, contexts = _queries(minilm)
    q = contexts[2, 3]
    hits = sharded.search(q, 2, by="context", heads=[0, 5], k=20)
    assert hits["score"].is_monotonic_decreasing
    # the score is the exact restricted cosine with the decoded vector: recompute it
    m = sharded.manifest
    head_dim = m["context_size"] // m["heads"]
    mask = np.zeros(m["context_size"], bool)
    for h in (0, 5):
        mask[h * head_dim : (h + 1) * head_dim] = True
    index = sharded._index("context", 2)
    rows = sharded.tokens
    positions = {int(r): p for p, r in enumerate(sharded._index_rows)}
    for _, hit in hits.head(5).iterrows():
        row = rows.index[
            (rows.sentence_id == hit.sentence_id) & (rows.token_index == hit.token_index)
        ][0]
        decoded = ix.reconstruct(index, np.array([positions[row]]))[0]
        r, qq = np.where(mask, decoded, 0), np.where(mask, q, 0)
        expected = r @ qq / np.linalg.norm(r) / np.linalg.norm(qq)
        assert hit.score == pytest.approx(expected, abs=1e-5)
    excluded = sharded.search(q, 2, by="context", k=10, exclude_sentences=[hits.sentence_id[0]])
    assert hits.sentence_id[0] not in set(excluded.sentence_id)
    capped = sharded.search(q, 2, by="context", k=10, max_per_sentence=1)
    assert capped.sentence_id.is_unique and len(capped) == 10


def test_sentence_ids_are_the_same_on_every_open(minilm, sharded):
    embedding, _ = _queries(minilm)
    first = sharded.search(embedding[4, 2], 4, k=30)
    with ew.Corpus.open(sharded.root, verify="full") as again:
        second = again.search(embedding[4, 2], 4, k=30)
    pd.testing.assert_frame_equal(first, second)


def test_head_report_is_the_same_on_shards(minilm, sharded, plain):
    a = sharded.head_report(minilm, progress=False)
    b = plain.head_report(minilm, progress=False)
    pd.testing.assert_frame_equal(a, b)


def _copy(corpus, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(corpus.root, target)
    return target


def test_missing_extra_and_half_written_shards_are_refused(sharded, tmp_path):
    copy = _copy(sharded, tmp_path)
    shutil.rmtree(copy / "shards" / "0001")
    with pytest.raises(CorpusError, match="shards/0001 is missing"):
        ew.Corpus.open(copy)
    shutil.rmtree(copy)
    copy = _copy(sharded, tmp_path)
    shutil.copytree(copy / "shards" / "0002", copy / "shards" / "0003")
    with pytest.raises(CorpusError, match="does not list"):
        ew.Corpus.open(copy)
    shutil.rmtree(copy / "shards" / "0003")
    (copy / "shards" / "0002" / "manifest.json").unlink()
    with pytest.raises(CorpusError, match="half-written"):
        ew.Corpus.open(copy)
    shutil.rmtree(copy)
    copy = _copy(sharded, tmp_path)
    with open(copy / "shards" / "0000" / "tokens.h5", "r+b") as f:
        f.seek(-7, 2)
        f.write(b"garbage")
    with pytest.raises(CorpusError, match=r"tokens\.h5"):
        ew.Corpus.open(copy)


def test_shards_of_another_build_or_model_are_refused(sharded, tiny_dirs, tmp_path):
    other = ew.build_corpus(
        SOURCE, ew.load_model(tiny_dirs["bert"]), tmp_path / "tiny", shards=SHARDS, progress=False
    )
    other.close()
    copy = _copy(sharded, tmp_path)
    shutil.rmtree(copy / "shards" / "0001")
    shutil.copytree(other.root / "shards" / "0001", copy / "shards" / "0001")
    with pytest.raises(CorpusError, match="not a shard of this corpus"):
        ew.Corpus.open(copy)
    # a shard of the same model but another build (its manifest checksum differs)
    again = tmp_path / "again"
    shutil.copytree(sharded.root, again)
    manifest = json.loads((again / "shards/0001/manifest.json").read_text())
    manifest["build_seconds"] = 0.5
    manifest["checksum"] = mf.checksum(manifest)
    (again / "shards/0001/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusError, match="not the shard this corpus's build wrote"):
        ew.Corpus.open(again)


def test_selected_layers_and_kinds(minilm, plain, tmp_path):
    corpus = ew.build_corpus(
        SOURCE, minilm, tmp_path / "sel", layers=[1, 4], kinds=("embedding",), progress=False
    )
    assert sorted(p.name for p in (tmp_path / "sel" / "index").iterdir()) == [
        "embedding_1.faiss",
        "embedding_4.faiss",
        "rotation_384.faiss",
    ]
    embedding, contexts = _queries(minilm)
    # the same vectors and quantiser training as the full build: the same hits
    pd.testing.assert_frame_equal(
        corpus.search(embedding[4, 2], 4, k=20), plain.search(embedding[4, 2], 4, k=20)
    )
    with pytest.raises(CorpusError, match=r"indexes embedding vectors of layers 1, 4"):
        corpus.search(embedding[2, 2], 2, k=5)
    with pytest.raises(CorpusError, match=r"no context index of layer 1"):
        corpus.search(contexts[1, 2], 1, by="context", k=5)
    with pytest.raises(InputError, match="layers must be"):
        ew.build_corpus(SOURCE, minilm, tmp_path / "bad", layers=[6], progress=False)
    with pytest.raises(InputError, match="kinds must be"):
        ew.build_corpus(SOURCE, minilm, tmp_path / "bad", kinds=("values",), progress=False)
    assert not (tmp_path / "bad").exists()


def test_cli_builds_a_sharded_corpus_of_chosen_layers(tiny_dirs, tmp_path):
    from exbert_widget.cli import main

    book = tmp_path / "book.txt"
    book.write_text("\n\n".join(SOURCE), encoding="utf-8")
    out = tmp_path / "c"
    command = ["corpus", "build", str(book), "--model", tiny_dirs["bert"], "--out", str(out)]
    assert main([*command, "--shards", "2", "--layers", "0,1", "--kinds", "embedding"]) == 0
    with ew.Corpus.open(out) as corpus:
        assert len(corpus.shards) == 2
        assert corpus.manifest["indexed"] == {"layers": [0, 1], "kinds": ["embedding"]}
    # nothing unfinished to resume: a fresh build of the new plan replaces the corpus
    assert main([*command, "--shards", "2", "--resume"]) == 0
    with ew.Corpus.open(out) as corpus:
        assert "indexed" not in corpus.manifest
    assert main([*command, "--layers", "one"]) == 2


def test_resume_of_another_plan_is_refused(minilm, tmp_path):
    out = tmp_path / "c"
    partial = tmp_path / ".c.partial"
    partial.mkdir()
    (partial / "build.json").write_text('{"digest": "0", "shards": 5}')
    with pytest.raises(CorpusError, match="another plan"):
        ew.build_corpus(SOURCE, minilm, out, shards=SHARDS, resume=True, progress=False)
    assert not out.exists()


def _trained(minilm, spec: str) -> dict:
    from exbert_widget.corpus import sharded_build as sb
    from exbert_widget.corpus.text import Source

    chosen = sb.selection(minilm, [0, 5], ("embedding", "context"))
    return sb.train_quantizers(minilm, Source(paragraphs=SOURCE), ix.IndexSpec.parse(spec),
                               chosen, 20)  # fmt: skip


@pytest.mark.parametrize("spec", ["RR,SQ6", "RR,IVF16,SQ6"])
def test_quantisers_trained_side_by_side_equal_one_at_a_time(minilm, monkeypatch, spec):
    # the driver trains its indexes on one thread per core: the same indexes as one by one
    import os

    apart = _trained(minilm, spec)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    alone = _trained(minilm, spec)
    assert sorted(apart) == sorted(alone) == [(k, v) for k in ("context", "embedding")
                                               for v in (0, 5)]  # fmt: skip
    for key, index in apart.items():
        assert index.is_trained and index.ntotal == 0
        assert np.array_equal(faiss.serialize_index(index), faiss.serialize_index(alone[key]))


def test_quantisers_are_read_only_once_marked_whole(minilm, tmp_path):
    # shard builders (Ray actors) wait for the driver's quantisers: whole files or nothing,
    # and the driver's failure, instead of waiting for ever
    from exbert_widget.corpus import sharded_build as sb

    trained = _trained(minilm, "RR,SQ6")
    chosen = sb.selection(minilm, [0, 5], ("embedding", "context"))
    partial = sb.Partial(tmp_path / "c")
    partial.root.mkdir()
    assert sb.read_templates(partial.root, chosen) is None
    partial.save_templates(trained, ix.IndexSpec.parse("RR,SQ6"))
    read = sb.wait_for_templates(partial.root, chosen)
    for key, index in trained.items():
        assert np.array_equal(faiss.serialize_index(read[key]), faiss.serialize_index(index))
    partial.forget_templates()  # as before a new training: the files alone are not enough
    assert sb.read_templates(partial.root, chosen) is None
    partial.training_failed(CorpusError("the sample had no sentence"))
    assert sb.read_templates(partial.root, chosen) is None
    with pytest.raises(CorpusError, match=r"could not train .*the sample had no sentence"):
        sb.wait_for_templates(partial.root, chosen)


def test_a_sharded_fast_scan_corpus_finds_its_own_tokens(minilm, tmp_path):
    """Shards of the fast-scan code (what ``auto`` picks for large corpora) share the top's
    trained quantiser, open verified, and a corpus token's own vector finds that token first."""
    spec = "RR,IVF8,PQx4fs,SQ6"
    out = tmp_path / "fs"
    ew.build_corpus(SOURCE, minilm, out, shards=SHARDS, index=spec, progress=False)
    corpus = ew.Corpus.open(out, verify="full")
    assert corpus.manifest["index"] == spec
    assert {shard.manifest["index"] for shard in corpus.shards} == {spec}
    last = len(corpus.sentences) - 1
    for sid in (0, last // 2, last):
        table = corpus.sentence_tokens(sid)
        embedding, contexts = minilm.token_vectors([minilm.encode(corpus.sentences[sid])])
        token = int(table["token_index"].iloc[len(table) // 2])
        for kind, vectors, layer in (("embedding", embedding, 4), ("context", contexts, 2)):
            hits = corpus.search(vectors[layer, token].numpy(), layer, by=kind, k=5)
            first = hits.iloc[0]
            assert (int(first["sentence_id"]), int(first["token_index"])) == (sid, token)
            assert first["score"] > 0.98
