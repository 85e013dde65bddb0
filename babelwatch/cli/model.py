"""``babelwatch model build``."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("model", help="model artifacts")
    msub = p.add_subparsers(dest="model", required=True)
    m = msub.add_parser("build", help="build the fusion model (convert, embed, train, export; cached) and link it")
    m.add_argument("--force", action="store_true")
    m.set_defaults(run=build)


def build(args, settings) -> int:
    from fusion_model.build import build_and_link

    build_and_link(force=args.force)
    return 0
