"""The one configuration object. Every knob is an environment variable ``BABELWATCH_<NAME>``."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BABELWATCH_", extra="ignore")

    # --- connections -------------------------------------------------------------------------
    broker_url: str = Field("kafka://127.0.0.1:9092", description="Kafka bootstrap, kafka://host:port[,host:port]")
    redis_url: str = "redis://127.0.0.1:6379/0"
    triton_url: str = Field("127.0.0.1:8001", description="Triton gRPC endpoint host:port")
    triton_model: str = "fusion"
    triton_timeout_s: float = 30.0

    # --- topics --------------------------------------------------------------------------------
    app_id: str = "babelwatch"
    topic_events: str = "babelwatch.events"
    topic_scored: str = "babelwatch.scored"
    topic_alerts: str = "babelwatch.alerts"
    topic_deadletter: str = "babelwatch.deadletter"
    topic_late: str = "babelwatch.late"
    topic_closed_windows: str = "babelwatch.windows.closed"
    topic_partitions: int = 4

    commit_interval_s: float = Field(2.8, gt=0, description="how often consumed offsets are committed")
    consumer_fetch_max_wait_ms: int = Field(100, ge=1, le=30_000, description="longest a fetch waits for "
                                            "records (Faust's own 1500 ms is latency on brokers that hold "
                                            "empty fetches, like Tansu)")

    # --- micro-batching ------------------------------------------------------------------------
    batch_size: int = Field(256, ge=1, le=4096, description="events per micro-batch (bench/RESULTS.md)")
    batch_wait_s: float = Field(0.05, gt=0, description="longest wait to fill a batch")

    # --- language identification -------------------------------------------------------------
    languages: str = Field(
        "en,zh,ja,ko,es,fr,de,it,pt,nl,ru,ar,hi,tr,pl,sv,da,fi,nb,id,vi,th,he,cs,el,uk,ro,hu,fa",
        description="candidate languages (ISO 639-1, comma-separated) or 'all'; fewer is faster",
    )

    # --- windows -------------------------------------------------------------------------------
    window_s: int = Field(60, ge=1, description="primary tumbling window length (detectors, demo)")
    extra_windows: str = Field(
        "300,3600", description="more window shapes, comma-separated: SIZE (tumbling) or SIZE/HOP (hopping)"
    )
    allowed_lateness_s: float = Field(
        300.0, ge=0, description="events older than a topic's newest event time minus this are late"
    )
    max_future_s: float = Field(
        300.0, ge=0, le=86_400, description="events dated more than this past the worker's clock are dead-lettered "
        "(future_timestamp); the watermark never passes the worker's clock either"
    )
    window_retention: int = Field(120, ge=2, description="windows kept per key (TTL = window_s * this)")
    redis_prefix: str = "bw"

    # --- detectors -----------------------------------------------------------------------------
    detectors_config: Path | None = Field(
        None, description="JSON DetectorConfig (per-topic detectors on closed windows); default profile if unset"
    )
    spike_history: int = Field(5, ge=2, description="closed windows the volume-spike baseline uses")
    spike_min_history: int = Field(3, ge=1, description="no alert before this many closed windows")
    spike_threshold: float = Field(4.0, gt=0, description="robust z-score that fires")
    spike_min_count: int = Field(20, ge=1, description="no alert for windows smaller than this")

    # --- input limits --------------------------------------------------------------------------
    max_event_bytes: int = 2_000_000
    max_text_chars: int = 10_000
    max_image_bytes: int = 1_000_000
    # image header limits (fusion_model.preprocess.ImageLimits holds the defaults, a unit test keeps
    # these equal; the Triton models read the same BABELWATCH_* variables or config.pbtxt parameters)
    max_image_pixels: int = Field(4_194_304, ge=1, description="width x height from the header (2048 x 2048)")
    max_image_side: int = Field(8192, ge=1, description="longest image side, pixels")
    max_image_aspect: float = Field(20.0, ge=1, description="longest side / shortest side")
    image_formats: str = Field("JPEG,PNG,GIF,WEBP,BMP", description="image formats decoded, comma-separated "
                               "(Pillow names); others (TIFF, PSD, ICO, EPS, PDF, HEIF, SVG...) are refused")
    fetch_image_urls: bool = Field(False, description="fetch events' image_url (workers/images.py); off: kept, "
                                   "not fetched, and an event needs text or image_b64")
    image_fetch_timeout_s: float = Field(2.0, gt=0, description="longest a batch waits for its images; a URL "
                                         "not fetched by then is scored without its image")
    image_fetch_concurrency: int = Field(16, ge=1, le=256, description="image URLs fetched at once")
    image_fetch_allow_private: bool = Field(
        False, description="let image URLs reach private and loopback addresses (local dev, tests)"
    )
    image_fetch_allowed_networks: str = Field(
        "", description="comma-separated CIDRs image URLs may reach even though private, e.g. 10.0.7.0/24"
    )

    # --- HTTP API ------------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_token: SecretStr | None = Field(None, description="bearer token for reads and writes (scope 'write'); "
                                        "with no token here nor in api_tokens_file the API refuses everything")
    api_tokens_file: Path | None = Field(
        None, description="more tokens, one 'NAME SCOPE TOKEN' line each (SCOPE read|write, TOKEN the token or "
                          "sha256:HEX of it); re-read when the file changes, so tokens rotate without a restart"
    )
    api_max_body_bytes: int = Field(65_536, ge=1024, le=16_777_216,
                                    description="largest request body; larger ones get 413 before being read")
    api_max_streams_per_token: int = Field(8, ge=1, description="open live streams (SSE) per token; more: 429")
    api_max_streams: int = Field(256, ge=1, description="open live streams (SSE) per process, all tokens; more: 429")

    # --- alerting ------------------------------------------------------------------------------
    # lifecycle (workers/alerting/lifecycle.py): Prometheus alerting-rule semantics per label set
    alert_for_s: float = Field(0.0, ge=0, description="condition active this long before an alert fires (pending)")
    alert_keep_firing_for_s: float = Field(
        60.0, ge=0, description="a firing alert resolves only when inactive this long (flap damping, ~one window)"
    )
    alert_repeat_interval_s: float = Field(
        300.0, gt=0, description="a still-firing alert is re-sent on the alerts topic this often"
    )
    alert_stale_after_s: float = Field(
        900.0, gt=0, description="pending/firing alerts not observed this long are resolved (keep > longest window)"
    )
    alert_sweep_interval_s: float = Field(15.0, gt=0, description="how often the staleness sweep runs")
    alert_history_len: int = Field(1000, ge=0, description="alert notifications kept for GET /v1/alerts (0: none)")
    # notifier (stream/notifier.py, workers/notifier.py): subscriptions, silences, delivery
    topic_alerts_failed: str = Field("babelwatch.alerts.failed", description="deliveries that failed for good")
    alerting_allow_private: bool = Field(
        False, description="let webhooks/Alertmanager reach private and loopback addresses (local dev, tests)"
    )
    alerting_allowed_networks: str = Field(
        "", description="comma-separated CIDRs receivers may reach even though private, e.g. 10.0.5.0/24"
    )
    alerting_generator_url: str = Field(
        "urn:babelwatch:alert", description="Alertmanager generatorURL base (a dashboard URL, or a urn:)"
    )
    alerting_group: str = Field("", description="the notifier's consumer group; default '<app_id>-notifier'")

    # --- local stack ---------------------------------------------------------------------------
    run_dir: Path = REPO_ROOT / ".run"
    triton_repo: Path = REPO_ROOT / "triton_repo" / "models"
    triton_config: str = Field("", description="model configuration the local Triton serves: '' = CPU variant "
                                               "(config.pbtxt), 'gpu' = ensemble with the TensorRT engine, "
                                               "'ensemble_cpu' = that ensemble with onnxruntime for the engine")

    @property
    def bootstrap(self) -> str:
        """host:port list without the ``kafka://`` scheme, as aiokafka and kafka-python want it."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker_url.split(","))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
