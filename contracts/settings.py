"""The one configuration object. Every knob is an environment variable ``BABELWATCH_<NAME>``."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    # also from a .env file in the working directory (the environment wins), and from a secrets
    # directory (one file per setting, e.g. babelwatch_api_token) named by ``secrets_dir``: get_settings()
    model_config = SettingsConfigDict(env_prefix="BABELWATCH_", extra="ignore", env_file=".env",
                                      env_file_encoding="utf-8")

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
    batch_size: int = Field(1024, ge=1, le=4096, description="most events per micro-batch: one fetch of the "
                            "batch source (bench/RESULTS.md)")
    batch_wait_s: float = Field(0.05, gt=0, description="longest wait to fill a batch")

    # --- batch source of the events topic (issue 10: stream/batches.py, babelwatch worker) -----
    events_group: str = Field("", description="consumer group of the events topic's batch source; "
                              "default '<app_id>-events' (it starts where the Faust group '<app_id>' committed)")
    worker_processes: int = Field(1, ge=1, le=64, description="worker processes `babelwatch worker` runs "
                                  "(one consumer-group member each; the pipeline is CPU-bound)")

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

    # --- dashboard, CORS, logs, settings sources (issue 13; babelwatch/api, babelwatch/logs.py) ---
    api_cors_origins: str = Field("", description="origins a browser page may call the API from, comma-separated "
                                  "(e.g. https://ops.example.com); empty: none (the dashboard at / needs none)")
    dashboard_samples: int = Field(2000, ge=0, le=100_000, description="recent events `babelwatch notify` keeps "
                                   "in memory so the dashboard can show the sample events an alert cites (0: off)")
    log_format: Literal["logfmt", "json"] = Field("logfmt", description="log lines as logfmt or JSON objects")
    secrets_dir: Path | None = Field(None, description="directory of secret files, one per setting, named like "
                                     "the variable (babelwatch_api_token); their values are never logged")
    # the model build and encoder conversion (fusion_model/), read fresh through setting(): they were
    # read from the environment directly before
    model_cache: Path | None = Field(None, description="built model artifacts; default ~/.cache/babelwatch/models")
    data_cache: Path | None = Field(None, description="training-data cache; default ~/.cache/babelwatch/data")
    encoder_cache: Path | None = Field(None, description="converted encoders; default ~/.cache/babelwatch/encoders")
    model_keep: int | None = Field(None, ge=1, description="artifacts kept after a build (default 2)")
    model_threads: int = Field(0, ge=0, description="encoder threads of the model build; 0: min(2, cores)")
    text_encoder: str | None = Field(None, description="the build's text encoder: multilingual-e5-small (default), "
                                     "minilm, an HF name or a directory")
    image_encoder: str | None = Field(None, description="the build's image encoder (default efficientnet-lite0)")
    text_prefix: str = Field("", description="prefix of every text for a text encoder given by name or directory")

    # --- local stack ---------------------------------------------------------------------------
    run_dir: Path = REPO_ROOT / ".run"
    triton_repo: Path = REPO_ROOT / "triton_repo" / "models"
    triton_config: str = Field("", description="model configuration the local Triton serves: '' = CPU variant "
                                               "(config.pbtxt), 'gpu' = ensemble with the TensorRT engine, "
                                               "'ensemble_cpu' = that ensemble with onnxruntime for the engine")

    # --- observability (workers/metrics.py, workers/health.py, stream/observe.py, babelwatch status) ----------
    # the notifier and the API serve /metrics, /live and /ready on the API port; the worker on its own
    worker_metrics_host: str = Field("127.0.0.1", description="address of the worker's /metrics, /live, /ready")
    worker_metrics_port: int = Field(9400, ge=0, le=65535, description="first port of the worker's /metrics, /live, "
                                     "/ready; each worker process takes the first free one of PORT..PORT+"
                                     "worker_metrics_ports-1 (so --processes N needs no index); 0: no server")
    worker_metrics_ports: int = Field(8, ge=1, le=256, description="how many ports from worker_metrics_port to try")
    stall_after_s: float = Field(60.0, gt=0, description="liveness fails when records wait (lag > 0) and no batch "
                                 "finished for this long; a dependency that is down only makes a process unready")
    health_check_interval_s: float = Field(5.0, gt=0, description="how often Redis and Triton are checked (readiness, "
                                           "babelwatch_dependency_up)")
    metrics_max_topics: int = Field(100, ge=1, le=10_000, description="event topics a metric label keeps verbatim; "
                                    "later ones are counted as _other (bounded series)")

    # --- secured connections: Kafka, Redis, Triton (issue 12; stream/clients.py, workers/redis_client.py,
    # workers/scoring/triton.py, deploy/README.md). Passwords are SecretStr (never printed) or read from a
    # *_file on each connect, as Kubernetes mounts Secrets, so a rotated file needs no new environment.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how every Kafka client (Faust included) reaches the broker")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = Field(None, description="file holding the SASL password (wins)")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle (PEM) for the broker; unset: system CAs")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (PEM) for mTLS")
    kafka_ssl_keyfile: Path | None = Field(None, description="client key (PEM) for mTLS")
    kafka_ssl_check_hostname: bool = Field(True, description="verify the broker's name against its certificate")
    topic_replication_factor: int = Field(1, ge=1, le=32, description="replicas of every topic babelwatch creates "
                                          "(3 on a production cluster)")
    topic_min_insync_replicas: int | None = Field(None, ge=1, le=32, description="min.insync.replicas of the "
                                                  "topics babelwatch creates (with acks=all; 2 of 3 in production)")
    redis_username: str | None = Field(None, description="Redis ACL user (else the URL's, else 'default')")
    redis_password: SecretStr | None = None
    redis_password_file: Path | None = Field(None, description="file holding the Redis password (wins)")
    redis_ssl_cafile: Path | None = Field(None, description="CA for a rediss:// URL; unset: system CAs")
    redis_ssl_certfile: Path | None = Field(None, description="client certificate for Redis mTLS")
    redis_ssl_keyfile: Path | None = Field(None, description="client key for Redis mTLS")
    redis_ssl_check_hostname: bool = True
    triton_ssl: bool = Field(False, description="gRPC over TLS to Triton")
    triton_ssl_cafile: Path | None = Field(None, description="CA for Triton's certificate; unset: system CAs")
    triton_ssl_certfile: Path | None = Field(None, description="client certificate for Triton mTLS")
    triton_ssl_keyfile: Path | None = Field(None, description="client key for Triton mTLS")

    # --- stories: cross-lingual story grouping (issue 14; workers/stories/, docs/design.md "Stories") --
    # the threshold was tuned on tests/fixtures/stories/stories.jsonl (`babelwatch bench stories`)
    stories_enabled: bool = Field(True, description="the worker assigns scored events with a text embedding "
                                  "to stories (and runs story_burst); the cheap model has none, so no stories")
    story_threshold: float = Field(0.45, gt=-1, lt=1, description="cosine an event needs to the nearest active "
                                   "story's centroid to join it (else it starts a story)")
    story_max_active: int = Field(1000, ge=1, le=100_000, description="active stories kept per topic; the "
                                  "longest quiet one is dropped beyond it")
    story_quiet_s: float = Field(3600.0, gt=0, description="a story no event joined for this long (event time) "
                                 "ends; a topic's whole story state expires after this long without writes")
    story_excerpt_chars: int = Field(280, ge=16, le=4000, description="longest text excerpt of a representative")
    story_rate_tau_s: float = Field(600.0, gt=0, description="time constant of a story's decayed event rate "
                                    "(its growth rate, events per minute)")

    @model_validator(mode="after")
    def _security_is_whole(self) -> "Settings":
        # a half-configured secure connection fails at start, not at the first record
        if self.kafka_security_protocol.startswith("SASL") and not (
                self.kafka_sasl_username and (self.kafka_sasl_password or self.kafka_sasl_password_file)):
            raise ValueError("kafka_security_protocol SASL_* needs kafka_sasl_username and a password (or _file)")
        for name in ("kafka", "redis", "triton"):
            if (getattr(self, f"{name}_ssl_certfile") is None) != (getattr(self, f"{name}_ssl_keyfile") is None):
                raise ValueError(f"{name}_ssl_certfile and {name}_ssl_keyfile go together (mTLS)")
        if self.topic_min_insync_replicas and self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError("topic_min_insync_replicas cannot exceed topic_replication_factor")
        return self

    def kafka_password(self) -> str | None:
        return read_secret(self.kafka_sasl_password, self.kafka_sasl_password_file)

    def redis_secret(self) -> str | None:
        return read_secret(self.redis_password, self.redis_password_file)

    @property
    def bootstrap(self) -> str:
        """host:port list without the ``kafka://`` scheme, as aiokafka and kafka-python want it."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker_url.split(","))


def read_secret(value: SecretStr | None, path: Path | None) -> str | None:
    """A secret from its file (read now: a rotated Secret is picked up at the next connect) or its
    value; surrounding whitespace dropped (files usually end in a newline). Never logged."""
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return value.get_secret_value() if value is not None else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def setting(name: str, default=None):
    """One setting read now (environment, .env, secrets directory), not the process's cached copy:
    for the model build and conversions, which run once and must see the environment as it is."""
    value = getattr(load_settings(), name)
    return default if value is None else value


def load_settings(**overrides) -> Settings:
    """The settings from the environment, ``.env`` and, when ``secrets_dir`` is set (by either),
    that directory (the environment and ``.env`` win over it)."""
    first = Settings(**overrides)
    if first.secrets_dir is None:
        return first
    return Settings(_secrets_dir=first.secrets_dir, **overrides)
