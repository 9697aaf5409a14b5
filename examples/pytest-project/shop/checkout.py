"""The code under test: a checkout service that asks Tecton for features."""

from __future__ import annotations

from tecton_client import MetadataOptions, TectonClient
from tecton_client.exceptions import (
    GatewayTimeoutError,
    ResourceExhaustedError,
    ServiceUnavailableError,
)

SERVICE = "checkout_service"


def checkout_features(client: TectonClient, customer_id: str, basket_total: float) -> dict:
    response = client.get_features(
        feature_service_name=SERVICE,
        join_key_map={"customer_id": customer_id},
        request_context_map={"basket_total": basket_total},
        metadata_options=MetadataOptions(include_names=True, include_data_types=True),
    )
    return response.get_features_dict()


def needs_review(client: TectonClient, customer_id: str, basket_total: float) -> bool:
    """Review baskets larger than the last order, and everything when Tecton is down."""
    try:
        features = checkout_features(client, customer_id, basket_total)
    except (ServiceUnavailableError, GatewayTimeoutError, ResourceExhaustedError):
        return True
    return bool(features["basket.larger_than_last_order"])
