"""``TritonScorer``: scoring through Triton, one gRPC call per micro-batch, raw text and image bytes in.

Tokenization and featurization live in the served model, so this client only packs bytes. A batch
larger than the model's ``max_batch_size`` is split into chunks sent concurrently (Triton's dynamic
batcher may merge them again). When Triton is unreachable the call is retried with backoff: the
stream pauses instead of dropping events. When the model fails a request, the error is raised and
the pipeline finds the rows that cause it (workers.isolation).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Sequence

import mode
import numpy as np
import tenacity
from tritonclient.utils import InferenceServerException

from contracts.schema import LABELS
from contracts.settings import Settings
from workers.scoring import ScoreInput, ScoreOutput, ScoringFailed, decode_outputs

log = logging.getLogger("babelwatch.inference")  # the name its log lines always had

# gRPC codes that describe the server, not the request: wait for it (an outage pauses the stream)
_WAIT_CODES = {"StatusCode.UNAVAILABLE", "StatusCode.RESOURCE_EXHAUSTED", "StatusCode.ABORTED", ""}


def grpc_tls(s: Settings) -> dict:
    """TLS arguments of tritonclient's gRPC client from ``triton_ssl*`` (file paths; the client
    reads them); empty without ``triton_ssl``."""
    if not s.triton_ssl:
        return {}
    files = {"root_certificates": s.triton_ssl_cafile, "private_key": s.triton_ssl_keyfile,
             "certificate_chain": s.triton_ssl_certfile}
    return {"ssl": True, **{k: (str(v) if v is not None else None) for k, v in files.items()}}


class TritonScorer(mode.Service):
    """The worker's Triton client, a ``mode.Service``: one gRPC channel for the process's life."""

    def __init__(self, url: str, model: str, timeout_s: float = 30.0, max_retries: int | None = None,
                 deadline_retries: int = 2, tls: dict | None = None, **service_kwargs) -> None:
        super().__init__(**service_kwargs)
        self.url = url
        self.tls = tls or {}  # InferenceServerClient's ssl/root_certificates/private_key/certificate_chain
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries  # None: retry until Triton answers (pause, never drop)
        self.deadline_retries = deadline_retries
        self.model_id = model
        self.max_batch_size = 0
        self._client = None
        self._outputs = ["PROBS", "MODALITIES"]

    @classmethod
    def from_settings(cls, s: Settings, **kw) -> "TritonScorer":
        return cls(s.triton_url, s.triton_model, timeout_s=s.triton_timeout_s, tls=grpc_tls(s), **kw)

    async def on_start(self) -> None:
        import tritonclient.grpc.aio as grpcclient

        self._client = grpcclient.InferenceServerClient(self.url, **self.tls)
        # at start, any answer but ours means "not ready yet" (server starting, model loading): wait
        meta = await self._retry(lambda: self._client.get_model_metadata(self.model, as_json=True), "metadata", True)
        config = await self._retry(lambda: self._client.get_model_config(self.model, as_json=True), "config", True)
        self.max_batch_size = int(config["config"].get("max_batch_size", 0)) or 1
        self._outputs = ["PROBS", "MODALITIES"]
        if any(o["name"] == "ERROR" for o in config["config"].get("output", [])):
            self._outputs.append("ERROR")
        if any(o["name"] == "EMBEDDING" for o in config["config"].get("output", [])):
            self._outputs.append("EMBEDDING")  # stories (issue 14): the text embedding, when declared
        self.model_id = f"{self.model}:{max(meta.get('versions') or ['1'], key=int)}"
        log.info("triton model ready", extra={"model": self.model_id, "max_batch_size": self.max_batch_size})

    async def on_stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def score(self, batch: Sequence[ScoreInput]) -> list[ScoreOutput]:
        if not batch:
            return []
        chunks = [batch[i : i + self.max_batch_size] for i in range(0, len(batch), self.max_batch_size)]
        try:
            results = await asyncio.gather(*(self._retry(lambda c=c: self._infer(c), "infer") for c in chunks))
        except InferenceServerException as exc:
            raise ScoringFailed(f"triton: {exc.status()}: {exc.message()}") from exc
        return [item for chunk in results for item in chunk]

    async def _infer(self, chunk: Sequence[ScoreInput]) -> list[ScoreOutput]:
        import tritonclient.grpc.aio as grpcclient

        n = len(chunk)
        arrays = {
            "TEXT": np.array([x.text.encode("utf-8") for x in chunk], dtype=np.object_).reshape(n, 1),
            "IMAGE": np.array([x.image or b"" for x in chunk], dtype=np.object_).reshape(n, 1),
            "LANG": np.array([x.lang.encode() for x in chunk], dtype=np.object_).reshape(n, 1),
        }
        inputs = []
        for name, arr in arrays.items():
            tensor = grpcclient.InferInput(name, list(arr.shape), "BYTES")
            tensor.set_data_from_numpy(arr)
            inputs.append(tensor)
        outputs = [grpcclient.InferRequestedOutput(name) for name in self._outputs]
        result = await self._client.infer(self.model, inputs, outputs=outputs, client_timeout=self.timeout_s)
        probs = result.as_numpy("PROBS")
        if probs is None or probs.shape != (n, len(LABELS)):
            raise RuntimeError(f"triton returned PROBS of shape {None if probs is None else probs.shape} for {n} inputs")
        errors = result.as_numpy("ERROR") if "ERROR" in self._outputs else None
        embeddings = result.as_numpy("EMBEDDING") if "EMBEDDING" in self._outputs else None  # issue 14
        return decode_outputs(probs, result.as_numpy("MODALITIES"), errors, embeddings)

    async def ready(self) -> bool:
        """Is the server live and the model ready? Tells a failing row from a failing server."""
        if self._client is None:
            return False
        try:
            return bool(await asyncio.wait_for(self._client.is_model_ready(self.model), timeout=5.0))
        except Exception:  # any failure to answer is "not ready"
            return False

    async def _retry(self, call, what: str, wait_for_any: bool = False):
        """Retry what the server's state explains; raise what the request itself caused.

        UNAVAILABLE (server down, restarting) is waited out: the stream pauses, nothing is dropped.
        A deadline is retried ``deadline_retries`` times, then raised, so a request that is slow
        because of its rows gets split by the pipeline instead of stalling it. Anything else (the
        model failed the request) is raised at once. CANCELLED is our own shutdown.
        """
        deadlines = 0

        def server_state(exc: BaseException) -> bool:
            nonlocal deadlines
            if not isinstance(exc, InferenceServerException):
                return False
            code = exc.status() or ""
            if code == "StatusCode.DEADLINE_EXCEEDED":
                deadlines += 1
                return deadlines <= self.deadline_retries
            return code != "StatusCode.CANCELLED" and (code in _WAIT_CODES or wait_for_any)

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(server_state),
            wait=tenacity.wait_exponential(multiplier=0.2, min=0.2, max=5.0),
            stop=tenacity.stop_never if self.max_retries is None else tenacity.stop_after_attempt(self.max_retries + 1),
            before_sleep=lambda st: log.warning("triton %s failed (attempt %d), retrying in %.1fs: %s", what,
                                                st.attempt_number, st.next_action.sleep, st.outcome.exception()),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await call()
        except InferenceServerException as exc:
            if (exc.status() or "") == "StatusCode.CANCELLED":
                raise asyncio.CancelledError(str(exc)) from exc
            raise
