"""Pure logic: identifiers, money parsing and rendering, settings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from api.media import dumps, loads, parse_json_body
from api.validation import field_path
from config.settings import Settings
from models.ids import new_id
from services.kernel.errors import ValidationFailed
from services.kernel.money import to_money


def test_ids_are_prefixed_unique_and_time_sortable():
    ids = [new_id("ord") for _ in range(2000)]
    assert all(i.startswith("ord_") and len(i) == 30 for i in ids)
    assert len(set(ids)) == len(ids)
    by_time = [i[4:14] for i in ids]
    assert by_time == sorted(by_time)


def test_json_numbers_parse_to_decimal_and_render_as_numbers():
    data = loads('{"price": 99.99, "qty": 3}')
    assert data == {"price": Decimal("99.99"), "qty": 3} and isinstance(data["price"], Decimal)
    assert dumps({"total": to_money(Decimal("0.1") * 3)}) == b'{"total":0.30}'
    assert dumps({"total": to_money(100)}) == b'{"total":100.00}'


@pytest.mark.parametrize("raw", [b"NaN", b'{"a": Infinity}', b"{", b"", b"[1]", b"\xff\xfe"])
def test_bad_json_is_a_validation_error(raw):
    with pytest.raises(ValidationFailed):
        parse_json_body(raw, "application/json")


def test_field_paths_read_like_the_request():
    assert field_path(("items", 0, "price")) == "items[0].price"
    assert field_path(("customerId",)) == "customerId"
    assert field_path(()) == "$"


def test_settings_from_env_and_defaults():
    settings = Settings.from_env(
        {"DATABASE_URL": "sqlite:///x.db", "REDIS_URL": "redis://h:1/2", "CORS_ORIGINS": "a,b"}
    )
    assert settings.database_url == "sqlite:///x.db" and settings.redis_url == "redis://h:1/2"
    assert settings.cors_origins == ("a", "b")
    assert set(Settings.from_env({}).gateways) == {"stripe_1", "sandbox"}
