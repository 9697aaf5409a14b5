"""Reads a definitions YAML file into `Definitions`, collecting every error it finds.

Structure (required fields, value types, unknown keys) is checked by marshmallow schemas, one
object at a time so each error can name its object; meaning (types, references, join-key
collisions, transforms) is checked afterwards. Each error reads
`<file>: <kind> '<name>': <field>: <message>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.aggregation import build_aggregation, is_aggregate_view
from app.repo.definitions import (
    Definitions,
    EntityDef,
    FeatureDef,
    FeatureServiceDef,
    FeatureViewDef,
    FieldDef,
    PushSourceDef,
    RealtimeSourceDef,
    RealtimeViewDef,
    ServiceItemDef,
    parse_duration,
)
from app.repo.transforms import TransformError, load_transform
from app.types import JOIN_KEY_TYPES, TypeSyntaxError, parse_type

NAME = validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$", error="must be a name of letters, digits and _")
# Tecton allows `:` in feature-service names (e.g. `fraud_detection_feature_service:v2`).
SERVICE_NAME = validate.Regexp(
    r"^[A-Za-z0-9_][A-Za-z0-9_:.\-]*$", error="must be letters, digits, _, :, . or -"
)
KINDS = ("batch", "stream", "table")


class DefinitionsError(Exception):
    """The file is invalid; `errors` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# ----------------------------------------------------------------------------- schemas


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class FieldSchema(_Strict):
    name = fields.String(required=True, validate=NAME)
    type = fields.String(required=True)


class FeatureSchema(FieldSchema):
    description = fields.String(load_default=None)
    tags = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)


class EntitySchema(_Strict):
    name = fields.String(required=True, validate=NAME)
    description = fields.String(load_default=None)
    join_keys = fields.List(
        fields.Nested(FieldSchema), required=True, validate=validate.Length(min=1)
    )


class PushSourceSchema(_Strict):
    name = fields.String(required=True, validate=NAME)
    description = fields.String(load_default=None)
    timestamp_field = fields.String(required=True)
    schema = fields.List(fields.Nested(FieldSchema), required=True, validate=validate.Length(min=1))


class FeatureViewSchema(_Strict):
    name = fields.String(required=True, validate=NAME)
    kind = fields.String(load_default=None, validate=validate.OneOf(KINDS))
    description = fields.String(load_default=None)
    tags = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    entities = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    source = fields.String(load_default=None)
    ttl = fields.String(load_default=None)
    online = fields.Boolean(load_default=True)
    cache_max_age = fields.String(load_default=None)
    features = fields.List(
        fields.Nested(FeatureSchema), required=True, validate=validate.Length(min=1)
    )

    @validates_schema
    def _durations(self, data: dict[str, Any], **_kwargs: Any) -> None:
        for key in ("ttl", "cache_max_age"):
            if data.get(key) is not None:
                try:
                    parse_duration(data[key])
                except ValueError as exc:
                    raise ValidationError(str(exc), field_name=key) from None


class AggregateFeatureViewSchema(FeatureViewSchema):
    """A view whose features are aggregates; each feature is checked by the aggregation
    package, so its errors can name the feature."""

    aggregation_interval = fields.Raw(load_default=None)
    stream_processing_mode = fields.String(load_default=None)
    features = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1))


class RequestSourceSchema(_Strict):
    request = fields.String(required=True, validate=NAME)
    schema = fields.List(fields.Nested(FieldSchema), required=True, validate=validate.Length(min=1))


class RealtimeViewSchema(_Strict):
    name = fields.String(required=True, validate=NAME)
    description = fields.String(load_default=None)
    tags = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    sources = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1))
    features = fields.List(
        fields.Nested(FeatureSchema), required=True, validate=validate.Length(min=1)
    )
    transform = fields.String(
        required=True,
        validate=validate.Regexp(r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$", error="must be FILE:FUNCTION"),
    )


class ServiceItemSchema(_Strict):
    feature_view = fields.String(required=True)
    features = fields.List(fields.String(), load_default=None, validate=validate.Length(min=1))
    namespace = fields.String(load_default=None, validate=NAME)
    join_key_map = fields.Dict(keys=fields.String(), values=fields.String(), load_default=None)


class FeatureServiceSchema(_Strict):
    name = fields.String(required=True, validate=SERVICE_NAME)
    description = fields.String(load_default=None)
    tags = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    online_serving_enabled = fields.Boolean(load_default=True)
    enable_online_caching = fields.Boolean(load_default=False)
    features = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1))


class FileSchema(_Strict):
    entities = fields.List(fields.Raw(), load_default=list)
    push_sources = fields.List(fields.Raw(), load_default=list)
    feature_views = fields.List(fields.Raw(), load_default=list)
    realtime_feature_views = fields.List(fields.Raw(), load_default=list)
    feature_services = fields.List(fields.Raw(), load_default=list)


SECTIONS = {
    "entities": ("entity", EntitySchema()),
    "push_sources": ("push source", PushSourceSchema()),
    "feature_views": ("feature view", FeatureViewSchema()),
    "realtime_feature_views": ("realtime feature view", RealtimeViewSchema()),
    "feature_services": ("feature service", FeatureServiceSchema()),
}
_AGGREGATE_VIEW = AggregateFeatureViewSchema()
_FILE_SCHEMA = FileSchema()
_REQUEST_SOURCE = RequestSourceSchema()
_SERVICE_ITEM = ServiceItemSchema()


# ----------------------------------------------------------------------------- loading


def load_definitions(path: Path) -> Definitions:
    """Parse and validate the file at `path`; raise DefinitionsError listing every problem."""
    return _Loader(path).load()


def _flatten(messages: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """marshmallow's nested error dict → (field path, message) pairs."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            part = f"[{key}]" if isinstance(key, int) else (f".{key}" if prefix else str(key))
            yield from _flatten(value, prefix + part)
    elif isinstance(messages, list):
        for message in messages:
            yield from _flatten(message, prefix)
    else:
        yield prefix or "(object)", str(messages)


class _Loader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[str] = []

    def error(self, kind: str, name: str | None, where: str, message: str) -> None:
        label = f"{kind} '{name}'" if name else kind
        self.errors.append(f"{self.path}: {label}: {where}: {message}")

    def load(self) -> Definitions:
        document = self._read()
        raw = self._structure(document)
        definitions = Definitions()
        if raw is not None:
            self._build(raw, definitions)
        if self.errors:
            raise DefinitionsError(self.errors)
        return definitions

    def _read(self) -> Any:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DefinitionsError([f"{self.path}: cannot read file: {exc.strerror}"]) from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DefinitionsError([f"{self.path}: not valid YAML: {exc}"]) from None
        return {} if document is None else document

    def _structure(self, document: Any) -> dict[str, list[dict[str, Any]]] | None:
        """Check each object against its schema; keep the valid ones."""
        if not isinstance(document, dict):
            self.errors.append(f"{self.path}: the file must be a mapping of sections")
            return None
        try:
            sections = _FILE_SCHEMA.load(document)
        except ValidationError as exc:
            for where, message in _flatten(exc.messages):
                self.errors.append(f"{self.path}: {where}: {message}")
            return None
        loaded: dict[str, list[dict[str, Any]]] = {}
        for section, (kind, schema) in SECTIONS.items():
            loaded[section] = []
            seen: set[str] = set()
            for index, item in enumerate(sections[section]):
                name = item.get("name") if isinstance(item, dict) else None
                label = name or f"{section}[{index}]"
                if not isinstance(item, dict):
                    self.error(kind, None, f"{section}[{index}]", "must be a mapping")
                    continue
                aggregate = section == "feature_views" and is_aggregate_view(item)
                try:
                    data = (_AGGREGATE_VIEW if aggregate else schema).load(item)
                except ValidationError as exc:
                    for where, message in _flatten(exc.messages):
                        self.error(kind, label, where, message)
                    continue
                if data["name"] in seen:
                    self.error(kind, data["name"], "name", "duplicate name")
                    continue
                seen.add(data["name"])
                loaded[section].append(data)
        views = {v["name"] for v in loaded["feature_views"]}
        for rtfv in loaded["realtime_feature_views"]:
            if rtfv["name"] in views:
                self.error(
                    "realtime feature view", rtfv["name"], "name",
                    "a feature view has the same name",
                )  # fmt: skip
        return loaded

    # ------------------------------------------------------------------------- meaning

    def _type(self, kind: str, name: str, where: str, spelling: str) -> str | None:
        try:
            return parse_type(spelling).spelling
        except TypeSyntaxError as exc:
            self.error(kind, name, where, str(exc))
            return None

    def _fields(
        self, kind: str, name: str, where: str, raw: list[dict[str, Any]]
    ) -> list[FieldDef]:
        result: list[FieldDef] = []
        seen: set[str] = set()
        for index, item in enumerate(raw):
            spelling = self._type(kind, name, f"{where}[{index}].type", item["type"])
            if item["name"] in seen:
                self.error(kind, name, f"{where}[{index}].name", f"duplicate name {item['name']!r}")
            seen.add(item["name"])
            if spelling is not None:
                result.append(FieldDef(item["name"], spelling))
        return result

    def _features(self, kind: str, name: str, raw: list[dict[str, Any]]) -> list[FeatureDef]:
        typed = {f.name: f.type for f in self._fields(kind, name, "features", raw)}
        return [
            FeatureDef(item["name"], typed[item["name"]], item["description"], item["tags"])
            for item in raw
            if item["name"] in typed
        ]

    def _build(self, raw: dict[str, list[dict[str, Any]]], out: Definitions) -> None:
        for item in raw["entities"]:
            keys = self._fields("entity", item["name"], "join_keys", item["join_keys"])
            for index, key in enumerate(keys):
                if key.type not in JOIN_KEY_TYPES:
                    self.error(
                        "entity", item["name"], f"join_keys[{index}].type",
                        f"join keys must be String or Int64, not {key.type}",
                    )  # fmt: skip
            out.entities[item["name"]] = EntityDef(item["name"], tuple(keys), item["description"])

        for item in raw["push_sources"]:
            schema = self._fields("push source", item["name"], "schema", item["schema"])
            types = {f.name: f.type for f in schema}
            if item["timestamp_field"] not in types:
                self.error(
                    "push source", item["name"], "timestamp_field",
                    f"{item['timestamp_field']!r} is not a field of the schema",
                )  # fmt: skip
            elif types[item["timestamp_field"]] != "Timestamp":
                self.error(
                    "push source", item["name"], "timestamp_field",
                    f"{item['timestamp_field']!r} must have type Timestamp",
                )  # fmt: skip
            out.push_sources[item["name"]] = PushSourceDef(
                item["name"], item["timestamp_field"], tuple(schema), item["description"]
            )

        for item in raw["feature_views"]:
            view = self._feature_view(item, out)
            if view is not None:
                out.feature_views[view.name] = view

        for item in raw["realtime_feature_views"]:
            realtime = self._realtime_view(item, out)
            if realtime is not None:
                out.realtime_views[realtime.name] = realtime

        for item in raw["feature_services"]:
            service = self._feature_service(item, out)
            if service is not None:
                out.feature_services[service.name] = service

    def _feature_view(self, item: dict[str, Any], out: Definitions) -> FeatureViewDef | None:
        name, kind_label = item["name"], "feature view"
        for index, entity in enumerate(item["entities"]):
            if entity not in out.entities:
                self.error(kind_label, name, f"entities[{index}]", f"unknown entity {entity!r}")
        if "aggregation_interval" in item:  # loaded by AggregateFeatureViewSchema
            return self._aggregate_view(item, out)
        features = self._features(kind_label, name, item["features"])
        join_keys = self.join_keys_of(item["entities"], out)
        for feature in features:
            if feature.name in join_keys:
                self.error(
                    kind_label, name, "features",
                    f"{feature.name!r} is also a join key of the view's entities",
                )  # fmt: skip
        if len(join_keys) != sum(
            len(out.entities[e].join_keys) for e in item["entities"] if e in out.entities
        ):
            self.error(kind_label, name, "entities", "entities share a join key name")
        source, kind = item["source"], item["kind"]
        if source is not None:
            kind = kind or "stream"
            if kind != "stream":
                self.error(kind_label, name, "kind", "a view with a source must be a stream view")
            if source not in out.push_sources:
                self.error(kind_label, name, "source", f"unknown push source {source!r}")
            else:
                self._check_source_columns(name, out.push_sources[source], join_keys, features)
        else:
            kind = kind or "table"
            if kind == "stream":
                self.error(kind_label, name, "source", "a stream view needs a push source")
        return FeatureViewDef(
            name=name,
            kind=kind,
            entities=tuple(item["entities"]),
            features=tuple(features),
            source=source,
            ttl_seconds=parse_duration(item["ttl"]) if item["ttl"] else None,
            online=item["online"],
            cache_max_age_seconds=(
                parse_duration(item["cache_max_age"]) if item["cache_max_age"] else None
            ),
            description=item["description"],
            tags=item["tags"],
        )

    def _aggregate_view(self, item: dict[str, Any], out: Definitions) -> FeatureViewDef | None:
        """A stream view whose features aggregate its push source's events (SPEC §11)."""
        name, kind_label = item["name"], "feature view"
        source = out.push_sources.get(item["source"]) if item["source"] else None
        if item["source"] is None:
            self.error(kind_label, name, "source", "an aggregate view needs a push source")
        elif source is None:
            self.error(kind_label, name, "source", f"unknown push source {item['source']!r}")
        if item["kind"] not in (None, "stream"):
            self.error(kind_label, name, "kind", "an aggregate view must be a stream view")
        if item["ttl"] is not None:
            self.error(
                kind_label, name, "ttl",
                "aggregate views take no ttl; theirs is the aggregation interval + the longest "
                "window + 7 days",
            )  # fmt: skip
        columns = {f.name: f.type for f in source.schema} if source else None
        spec, declared, problems = build_aggregation(
            item["aggregation_interval"], item["stream_processing_mode"], item["features"], columns
        )
        for where, message in problems:
            self.error(kind_label, name, where, message)
        features = [FeatureDef(f.name, f.type, f.description, f.tags) for f in declared]
        join_keys = self.join_keys_of(item["entities"], out)
        for feature in features:
            if feature.name in join_keys:
                self.error(
                    kind_label, name, "features",
                    f"{feature.name!r} is also a join key of the view's entities",
                )  # fmt: skip
        if source is not None:
            self._check_source_columns(name, source, join_keys, [])
        return FeatureViewDef(
            name=name,
            kind="stream",
            entities=tuple(item["entities"]),
            features=tuple(features),
            source=item["source"],
            ttl_seconds=None,
            online=item["online"],
            cache_max_age_seconds=(
                parse_duration(item["cache_max_age"]) if item["cache_max_age"] else None
            ),
            description=item["description"],
            tags=item["tags"],
            aggregation=spec,
        )

    @staticmethod
    def join_keys_of(entities: list[str] | tuple[str, ...], out: Definitions) -> dict[str, str]:
        keys: dict[str, str] = {}
        for entity in entities:
            if entity in out.entities:
                keys.update({k.name: k.type for k in out.entities[entity].join_keys})
        return keys

    def _check_source_columns(
        self,
        view: str,
        source: PushSourceDef,
        join_keys: dict[str, str],
        features: list[FeatureDef],
    ) -> None:
        """Records are written to the view by column name, so the columns must be there."""
        columns = {f.name: f.type for f in source.schema}
        wanted = {**join_keys, **{f.name: f.type for f in features}}
        for column, spelling in wanted.items():
            if column not in columns:
                self.error(
                    "feature view", view, "source",
                    f"push source {source.name!r} has no field {column!r}",
                )  # fmt: skip
            elif columns[column] != spelling and {columns[column], spelling} != {"Int32", "Int64"}:
                self.error(
                    "feature view", view, "source",
                    f"field {column!r} is {columns[column]} in push source {source.name!r} "
                    f"but {spelling} in the view",
                )  # fmt: skip

    def _realtime_view(self, item: dict[str, Any], out: Definitions) -> RealtimeViewDef | None:
        name, kind_label = item["name"], "realtime feature view"
        sources: list[RealtimeSourceDef] = []
        for index, raw in enumerate(item["sources"]):
            where = f"sources[{index}]"
            if isinstance(raw, str):
                if raw not in out.feature_views:
                    self.error(kind_label, name, where, f"unknown feature view {raw!r}")
                sources.append(RealtimeSourceDef("feature_view", raw))
                continue
            try:
                data = _REQUEST_SOURCE.load(raw if isinstance(raw, dict) else {})
            except ValidationError as exc:
                for field_path, message in _flatten(exc.messages):
                    self.error(kind_label, name, f"{where}.{field_path}", message)
                continue
            schema = self._fields(kind_label, name, f"{where}.schema", data["schema"])
            sources.append(RealtimeSourceDef("request", data["request"], tuple(schema)))
        features = self._features(kind_label, name, item["features"])
        file_part, function = item["transform"].rsplit(":", 1)
        transform_path = (self.path.parent / file_part).resolve()
        try:
            transform = load_transform(transform_path, function, len(sources))
        except TransformError as exc:
            self.error(kind_label, name, "transform", str(exc))
            return None
        return RealtimeViewDef(
            name=name,
            sources=tuple(sources),
            features=tuple(features),
            transform_file=file_part,
            transform_function=function,
            transform_source=transform.source,
            description=item["description"],
            tags=item["tags"],
        )

    def _feature_service(self, item: dict[str, Any], out: Definitions) -> FeatureServiceDef | None:
        name, kind_label = item["name"], "feature service"
        items: list[ServiceItemDef] = []
        for index, raw in enumerate(item["features"]):
            where = f"features[{index}]"
            if isinstance(raw, str):
                raw = {"feature_view": raw}
            try:
                data = _SERVICE_ITEM.load(raw if isinstance(raw, dict) else {})
            except ValidationError as exc:
                for field_path, message in _flatten(exc.messages):
                    self.error(kind_label, name, f"{where}.{field_path}", message)
                continue
            items.append(
                ServiceItemDef(
                    data["feature_view"],
                    tuple(data["features"]) if data["features"] else None,
                    data["namespace"],
                    data["join_key_map"],
                )
            )
        self._check_service(name, items, out)
        return FeatureServiceDef(
            name=name,
            items=tuple(items),
            online_serving_enabled=item["online_serving_enabled"],
            enable_online_caching=item["enable_online_caching"],
            description=item["description"],
            tags=item["tags"],
        )

    def _check_service(self, name: str, items: list[ServiceItemDef], out: Definitions) -> None:
        """References exist, subsets are real features, and keys and names do not collide."""
        kind_label = "feature service"
        request_keys: dict[str, tuple[str, str]] = {}  # request join key → (type, from where)
        context_keys: dict[str, tuple[str, str]] = {}
        output_names: set[str] = set()
        for index, ref in enumerate(items):
            where = f"features[{index}]"
            view = out.feature_views.get(ref.feature_view)
            realtime = out.realtime_views.get(ref.feature_view)
            if view is None and realtime is None:
                self.error(kind_label, name, where, f"unknown feature view {ref.feature_view!r}")
                continue
            declared = [f.name for f in (view or realtime).features]  # type: ignore[union-attr]  # one is set (checked above)
            for feature in ref.features or ():
                if feature not in declared:
                    self.error(
                        kind_label, name, f"{where}.features",
                        f"{ref.feature_view!r} has no feature {feature!r}",
                    )  # fmt: skip
            namespace = ref.namespace or ref.feature_view
            for feature in ref.features or declared:
                full = f"{namespace}.{feature}"
                if full in output_names:
                    self.error(
                        kind_label, name, where,
                        f"feature {full!r} appears twice; give one reference a namespace",
                    )  # fmt: skip
                output_names.add(full)
            upstream_views = (
                [view]
                if view is not None
                else [
                    out.feature_views[s.name]
                    for s in realtime.sources  # type: ignore[union-attr]  # view is None here
                    if s.kind == "feature_view" and s.name in out.feature_views
                ]
            )
            for upstream in upstream_views:
                keys = self.join_keys_of(upstream.entities, out)
                mapping = ref.join_key_map or {}
                for original in mapping:
                    if view is not None and original not in keys:
                        self.error(
                            kind_label, name, f"{where}.join_key_map",
                            f"{original!r} is not a join key of {ref.feature_view!r}",
                        )  # fmt: skip
                mapped = [mapping.get(k, k) for k in keys]
                if len(set(mapped)) != len(mapped):
                    self.error(
                        kind_label, name, f"{where}.join_key_map",
                        "two join keys of the view map to the same name",
                    )  # fmt: skip
                for original, spelling in keys.items():
                    request_key = mapping.get(original, original)
                    seen = request_keys.get(request_key)
                    if seen and seen[0] != spelling:
                        self.error(
                            kind_label, name, where,
                            f"join key {request_key!r} is {spelling} here but {seen[0]} in "
                            f"{seen[1]!r}; use join_key_map to tell them apart",
                        )  # fmt: skip
                    request_keys.setdefault(request_key, (spelling, ref.feature_view))
            if realtime is not None:
                for source in realtime.sources:
                    for context_field in source.schema:
                        seen = context_keys.get(context_field.name)
                        if seen and seen[0] != context_field.type:
                            self.error(
                                kind_label, name, where,
                                f"request context key {context_field.name!r} is "
                                f"{context_field.type} here but {seen[0]} in {seen[1]!r}",
                            )  # fmt: skip
                        context_keys.setdefault(
                            context_field.name, (context_field.type, ref.feature_view)
                        )
