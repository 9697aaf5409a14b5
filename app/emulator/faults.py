"""Fault rules: make matching API requests wait and/or answer 429, 500, 503 or 504.

Rules are cached per process and reloaded after a change notice, so a request that matches no
rule costs a look at an empty tuple. Only a request matching a rule touches the database, which
has the last word: a rule cleared there never fires, even in a process that has not heard of
the clear yet; `times` is an atomic conditional decrement (exact across every process), and a
seed draws the n-th matching request's outcome from (seed, n), with n counted in the database,
so the same sequence of requests gives the same hits.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from flask import Response, request
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from app import changes
from app.changes import ChangeFeed
from app.db import Database
from app.emulator.models import FaultRule, rowcount
from app.emulator.snapshot import TOPIC, Snapshot
from app.emulator.targets import (
    ANY,
    GET_FEATURES,
    GET_FEATURES_BATCH,
    INGEST,
    METADATA,
    QUERY_FEATURES,
    SERVICE_STATE,
    RequestTarget,
    endpoint_of,
    parse_body,
    target_of,
)
from app.errors import ApiError, DeadlineExceeded, TooManyRequests, Unavailable, envelope
from app.extensions import Slot

DETAIL = "faults"

# The operation names Tecton's gateway puts in its 429 message.
_OPERATIONS = {
    GET_FEATURES: "GetFeatures",
    GET_FEATURES_BATCH: "GetFeaturesBatch",
    METADATA: "Metadata",
    QUERY_FEATURES: "QueryFeatures",
    SERVICE_STATE: "GetFeatureServiceState",
    INGEST: "Ingest",
}


def fault_error(endpoint: str, status: int) -> ApiError:
    """The error Tecton answers with for `status` on `endpoint` (reference §16)."""
    if status == 429:
        return TooManyRequests(
            f"{_OPERATIONS[endpoint]} exceeded the concurrent request limit, please retry later",
            headers={"Retry-After": "1"},
        )
    if status == 503:
        return Unavailable("503 Service Temporarily Unavailable", headers={"Retry-After": "1"})
    if status == 504:
        return DeadlineExceeded("Timed out")
    return ApiError("Internal Server Error")  # 500 / 13


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    endpoint: str = ANY
    workspace: str | None = None
    feature_service: str | None = None
    join_keys: dict[str, str] | None = None
    status: int | None = None
    delay_ms: int = 0
    times: int | None = None
    probability: float | None = None
    seed: int | None = None
    remaining: int | None = None

    @classmethod
    def from_row(cls, rule_id: int, spec: dict[str, Any], remaining: int | None) -> Rule:
        keys = spec.get("joinKeys")
        return cls(
            id=rule_id,
            endpoint=spec.get("endpoint", ANY),
            workspace=spec.get("workspace"),
            feature_service=spec.get("featureService"),
            join_keys={k: str(v) for k, v in keys.items()} if keys else None,
            status=spec.get("status"),
            delay_ms=spec.get("delayMs") or 0,
            times=spec.get("times"),
            probability=spec.get("probability"),
            seed=spec.get("seed"),
            remaining=remaining,
        )

    @property
    def needs_target(self) -> bool:
        return bool(self.workspace or self.feature_service or self.join_keys)

    def matches(self, target: RequestTarget) -> bool:
        if self.workspace is not None and target.workspace != self.workspace:
            return False
        if self.feature_service is not None and target.feature_service != self.feature_service:
            return False
        if self.join_keys:
            wanted = self.join_keys.items()
            return any(
                all(k in row and str(row[k]) == v for k, v in wanted) for row in target.join_keys
            )
        return True

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "endpoint": self.endpoint}
        optional = {
            "workspace": self.workspace,
            "featureService": self.feature_service,
            "joinKeys": self.join_keys,
            "status": self.status,
            "delayMs": self.delay_ms or None,
            "times": self.times,
            "remaining": self.remaining,
            "probability": self.probability,
            "seed": self.seed,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body


# --------------------------------------------------------------------------- storage


def add_rule(session: Session, spec: dict[str, Any]) -> int:
    """Store a validated rule (API spelling, absent fields left out); returns its id."""
    row = FaultRule(rule=spec, remaining=spec.get("times"), matched=0)
    session.add(row)
    session.flush()
    changes.announce(session, TOPIC, DETAIL)
    return row.id


_RULES = select(FaultRule.id, FaultRule.rule, FaultRule.remaining).order_by(FaultRule.id)


def list_rules(session: Session) -> list[Rule]:
    return [Rule.from_row(*row) for row in session.execute(_RULES)]


def clear_rules(session: Session, rule_id: int | None = None) -> int:
    """Remove one rule (or all); returns how many were removed."""
    statement = delete(FaultRule)
    if rule_id is not None:
        statement = statement.where(FaultRule.id == rule_id)
    removed = rowcount(session.execute(statement))
    changes.announce(session, TOPIC, DETAIL)
    return removed


# --------------------------------------------------------------------------- injection


class FaultInjector:
    """This process's copy of the rules, applied before every API request."""

    def __init__(self, database: Database, feed: ChangeFeed) -> None:
        self._database = database
        self.snapshot: Snapshot[tuple[Rule, ...]] = Snapshot(feed, DETAIL, self._load, ())

    def _load(self) -> tuple[Rule, ...]:
        with self._database.read() as connection:
            return tuple(Rule.from_row(*row) for row in connection.execute(_RULES))

    def before_request(self) -> Response | None:
        """Wait and/or answer for the first rule that matches and hits this request."""
        rules = self.snapshot.get()
        if not rules:
            return None
        endpoint = endpoint_of(request.url_rule.rule if request.url_rule else None)
        if endpoint is None:
            return None
        candidates = [r for r in rules if r.endpoint in (ANY, endpoint)]
        if not candidates:
            return None
        target = RequestTarget()
        if any(r.needs_target for r in candidates):
            target = target_of(endpoint, request.view_args, parse_body(request.get_data()))
        for rule in candidates:
            if rule.matches(target) and self._hits(rule):
                if rule.delay_ms:
                    time.sleep(rule.delay_ms / 1000)
                if rule.status is not None:
                    return envelope(fault_error(endpoint, rule.status))
                return None
        return None

    def _hits(self, rule: Rule) -> bool:
        """Whether `rule` applies to this request. The database decides, not this process's
        copy: a rule cleared a moment ago (whose notice this process has not heard yet) never
        fires. Only requests that match a rule pay this statement."""
        with self._database.session() as session:
            if rule.probability is None and rule.times is None:
                hit = self._still_there(session, rule)
            else:
                hit = self._draw(session, rule)
                if hit and rule.times is not None:
                    hit = self._take_one(session, rule)
            session.commit()
        return hit

    def _still_there(self, session: Session, rule: Rule) -> bool:
        found = session.execute(
            text("SELECT 1 FROM emulator_faults WHERE id = :id"), {"id": rule.id}
        ).scalar_one_or_none()
        if found is None:  # cleared meanwhile
            self.snapshot.invalidate()
            return False
        return True

    def _draw(self, session: Session, rule: Rule) -> bool:
        if rule.probability is None:
            return True
        if rule.seed is None:
            return random.random() < rule.probability  # noqa: S311 (test scenarios, not secrets)
        matched = session.execute(
            text(
                "UPDATE emulator_faults SET matched = matched + 1 WHERE id = :id RETURNING matched"
            ),
            {"id": rule.id},
        ).scalar_one_or_none()
        if matched is None:  # removed meanwhile
            self.snapshot.invalidate()
            return False
        draw = random.Random(f"{rule.seed}:{matched}").random()  # noqa: S311
        return draw < rule.probability

    def _take_one(self, session: Session, rule: Rule) -> bool:
        remaining = session.execute(
            text(
                "UPDATE emulator_faults SET remaining = remaining - 1 "
                "WHERE id = :id AND remaining > 0 RETURNING remaining"
            ),
            {"id": rule.id},
        ).scalar_one_or_none()
        if remaining is None:  # used up by another request, maybe in another process
            self.snapshot.invalidate()
            return False
        if remaining == 0:
            session.execute(delete(FaultRule).where(FaultRule.id == rule.id))
            changes.announce(session, TOPIC, DETAIL)
        return True


FAULTS = Slot[FaultInjector]("tectonite.emulator.faults")
