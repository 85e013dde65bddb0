"""The worker's Kafka consumer waits at most the configured time for records (not Faust's 1.5 s)."""


async def test_worker_consumer_uses_configured_fetch_wait():
    from stream.app import app, settings

    aiokafka_consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert aiokafka_consumer._fetch_max_wait_ms == settings.consumer_fetch_max_wait_ms
        assert settings.consumer_fetch_max_wait_ms < 1500
    finally:
        await aiokafka_consumer.stop()  # never started: releases what the constructor made
