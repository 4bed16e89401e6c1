"""Notifications reach a webhook in the background, retried, and never block the pipeline."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from lakestream.orchestrate.notify import DeliveryPolicy, Notifier

from .conftest import Receiver, fast_notifier

FAILURE = {"event": "failure", "pipeline": "weather", "run_id": "r1", "status": "failed",
           "failed_task": "load_gold", "error": "gold store unreachable"}


def test_a_notification_is_posted_as_json_with_a_text_line(receiver: Receiver) -> None:
    notifier = fast_notifier(receiver.url)
    notifier.notify(FAILURE)
    assert notifier.flush(5)
    [body] = receiver.bodies
    assert body["pipeline"] == "weather" and body["failed_task"] == "load_gold"
    assert body["text"] == "❌ weather run r1 failed at task load_gold: gold store unreachable"


def test_a_refused_delivery_is_retried_until_accepted(receiver: Receiver) -> None:
    receiver.fail_first = 2
    notifier = fast_notifier(receiver.url)
    notifier.notify({"event": "success", "pipeline": "weather", "run_id": "r2"})
    assert notifier.flush(5)
    assert receiver.requests == 3 and receiver.events() == ["success"]


def test_retries_are_bounded(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.fail_first = 100
    notifier = fast_notifier(receiver.url)
    with caplog.at_level(logging.ERROR):
        notifier.notify(FAILURE)
        assert notifier.flush(5)
    assert receiver.requests == 4 and receiver.bodies == []
    assert "refused the failure notification after 4 tries" in caplog.text
    assert "secret-token" not in caplog.text  # the webhook path may hold a token


def test_an_unreachable_webhook_never_blocks_the_caller() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    notifier = Notifier(f"http://127.0.0.1:{port}/hook",
                        DeliveryPolicy(attempts=3, base_delay_s=0.5, timeout_s=1))
    started = time.monotonic()
    for _ in range(5):
        notifier.notify(FAILURE)
    assert time.monotonic() - started < 0.1
    assert notifier.flush(0.05) is False  # still retrying in the background


def test_the_queue_is_bounded_and_drops_the_oldest(receiver: Receiver) -> None:
    receiver.fail_first = 1
    notifier = Notifier(receiver.url, DeliveryPolicy(attempts=2, base_delay_s=0.3,
                                                     queue_size=2))
    for n in range(6):
        notifier.notify({**FAILURE, "run_id": f"r{n}"})
    assert notifier.flush(5)
    assert notifier.dropped >= 1
    assert receiver.bodies[-1]["run_id"] == "r5"


def test_without_a_webhook_notifications_go_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        Notifier(None).notify({"event": "sla_miss", "pipeline": "weather", "run_id": "r3",
                               "sla_s": 1800})
    assert "weather run r3 missed its SLA of 1800s" in caplog.text
