import pytest

from workers.language import LinguaIdentifier


@pytest.fixture(scope="module")
def langid():
    return LinguaIdentifier()


def test_detects_six_demo_languages(langid):
    texts = [
        "Apple beats estimates as iPhone sales surge, shares soar",
        "特斯拉宣布召回200万辆汽车，股价大跌",
        "トヨタ、過去最高益を更新　円安が追い風に",
        "Las acciones de Tesla caen un cinco por ciento tras el informe",
        "Airbus livre un nombre record d'avions cette année",
        "Nvidia übertrifft die Erwartungen der Analysten deutlich",
    ]
    assert langid.detect_batch(texts) == ["en", "zh", "ja", "es", "fr", "de"]


def test_unsure_or_empty_is_und(langid):
    assert langid.detect_batch(["", "  ", "ok", "🚀🚀🚀"]) == ["und", "und", "und", "und"]


def test_batch_keeps_positions(langid):
    out = langid.detect_batch(["", "Die Aktie fällt nach der Gewinnwarnung stark", ""])
    assert out == ["und", "de", "und"]
