"""`tectonite mirror`: an init directory shaped like a running cluster's feature service.

The service's metadata (POST /api/v1/feature-service/metadata, as Tecton and Tectonite both
answer it) gives the request's join keys and request-context keys and the features' names,
order and types. From it:

- one entity holds every join key of the service, in the service's order, and every view is
  keyed by it;
- each namespace becomes a feature table of that name with the namespace's features;
- namespaces the response lists before the alphabetical run of the others (Tecton serves
  realtime views first) become realtime views, so the order comes out the same: each echoes
  the values of a feature table `<namespace>_source` (keyed like the service) and takes the
  service's request context, so requests must carry the same keys as before;
- every table gets `rows` rows of synthetic values of the right types, reproducible with
  `seed`: entity i (1-based) has String join keys `<key>_<i>` and Int64 join keys i.

Nothing here touches the database.
"""

from __future__ import annotations

import random
import string
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from app.initdir.layout import DATA_FOLDER, DEFINITIONS_FILE
from app.types import FeatureType, format_timestamp, parse_type

EVENT_TIME = datetime(2026, 1, 1, tzinfo=UTC)
ENTITY = "mirrored_entity"
REQUEST_SOURCE = "request"
TRANSFORMS_FILE = "transforms.py"
_SCALARS = {
    "string": "String",
    "int32": "Int64",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
    "boolean": "Bool",
    "bool": "Bool",
    "timestamp": "Timestamp",
}
TRANSFORMS = '''"""Realtime views by `tectonite mirror`: each returns its source table's values."""


def echo(*sources):
    """The last source is the view's `<namespace>_source` table; its values are the output."""
    return dict(sources[-1])
'''


class MirrorError(Exception):
    """The metadata cannot be read or cannot be reproduced."""


@dataclass(frozen=True)
class Metadata:
    join_keys: list[tuple[str, str]]
    context_keys: list[tuple[str, str]]
    features: list[tuple[str, str]]  # (namespace.feature, type spelling), response order


def fetch_metadata(url: str, api_key: str, workspace: str, service: str) -> Metadata:
    """The service's metadata from a Tecton (or Tectonite) cluster's HTTP API."""
    body = orjson.dumps({"params": {"workspaceName": workspace, "featureServiceName": service}})
    request = urllib.request.Request(  # noqa: S310 (the URL is the user's cluster; http(s) only)
        url.rstrip("/") + "/api/v1/feature-service/metadata",
        data=body,
        method="POST",
        headers={"Authorization": f"Tecton-key {api_key}", "Content-Type": "application/json"},
    )
    if not request.full_url.startswith(("http://", "https://")):
        raise MirrorError(f"--url must start with http:// or https://, got {url!r}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (checked above)
            answer = orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        raise MirrorError(f"the cluster answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise MirrorError(f"cannot reach {url}: {exc}") from None
    except orjson.JSONDecodeError:
        raise MirrorError("the cluster's answer is not JSON") from None
    return parse_metadata(answer)


def parse_metadata(answer: Any) -> Metadata:
    try:
        return Metadata(
            join_keys=[
                (k["name"], spelling(k["dataType"])) for k in answer.get("inputJoinKeys", [])
            ],
            context_keys=[
                (k["name"], spelling(k["dataType"]))
                for k in answer.get("inputRequestContextKeys", [])
            ],
            features=[(f["name"], spelling(f["dataType"])) for f in answer["featureValues"]],
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise MirrorError(f"unexpected metadata response (missing {exc})") from None


def spelling(data_type: dict[str, Any]) -> str:
    """A wire `dataType` object as the type's definition spelling (`Array(Int64)`)."""
    kind = data_type["type"]
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        return f"Array({spelling(data_type['elementType'])})"
    if kind == "map":
        return f"Map(String, {spelling(data_type['valueType'])})"
    if kind == "struct":
        fields = ", ".join(f"{f['name']} {spelling(f['dataType'])}" for f in data_type["fields"])
        return f"Struct({fields})"
    raise MirrorError(f"unknown data type {kind!r}")


def _groups(metadata: Metadata) -> list[tuple[str, list[tuple[str, str]]]]:
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for name, type_spelling in metadata.features:
        namespace, _, feature = name.partition(".")
        if not feature:
            raise MirrorError(f"feature name {name!r} is not <namespace>.<feature>")
        if groups and groups[-1][0] == namespace:
            groups[-1][1].append((feature, type_spelling))
        elif any(g[0] == namespace for g in groups):
            raise MirrorError(f"namespace {namespace!r} appears twice, apart")
        else:
            groups.append((namespace, [(feature, type_spelling)]))
    return groups


def realtime_count(groups: list[tuple[str, list[tuple[str, str]]]], needs_one: bool) -> int:
    """How many leading namespaces must be realtime for the order to come out the same."""

    def plain_order(rest: list[tuple[str, list[tuple[str, str]]]]) -> bool:
        names = [g[0] for g in rest]
        return names == sorted(names) and all(
            [f for f, _ in g[1]] == sorted(f for f, _ in g[1]) for g in rest
        )

    for k in range(1 if needs_one else 0, len(groups) + 1):
        leading = [g[0] for g in groups[:k]]
        if leading == sorted(leading) and plain_order(groups[k:]):
            return k
    raise MirrorError("the features' order cannot be reproduced")  # pragma: no cover


def write_mirror(
    metadata: Metadata, workspace: str, service: str, target: Path, *, rows: int, seed: int
) -> list[str]:
    """Write `target/<workspace>/`; returns the paths written, relative to `target`."""
    if not metadata.join_keys:
        raise MirrorError("the service has no join keys; only keyed services can be mirrored")
    for name, key_type in metadata.join_keys:
        if key_type not in ("String", "Int64"):
            raise MirrorError(f"join key {name!r} has type {key_type}; expected String or Int64")
    groups = _groups(metadata)
    realtime = realtime_count(groups, needs_one=bool(metadata.context_keys))
    taken = {g[0] for g in groups}
    document: dict[str, Any] = {
        "entities": [
            {
                "name": ENTITY,
                "description": f"The join keys of {service}, mirrored.",
                "join_keys": [{"name": n, "type": t} for n, t in metadata.join_keys],
            }
        ],
        "feature_views": [],
    }
    tables: list[tuple[str, list[tuple[str, str]]]] = []
    realtime_views = []
    for index, (namespace, features) in enumerate(groups):
        if index < realtime:
            source = f"{namespace}_source"
            while source in taken:
                source += "_"
            taken.add(source)
            tables.append((source, features))
            sources: list[Any] = []
            if index == 0 and metadata.context_keys:
                sources.append(
                    {
                        "request": REQUEST_SOURCE,
                        "schema": [{"name": n, "type": t} for n, t in metadata.context_keys],
                    }
                )
            sources.append(source)
            realtime_views.append(
                {
                    "name": namespace,
                    "sources": sources,
                    "features": [{"name": f, "type": t} for f, t in features],
                    "transform": f"{TRANSFORMS_FILE}:echo",
                }
            )
        else:
            tables.append((namespace, features))
    for name, features in tables:
        document["feature_views"].append(
            {
                "name": name,
                "kind": "table",
                "entities": [ENTITY],
                "features": [{"name": f, "type": t} for f, t in features],
            }
        )
    if realtime_views:
        document["realtime_feature_views"] = realtime_views
    document["feature_services"] = [{"name": service, "features": [g[0] for g in groups]}]

    folder = target / workspace
    (folder / DATA_FOLDER).mkdir(parents=True, exist_ok=True)
    written = [f"{workspace}/{DEFINITIONS_FILE}"]
    (folder / DEFINITIONS_FILE).write_text(
        f"# Written by `tectonite mirror` from {service} in workspace {workspace}.\n"
        + yaml.safe_dump(document, sort_keys=False, width=100),
        encoding="utf-8",
    )
    if realtime_views:
        (folder / TRANSFORMS_FILE).write_text(TRANSFORMS, encoding="utf-8")
        written.append(f"{workspace}/{TRANSFORMS_FILE}")
    generator = random.Random(seed)  # noqa: S311 (synthetic test data, not secrets)
    for name, features in tables:
        types = [(f, parse_type(t)) for f, t in features]
        path = folder / DATA_FOLDER / f"{name}.jsonl"
        with path.open("wb") as out:
            for i in range(1, rows + 1):
                row: dict[str, Any] = {
                    key: (f"{key}_{i}" if key_type == "String" else i)
                    for key, key_type in metadata.join_keys
                }
                row["timestamp"] = format_timestamp(EVENT_TIME)
                for feature, feature_type in types:
                    row[feature] = synthetic(feature_type, generator)
                out.write(orjson.dumps(row) + b"\n")
        written.append(f"{workspace}/{DATA_FOLDER}/{name}.jsonl")
    return written


def synthetic(feature_type: FeatureType, generator: random.Random, depth: int = 0) -> Any:
    """A value of `feature_type` in the JSON a data file holds."""
    kind = feature_type.kind
    if kind == "String":
        return "".join(generator.choices(string.ascii_lowercase, k=8))
    if kind in ("Int64", "Int32"):
        return generator.randint(0, 1000)
    if kind in ("Float64", "Float32"):
        return round(generator.uniform(0, 1000), 3 if kind == "Float64" else 2)
    if kind == "Bool":
        return generator.random() < 0.5
    if kind == "Timestamp":
        return format_timestamp(EVENT_TIME - timedelta(seconds=generator.randint(0, 86400 * 30)))
    if kind == "Array":
        return [
            synthetic(feature_type.element, generator, depth + 1)  # type: ignore[arg-type]  # set for this kind
            for _ in range(generator.randint(1, 3))
        ]
    if kind == "Map":
        return {
            f"k{j}": synthetic(feature_type.value, generator, depth + 1)  # type: ignore[arg-type]  # set for this kind
            for j in range(generator.randint(1, 3))
        }
    if kind == "Struct":
        return {n: synthetic(t, generator, depth + 1) for n, t in feature_type.fields}
    raise MirrorError(f"cannot make values of type {feature_type.spelling}")  # pragma: no cover
