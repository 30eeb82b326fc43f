"""Command line: ``exbert corpus build BOOK.txt --model NAME_OR_PATH --out DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exbert", description="exbert-widget tools")
    commands = parser.add_subparsers(dest="command", required=True)
    corpus = commands.add_parser("corpus", help="build or inspect reference corpora")
    actions = corpus.add_subparsers(dest="action", required=True)

    build = actions.add_parser("build", help="build a corpus from a UTF-8 text file")
    build.add_argument("source", help="a UTF-8 .txt file (a book, one or more paragraphs)")
    build.add_argument("--model", required=True, help="hub name or local model directory")
    build.add_argument("--out", required=True, help="corpus directory to write")
    build.add_argument("--index", default="auto", help="FAISS spec: auto, SQ6, SQ8, IVF4096,SQ6")
    build.add_argument("--batch-size", type=int, default=32)
    build.add_argument(
        "--spacy-model", default=None, help="spaCy pipeline (default en_core_web_sm)"
    )
    build.add_argument("--device", default=None, help="cpu (default) or cuda")

    info = actions.add_parser("info", help="print a corpus manifest")
    info.add_argument("directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``exbert`` command."""
    args = _parser().parse_args(argv)
    from . import Corpus, ExbertError, build_corpus, load_model

    try:
        if args.action == "build":
            lm = load_model(args.model, device=args.device)
            corpus = build_corpus(
                args.source,
                lm,
                args.out,
                spacy_model=args.spacy_model,
                batch_size=args.batch_size,
                index=args.index,
            )
            counts = corpus.manifest["counts"]
            print(f"Built {args.out}: {counts['sentences']} sentences, {counts['tokens']} tokens.")
        else:
            print(json.dumps(Corpus.open(args.directory).manifest, indent=2))
    except (ExbertError, ValueError, FileNotFoundError) as exc:
        print(f"exbert: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
