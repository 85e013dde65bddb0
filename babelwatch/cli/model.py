"""``babelwatch model build``."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("model", help="model artifacts")
    msub = p.add_subparsers(dest="model", required=True)
    m = msub.add_parser("build", help="build the fusion model (convert, embed, train, export; cached) and link it")
    m.add_argument("--force", action="store_true")
    m.add_argument("--json", action="store_true", help="print {\"artifact\": PATH, \"seconds\": S} when done")
    m.set_defaults(run=build)


def build(args, settings) -> int:
    import json
    import time

    from babelwatch.cli.progress import build_steps
    from fusion_model.build import build_and_link

    t0 = time.monotonic()
    with build_steps():
        artifact = build_and_link(force=args.force)
    if args.json:
        print(json.dumps({"artifact": str(artifact), "seconds": round(time.monotonic() - t0, 1)}))
    return 0
