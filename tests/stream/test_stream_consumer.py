"""The worker's Kafka consumer waits at most the configured time for records (not Faust's 1.5 s)."""


async def test_worker_consumer_uses_configured_fetch_wait():
    from stream.app import app, settings

    aiokafka_consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert aiokafka_consumer._fetch_max_wait_ms == settings.consumer_fetch_max_wait_ms
        assert settings.consumer_fetch_max_wait_ms < 1500
    finally:
        await aiokafka_consumer.stop()  # never started: releases what the constructor made


def test_events_topic_is_read_by_the_batch_source_not_a_faust_agent():
    """The per-event Faust path for the hot topic is gone (stream/batches.py replaces it); Faust's
    own group reads only the closed-window topic, and the source starts where Faust's group left."""
    from stream import agents
    from stream.app import app, settings

    subscribed = {t for agent in app.agents.values() for t in agent.channel.topics}
    assert settings.topic_events not in subscribed
    assert subscribed == {settings.topic_closed_windows}
    assert agents.source.topic == settings.topic_events
    assert agents.source.group != settings.app_id  # Faust's group speaks Faust's assignor protocol
    assert agents.source.legacy_group == settings.app_id
    assert agents.source.batch_size == settings.batch_size
