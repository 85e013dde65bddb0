"""contracts.keys.RedisKeys: the key formats are pinned (data written by earlier versions stays
readable) and the pieces the Lua scripts build keys from agree with the Python methods."""
from __future__ import annotations

import pytest

from contracts.keys import RedisKeys

K = RedisKeys("bw")


def test_every_key_keeps_its_format():
    assert {
        "window": K.window("300/60", "TSLA", "en", 1200),
        "topics": K.topics,
        "langs": K.langs("TSLA"),
        "watermarks": K.watermarks,
        "offsets": K.offsets,
        "topic_ids": K.topic_ids,
        "stats": K.stats,
        "closed_outbox": K.closed_outbox,
        "detector": K.detector("60", "TSLA", "*"),
        "alert": K.alert("fp1"),
        "alerts_live": K.alerts_live,
        "alerts_outbox": K.alerts_outbox,
        "alerts_history": K.alerts_history,
        "delivered": K.delivered("hook", "ev-1"),
        "notified": K.notified("hook", "fp1"),
        "routes": K.routes,
        "silences": K.silences,
        "config_version": K.config_version,
        "lock": RedisKeys.lock(K.closed_outbox),
    } == {
        "window": "bw:w:300/60:TSLA:en:1200",
        "topics": "bw:topics",
        "langs": "bw:langs:TSLA",
        "watermarks": "bw:wm",
        "offsets": "bw:offsets",
        "topic_ids": "bw:topic_ids",
        "stats": "bw:stats",
        "closed_outbox": "bw:closed:outbox",
        "detector": "bw:det:60:TSLA:*",
        "alert": "bw:alert:fp1",
        "alerts_live": "bw:alerts:live",
        "alerts_outbox": "bw:alerts:outbox",
        "alerts_history": "bw:alerts:history",
        "delivered": "bw:alerts:delivered:hook:ev-1",
        "notified": "bw:alerts:notified:hook:fp1",
        "routes": "bw:alerting:routes",
        "silences": "bw:alerting:silences",
        "config_version": "bw:alerting:version",
        "lock": "bw:closed:outbox:lock",
    }


def _lua_join(pieces: list[str], args: list[str]) -> str:
    """What the scripts do: p1 .. a1 .. p2 .. a2 .. ... .. p(n+1)."""
    out = pieces[0]
    for a, p in zip(args, pieces[1:]):
        out += a + p
    return out


@pytest.mark.parametrize("prefix", ["bw", "{tag}:x", "50%:y", ""])
def test_pieces_rebuild_the_same_keys(prefix):
    k = RedisKeys(prefix)
    odd = "a:b%s{c}\x00d"  # separators, format and hash-tag characters, a NUL: kept verbatim
    assert _lua_join(k.pieces(k.window), ["60", odd, "en", "120"]) == k.window("60", odd, "en", 120)
    assert _lua_join(k.pieces(k.langs), [odd]) == k.langs(odd)
    assert _lua_join(k.pieces(k.alert), [odd]) == k.alert(odd)
    assert len(k.pieces(k.window)) == 5


def test_a_prefix_with_a_nul_is_refused():
    with pytest.raises(ValueError):
        RedisKeys("bw\x00")
