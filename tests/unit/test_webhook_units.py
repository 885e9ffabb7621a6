"""Pure rules of events and webhooks: addresses, backoff, the body and its signature, settings."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from config.secret_key import ConfigError
from config.settings import Settings
from services.events.record import encode_data, event_row
from services.kernel.errors import ValidationFailed
from services.webhooks.addresses import _is_public, validate_url
from services.webhooks.delivery import Attempt, DeliveryPolicy, Outcome, event_body, signed_headers
from services.webhooks.endpoints import new_secret


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "198.18.0.1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not _is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert _is_public(ipaddress.ip_address(address))


def test_url_shape_is_checked_before_any_lookup() -> None:
    for url in ("ftp://x.example/", "http:///nohost", "https://u:p@x.example/", "http://x.example/#f", "x" * 3000):
        with pytest.raises(ValidationFailed):
            validate_url(url, allow_private=True)
    assert validate_url("http://127.0.0.1:8080/hook", allow_private=True) == "http://127.0.0.1:8080/hook"


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    policy = DeliveryPolicy(5.0, 10.0, 3600.0, timedelta(hours=24), allow_private=False)
    for attempts, ceiling in ((1, 10), (2, 20), (3, 40), (10, 3600), (30, 3600)):
        delays = [policy.backoff(attempts) for _ in range(200)]
        assert all(ceiling * 0.5 <= delay <= ceiling for delay in delays), (attempts, min(delays), max(delays))
        assert len({round(delay, 6) for delay in delays}) > 1  # jittered
    # The default schedule spans about a day before the window closes.
    total, attempts = 0.0, 0
    while total < 24 * 3600:
        attempts += 1
        total += min(10.0 * 2 ** (attempts - 1), 3600.0)
    assert 25 <= attempts <= 35


def test_the_body_is_the_event_with_its_data_as_written_and_signed_per_standard_webhooks() -> None:
    row = event_row(
        "order.created",
        order_id="ord_1",
        customer_id="cust_1",
        data={
            "orderId": "ord_1",
            "totalAmount": Decimal("10.50"),
            "createdAt": datetime(2026, 6, 2, 10, 30, tzinfo=UTC),
        },
    )
    assert (
        row["id"].startswith("evt_")
        and row["data"] == '{"orderId":"ord_1","totalAmount":10.50,"createdAt":"2026-06-02T10:30:00Z"}'
    )
    body = event_body(row["id"], row["type"], row["created_at"], row["data"])
    parsed = json.loads(body)
    assert parsed["id"] == row["id"] and parsed["type"] == "order.created" and parsed["data"]["totalAmount"] == 10.5
    secret = new_secret()
    assert secret.startswith("whsec_")
    attempt = Attempt("whd_1", "we_1", "http://x.example/", secret, row["id"], body, 1)
    headers = signed_headers(attempt)
    assert Webhook(secret).verify(body, headers)["id"] == row["id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("10.50", "10.51"), headers)


def test_outcomes_say_when_the_receiver_is_down() -> None:
    assert Outcome(204, None, 1).ok
    assert not Outcome(302, {"code": "HTTP_STATUS", "message": ""}, 1).ok
    assert Outcome(None, {"code": "TIMEOUT", "message": ""}, 1).receiver_down
    assert Outcome(503, {"code": "HTTP_STATUS", "message": ""}, 1).receiver_down
    assert not Outcome(400, {"code": "HTTP_STATUS", "message": ""}, 1).receiver_down


def test_webhook_settings_are_read_from_the_environment() -> None:
    env = {
        "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        "WEBHOOK_TIMEOUT_SECONDS": "2.5",
        "WEBHOOK_BACKOFF_BASE_SECONDS": "0.5",
        "WEBHOOK_RETRY_WINDOW_SECONDS": "3600",
        "WEBHOOK_SWEEP_INTERVAL_SECONDS": "2",
        "SECRET_KEY": "k" * 40,
    }
    settings = Settings.from_env(env)
    assert settings.webhook_allow_private_urls and settings.webhook_timeout_seconds == 2.5
    assert settings.webhook_backoff_base_seconds == 0.5 and settings.webhook_retry_window_seconds == 3600
    assert not Settings.from_env({"SECRET_KEY": "k" * 40}).webhook_allow_private_urls
    with pytest.raises(ConfigError):
        Settings.from_env({**env, "WEBHOOK_ALLOW_PRIVATE_URLS": "maybe"})


def test_event_data_encodes_exact_decimals() -> None:
    assert encode_data({"amount": Decimal("0.10")}) == '{"amount":0.10}'
