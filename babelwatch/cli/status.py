"""``babelwatch status``: one look at a running deployment, like ``kafka-consumer-groups`` plus
``amtool``: lag per partition and the members of the worker's and the notifier's groups, dead
letters and late events of the last hour, active alerts, and the health of each dependency and
process (``--json`` for scripts). Exit status 0 when everything answers, 1 otherwise."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("status", help="lag per partition, group members, dead letters and late events of the "
                                      "last hour, active alerts, health of each dependency (--json)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of tables")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per check")
    p.add_argument("--max-read", type=int, default=10_000,
                   help="records read per topic to break the last hour down by reason/topic")
    p.set_defaults(run=run)


def run(args, settings) -> int:
    import asyncio

    report = asyncio.run(gather(settings, args.timeout, args.max_read))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report)
    return 0 if all(h["ok"] for h in report["health"].values()) else 1


async def gather(settings, timeout: float = 5.0, max_read: int = 10_000) -> dict:
    """Every figure of the report; a part that cannot be read says why instead of failing the rest."""
    import asyncio

    s = settings
    events_group = getattr(s, "events_group", "") or f"{s.app_id}-events"
    notifier_group = s.alerting_group or f"{s.app_id}-notifier"
    health, lags, groups = {}, {}, {}
    health["redis"] = await _check(_redis_ok(s), timeout)
    health["triton"] = await _check(_triton_ok(s), timeout)
    health["kafka"] = await _check(_kafka_ok(s, timeout), timeout)
    health["notifier"] = await _check(_http_ready(f"http://{s.api_host}:{s.api_port}/ready"), timeout)
    workers = await _worker_probes(s, timeout)
    health["workers"] = {"ok": any(w["ready"] for w in workers), "detail": workers}
    report: dict = {"health": health, "lag": lags, "groups": groups, "last_hour": {}, "active_alerts": []}
    if health["kafka"]["ok"]:
        from stream.lag import group_lag, group_members

        for name, topic, group in (("events", s.topic_events, events_group),
                                   ("alerts", s.topic_alerts, notifier_group)):
            lags[name] = await _part(lambda: group_lag(s, topic, group, timeout), [],
                                     lambda rows: [r.as_dict() for r in rows])
            groups[name] = {"group": group, **await _part(lambda: group_members(s, group), {})}
        for name, topic, field in (("dead_letters", s.topic_deadletter, "reason"), ("late", s.topic_late, "topic")):
            report["last_hour"][name] = await _part(lambda: _last_hour(s, topic, field, max_read, timeout), {})
    if health["redis"]["ok"]:
        report["active_alerts"] = await _part(lambda: _active_alerts(s), [])
    await asyncio.sleep(0)
    return report


async def _part(make, empty, shape=lambda x: x):
    try:
        return shape(await make())
    except Exception as e:  # noqa: BLE001 - the rest of the report still stands
        return {"error": type(e).__name__} if isinstance(empty, dict) else [{"error": type(e).__name__}]


async def _check(coro, timeout: float) -> dict:
    import asyncio

    try:
        ok = bool(await asyncio.wait_for(coro, timeout))
        return {"ok": ok, "detail": "up" if ok else "not ready"}
    except Exception as e:  # noqa: BLE001 - the kind of failure only, never an address or a message
        return {"ok": False, "detail": type(e).__name__}


async def _redis_ok(s) -> bool:
    from workers.redis_client import async_redis

    r = async_redis(s)  # TLS and the ACL user from Settings
    try:
        return bool(await r.ping())
    finally:
        await r.aclose()


async def _triton_ok(s) -> bool:
    import tritonclient.grpc.aio as grpcclient

    c = grpcclient.InferenceServerClient(s.triton_url)
    try:
        return bool(await c.is_model_ready(s.triton_model))
    finally:
        await c.close()


async def _kafka_ok(s, timeout: float) -> bool:
    from stream import clients

    c = clients.async_consumer(s, request_timeout_ms=int(timeout * 1000))
    try:
        await c.start()
        return s.topic_events in await c.topics()
    finally:
        await c.stop()


async def _http_ready(url: str) -> bool:
    import httpx

    async with httpx.AsyncClient(timeout=3) as c:
        return (await c.get(url)).status_code == 200


async def _worker_probes(s, timeout: float) -> list[dict]:
    """Each worker process on this host: its port, ready and live (the port range of the settings)."""
    import httpx

    if not s.worker_metrics_port:
        return []
    out = []
    async with httpx.AsyncClient(timeout=min(timeout, 2.0)) as c:
        for port in range(s.worker_metrics_port, s.worker_metrics_port + s.worker_metrics_ports):
            base = f"http://{s.worker_metrics_host}:{port}"
            try:
                ready = await c.get(base + "/ready")
                live = await c.get(base + "/live")
            except httpx.HTTPError:
                continue
            out.append({"port": port, "ready": ready.status_code == 200, "live": live.status_code == 200,
                        "reason": ready.json().get("reason") if ready.status_code != 200 else "ok",
                        "live_reason": live.json().get("reason")})
    return out


async def _last_hour(s, topic: str, field: str, max_read: int, timeout: float) -> dict:
    """Records of ``topic`` from the last hour: how many, and (of the first ``max_read``) per ``field``."""
    import time
    from collections import Counter

    import orjson
    from aiokafka import TopicPartition

    from stream import clients

    reader = clients.async_consumer(s, fetch_max_wait_ms=100)
    await reader.start()
    try:
        await reader.topics()
        parts = sorted(reader.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return {"count": 0, "by": {}}
        since_ms = int((time.time() - 3600) * 1000)
        starts = await reader.offsets_for_times({tp: since_ms for tp in tps})
        reader.assign(tps)
        wanted = {}
        for tp in tps:
            found = starts.get(tp)
            if found is None:  # nothing that recent here
                continue
            reader.seek(tp, found.offset)
            wanted[tp] = found.offset
        count, read, by = 0, 0, Counter()
        done: set = set()
        deadline = time.monotonic() + timeout
        while wanted and len(done) < len(wanted) and time.monotonic() < deadline:
            got = await reader.getmany(timeout_ms=300, max_records=1000)
            for tp in wanted:
                hw = reader.highwater(tp)
                if hw is not None and (await reader.position(tp)) >= hw:
                    done.add(tp)
            for tp, msgs in got.items():
                for m in msgs:
                    if m.timestamp < since_ms:
                        continue
                    count += 1
                    if read < max_read:
                        read += 1
                        try:
                            by[str(orjson.loads(m.value).get(field))] += 1
                        except Exception:  # noqa: BLE001 - a record we cannot read is still counted
                            by["unreadable"] += 1
            if read >= max_read:
                break
        complete = len(done) == len(wanted) and read < max_read
        return {"count": count, "by": dict(by.most_common(20)), "complete": complete}
    finally:
        await reader.stop()


async def _active_alerts(s) -> list[dict]:
    from workers.redis_client import async_redis

    from workers.alerting.state_store import RedisAlertStateStore

    r = async_redis(s)  # TLS and the ACL user from Settings
    try:
        alerts = await RedisAlertStateStore(r, s.redis_prefix).active()
    finally:
        await r.aclose()
    return [{"state": a.state, "labels": a.labels, "active_since": a.active_since, "fired_at": a.fired_at,
             "summary": a.annotations.get("summary", "")}
            for a in sorted(alerts, key=lambda a: -(a.last_active_at or 0.0))]


def print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title="health")
    for col in ("part", "ok", "detail"):
        t.add_column(col)
    for name, h in report["health"].items():
        detail = h["detail"] if isinstance(h["detail"], str) else ", ".join(
            f":{w['port']} ready={w['ready']} live={w['live']} ({w['reason']})" for w in h["detail"]) or "none found"
        t.add_row(name, "yes" if h["ok"] else "NO", detail)
    con.print(t)
    for name, rows in report["lag"].items():
        group = report["groups"].get(name, {})
        members = group.get("members")
        t = Table(title=f"{name}: group {group.get('group')} ({group.get('state', group.get('error', '?'))}, "
                        f"{len(members) if isinstance(members, list) else '?'} member(s))")
        for col in ("topic", "partition", "committed", "end", "lag"):
            t.add_column(col)
        for r in rows:
            if "error" in r:
                t.add_row(r["error"], "", "", "", "")
            else:
                t.add_row(r["topic"], str(r["partition"]), str(r["committed"]), str(r["end"]), str(r["lag"]))
        con.print(t)
    for name, h in report["last_hour"].items():
        if "error" in h:
            con.print(f"{name}, last hour: {h['error']}")
        else:
            by = ", ".join(f"{k} {v}" for k, v in h["by"].items())
            con.print(f"{name}, last hour: {h['count']}" + (f" ({by})" if by else ""))
    t = Table(title=f"active alerts: {len(report['active_alerts'])}")
    for col in ("state", "detector", "topic", "language", "since", "summary"):
        t.add_column(col)
    for a in report["active_alerts"]:
        if "error" in a:
            t.add_row(a["error"], "", "", "", "", "")
            continue
        lab = a["labels"]
        t.add_row(a["state"], lab.get("detector", ""), lab.get("topic", ""), lab.get("language", ""),
                  str(a["active_since"]), str(a["summary"])[:80])
    con.print(t)
