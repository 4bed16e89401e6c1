"""Run notifications: success, failure and SLA miss, to the log and to a webhook.

Every notification is logged. When ``notify_webhook_url`` is configured it is
also POSTed there as JSON (with a ``text`` line, so a Slack or Teams incoming
webhook shows it as is) by a background thread: the pipeline never waits for
the webhook. A failed delivery is retried on the :data:`~lakestream.retry.WEBHOOK`
policy (exponential backoff with jitter, a bounded number of times); the queue
is bounded too (the oldest is dropped when full).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from lakestream.errors import TransientError, WebhookError
from lakestream.retry import WEBHOOK, RetryPolicy

log = logging.getLogger(__name__)

EVENTS = ("success", "failure", "sla_miss")


class WebhookUnavailableError(WebhookError, TransientError):
    """The webhook refused a POST (HTTP >= 400) or could not be reached: try again later."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard the webhook is tried: :data:`~lakestream.retry.WEBHOOK`, with these settings.

    Attributes:
        attempts: POSTs of one notification in all.
        base_delay_s: Wait after the first failure; doubled each time.
        max_delay_s: Cap on one wait.
        timeout_s: HTTP timeout of one POST.
        queue_size: Notifications waiting at most; the oldest is dropped beyond.
    """

    attempts: int = WEBHOOK.attempts or 5
    base_delay_s: float = WEBHOOK.base_delay_s
    max_delay_s: float = WEBHOOK.max_delay_s
    timeout_s: float = 10.0
    queue_size: int = 100

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of one notification's POSTs."""
        return replace(WEBHOOK, attempts=self.attempts, base_delay_s=self.base_delay_s,
                       max_delay_s=self.max_delay_s,
                       jitter_s=min(WEBHOOK.jitter_s, self.base_delay_s))


def message(payload: Mapping[str, Any]) -> str:
    """The one-line text of a notification."""
    event, pipeline, run = payload["event"], payload.get("pipeline"), payload.get("run_id")
    if event == "success":
        took = payload.get("duration_s")
        return f"✅ {pipeline} run {run} succeeded" + (f" in {took:.0f}s" if took else "")
    if event == "sla_miss":
        return (f"⏰ {pipeline} run {run} missed its SLA of {payload.get('sla_s', 0):.0f}s "
                f"(status {payload.get('status', 'running')})")
    task = payload.get("failed_task")
    where = f" at task {task}" if task else ""
    return f"❌ {pipeline} run {run} {payload.get('status', 'failed')}{where}: " \
           f"{payload.get('error') or 'no error message'}"


class Notifier:
    """Sends notifications to the log and, in the background, to a webhook.

    Args:
        webhook_url: Where to POST; ``None`` = log only.
        policy: Retries, timeouts and queue bound of the webhook.
        sleep: Waits between retries (tests pass a fast one).
    """

    def __init__(self, webhook_url: str | None = None, policy: DeliveryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.webhook_url = webhook_url
        self.policy = policy or DeliveryPolicy()
        self._sleep = sleep
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(self.policy.queue_size)
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self.delivered = 0
        self.dropped = 0

    def notify(self, payload: Mapping[str, Any]) -> None:
        """Log ``payload`` and queue it for the webhook; returns at once."""
        if payload.get("event") not in EVENTS:
            raise ValueError(f"unknown notification event {payload.get('event')!r}")
        body = {**payload, "text": message(payload)}
        level = logging.INFO if body["event"] == "success" else logging.WARNING
        log.log(level, "notification: %s", body["text"])
        if not self.webhook_url:
            return
        self._start()
        while True:
            try:
                self._queue.put_nowait(body)
                return
            except queue.Full:
                self._drop_oldest()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait up to ``timeout_s`` for queued notifications; ``True`` if all were handled."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _start(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._deliver_loop, name="notifier",
                                                daemon=True)
                self._worker.start()

    def _drop_oldest(self) -> None:
        try:
            dropped = self._queue.get_nowait()
            self._queue.task_done()
        except queue.Empty:
            return
        self.dropped += 1
        log.warning("notification queue full: dropped %s", dropped and dropped.get("text"))

    def _deliver_loop(self) -> None:
        with httpx.Client(timeout=self.policy.timeout_s) as client:
            while True:
                body = self._queue.get()
                try:
                    if body is not None:
                        self._deliver(client, body)
                except Exception:  # the worker must outlive any one notification
                    log.exception("could not deliver a %s notification", body and body["event"])
                finally:
                    self._queue.task_done()

    def _deliver(self, client: httpx.Client, body: dict[str, Any]) -> None:
        assert self.webhook_url is not None
        url = self.webhook_url
        where = _safe_url(url)
        content = json.dumps(body, default=str)

        def post() -> None:
            try:
                response = client.post(url, content=content,
                                       headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                raise WebhookUnavailableError(f"webhook {where}: {type(exc).__name__}",
                                              url=where) from None
            if response.status_code >= 400:
                raise WebhookUnavailableError(f"webhook {where}: HTTP {response.status_code}",
                                              url=where)

        policy = self.policy.retry
        try:
            policy.call(post, f"delivering the {body['event']} notification", logger=log,
                        sleep=self._sleep)
        except WebhookUnavailableError as exc:
            log.error("webhook %s refused the %s notification after %d tries (%s)", where,
                      body["event"], policy.attempts, exc.message.rsplit(": ", 1)[-1])
            return
        self.delivered += 1


def _safe_url(url: str) -> str:
    """Scheme and host only: webhook paths often hold a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
