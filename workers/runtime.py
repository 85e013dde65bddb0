"""The worker's runtime, a ``mode.Service`` (the Faust app runs it as its service): builds the
batch processor from Settings and owns its connections, the two outboxes and the alert lifecycle
(a child service whose staleness sweep hands its notes back here). ``send_alerts`` produces
CloudEvents to the alerts topic; :meth:`PipelineRuntime.drain_alerts` sends what waits in the alert
outbox after each batch (the agent calls it) and after every sweep (here). docs/design.md."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import mode
import redis.asyncio as aioredis

from fusion_model.preprocess import ImageLimits
from contracts.keys import RedisKeys
from contracts.schema import Limits
from contracts.settings import Settings
from workers.alerting.lifecycle import AlertLifecycle, Timing
from workers.alerting.state_store import RedisAlertStateStore
from workers.alerts import AlertEvaluator
from workers.detection import ClosedWindowDetection
from workers.detectors.registry import DetectorConfig
from workers.outbox import Outbox
from workers.detectors.volume_spike import VolumeSpike
from workers.images import ImageFetcher
from workers.redis_client import async_redis
from workers.scoring.triton import TritonScorer
from workers.language import LinguaIdentifier
from workers.lifetimes import Describe, TopicLifetimes
from workers.pipeline import BatchProcessor
from workers.retry import until_available
from workers.detectors.story_burst import StoryBurst
from workers.stories.redis_store import RedisStories
from workers.stories.rules import StoryRules
from workers.story_stage import StoryStage
from workers.validate import EventValidator
from workers.windows import WindowSpec, WindowStore

log = logging.getLogger("babelwatch.runtime")
Send = Callable[[list[bytes]], Awaitable[None]]


class PipelineRuntime(mode.Service):
    def __init__(self, settings: Settings, send_alerts: Send | None = None,
                 describe_topics: Describe | None = None, **service_kwargs) -> None:
        super().__init__(**service_kwargs)
        self.settings = settings
        self.send_alerts = send_alerts
        self.describe_topics = describe_topics  # None: no topic-lifetime check (workers.lifetimes)
        self.lifetimes: TopicLifetimes | None = None
        self.redis: aioredis.Redis | None = None
        self.alert_state: RedisAlertStateStore | None = None
        self.lifecycle: AlertLifecycle | None = None
        self.alerts: AlertEvaluator | None = None
        self.scorer: TritonScorer | None = None
        self.images: ImageFetcher | None = None  # only with fetch_image_urls
        self.processor: BatchProcessor | None = None
        self.outbox: Outbox | None = None  # closed windows
        self.alert_outbox: Outbox | None = None
        self.detection: ClosedWindowDetection | None = None
        self.ready = asyncio.Event()  # set when every part above is built (the agents wait for it)

    async def on_start(self) -> None:
        s = self.settings
        self.redis = async_redis(s)  # TLS/ACL from Settings
        await self.redis.ping()
        self.scorer = TritonScorer.from_settings(s)  # TLS from Settings
        await self.add_runtime_dependency(self.scorer)  # started now (waits for Triton), stopped with us
        # lingua loads its models for ~0.5 s: keep it off the event loop
        langid = await asyncio.to_thread(LinguaIdentifier, s.languages)
        self.alert_state = RedisAlertStateStore(self.redis, s.redis_prefix, history_len=s.alert_history_len)
        self.lifecycle = AlertLifecycle(
            self.alert_state,
            Timing(s.alert_for_s, s.alert_keep_firing_for_s, s.alert_repeat_interval_s),
            stale_after_s=s.alert_stale_after_s,
            sweep_interval_s=s.alert_sweep_interval_s,
            on_notify=self._on_sweep,
        )
        self.alerts = AlertEvaluator(self.lifecycle)
        if s.fetch_image_urls:
            self.images = ImageFetcher.from_settings(s)
            await self.add_runtime_dependency(self.images)
        if self.describe_topics is not None:
            self.lifetimes = TopicLifetimes(self.redis, s.redis_prefix, self.describe_topics)
            await until_available(lambda: self.lifetimes.refresh([s.topic_events]), "topic ids")
        stories = None
        if s.stories_enabled:  # the stage skips batches the model gave no embeddings (the cheap model)
            rules = StoryRules.from_settings(s)
            stories = StoryStage(RedisStories(self.redis, s.redis_prefix, rules), StoryBurst, rules.rate_tau_s)
        self.processor = BatchProcessor(
            validator=EventValidator(
                Limits(max_text_chars=s.max_text_chars, max_image_bytes=s.max_image_bytes,
                       fetch_image_urls=s.fetch_image_urls), s.max_event_bytes, s.max_future_s,
                ImageLimits.from_settings(s),
            ),
            langid=langid,
            scorer=self.scorer,
            windows=WindowStore(
                self.redis, s.window_s, s.window_retention, s.redis_prefix, s.spike_history,
                extra=[WindowSpec.parse(w) for w in s.extra_windows.split(",") if w.strip()],
                allowed_lateness_s=s.allowed_lateness_s,
            ),
            detectors=[VolumeSpike(s.spike_threshold, s.spike_min_history, s.spike_min_count)],
            alerts=self.alerts,
            images=self.images,
            lifetimes=self.lifetimes,
            stories=stories,
        )
        config = DetectorConfig.from_file(s.detectors_config) if s.detectors_config else DetectorConfig()
        keys = RedisKeys(s.redis_prefix)
        self.outbox = Outbox(self.redis, keys.closed_outbox)
        self.alert_outbox = Outbox(self.redis, keys.alerts_outbox)
        self.detection = ClosedWindowDetection(self.redis, config, self.alerts, s.redis_prefix)
        await self.add_runtime_dependency(self.lifecycle)  # started now, stopped with this service
        self.ready.set()
        log.info("pipeline ready (model %s)", self.scorer.model_id)

    async def drain_alerts(self) -> int:
        """Send waiting alert notifications (at least once; the notifier drops repeated ids)."""
        if self.alert_outbox is None or self.send_alerts is None:
            return 0
        return await self.alert_outbox.drain(self.send_alerts)

    async def _on_sweep(self, notes) -> None:
        if self.alerts is not None:
            await self.alerts.on_sweep(notes)
        await self.drain_alerts()

    async def on_stop(self) -> None:
        if self.lifecycle is not None:
            await self.lifecycle.stop()  # before Redis closes under its sweep
        if self.scorer is not None:
            await self.scorer.stop()
        if self.redis is not None:
            await self.redis.aclose()
        self.processor = None
