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


def test_scripts_that_name_their_language_skip_the_model():
    from workers.language import by_script

    assert by_script("トヨタ、過去最高益") == "ja"  # kana, even amid kanji
    assert by_script("삼성전자 주가 급등") == "ko"
    assert by_script("特斯拉 Tesla 股价大跌") == "zh"
    assert by_script("Tesla shares fall") is None


def test_candidate_languages_are_configurable():
    narrow = LinguaIdentifier(languages="en,de")
    assert narrow.detect_batch(["Die Aktie fällt nach der Gewinnwarnung stark"]) == ["de"]
    with pytest.raises(ValueError, match="no language"):
        LinguaIdentifier(languages="en,xx")
