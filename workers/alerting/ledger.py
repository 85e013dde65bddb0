"""What each receiver lane was already told, in Redis: the redelivery filter of the notifier.

Written only AFTER a lane delivered a notification, so a notifier that dies before that leaves no
trace and the redelivered records are notified again; one that dies after it leaves the marks and
the redelivered records are skipped by the lanes that have them (and only by those). Keys
(``contracts.keys.RedisKeys``):

* ``delivered(lane, event id)`` -- the lane delivered a notification covering
  that alert event (kept :data:`DELIVERED_TTL_S`: a redelivery follows within a restart);
* ``notified(lane, fingerprint)`` -- the lane was last told that alert fires
  (set on a firing notification, removed on the resolved one; kept :data:`NOTIFIED_TTL_S`,
  refreshed by every notification listing it). After a restart the router no longer knows which
  alerts it notified; a resolved alert it cannot vouch for goes only to lanes holding this mark.
"""
from __future__ import annotations

from contracts.keys import RedisKeys

from workers.alerting.model import NotificationGroup

DELIVERED_TTL_S = 86_400
# outlives the default 4 h repeat_interval many times over: every reminder refreshes it
NOTIFIED_TTL_S = 7 * 86_400


class DeliveryLedger:
    def __init__(self, redis, prefix: str) -> None:
        self.redis = redis
        self.keys = RedisKeys(prefix)

    async def filter(self, lane: str, group: NotificationGroup) -> NotificationGroup | None:
        """``group`` as this lane should get it, or None when it holds nothing new for the lane:
        every alert event it reports was delivered here already, or all it has are resolved
        alerts this lane never heard fire."""
        ids = sorted(group.event_ids)
        unconfirmed = sorted(set(group.unconfirmed))
        if not ids and not unconfirmed:
            return group
        pipe = self.redis.pipeline(transaction=False)
        if ids:
            pipe.exists(*(self.keys.delivered(lane, i) for i in ids))
        for fp in unconfirmed:
            pipe.exists(self.keys.notified(lane, fp))
        res = await pipe.execute()
        if ids and res.pop(0) == len(ids):
            return None
        unheard = {fp for fp, known in zip(unconfirmed, res) if not known}
        if not unheard:
            return group
        alerts = [a for a in group.alerts if not (a.state == "resolved" and a.fingerprint in unheard)]
        if not alerts:
            return None
        return group.model_copy(update={
            "alerts": alerts, "status": "firing" if any(a.state == "firing" for a in alerts) else "resolved"})

    async def record(self, lane: str, group: NotificationGroup) -> None:
        """The lane delivered ``group`` (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for i in set(group.event_ids):
            pipe.set(self.keys.delivered(lane, i), 1, ex=DELIVERED_TTL_S)
        for a in group.alerts:
            if a.state == "firing":
                pipe.set(self.keys.notified(lane, a.fingerprint), 1, ex=NOTIFIED_TTL_S)
            else:
                pipe.delete(self.keys.notified(lane, a.fingerprint))
        await pipe.execute()
