"""Tests of the checkout service against Tectonite, driven by pytest-tectonite's fixtures."""

import pytest
from shop.checkout import SERVICE, checkout_features, needs_review
from tecton_client.exceptions import ForbiddenError


def test_features_come_from_the_init_directory(tectonite_client):
    features = checkout_features(tectonite_client, "c1", 100.0)
    assert features["customer_profile.segment"] == "gold"
    assert features["customer_profile.lifetime_orders"] == 42
    assert features["basket.larger_than_last_order"] is True


def test_ingested_orders_change_the_answer(tectonite, tectonite_client):
    tectonite.ingest(
        "orders", [{"customer_id": "c1", "order_total": 500.0, "timestamp": "2026-01-01T12:00:00Z"}]
    )
    assert needs_review(tectonite_client, "c1", 100.0) is False


@pytest.mark.tectonite_reset
def test_reset_brings_back_the_init_directory(tectonite_client):
    assert checkout_features(tectonite_client, "c1", 1.0)["customer_last_order.order_total"] == 80


@pytest.mark.tectonite_reset
def test_values_expire_with_the_emulated_clock(tectonite_client, tectonite_clock):
    tectonite_clock.freeze("2026-01-07T23:00:00Z")
    assert checkout_features(tectonite_client, "c1", 1.0)["customer_last_order.order_total"] == 80
    tectonite_clock.advance("2h")  # past the view's 7-day ttl
    assert checkout_features(tectonite_client, "c1", 1.0)["customer_last_order.order_total"] is None


def test_an_outage_sends_baskets_to_review(tectonite_client, tectonite_faults, tectonite_journal):
    tectonite_journal.clear()
    tectonite_faults.add(endpoint="get-features", featureService=SERVICE, status=503, times=1)
    assert needs_review(tectonite_client, "c2", 1.0) is True
    assert needs_review(tectonite_client, "c2", 1.0) is False  # the rule hit once only
    statuses = [entry["status"] for entry in tectonite_journal.entries(featureService=SERVICE)]
    assert statuses == [200, 503]  # newest first


def test_keys_by_role(tectonite, tectonite_key):
    viewer = tectonite_key("viewer", workspace="shop")
    client = tectonite.client(api_key=viewer)
    with pytest.raises(ForbiddenError):
        checkout_features(client, "c1", 1.0)
