"""``babelwatch score``."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("score", help="score JSON-lines events from stdin, one JSON line per event on stdout")
    p.add_argument("--triton", default=None, help="score on this Triton gRPC host:port instead of in-process")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--stories", action="store_true", help="also group the lines into cross-lingual stories, in "
                                                          "order, and add a `story` id to each output line")
    p.set_defaults(run=run)


def run(args, settings) -> int:
    from babelwatch.score import score

    return score(settings, triton=args.triton, batch_size=args.batch_size, stories=args.stories)
