"""Command line: ``exbert corpus build BOOK.txt [MORE.txt ...] --model NAME_OR_PATH --out DIR``,
``exbert corpus info DIR``.

Everything that can be checked without the model (the whole source text, the output directory,
the index spec) is checked before torch, FAISS and spaCy are imported, and every error is one
line on stderr, never a traceback (set ``EXBERT_TRACEBACK=1`` to see one for an unexpected
error).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exbert", description="exbert-widget tools")
    commands = parser.add_subparsers(dest="command", required=True)
    corpus = commands.add_parser("corpus", help="build or inspect reference corpora")
    actions = corpus.add_subparsers(dest="action", required=True)

    build = actions.add_parser("build", help="build a corpus from a UTF-8 text file")
    build.add_argument(
        "source", nargs="+", help="UTF-8 .txt files (books; several make one corpus, in order)"
    )
    build.add_argument("--model", required=True, help="hub name or local model directory")
    build.add_argument("--out", required=True, help="corpus directory to write")
    build.add_argument("--index", default="auto", help="FAISS spec: auto, SQ6, SQ8, IVF4096,SQ6")
    build.add_argument("--batch-size", type=int, default=32)
    build.add_argument(
        "--spacy-model", default=None, help="spaCy pipeline (default en_core_web_sm)"
    )
    build.add_argument("--device", default=None, help="cpu (default) or cuda")
    build.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="local (default) or ray"
    )
    build.add_argument(
        "--address", default=None, help="Ray cluster to join ('auto' or host:port; default a "
        "local Ray)"
    )  # fmt: skip
    build.add_argument("--shards", type=int, default=None, help="build a sharded corpus")
    build.add_argument(
        "--resume", action="store_true", help="keep the finished shards of a stopped build"
    )
    build.add_argument("--layers", default=None, help="layers to index, e.g. 0,4,5 (default all)")
    build.add_argument(
        "--kinds", default="embedding,context", help="embedding, context or both (default)"
    )

    info = actions.add_parser("info", help="verify a corpus and print its manifest")
    info.add_argument("directory")
    info.add_argument(
        "--verify",
        choices=("manifest", "fast", "full"),
        default="manifest",
        help="manifest: read and check the manifest only, instantly (default); fast: open the "
        "corpus (structure, sizes, the token table's checksum); full: every file's checksum",
    )
    return parser


def _build(args: argparse.Namespace) -> None:
    from .corpus.text import read_source
    from .errors import CorpusSourceError

    # before the model loads (seconds to minutes): what can fail without it, before torch, FAISS
    # and spaCy are imported (seconds on a busy machine)
    source = args.source[0] if len(args.source) == 1 else [Path(p) for p in args.source]
    text = read_source(source)
    if not text.paragraphs:
        raise CorpusSourceError(
            f"corpus source {' '.join(args.source)!r} holds no running text (only headings or "
            "nothing)"
        )
    from .corpus.index_spec import IndexSpec
    from .corpus.out_dir import check_out_dir

    check_out_dir(args.out)
    IndexSpec.parse(args.index)
    from .corpus.build import build_corpus
    from .models import load_model

    layers = _int_list(args.layers) if args.layers else None
    if args.engine == "ray":
        from .corpus.ray_build import connect

        connect(args.address)  # an unreachable cluster or no Ray: before the model loads
    lm = load_model(args.model, device=args.device)
    corpus = build_corpus(
        source,
        lm,
        args.out,
        spacy_model=args.spacy_model,
        batch_size=args.batch_size,
        index=args.index,
        engine=args.engine,
        address=args.address,
        shards=args.shards,
        resume=args.resume,
        layers=layers,
        kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()),
    )
    counts = corpus.manifest["counts"]
    print(f"Built {args.out}: {counts['sentences']} sentences, {counts['tokens']} tokens.")


def _int_list(text: str) -> list[int]:
    from .errors import InputError

    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--layers takes layer numbers such as 0,4,5, got {text!r}.") from None


def _info(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .corpus import manifest
    from .errors import CorpusError

    root = Path(args.directory)
    if not root.is_dir():
        raise CorpusError(f"No corpus at {str(root)!r}: not a directory.")
    if args.verify == "manifest":  # no FAISS, HDF5 or pandas to import: answers at once
        print(json.dumps(manifest.read(root), indent=2))
        return
    from .corpus.store import Corpus

    with Corpus.open(root, verify=args.verify) as corpus:
        print(json.dumps(corpus.manifest, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``exbert`` command: 0 on success, 2 on an error the message explains,
    1 on an unexpected one."""
    args = _parser().parse_args(argv)
    from .errors import ExbertError

    try:
        if args.action == "build":
            _build(args)
        else:
            _info(args)
    except BrokenPipeError:
        # the reader went away (``exbert corpus info DIR | head``): nothing of ours failed; stdout
        # now points at devnull, so that Python's flush at exit does not fail on it again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a command killed by the closed pipe would end
    except (ExbertError, ValueError, OSError) as exc:
        print(f"exbert: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("exbert: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("EXBERT_TRACEBACK"):
            raise
        print(
            f"exbert: unexpected error: {type(exc).__name__}: {_one_line(exc)} (set "
            "EXBERT_TRACEBACK=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
