"""A local ODK Central stand-in for the tests, the benchmark and the demo.

It serves, on loopback, the parts of the ODK Central API (``docs/api.yaml`` in getodk/central-backend) that
the loader uses, with Central's documented behaviour:

- Session authentication: ``POST /v1/sessions``, ``DELETE /v1/sessions/{token}`` and
  ``DELETE /v1/sessions/current``; a Bearer token on every other request. An unknown, expired or revoked
  token gets ``401`` with code ``401.2``; a request with no credentials gets ``403.1``.
- The OData form service: the service document (``{form}.svc``), the EDMX metadata document
  (``{form}.svc/$metadata``) and the data documents (``Submissions``, one table per repeat, and
  navigation paths such as ``Submissions('id')/group/repeat``) with ``$top``, ``$skip``, ``$skiptoken``,
  ``$count``, ``$filter``, ``$orderby``, ``$expand=*``, ``$select`` and ``$wkt``.
- REST submission management: listing (``?deleted=true`` for the soft-deleted ones), metadata, review
  state ``PATCH``, soft ``DELETE``, ``POST .../restore``, and attachments with ``ETag`` and
  ``If-None-Match`` (``304``).
- The form's schema: ``GET .../forms/{xmlFormId}/fields`` (``?odata=true`` for OData names), binary
  fields marked ``binary: true``.

Data lives in memory; tests change it through the Python API while the server runs (``add_submission``,
``edit_submission``, ``set_review_state``, ``delete_submission``, ...). Every request is logged in
``requests`` and counted; ``faults`` (a deque consumed one entry per request) injects failures; the clock
can be frozen and advanced so session expiry and timestamps are testable without sleeping.

Usage::

    with FakeCentral(users={"me@example.org": "secret"}, forms=[form]) as central:
        central.add_submission(form.xml_form_id, {"name": "Alice", "person_details": [...]})
        requests.get(f"{central.base_url}/v1/projects/1/forms/{form.xml_form_id}.svc/Submissions", ...)
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import secrets
import sys
import threading
import time
import traceback
import uuid
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "REVIEW_STATES",
    "FakeCentral",
    "Field",
    "FormSpec",
    "Group",
    "NotFoundError",
    "Repeat",
    "RequestRecord",
    "sanitize_odata_name",
    "xform_xml",
]

REVIEW_STATES = (None, "hasIssues", "edited", "rejected", "approved")
FAULTS = ("timeout", "truncated", "invalid_json")
SYSTEM_FIELDS = (  # the keys of __system, in Central's order
    "submissionDate",
    "updatedAt",
    "deletedAt",
    "submitterId",
    "submitterName",
    "attachmentsPresent",
    "attachmentsExpected",
    "status",
    "reviewState",
    "deviceId",
    "edits",
    "formVersion",
)
PRIMITIVE_TYPES = (
    "string",
    "int",
    "decimal",
    "boolean",
    "date",
    "dateTime",
    "time",
    "geopoint",
    "geotrace",
    "geoshape",
    "binary",
    "select1",
    "select",
    "barcode",
)
EDM_TYPES = {
    "int": "Edm.Int64",
    "decimal": "Edm.Decimal",
    "boolean": "Edm.Boolean",
    "geopoint": "Edm.GeographyPoint",
    "geotrace": "Edm.GeographyLineString",
    "geoshape": "Edm.GeographyPolygon",
    "date": "Edm.Date",
    "dateTime": "Edm.DateTimeOffset",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JSON_TYPE = "application/json; charset=utf-8"
_CACHE_LIMIT = 64
_CURSOR_LIMIT = 4096


# --------------------------------------------------------------------------------------------------
# Form declarations
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A question: ``type`` is an XForms type (``string``, ``int``, ``decimal``, ``binary``, ...)."""

    name: str
    type: str = "string"


@dataclass(frozen=True)
class Group:
    """A non-repeating group: its fields nest in an object."""

    name: str
    children: tuple[Field | Group | Repeat, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", tuple(_as_node(c) for c in self.children))


@dataclass(frozen=True)
class Repeat:
    """A repeat group: its instances are rows of their own OData table."""

    name: str
    children: tuple[Field | Group | Repeat, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", tuple(_as_node(c) for c in self.children))


@dataclass(frozen=True)
class FormSpec:
    """A published form: its ``xml_form_id``, ``version`` and fields (a ``meta/instanceID`` is implied)."""

    xml_form_id: str
    version: str = ""
    fields: tuple[Field | Group | Repeat, ...] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(_as_node(c) for c in self.fields))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FormSpec:
        """``{"xml_form_id", "version", "fields": [{"name", "type", "children"}], "name"}``."""
        unknown = set(spec) - {"xml_form_id", "version", "fields", "name"}
        if unknown:
            raise ValueError(
                f"unknown form keys {sorted(unknown)}; expected xml_form_id, version, fields, name"
            )
        return cls(
            xml_form_id=str(spec["xml_form_id"]),
            version=str(spec.get("version", "")),
            fields=tuple(spec.get("fields", ())),
            name=spec.get("name"),
        )


def _as_node(spec: Any) -> Field | Group | Repeat:
    if isinstance(spec, Field | Group | Repeat):
        return spec
    if isinstance(spec, Mapping):
        kind = spec.get("type", "string")
        if kind == "group":
            return Group(spec["name"], tuple(spec.get("children", ())))
        if kind == "repeat":
            return Repeat(spec["name"], tuple(spec.get("children", ())))
        if spec.get("children"):
            raise ValueError(f"field {spec['name']!r} of type {kind!r} cannot have children")
        return Field(spec["name"], kind)
    raise TypeError(f"a form field is a Field, Group, Repeat or dict, not {type(spec).__name__}")


def _as_form(spec: FormSpec | Mapping[str, Any]) -> FormSpec:
    return spec if isinstance(spec, FormSpec) else FormSpec.from_dict(spec)


def sanitize_odata_name(name: str) -> str:
    """Central's OData identifier rule: a leading character other than a letter or ``_`` gets a ``_``
    in front, and each run of characters other than letters, digits and ``_`` becomes one ``_``."""
    name = re.sub(r"^([^A-Za-z_])", r"_\1", name)
    return re.sub(r"[^A-Za-z0-9_]+", "_", name)


class _Node:
    """A compiled field: ``out`` is the OData name, ``path`` the OData names from the root."""

    __slots__ = ("children", "decorate", "kind", "name", "out", "path", "type")

    def __init__(self, name: str, kind: str, type_: str, path: tuple[str, ...]) -> None:
        self.name = name
        self.out = sanitize_odata_name(name)
        self.kind = kind  # "value" | "group" | "repeat"
        self.type = type_
        self.path = path
        self.children: tuple[_Node, ...] = ()
        self.decorate = False  # a repeat below this level (through groups only) or a geo field


class _Table:
    """One OData table per repeat: ``Submissions.<path>`` with its parent-link column."""

    __slots__ = ("index", "name", "node", "parent_col", "steps")

    def __init__(self, index: int, node: _Node, steps: tuple[_Node, ...], parent: _Node | None) -> None:
        self.index = index
        self.node = node
        self.steps = steps
        self.name = "Submissions." + ".".join(node.path)
        self.parent_col = "__" + "-".join(("Submissions", *(parent.path if parent else ()))) + "-id"


_GEO_TYPES = ("geopoint", "geotrace", "geoshape")


class _Schema:
    """A form compiled for validation, rendering and the metadata document."""

    def __init__(self, spec: FormSpec) -> None:
        self.spec = spec
        fields = list(spec.fields)
        meta = next((f for f in fields if isinstance(f, Group) and f.name == "meta"), None)
        if meta is None:
            fields.insert(0, Group("meta", (Field("instanceID"),)))
        elif not any(c.name == "instanceID" for c in meta.children):
            fields[fields.index(meta)] = Group("meta", (Field("instanceID"), *meta.children))
        self.tables: list[_Table] = []
        self.root = self._compile(fields, (), (), None)
        self.root_decorate = any(n.decorate or n.kind == "repeat" or n.type in _GEO_TYPES for n in self.root)
        self.by_name = {t.name: t for t in self.tables}
        self.has_instance_name = any(
            n.out == "meta" and any(c.name == "instanceName" for c in n.children) for n in self.root
        )

    def _compile(
        self,
        specs: Sequence[Field | Group | Repeat],
        prefix: tuple[str, ...],
        steps: tuple[_Node, ...],
        parent_repeat: _Node | None,
    ) -> tuple[_Node, ...]:
        nodes: list[_Node] = []
        seen: set[str] = set()
        for spec in specs:
            kind = "group" if isinstance(spec, Group) else "repeat" if isinstance(spec, Repeat) else "value"
            type_ = spec.type if isinstance(spec, Field) else kind
            if kind == "value" and type_ not in PRIMITIVE_TYPES:
                raise ValueError(f"field {spec.name!r}: unknown type {type_!r}; use one of {PRIMITIVE_TYPES}")
            node = _Node(spec.name, kind, type_, (*prefix, sanitize_odata_name(spec.name)))
            if node.out in seen:
                raise ValueError(f"two fields named {node.out!r} under /{'/'.join(prefix)}")
            seen.add(node.out)
            if isinstance(spec, Group):
                node.children = self._compile(spec.children, node.path, (*steps, node), parent_repeat)
                node.decorate = any(
                    c.kind == "repeat" or c.decorate or c.type in _GEO_TYPES for c in node.children
                )
            elif isinstance(spec, Repeat):
                table = _Table(len(self.tables), node, (*steps, node), parent_repeat)
                self.tables.append(table)
                node.children = self._compile(spec.children, node.path, (*steps, node), node)
            nodes.append(node)
        return tuple(nodes)


# --------------------------------------------------------------------------------------------------
# Values and time
# --------------------------------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _ms(moment: datetime) -> int:
    return (_aware(moment) - EPOCH) // timedelta(milliseconds=1)


def _iso(ms: int | None) -> str | None:
    """Central's timestamps: UTC with milliseconds, ``2018-01-19T23:58:03.395Z``."""
    if ms is None:
        return None
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _parse_timestamp(text: str) -> int:
    """An ISO date or timestamp to epoch milliseconds; no offset means UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    match = re.match(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", value)
    if match:  # fromisoformat wants at most 6 fractional digits
        value = f"{match[1]}.{match[2][:6].ljust(6, '0')}{match[3]}"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        value += "T00:00:00+00:00"
    return _ms(datetime.fromisoformat(value))


def _when(moment: datetime | str | None, default: int) -> int:
    if moment is None:
        return default
    if isinstance(moment, str):
        return _parse_timestamp(moment)
    return _ms(moment)


def _number(value: float) -> float | int:
    """Numbers as JavaScript prints them: ``1700.0`` is ``1700``."""
    return int(value) if value.is_integer() else value


def _geojson(type_: str, value: Any) -> dict[str, Any] | None:
    """ODK's ``lat lon [alt [accuracy]]`` (``;``-separated for traces and shapes) to GeoJSON."""
    text = " ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    points: list[list[float]] = []
    accuracies: list[float | None] = []
    for chunk in filter(None, (c.strip() for c in text.split(";"))):
        parts = [_number(float(p)) for p in chunk.split()]
        if len(parts) < 2:
            raise ValueError(f"{type_} value {value!r} needs at least latitude and longitude")
        points.append([parts[1], parts[0], *parts[2:3]])
        accuracies.append(parts[3] if len(parts) > 3 else None)
    if not points:
        return None
    if type_ == "geopoint":
        result: dict[str, Any] = {"type": "Point", "coordinates": points[0]}
        if accuracies[0] is not None:
            result["properties"] = {"accuracy": accuracies[0]}
        return result
    result = (
        {"type": "LineString", "coordinates": points}
        if type_ == "geotrace"
        else {"type": "Polygon", "coordinates": [points]}
    )
    if any(a is not None for a in accuracies):
        result["properties"] = {"accuracies": accuracies}
    return result


def _wkt(geo: dict[str, Any] | None) -> str | None:
    if geo is None:
        return None

    def point(coords: list[float]) -> str:
        return " ".join(str(c) for c in coords)

    if geo["type"] == "Point":
        return f"POINT ({point(geo['coordinates'])})"
    if geo["type"] == "LineString":
        return f"LINESTRING ({','.join(point(p) for p in geo['coordinates'])})"
    return f"POLYGON (({','.join(point(p) for p in geo['coordinates'][0])}))"


def _coerce(node: _Node, value: Any, where: str) -> Any:
    """A Python value as Central renders it in OData: numbers for int/decimal, GeoJSON for geo, else text."""
    if value is None or value == "":
        return None
    try:
        if node.type == "int":
            if isinstance(value, bool):
                raise ValueError("a boolean is not an int")
            return int(value)
        if node.type == "decimal":
            return _number(float(value))
        if node.type in _GEO_TYPES:
            return _geojson(node.type, value)
        if node.type == "boolean":
            return value if isinstance(value, bool) else str(value).lower() in ("true", "1")
        if node.type == "dateTime" and isinstance(value, datetime):
            return _iso(_ms(value))
        if isinstance(value, date):
            return value.isoformat()
        if node.type == "select" and isinstance(value, list | tuple):
            return " ".join(str(v) for v in value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {value!r} is not a valid {node.type} ({exc})") from None


def _normalise(nodes: Sequence[_Node], data: Any, where: str) -> dict[str, Any]:
    """Validate ``data`` against the form and return it keyed by OData names, groups always present."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{where or '/'}: expected an object (dict), got {type(data).__name__}")
    known = {n.name: n for n in nodes}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ValueError(f"{where or '/'}: unknown field(s) {unknown}; the form declares {sorted(known)}")
    out: dict[str, Any] = {}
    for node in nodes:
        value = data.get(node.name)
        here = f"{where}/{node.name}"
        if node.kind == "value":
            out[node.out] = _coerce(node, value, here)
        elif node.kind == "group":
            out[node.out] = _normalise(node.children, value, here)
        else:
            if value is None:
                value = []
            if not isinstance(value, list | tuple):
                raise ValueError(f"{here}: a repeat takes a list of objects, got {type(value).__name__}")
            out[node.out] = [
                _normalise(node.children, item, f"{here}[{i}]") for i, item in enumerate(value, 1)
            ]
    return out


def _binaries(nodes: Sequence[_Node], data: Mapping[str, Any] | None, found: list[str]) -> list[str]:
    """File names the submission references in its binary fields, in document order."""
    if not data:
        return found
    for node in nodes:
        value = data.get(node.out)
        if node.kind == "value":
            if node.type == "binary" and value and value not in found:
                found.append(value)
        elif node.kind == "group":
            _binaries(node.children, value, found)
        else:
            for item in value or ():
                _binaries(node.children, item, found)
    return found


def _fields_json(nodes: Sequence[_Node], odata: bool, prefix: str = "") -> list[dict[str, Any]]:
    """``GET .../forms/{xmlFormId}/fields``: every field in document order, ``{name, path, type, binary,
    selectMultiple}``; groups are ``structure``, repeats ``repeat``; ``?odata=true`` gives the names
    OData uses (sanitised) in ``name`` and ``path``."""
    fields: list[dict[str, Any]] = []
    for node in nodes:
        name = node.out if odata else node.name
        path = f"{prefix}/{name}"
        kind = {"group": "structure", "repeat": "repeat"}.get(node.kind)
        type_ = kind or ("string" if node.type == "select" else node.type)
        fields.append(
            {
                "name": name,
                "path": path,
                "type": type_,
                "binary": True if node.type == "binary" else None,
                "selectMultiple": True if node.type == "select" else None,
            }
        )
        fields += _fields_json(node.children, odata, path)
    return fields


def _count_rows(steps: tuple[_Node, ...], data: Mapping[str, Any] | None, depth: int = 0) -> int:
    if not data:
        return 0
    node = steps[depth]
    value = data.get(node.out)
    if depth == len(steps) - 1:
        return len(value or ())
    if node.kind == "group":
        return _count_rows(steps, value, depth + 1)
    return sum(_count_rows(steps, item, depth + 1) for item in value or ())


def _row_id(root_id: str, id_path: str) -> str:
    """A repeat row's ``__id``: a SHA-1 of the submission's (root) instance ID and the row's position
    (``/group/repeat[2]/child[1]``), so it is stable while the submission is unchanged and unique."""
    return hashlib.sha1(f"{root_id}\x1f{id_path}".encode(), usedforsecurity=False).hexdigest()


def _link_id(instance_id: str) -> str:
    """Instance IDs in navigation links are URI-component encoded, as Central does."""
    return quote(instance_id, safe="!*'()")


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class NotFoundError(KeyError):
    """The Python API was asked for a form or submission that does not exist (or is in the wrong state)."""


class _Problem(Exception):
    """An error answered in Central's shape ``{"code": 404.1, "message": ...}``; the status is the code's
    integer part."""

    def __init__(self, code: float, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return int(self.code)


def _not_found() -> _Problem:
    return _Problem(404.1, "Could not find the resource you were looking for.")


def _auth_failed() -> _Problem:
    return _Problem(401.2, "Could not authenticate with the provided credentials.")


def _unparseable_filter(reason: str) -> _Problem:
    return _Problem(400.18, f"The OData filter expression you provided could not be parsed: {reason}")


def _unsupported_field(text: str) -> _Problem:
    return _Problem(
        501.5, f"The given OData filter expression references fields not supported by this server: {text}"
    )


# --------------------------------------------------------------------------------------------------
# $filter: lt le eq ne ge gt, and or not, parentheses, now() year() month() day() hour() minute() second()
# --------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*')
      | (?P<ts>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?)
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<name>\$?[A-Za-z_]\w*(?:/\$?[A-Za-z_]\w*)*)
      | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {"now", "year", "month", "day", "hour", "minute", "second"}
_SYSTEM_FIELDS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "__id": (lambda s: s.instance_id, "str"),
    "__system/submissionDate": (lambda s: s.created_ms, "ts"),
    "__system/updatedAt": (lambda s: s.updated_ms, "ts"),
    "__system/deletedAt": (lambda s: s.deleted_ms, "ts"),
    "__system/reviewState": (lambda s: s.review_state, "str"),
    "__system/submitterId": (lambda s: s.submitter_id, "num"),
}
_ROOT_FIELDS = {f"$root/Submissions/{k}": v for k, v in _SYSTEM_FIELDS.items()}
_FIELDS_FOR_SUBMISSIONS = {**_SYSTEM_FIELDS, **_ROOT_FIELDS}
_DELETED_AT = ("__system/deletedAt", "$root/Submissions/__system/deletedAt")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            raise _unparseable_filter(f"unexpected character at position {pos}: {text[pos : pos + 10]!r}")
        tokens.append((match.lastgroup, match.group(match.lastgroup), match.start(match.lastgroup)))
        pos = match.end()
    return tokens


class _FilterParser:
    """Recursive descent: or < and < not < comparison < operand."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def parse(self) -> tuple:
        if not self.tokens:
            raise _unparseable_filter("the expression is empty")
        tree = self._or()
        if self.pos != len(self.tokens):
            kind, value, at = self.tokens[self.pos]
            raise _unparseable_filter(f"unexpected {value!r} at position {at}")
        return tree

    def _peek_word(self) -> str | None:
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "name":
            return self.tokens[self.pos][1].lower()
        return None

    def _or(self) -> tuple:
        left = self._and()
        while self._peek_word() == "or":
            self.pos += 1
            left = ("or", left, self._and())
        return left

    def _and(self) -> tuple:
        left = self._not()
        while self._peek_word() == "and":
            self.pos += 1
            left = ("and", left, self._not())
        return left

    def _not(self) -> tuple:
        if self._peek_word() == "not":
            self.pos += 1
            return ("not", self._not())
        return self._comparison()

    def _comparison(self) -> tuple:
        left = self._operand()
        word = self._peek_word()
        if word in _COMPARISONS:
            self.pos += 1
            return ("cmp", word, left, self._operand())
        return left

    def _operand(self) -> tuple:
        if self.pos >= len(self.tokens):
            raise _unparseable_filter("the expression ends too early")
        kind, value, at = self.tokens[self.pos]
        self.pos += 1
        if kind == "punct":
            if value != "(":
                raise _unparseable_filter(f"unexpected {value!r} at position {at}")
            inner = self._or()
            self._expect(")")
            return inner
        if kind == "str":
            return ("lit", value[1:-1].replace("''", "'"), "str")
        if kind == "ts":
            try:
                return ("lit", _parse_timestamp(value), "ts")
            except ValueError:
                raise _unparseable_filter(f"invalid date/time {value!r} at position {at}") from None
        if kind == "num":
            return ("lit", float(value) if "." in value else int(value), "num")
        lowered = value.lower()
        if lowered == "null":
            return ("lit", None, "null")
        if lowered in ("true", "false"):
            return ("lit", lowered == "true", "bool")
        if self.pos < len(self.tokens) and self.tokens[self.pos][1] == "(":
            if lowered not in _FUNCTIONS:
                raise _Problem(
                    501.4,
                    "The given OData filter expression uses features not supported by this server: "
                    f"function {value} at {at}",
                )
            self.pos += 1
            if self.pos >= len(self.tokens):
                raise _unparseable_filter(f"unclosed call to {value}() at position {at}")
            args = [] if self.tokens[self.pos][1] == ")" else [self._or()]
            self._expect(")")
            if (lowered == "now") != (not args):
                raise _unparseable_filter(f"wrong number of arguments to {value}() at position {at}")
            return ("call", lowered, *args)
        if lowered in _COMPARISONS or lowered in ("and", "or", "not"):
            raise _unparseable_filter(f"unexpected operator {value!r} at position {at}")
        return ("field", value, at)

    def _expect(self, punct: str) -> None:
        if self.pos >= len(self.tokens) or self.tokens[self.pos][1] != punct:
            raise _unparseable_filter(f"expected {punct!r}")
        self.pos += 1


def _mentions(tree: tuple, paths: Sequence[str]) -> bool:
    if tree[0] == "field":
        return tree[1] in paths
    return any(_mentions(part, paths) for part in tree[1:] if isinstance(part, tuple))


_EXTRACT = {
    "year": lambda m: m.year,
    "month": lambda m: m.month,
    "day": lambda m: m.day,
    "hour": lambda m: m.hour,
    "minute": lambda m: m.minute,
    "second": lambda m: m.second,
}
_COMPATIBLE = {("ts", "ts"), ("num", "num"), ("str", "str"), ("bool", "bool")}


def _compile_filter(
    tree: tuple, fields: Mapping[str, tuple[Callable[[Any], Any], str]], now_ms: int
) -> tuple[Callable[[Any], Any], str]:
    """An AST to a function of a submission, with SQL's three-valued logic: comparisons with a NULL
    operand are unknown (None) except ``eq``/``ne``, which compare NULL as a value (``eq null`` is
    ``IS NULL``), as Central's SQL does. Rows pass only when the whole expression is true."""
    kind = tree[0]
    if kind == "lit":
        value = tree[1]
        return (lambda s: value), tree[2]
    if kind == "field":
        if tree[1] not in fields:
            raise _unsupported_field(f"{tree[1]} at {tree[2]}")
        return fields[tree[1]]
    if kind == "call":
        if tree[1] == "now":
            return (lambda s: now_ms), "ts"
        inner, inner_kind = _compile_filter(tree[2], fields, now_ms)
        if inner_kind not in ("ts", "null"):
            raise _unparseable_filter(f"{tree[1]}() takes a date/time")
        part = _EXTRACT[tree[1]]

        def extract(s: Any) -> Any:
            ms = inner(s)
            return None if ms is None else part(EPOCH + timedelta(milliseconds=ms))

        return extract, "num"
    if kind == "not":
        inner, _ = _compile_filter(tree[1], fields, now_ms)

        def negate(s: Any) -> Any:
            value = inner(s)
            return None if value is None else not value

        return negate, "bool"
    if kind in ("and", "or"):
        left, _ = _compile_filter(tree[1], fields, now_ms)
        right, _ = _compile_filter(tree[2], fields, now_ms)
        if kind == "and":

            def both(s: Any) -> Any:
                a = left(s)
                if a is False:
                    return False
                b = right(s)
                if b is False:
                    return False
                return None if a is None or b is None else True

            return both, "bool"

        def either(s: Any) -> Any:
            a = left(s)
            if a is True:
                return True
            b = right(s)
            if b is True:
                return True
            return None if a is None or b is None else False

        return either, "bool"
    # comparison
    op, left_tree, right_tree = tree[1], tree[2], tree[3]
    left, left_kind = _compile_filter(left_tree, fields, now_ms)
    right, right_kind = _compile_filter(right_tree, fields, now_ms)
    # a quoted literal compared with a timestamp or a number is cast, as PostgreSQL does
    for this, other in ((left_tree, right_kind), (right_tree, left_kind)):
        if this[0] == "lit" and this[2] == "str" and other in ("ts", "num"):
            try:
                cast = _parse_timestamp(this[1]) if other == "ts" else float(this[1])
            except ValueError:
                raise _unparseable_filter(f"{this[1]!r} is not a valid {other}") from None
            if this is left_tree:
                left, left_kind = (lambda s, v=cast: v), other
            else:
                right, right_kind = (lambda s, v=cast: v), other
    if "null" not in (left_kind, right_kind) and (left_kind, right_kind) not in _COMPATIBLE:
        raise _unparseable_filter(f"cannot compare {left_kind} with {right_kind} using {op}")
    if op in ("eq", "ne"):
        want = op == "eq"
        return (lambda s: (left(s) == right(s)) is want), "bool"
    compare = {
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
    }[op]

    def ordered(s: Any) -> Any:
        a = left(s)
        if a is None:
            return None
        b = right(s)
        return None if b is None else compare(a, b)

    return ordered, "bool"


def _row_filter(
    text: str | None, fields: Mapping[str, tuple[Callable[[Any], Any], str]], now_ms: int
) -> Callable[[Any], bool]:
    """The rows a data document shows: those the filter makes true, without the soft-deleted ones unless
    the filter names ``__system/deletedAt`` (Central's rule)."""
    if text is None:
        return lambda s: s.deleted_ms is None
    tree = _FilterParser(text).parse()
    test, kind = _compile_filter(tree, fields, now_ms)
    if kind != "bool":
        raise _unparseable_filter("the expression is not a condition")
    if _mentions(tree, _DELETED_AT):
        return lambda s: test(s) is True
    return lambda s: s.deleted_ms is None and test(s) is True


# --------------------------------------------------------------------------------------------------
# The in-memory model
# --------------------------------------------------------------------------------------------------


class _Blob:
    __slots__ = ("content", "content_type", "etag")

    def __init__(self, content: bytes, content_type: str) -> None:
        self.content = content
        self.content_type = content_type
        self.etag = hashlib.md5(content, usedforsecurity=False).hexdigest()


def _content_type(name: str) -> str:
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "png": "image/png",
        "gif": "image/gif",
        "webp": "image/webp",
        "mp3": "audio/mpeg",
        "m4a": "audio/mp4",
        "mp4": "video/mp4",
        "csv": "text/csv",
        "txt": "text/plain",
        "pdf": "application/pdf",
    }.get(extension, "application/octet-stream")


class _Submission:
    """One logical submission (its current version); ``data_json`` is the normalised data, compact."""

    __slots__ = (
        "attachments",
        "created_ms",
        "data_json",
        "deleted_ms",
        "device_id",
        "edits",
        "form_version",
        "instance_id",
        "instance_name",
        "review_state",
        "row_counts",
        "seq",
        "submitter_id",
        "submitter_name",
        "updated_ms",
        "user_agent",
        "version_created_ms",
        "version_device_id",
        "version_id",
        "version_submitter_id",
    )

    @property
    def key(self) -> tuple[int, int]:
        return (self.created_ms, self.seq)


class _Form:
    """A form's submissions, kept sorted by (submissionDate, creation sequence)."""

    def __init__(self, spec: FormSpec, created_ms: int) -> None:
        self.spec = spec
        self.schema = _Schema(spec)
        self.created_ms = created_ms
        self.by_id: dict[str, _Submission] = {}
        self.used_ids: set[str] = set()  # every instanceID ever seen (versions too), as Central refuses reuse
        self.keys: list[tuple[int, int]] = []
        self.ordered: list[_Submission] = []
        self.version = 0
        self.caches: dict[Any, Any] = {}
        self.cursors: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()
        self.xml = xform_xml(spec)
        self.hash = hashlib.md5(self.xml.encode(), usedforsecurity=False).hexdigest()

    def insert(self, sub: _Submission) -> None:
        key = sub.key
        index = bisect_left(self.keys, key)
        self.keys.insert(index, key)
        self.ordered.insert(index, sub)
        self.by_id[sub.instance_id] = sub
        self.changed()

    def remove(self, sub: _Submission) -> None:
        index = bisect_left(self.keys, sub.key)
        del self.keys[index]
        del self.ordered[index]
        del self.by_id[sub.instance_id]
        self.changed()

    def changed(self) -> None:
        self.version += 1
        self.caches.clear()

    def cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key not in self.caches:
            if len(self.caches) >= _CACHE_LIMIT:
                self.caches.clear()
            self.caches[key] = compute()
        return self.caches[key]


class _NewestFirst:
    """Central's default order (``createdAt desc, id desc``) as a view over the sorted index."""

    def __init__(self, form: _Form) -> None:
        self.form = form
        self.size = len(form.ordered)

    def __len__(self) -> int:
        return self.size

    def at(self, index: int) -> _Submission:
        return self.form.ordered[self.size - 1 - index]

    def position(self, sub: _Submission) -> int | None:
        index = bisect_left(self.form.keys, sub.key)
        if index < self.size and self.form.ordered[index] is sub:
            return self.size - 1 - index
        return None


class _Sorted:
    """An ``$orderby`` order: ASC puts NULLs first, DESC last; ties by creation in the first direction."""

    def __init__(self, subs: list[_Submission]) -> None:
        self.subs = subs
        self.index = {id(s): i for i, s in enumerate(subs)}

    def __len__(self) -> int:
        return len(self.subs)

    def at(self, index: int) -> _Submission:
        return self.subs[index]

    def position(self, sub: _Submission) -> int | None:
        return self.index.get(id(sub))


def _parse_orderby(
    text: str, fields: Mapping[str, tuple[Callable[[Any], Any], str]]
) -> list[tuple[str, bool]]:
    clauses: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise _unsupported_field(part.strip())
        if words[0] not in fields:
            raise _unsupported_field(words[0])
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise _unsupported_field(words[1])
        clauses.append((words[0], direction == "desc"))
    return clauses


def _sorted(form: _Form, clauses: list[tuple[str, bool]], fields: Mapping[str, Any]) -> _Sorted:
    subs = sorted(form.ordered, key=lambda s: s.seq, reverse=clauses[0][1])
    for path, descending in reversed(clauses):
        getter = fields[path][0]

        def key(s: _Submission, getter: Callable[[Any], Any] = getter) -> tuple:
            value = getter(s)
            return (0,) if value is None else (1, value)

        subs.sort(key=key, reverse=descending)
    return _Sorted(subs)


# --------------------------------------------------------------------------------------------------
# Rendering OData rows
# --------------------------------------------------------------------------------------------------


class _Render:
    """Per-request rendering options."""

    __slots__ = ("expand", "wkt")

    def __init__(self, expand: bool, wkt: bool) -> None:
        self.expand = expand
        self.wkt = wkt


def _decorate(
    nodes: Sequence[_Node], obj: dict[str, Any], root_id: str, link: str, id_path: str, opts: _Render
) -> dict[str, Any]:
    """Turn stored data into OData output at one level: a repeat becomes ``<name>@odata.navigationLink``
    (and, with ``$expand=*``, the array of its rows with their ``__id``), where it has instances."""
    out: dict[str, Any] = {}
    for node in nodes:
        value = obj.get(node.out)
        if node.kind == "value":
            out[node.out] = _wkt(value) if opts.wkt and node.type in _GEO_TYPES else value
        elif node.kind == "group":
            group_link = f"{link}/{node.out}"
            out[node.out] = (
                _decorate(node.children, value, root_id, group_link, f"{id_path}/{node.out}", opts)
                if node.decorate and value is not None
                else value
            )
        elif value:
            table_link = f"{link}/{node.out}"
            out[f"{node.out}@odata.navigationLink"] = table_link
            if opts.expand:
                rows = []
                for i, item in enumerate(value, 1):
                    path = f"{id_path}/{node.out}[{i}]"
                    row_id = _row_id(root_id, path)
                    row = {"__id": row_id}
                    row.update(
                        _decorate(node.children, item, root_id, f"{table_link}('{row_id}')", path, opts)
                    )
                    rows.append(row)
                out[node.out] = rows
    return out


def _walk(
    table: _Table, data: dict[str, Any], root_id: str
) -> Iterator[tuple[dict[str, Any], str, str, str, str]]:
    """Each instance of ``table`` in one submission: (data, row id, parent id, row link, row id path)."""
    levels: list[tuple[Any, str, str, str]] = [(data, f"Submissions('{_link_id(root_id)}')", "", root_id)]
    for node in table.steps[:-1]:
        deeper: list[tuple[Any, str, str, str]] = []
        for obj, link, id_path, parent in levels:
            value = obj.get(node.out) if obj else None
            if node.kind == "group":
                deeper.append((value, f"{link}/{node.out}", f"{id_path}/{node.out}", parent))
                continue
            for i, item in enumerate(value or (), 1):
                path = f"{id_path}/{node.out}[{i}]"
                row_id = _row_id(root_id, path)
                deeper.append((item, f"{link}/{node.out}('{row_id}')", path, row_id))
        levels = deeper
    last = table.node
    for obj, link, id_path, parent in levels:
        for i, item in enumerate((obj.get(last.out) if obj else None) or (), 1):
            path = f"{id_path}/{last.out}[{i}]"
            row_id = _row_id(root_id, path)
            yield item, row_id, parent, f"{link}/{last.out}('{row_id}')", path


def _repeat_rows(table: _Table, sub: _Submission, opts: _Render) -> list[dict[str, Any]]:
    rows = []
    for item, row_id, parent, link, path in _walk(table, json.loads(sub.data_json), sub.instance_id):
        row = {"__id": row_id, table.parent_col: parent}
        row.update(_decorate(table.node.children, item, sub.instance_id, link, path, opts))
        rows.append(row)
    return rows


def _system(sub: _Submission) -> dict[str, Any]:
    attachments = sub.attachments or {}
    return {
        "submissionDate": _iso(sub.created_ms),
        "updatedAt": _iso(sub.updated_ms),
        "deletedAt": _iso(sub.deleted_ms),
        "submitterId": str(sub.submitter_id),
        "submitterName": sub.submitter_name,
        "attachmentsPresent": sum(1 for blob in attachments.values() if blob is not None),
        "attachmentsExpected": len(attachments),
        "status": None,
        "reviewState": sub.review_state,
        "deviceId": sub.device_id,
        "edits": sub.edits,
        "formVersion": sub.form_version,
    }


def _root_row(schema: _Schema, sub: _Submission, opts: _Render) -> dict[str, Any]:
    data = json.loads(sub.data_json)
    row: dict[str, Any] = {"__id": sub.instance_id, "__system": _system(sub)}
    if schema.root_decorate or opts.expand:
        data = _decorate(
            schema.root, data, sub.instance_id, f"Submissions('{_link_id(sub.instance_id)}')", "", opts
        )
    row.update(data)
    return row


def _select(
    rows: list[dict[str, Any]], select: str, nodes: Sequence[_Node], extra: set[str]
) -> list[dict[str, Any]]:
    """``$select``: top-level names or ``group/field`` paths, ``__id``, ``__system`` or ``__system/x``."""
    wanted: dict[str, Any] = {}
    by_out = {n.out: n for n in nodes}
    for raw in select.split(","):
        path = raw.strip()
        if not path:
            continue
        parts = path.split("/")
        if path in extra or (parts[0] == "__system" and "__system" in extra):
            target: Any = wanted
            for part in parts[:-1]:
                target = target.setdefault(part, {})
                if target is True:
                    break
            else:
                target[parts[-1]] = True
            continue
        level = by_out
        target = wanted
        for depth, part in enumerate(parts):
            node = level.get(part)
            if node is None:
                raise _Problem(400.23, f"Could not find a property named '{path}'")
            if node.kind == "repeat" and depth < len(parts) - 1:
                raise _Problem(
                    400.24,
                    f"The given OData select property '{path}' uses features not supported by this server.",
                )
            if depth == len(parts) - 1:
                target[part] = True
            else:
                existing = target.get(part)
                if existing is True:
                    break
                target = target.setdefault(part, {})
                level = {c.out: c for c in node.children}

    def prune(obj: dict[str, Any], keep: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            base = key.split("@", 1)[0]
            rule = keep.get(base)
            if rule is True:
                out[key] = value
            elif rule and isinstance(value, dict):
                out[key] = prune(value, rule)
        return out

    return [prune(row, wanted) for row in rows]


# --------------------------------------------------------------------------------------------------
# XForm (for GET /forms/{id}.xml and the form hash)
# --------------------------------------------------------------------------------------------------


def xform_xml(spec: FormSpec | Mapping[str, Any]) -> str:
    """A minimal ODK XForm for a declared form (instance, binds and body controls)."""
    spec = _as_form(spec)
    schema = _Schema(spec)
    binds: list[str] = []
    instance: list[str] = []
    body: list[str] = []

    def walk(nodes: Sequence[_Node], path: str, depth: int, controls: list[str]) -> None:
        pad = "  " * depth
        for node in nodes:
            here = f"{path}/{node.name}"
            if node.kind == "value":
                instance.append(f"{pad}<{node.name}/>")
                bind_type = "string" if node.type in ("select1", "select") else node.type
                extra = ' preload="uid"' if here == "/data/meta/instanceID" else ""
                binds.append(f'      <bind nodeset="{here}" type="{bind_type}"{extra}/>')
                if not here.startswith("/data/meta/"):
                    tag = "upload" if node.type == "binary" else "input"
                    media = ' mediatype="image/*"' if node.type == "binary" else ""
                    controls.append(f'<{tag} ref="{here}"{media}><label>{escape(node.name)}</label></{tag}>')
                continue
            template = ' jr:template=""' if node.kind == "repeat" else ""
            instance.append(f"{pad}<{node.name}{template}>")
            inner: list[str] = []
            walk(node.children, here, depth + 1, inner)
            instance.append(f"{pad}</{node.name}>")
            if here == "/data/meta":
                continue
            if node.kind == "repeat":
                controls.append(
                    f'<group ref="{here}"><label>{escape(node.name)}</label><repeat nodeset="{here}">'
                    + "".join(inner)
                    + "</repeat></group>"
                )
            else:
                controls.append(
                    f'<group ref="{here}"><label>{escape(node.name)}</label>' + "".join(inner) + "</group>"
                )

    walk(schema.root, "/data", 5, body)
    title = escape(spec.name or spec.xml_form_id)
    return "\n".join(
        [
            '<?xml version="1.0"?>',
            '<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"'
            ' xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms"'
            ' xmlns:odk="http://www.opendatakit.org/xforms">',
            "  <h:head>",
            f"    <h:title>{title}</h:title>",
            "    <model>",
            "      <instance>",
            f"        <data id={quoteattr(spec.xml_form_id)} version={quoteattr(spec.version)}>",
            *instance,
            "        </data>",
            "      </instance>",
            *binds,
            "    </model>",
            "  </h:head>",
            "  <h:body>",
            *(f"    {control}" for control in body),
            "  </h:body>",
            "</h:html>",
            "",
        ]
    )


def _edmx(form: _Form) -> str:
    """The metadata document: repeats as EntityTypes (with their parent-link property), groups as
    ComplexTypes, and one EntitySet per table."""
    schema = form.schema
    base = "org.opendatakit.user." + sanitize_odata_name(form.spec.xml_form_id)
    entities: list[tuple[str, list[str], bool]] = []
    complexes: list[tuple[str, list[str]]] = []

    def properties(nodes: Sequence[_Node]) -> list[str]:
        props: list[str] = []
        for node in nodes:
            if node.kind == "value":
                props.append(f'<Property Name="{node.out}" Type="{EDM_TYPES.get(node.type, "Edm.String")}"/>')
            elif node.kind == "group":
                type_name = ".".join(node.path)
                props.append(f'<Property Name="{node.out}" Type="{base}.{type_name}"/>')
                complexes.append((type_name, properties(node.children)))
            else:
                table = f"Submissions.{'.'.join(node.path)}"
                props.append(f'<NavigationProperty Name="{node.out}" Type="Collection({base}.{table})"/>')
        return props

    root_props = properties(schema.root)
    entities.append(("Submissions", root_props, True))
    for table in schema.tables:
        parent = f'<Property Name="{table.parent_col}" Type="Edm.String"/>'
        entities.append((table.name, [parent, *properties(table.node.children)], False))

    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">',
        "  <edmx:DataServices>",
        '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="org.opendatakit.submission">',
        '      <ComplexType Name="metadata">',
        '        <Property Name="submissionDate" Type="Edm.DateTimeOffset"/>',
        '        <Property Name="updatedAt" Type="Edm.DateTimeOffset"/>',
        '        <Property Name="deletedAt" Type="Edm.DateTimeOffset"/>',
        '        <Property Name="submitterId" Type="Edm.String"/>',
        '        <Property Name="submitterName" Type="Edm.String"/>',
        '        <Property Name="attachmentsPresent" Type="Edm.Int64"/>',
        '        <Property Name="attachmentsExpected" Type="Edm.Int64"/>',
        '        <Property Name="status" Type="org.opendatakit.submission.Status"/>',
        '        <Property Name="reviewState" Type="org.opendatakit.submission.ReviewState"/>',
        '        <Property Name="deviceId" Type="Edm.String"/>',
        '        <Property Name="edits" Type="Edm.Int64"/>',
        '        <Property Name="formVersion" Type="Edm.String"/>',
        "      </ComplexType>",
        '      <EnumType Name="Status">',
        '        <Member Name="notDecrypted"/>',
        '        <Member Name="missingEncryptedFormData"/>',
        "      </EnumType>",
        '      <EnumType Name="ReviewState">',
        '        <Member Name="hasIssues"/>',
        '        <Member Name="edited"/>',
        '        <Member Name="rejected"/>',
        '        <Member Name="approved"/>',
        "      </EnumType>",
        "    </Schema>",
        f'    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="{base}">',
    ]
    for name, props, primary in entities:
        lines += [f'      <EntityType Name="{name}">', '        <Key><PropertyRef Name="__id"/></Key>']
        lines.append('        <Property Name="__id" Type="Edm.String"/>')
        if primary:
            lines.append('        <Property Name="__system" Type="org.opendatakit.submission.metadata"/>')
        lines += [f"        {p}" for p in props]
        lines.append("      </EntityType>")
    for name, props in complexes:
        lines += [
            f'      <ComplexType Name="{name}">',
            *(f"        {p}" for p in props),
            "      </ComplexType>",
        ]
    non_filterable = [re.search(r'Name="([^"]+)"', p)[1] for p in root_props]  # type: ignore[index]
    lines.append(f"      <EntityContainer Name={quoteattr(form.spec.xml_form_id)}>")
    for name, _, primary in entities:
        lines.append(f'        <EntitySet Name="{name}" EntityType="{base}.{name}">')
        if primary:
            lines += [
                '          <Annotation Term="Org.OData.Capabilities.V1.ConformanceLevel"'
                ' EnumMember="Org.OData.Capabilities.V1.ConformanceLevelType/Minimal"/>',
                '          <Annotation Term="Org.OData.Capabilities.V1.BatchSupported" Bool="false"/>',
                '          <Annotation Term="Org.OData.Capabilities.V1.CountRestrictions">',
                '            <Record><PropertyValue Property="Countable" Bool="true"/></Record>',
                "          </Annotation>",
                '          <Annotation Term="Org.OData.Capabilities.V1.FilterFunctions">',
                "            <Record>",
                '              <PropertyValue Property="NonCountableProperties">',
                "                <Collection>",
                "                  <String>eq</String>",
                "                </Collection>",
                "              </PropertyValue>",
                "            </Record>",
                "          </Annotation>",
                '          <Annotation Term="Org.OData.Capabilities.V1.FilterFunctions">',
                "            <Record>",
                '              <PropertyValue Property="Filterable" Bool="true"/>',
                '              <PropertyValue Property="RequiresFilter" Bool="false"/>',
                '              <PropertyValue Property="NonFilterableProperties">',
                "                <Collection>",
                *(f"                  <PropertyPath>{n}</PropertyPath>" for n in non_filterable),
                "                </Collection>",
                "              </PropertyValue>",
                "            </Record>",
                "          </Annotation>",
                '          <Annotation Term="Org.OData.Capabilities.V1.SortRestrictions">',
                '            <Record><PropertyValue Property="Sortable" Bool="false"/></Record>',
                "          </Annotation>",
                '          <Annotation Term="Org.OData.Capabilities.V1.ExpandRestrictions">',
                '            <Record><PropertyValue Property="Expandable" Bool="false"/></Record>',
                "          </Annotation>",
            ]
        lines.append("        </EntitySet>")
    lines += ["      </EntityContainer>", "    </Schema>", "  </edmx:DataServices>", "</edmx:Edmx>", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Skip tokens
# --------------------------------------------------------------------------------------------------


def _skiptoken(data: dict[str, Any]) -> str:
    """Central's opaque cursor: ``01`` (the scheme version) and base64 of compact JSON."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return "01" + base64.b64encode(text.encode()).decode()


def _parse_skiptoken(token: str) -> dict[str, Any]:
    if not token.startswith("01"):
        raise _Problem(400.35, "Invalid $skiptoken")
    try:
        parsed = json.loads(base64.b64decode(token[2:].replace(" ", "+"), validate=True).decode())
    except (ValueError, UnicodeDecodeError):
        raise _Problem(400.35, "Invalid $skiptoken") from None
    if not isinstance(parsed, dict):
        raise _Problem(400.35, "Invalid $skiptoken")
    return parsed


def _next_link(base_url: str, raw_path: str, pairs: list[tuple[str, str]], token: str) -> str:
    """The request URL with ``$skip`` dropped and ``$skiptoken`` set, other parameters kept in order."""
    out: list[tuple[str, str]] = []
    placed = False
    for key, value in pairs:
        if key == "$skip":
            continue
        if key == "$skiptoken":
            if not placed:
                out.append((key, token))
                placed = True
            continue
        out.append((key, value))
    if not placed:
        out.append(("$skiptoken", token))
    return f"{base_url}{raw_path}?{urlencode(out, safe='*')}"


def _int_param(value: str | None) -> int | None:
    """``parseInt`` as Central applies it: garbage means absent, negatives mean 0."""
    if value is None:
        return None
    match = re.match(r"^\s*([+-]?\d+)", value)
    return None if match is None else max(0, int(match[1]))


def _true(value: str | None) -> bool:
    return value is not None and value.lower() == "true"


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class RequestRecord(NamedTuple):
    """One request the server answered."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    fault: Any


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    sleep: float = 0.0


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return _Response(status, body, {"Content-Type": JSON_TYPE, **(headers or {})})


_SUCCESS = {"success": True}


class _Session:
    __slots__ = ("actor_id", "created_ms", "email", "expires_ms", "token")

    def __init__(self, token: str, email: str, actor_id: int, created_ms: int, expires_ms: int) -> None:
        self.token = token
        self.email = email
        self.actor_id = actor_id
        self.created_ms = created_ms
        self.expires_ms = expires_ms


@dataclass(eq=False)
class FakeCentral:
    """An ODK Central stand-in on loopback; ``with FakeCentral(...) as central:`` starts and stops it."""

    project_id: int = 1
    users: dict[str, str] = field(
        default_factory=lambda: {"admin@example.org": "central-password"}, repr=False
    )
    forms: Sequence[FormSpec | Mapping[str, Any]] = field(default=(), repr=False)
    token_ttl_seconds: float = 24 * 3600.0
    fault_sleep_seconds: float = 3.0
    retry_after_seconds: int = 1
    # As a Central whose blobs are in S3: an attachment GET answers 307 to a signed URL (here
    # /s3/<md5>?X-Amz-Signature=..., served without the bearer token) whose ETag is not the MD5, as S3's
    # is not for an encrypted object; the 307 carries Central's own ETag (the MD5).
    redirect_attachments: bool = False
    start_time: datetime | None = None  # freezes the clock there; advance() moves it
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    faults: deque = field(default_factory=deque, repr=False)
    requests: list[RequestRecord] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._s3: dict[str, _Blob] = {}  # the objects a redirect_attachments server has pointed to
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._frozen: datetime | None = _aware(self.start_time) if self.start_time else None
        self._offset = timedelta()
        self._rng = random.Random(self.seed)
        self._seq = 0
        self._sessions: dict[str, _Session] = {}
        self._actors: dict[str, int] = {}
        self._user_created_ms: int = _ms(self.now())
        for email in self.users:
            self._actor(email.split("@")[0])
        self._forms: dict[str, _Form] = {}
        for spec in self.forms:
            self.add_form(spec)

    # ---- lifecycle --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The server root (clients append ``/v1/...``)."""
        if self._server is None:
            raise RuntimeError(
                "FakeCentral is not running: use `with FakeCentral(...) as central:` or start()"
            )
        return f"http://{self.host}:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    def odata_url(self, form_id: str) -> str:
        """The form's OData service root, ``.../v1/projects/{id}/forms/{form}.svc``."""
        return f"{self.api_url}/projects/{self.project_id}/forms/{quote(form_id, safe='')}.svc"

    def __enter__(self) -> FakeCentral:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._server = _QuietServer((self.host, self.port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-central",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---- clock ------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The server's clock (UTC): real time, or frozen by ``start_time``/``freeze``, plus ``advance``."""
        return (self._frozen or datetime.now(UTC)) + self._offset

    def freeze(self, at: datetime | None = None) -> datetime:
        """Stop the clock at ``at`` (default: now); ``advance`` then moves it."""
        with self._lock:
            self._frozen = _aware(at) if at is not None else self.now()
            self._offset = timedelta()
            return self._frozen

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward (tokens expire, timestamps move) without sleeping."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)
            return self.now()

    def _now_ms(self) -> int:
        return _ms(self.now())

    # ---- requests and sessions --------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def count_requests(self, method: str | None = None, path_contains: str | None = None) -> int:
        return sum(
            1
            for r in list(self.requests)
            if (method is None or r.method == method) and (path_contains is None or path_contains in r.path)
        )

    def issue_token(self, email: str | None = None) -> str:
        """A session token without a login request (``email`` defaults to the first user)."""
        with self._lock:
            email = email or next(iter(self.users))
            if email not in self.users:
                raise NotFoundError(f"no user {email!r}; users are {sorted(self.users)}")
            return self._new_session(email).token

    def revoke_sessions(self) -> int:
        """Log every session out (their tokens then get 401); returns how many there were."""
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count

    def _new_session(self, email: str) -> _Session:
        created = self._now_ms()
        token = secrets.token_urlsafe(48)
        session = _Session(
            token,
            email,
            self._actor(email.split("@")[0]),
            created,
            created + int(self.token_ttl_seconds * 1000),
        )
        self._sessions[token] = session
        return session

    def _actor(self, name: str) -> int:
        if name not in self._actors:
            self._actors[name] = len(self._actors) + 1
        return self._actors[name]

    # ---- forms and submissions: the Python API ----------------------------------------------------

    def add_form(self, spec: FormSpec | Mapping[str, Any]) -> None:
        """Publish a form (a ``FormSpec`` or its dict form)."""
        form = _as_form(spec)
        with self._lock:
            if form.xml_form_id in self._forms:
                raise ValueError(f"form {form.xml_form_id!r} already exists")
            self._forms[form.xml_form_id] = _Form(form, self._now_ms())

    def tables(self, form_id: str) -> list[str]:
        """The form's OData tables: ``Submissions`` and one per repeat."""
        return ["Submissions", *(t.name for t in self._form(form_id).schema.tables)]

    def add_submission(
        self,
        form_id: str,
        data: Mapping[str, Any],
        attachments: Mapping[str, bytes] | None = None,
        *,
        submitter: str = "Alice",
        device_id: str | None = None,
        submitted_at: datetime | str | None = None,
        instance_id: str | None = None,
        user_agent: str | None = None,
    ) -> str:
        """Receive a submission (as if from Collect) and return its instance ID.

        ``data`` nests like the form: groups as dicts, repeats as lists of dicts, keyed by field names.
        ``attachments`` maps file names to bytes; binary fields reference them by name (names given here
        that no field references are still listed as expected attachments)."""
        with self._lock:
            form = self._form(form_id)
            now = self._now_ms()
            created = _when(submitted_at, now)
            instance_id = instance_id or self._uuid()
            if instance_id in form.used_ids:
                raise ValueError(f"instance ID {instance_id!r} already exists on form {form_id!r}")
            normalised = _normalise(form.schema.root, data, "")
            sub = _Submission()
            sub.instance_id = instance_id
            self._seq += 1
            sub.seq = self._seq
            sub.created_ms = created
            sub.updated_ms = None
            sub.deleted_ms = None
            sub.review_state = None
            sub.submitter_name = submitter
            sub.submitter_id = self._actor(submitter)
            sub.device_id = device_id
            sub.user_agent = user_agent
            sub.edits = 0
            sub.form_version = form.spec.version
            sub.attachments = None
            self._store_version(form, sub, normalised, instance_id, created, attachments, carry_over=None)
            sub.version_submitter_id = sub.submitter_id
            sub.version_device_id = device_id
            form.used_ids.add(instance_id)
            form.insert(sub)
            return instance_id

    def edit_submission(
        self,
        form_id: str,
        instance_id: str,
        data: Mapping[str, Any],
        attachments: Mapping[str, bytes] | None = None,
        *,
        new_instance_id: str | None = None,
        submitter: str | None = None,
        device_id: str | None = None,
        at: datetime | str | None = None,
    ) -> str:
        """Submit a new version (Central's ``PUT``): the data is replaced, ``meta/instanceID`` becomes the new
        version's ID while ``__id`` stays the original one, ``edits`` goes up by one, ``reviewState``
        becomes ``edited`` and ``updatedAt`` is set. Attachments of the previous version whose names the new
        version still references carry over. Returns the new version's instance ID."""
        with self._lock:
            form = self._form(form_id)
            sub = self._live(form, instance_id)
            version_id = new_instance_id or self._uuid()
            if version_id in form.used_ids:
                raise ValueError(f"instance ID {version_id!r} already exists on form {form_id!r}")
            normalised = _normalise(form.schema.root, data, "")
            when = _when(at, self._now_ms())
            self._store_version(
                form, sub, normalised, version_id, when, attachments, carry_over=sub.attachments
            )
            sub.edits += 1
            sub.review_state = "edited"
            sub.updated_ms = when
            sub.version_submitter_id = self._actor(submitter) if submitter else sub.submitter_id
            sub.version_device_id = device_id
            form.used_ids.add(version_id)
            form.changed()
            return version_id

    def set_review_state(
        self, form_id: str, instance_id: str, state: str | None, *, at: datetime | str | None = None
    ) -> None:
        """Change ``reviewState`` (``approved``, ``hasIssues``, ``rejected``, ``edited`` or None); like
        Central's ``PATCH`` it sets ``updatedAt``."""
        if state not in REVIEW_STATES:
            raise ValueError(f"review state {state!r} is not one of {REVIEW_STATES}")
        with self._lock:
            form = self._form(form_id)
            sub = self._live(form, instance_id)
            sub.review_state = state
            sub.updated_ms = _when(at, self._now_ms())
            form.changed()

    def delete_submission(self, form_id: str, instance_id: str, *, at: datetime | str | None = None) -> None:
        """Soft-delete: ``deletedAt`` is set (``updatedAt`` is not); OData hides the submission unless the
        ``$filter`` names ``__system/deletedAt``; it is purged 30 days later."""
        with self._lock:
            form = self._form(form_id)
            sub = self._live(form, instance_id)
            sub.deleted_ms = _when(at, self._now_ms())
            form.changed()

    def restore_submission(self, form_id: str, instance_id: str) -> None:
        """Undo a soft delete that has not been purged yet."""
        with self._lock:
            form = self._form(form_id)
            sub = form.by_id.get(instance_id)
            if sub is None or sub.deleted_ms is None:
                raise NotFoundError(f"no deleted submission {instance_id!r} on form {form_id!r}")
            sub.deleted_ms = None
            form.changed()

    def purge_deleted(self, older_than_days: float = 30, *, force: bool = False) -> int:
        """Remove submissions soft-deleted more than ``older_than_days`` ago (all of them with ``force``),
        as Central's daily purge does; returns how many went."""
        with self._lock:
            cutoff = self._now_ms() - int(older_than_days * 86_400_000)
            purged = 0
            for form in self._forms.values():
                for sub in [s for s in form.ordered if s.deleted_ms is not None]:
                    if force or sub.deleted_ms < cutoff:
                        form.remove(sub)
                        purged += 1
            return purged

    def submission_ids(self, form_id: str, *, deleted: bool = False) -> list[str]:
        """Instance IDs, newest first: the live ones, or only the soft-deleted ones."""
        with self._lock:
            form = self._form(form_id)
            return [s.instance_id for s in reversed(form.ordered) if (s.deleted_ms is not None) == deleted]

    def get_submission(self, form_id: str, instance_id: str, *, expand: bool = False) -> dict[str, Any]:
        """The submission's OData ``Submissions`` row (deleted ones too)."""
        with self._lock:
            form = self._form(form_id)
            sub = form.by_id.get(instance_id)
            if sub is None:
                raise NotFoundError(f"no submission {instance_id!r} on form {form_id!r}")
            return _root_row(form.schema, sub, _Render(expand, False))

    def table_rows(self, form_id: str, table: str = "Submissions") -> list[dict[str, Any]]:
        """Every row of an OData table in Central's default order, without soft-deleted submissions:
        what a client paging the table from the start should end up with."""
        with self._lock:
            form = self._form(form_id)
            opts = _Render(False, False)
            live = [s for s in reversed(form.ordered) if s.deleted_ms is None]
            if table == "Submissions":
                return [_root_row(form.schema, s, opts) for s in live]
            repeat = form.schema.by_name.get(table)
            if repeat is None:
                raise NotFoundError(f"form {form_id!r} has no table {table!r}; it has {self.tables(form_id)}")
            return [row for s in live for row in _repeat_rows(repeat, s, opts)]

    def _form(self, form_id: str) -> _Form:
        form = self._forms.get(form_id)
        if form is None:
            raise NotFoundError(f"no form {form_id!r}; forms are {sorted(self._forms)}")
        return form

    def _live(self, form: _Form, instance_id: str) -> _Submission:
        sub = form.by_id.get(instance_id)
        if sub is None or sub.deleted_ms is not None:
            raise NotFoundError(f"no live submission {instance_id!r} on form {form.spec.xml_form_id!r}")
        return sub

    def _uuid(self) -> str:
        return f"uuid:{uuid.UUID(int=self._rng.getrandbits(128), version=4)}"

    def _store_version(
        self,
        form: _Form,
        sub: _Submission,
        data: dict[str, Any],
        version_id: str,
        created: int,
        attachments: Mapping[str, bytes] | None,
        carry_over: dict[str, _Blob | None] | None,
    ) -> None:
        meta = data.get("meta") or {}
        meta["instanceID"] = version_id
        data["meta"] = meta
        names = _binaries(form.schema.root, data, [])
        for name in attachments or {}:
            if name not in names:
                names.append(name)
        files: dict[str, _Blob | None] = {}
        for name in names:
            if attachments and name in attachments:
                files[name] = _Blob(bytes(attachments[name]), _content_type(name))
            else:
                files[name] = (carry_over or {}).get(name)
        sub.attachments = files or None
        sub.version_id = version_id
        sub.version_created_ms = created
        sub.instance_name = meta.get("instanceName") if form.schema.has_instance_name else None
        sub.row_counts = tuple(_count_rows(t.steps, data) for t in form.schema.tables)
        sub.data_json = json.dumps(data, separators=(",", ":"))

    # ---- HTTP: dispatch ---------------------------------------------------------------------------

    def _respond(self, method: str, raw: str, headers: Mapping[str, str], body: bytes) -> _Response:
        url = urlsplit(raw)
        pairs = parse_qsl(url.query, keep_blank_values=True)
        query = dict(pairs)
        try:
            fault = self.faults.popleft()
        except IndexError:
            fault = None
        try:
            if isinstance(fault, int) and not isinstance(fault, bool):
                extra = {"Retry-After": str(self.retry_after_seconds)} if fault in (429, 503) else {}
                response = _json(fault, {"code": fault, "message": f"Injected fault: HTTP {fault}."}, extra)
            elif fault is not None and fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; use an HTTP status or one of {FAULTS}")
            else:
                response = self._route(method, url.path, pairs, query, headers, body)
        except _Problem as problem:
            response = _json(
                problem.status, {"code": problem.code, "message": problem.message}, problem.headers
            )
        except Exception as exc:  # a bug here should read as Central's 500, and be visible
            traceback.print_exc(file=sys.stderr)
            response = _json(
                500, {"code": 500.1, "message": f"An unknown internal problem has occurred: {exc}"}
            )
        if fault == "timeout":
            response.sleep = self.fault_sleep_seconds
        elif fault == "truncated":
            response.body = response.body[: len(response.body) // 2]
        elif fault == "invalid_json":
            response = _Response(
                200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", {"Content-Type": JSON_TYPE}
            )
        self.requests.append(RequestRecord(method, url.path, query, response.status, fault))
        return response

    def _route(
        self,
        method: str,
        path: str,
        pairs: list[tuple[str, str]],
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> _Response:
        parts = [unquote(p) for p in path.split("/")[1:]]
        if parts[:1] == ["s3"] and len(parts) == 2 and method == "GET" and "X-Amz-Signature" in query:
            return self._s3_object(parts[1])
        if parts[:1] != ["v1"]:
            raise _Problem(404.2, "Expected an API version (eg /v1) at the start of the request URL.")
        if parts == ["v1", "sessions"] and method == "POST":
            return self._login(body)
        session = self._authenticate(headers)
        if parts[1:2] == ["sessions"] and len(parts) == 3 and method == "DELETE":
            return self._logout(session, parts[2])
        if parts == ["v1", "users", "current"] and method == "GET":
            return self._current_user(session)
        if len(parts) < 4 or parts[1] != "projects" or parts[3] != "forms":
            raise _not_found()
        if parts[2] != str(self.project_id):
            raise _not_found()
        rest = parts[4:]
        if not rest:
            return self._list_forms(method, headers)
        target = rest[0]
        if target.endswith(".svc"):
            if method != "GET":
                raise _not_found()
            form = self._lookup(target[:-4])
            service_path = path[: path.index(".svc") + 4]
            return self._odata(form, rest[1:], service_path, path, pairs, query)
        if target.endswith(".xml") and len(rest) == 1 and target[:-4] in self._forms:
            return _Response(200, self._forms[target[:-4]].xml.encode(), {"Content-Type": "text/xml"})
        form = self._lookup(target)
        if len(rest) == 1 and method == "GET":
            return _json(200, self._form_json(form, headers))
        if rest[1:] == ["fields"] and method == "GET":
            return _json(200, _fields_json(form.schema.root, _true(query.get("odata"))))
        if len(rest) >= 2 and rest[1] == "submissions":
            return self._rest(method, form, rest[2:], query, headers, body)
        raise _not_found()

    def _lookup(self, form_id: str) -> _Form:
        form = self._forms.get(form_id)
        if form is None:
            raise _not_found()
        return form

    # ---- HTTP: authentication ---------------------------------------------------------------------

    def _login(self, body: bytes) -> _Response:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            raise _Problem(400.1, f"Could not parse the given data ({len(body)} chars) as json.") from None
        if not isinstance(payload, dict) or not payload.get("email") or not payload.get("password"):
            got = payload if isinstance(payload, dict) else {}
            raise _Problem(
                400.3,
                "Required parameters missing. Expected (email, password), got "
                f"(email: {got.get('email')!r}, password: {'***' if got.get('password') else None}).",
            )
        with self._lock:
            if self.users.get(payload["email"]) != payload["password"]:
                raise _auth_failed()
            session = self._new_session(payload["email"])
            return _json(
                200,
                {
                    "createdAt": _iso(session.created_ms),
                    "expiresAt": _iso(session.expires_ms),
                    "token": session.token,
                },
            )

    def _authenticate(self, headers: Mapping[str, str]) -> _Session:
        header = headers.get("Authorization") or ""
        scheme, _, credentials = header.partition(" ")
        if not header:
            raise _Problem(
                403.1, "The authentication you provided does not have rights to perform that action."
            )
        if scheme.lower() == "basic":
            raise _Problem(401.3, "This authentication method is only available over HTTPS")
        if scheme.lower() != "bearer":
            raise _auth_failed()
        with self._lock:
            session = self._sessions.get(credentials.strip())
            if session is None:
                raise _auth_failed()
            if session.expires_ms <= self._now_ms():
                del self._sessions[session.token]
                raise _auth_failed()
            return session

    def _logout(self, session: _Session, which: str) -> _Response:
        with self._lock:
            target = session.token if which == "current" else which
            if target not in self._sessions:
                raise _not_found()
            del self._sessions[target]
        return _json(200, _SUCCESS)

    def _current_user(self, session: _Session) -> _Response:
        return _json(
            200,
            {
                "id": session.actor_id,
                "type": "user",
                "displayName": session.email.split("@")[0],
                "email": session.email,
                "createdAt": _iso(self._user_created_ms),
                "updatedAt": None,
                "deletedAt": None,
            },
        )

    # ---- HTTP: forms ------------------------------------------------------------------------------

    def _list_forms(self, method: str, headers: Mapping[str, str]) -> _Response:
        if method != "GET":
            raise _not_found()
        with self._lock:
            return _json(200, [self._form_json(f, headers) for f in self._forms.values()])

    def _form_json(self, form: _Form, headers: Mapping[str, str]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "projectId": self.project_id,
            "xmlFormId": form.spec.xml_form_id,
            "name": form.spec.name or form.spec.xml_form_id,
            "version": form.spec.version,
            "enketoId": None,
            "hash": form.hash,
            "keyId": None,
            "state": "open",
            "publishedAt": _iso(form.created_ms),
            "createdAt": _iso(form.created_ms),
            "updatedAt": None,
            "webformsEnabled": False,
        }
        if _true(headers.get("X-Extended-Metadata")):
            with self._lock:
                live = [s for s in form.ordered if s.deleted_ms is None]
                result.update(
                    submissions=len(live),
                    reviewStates={
                        "received": sum(1 for s in live if s.review_state is None),
                        "hasIssues": sum(1 for s in live if s.review_state == "hasIssues"),
                        "edited": sum(1 for s in live if s.review_state == "edited"),
                    },
                    lastSubmission=_iso(max((s.created_ms for s in live), default=None)),
                    excelContentType=None,
                    entityRelated=False,
                    publicLinks=0,
                )
        return result

    # ---- HTTP: OData ------------------------------------------------------------------------------

    def _odata(
        self,
        form: _Form,
        rest: list[str],
        service_path: str,
        path: str,
        pairs: list[tuple[str, str]],
        query: dict[str, str],
    ) -> _Response:
        odata_headers = {"OData-Version": "4.0"}
        if not rest:
            tables = [{"name": "Submissions", "kind": "EntitySet", "url": "Submissions"}] + [
                {"name": t.name, "kind": "EntitySet", "url": t.name} for t in form.schema.tables
            ]
            document = {"@odata.context": f"{self.base_url}{service_path}/$metadata", "value": tables}
            return _json(200, document, odata_headers)
        if rest == ["$metadata"]:
            return _Response(200, _edmx(form).encode(), {"Content-Type": "application/xml", **odata_headers})
        segments: list[tuple[str, str | None]] = []
        for part in rest:
            match = re.fullmatch(r"([^(]+)\('(.*)'\)", part)
            segments.append((match[1], match[2]) if match else (part, None))
        table_name = ".".join(name for name, _ in segments)  # "Submissions.a.b" or "Submissions('x')/a/b"
        if table_name.split(".")[0] != "Submissions":
            raise _not_found()
        table = form.schema.by_name.get(table_name)
        if table_name != "Submissions" and table is None:
            raise _not_found()
        expand = query.get("$expand")
        if expand is not None and expand != "*":
            raise _Problem(
                501.6,
                f'The given OData expand expression is not supported by this server: "{expand}". '
                'Currently, only "$expand=*" is supported.',
            )
        select = query.get("$select")
        if select == "*":
            select = None
        if select is not None and expand is not None:
            raise _Problem(501.11, "This server doesn't support $select query parameter with $expand.")
        opts = _Render(expand == "*", _true(query.get("$wkt")))
        context = f"{self.base_url}{service_path}/$metadata#{table_name}"
        if segments[0][1] is not None:
            rows, count, token = self._navigate(form, table, segments, query, opts)
        else:
            rows, count, token = self._feed(form, table, query, opts)
        if select is not None:
            if table is None:
                extra = {"__id", "__system", *(f"__system/{k}" for k in SYSTEM_FIELDS)}
                rows = _select(rows, select, form.schema.root, extra)
            else:
                rows = _select(rows, select, table.node.children, {"__id", table.parent_col})
        document: dict[str, Any] = {"@odata.context": context}
        if token is not None:
            document["@odata.nextLink"] = _next_link(self.base_url, path, pairs, _skiptoken(token))
        if count is not None:
            document["@odata.count"] = count
        document["value"] = rows
        return _json(200, document, odata_headers)

    def _feed(
        self, form: _Form, table: _Table | None, query: dict[str, str], opts: _Render
    ) -> tuple[list[dict[str, Any]], int | None, dict[str, Any] | None]:
        """A data document over a whole table (Central's ``Submissions`` and ``Submissions.<repeat>``)."""
        top = _int_param(query.get("$top"))
        raw_token = query.get("$skiptoken")
        token = _parse_skiptoken(raw_token) if raw_token is not None else None
        skip = 0 if token is not None else (_int_param(query.get("$skip")) or 0)
        orderby = query.get("$orderby")
        if table is None and orderby and token is not None:
            raise _Problem(
                501.1,
                "The requested feature using $orderby and $skiptoken together is not supported by this "
                "server.",
            )
        fields = _FIELDS_FOR_SUBMISSIONS if table is None else _ROOT_FIELDS
        with self._lock:
            now = self._now_ms()
            keep = _row_filter(query.get("$filter"), fields, now)
            if orderby:
                clauses = _parse_orderby(orderby, fields)
                ordering: Any = form.cached(("order", orderby), lambda: _sorted(form, clauses, fields))
            else:
                ordering = _NewestFirst(form)
            count = None
            if _true(query.get("$count")):
                text = query.get("$filter")
                uses_now = text is not None and "now(" in text.lower()
                key = ("count", table.name if table else None, text, now if uses_now else None)
                count = form.cached(key, lambda: self._count(form, table, keep))
            if table is None:
                return self._submissions_result(form, ordering, keep, token, skip, top, opts, count)
            return self._repeat_result(form, table, ordering, keep, token, skip, top, opts, count)

    def _count(self, form: _Form, table: _Table | None, keep: Callable[[Any], bool]) -> int:
        if table is None:
            return sum(1 for s in form.ordered if keep(s))
        index = table.index
        return sum(s.row_counts[index] for s in form.ordered if s.row_counts[index] and keep(s))

    def _submissions_result(
        self,
        form: _Form,
        ordering: Any,
        keep: Callable[[Any], bool],
        token: dict[str, Any] | None,
        skip: int,
        top: int | None,
        opts: _Render,
        count: int | None,
    ) -> tuple[list[dict[str, Any]], int | None, dict[str, Any] | None]:
        start = 0
        if token is not None:
            cursor = (
                form.by_id.get(token.get("instanceId")) if isinstance(token.get("instanceId"), str) else None
            )
            position = ordering.position(cursor) if cursor is not None else None
            if position is None:  # Central joins on the cursor row: when it is gone, nothing follows
                return [], count, None
            start = position + 1
        page: list[_Submission] = []
        more = False
        skipped = 0
        for index in range(start, len(ordering)):
            sub = ordering.at(index)
            if not keep(sub):
                continue
            if skipped < skip:
                skipped += 1
                continue
            if top is not None and len(page) >= top:
                more = True
                break
            page.append(sub)
        rows = [_root_row(form.schema, s, opts) for s in page]
        next_token = {"instanceId": page[-1].instance_id} if more and page else None
        return rows, count, next_token

    def _repeat_result(
        self,
        form: _Form,
        table: _Table,
        ordering: Any,
        keep: Callable[[Any], bool],
        token: dict[str, Any] | None,
        skip: int,
        top: int | None,
        opts: _Render,
        count: int | None,
    ) -> tuple[list[dict[str, Any]], int | None, dict[str, Any] | None]:
        index = table.index
        start, first_row = 0, 0
        if token is not None:
            located = self._locate_repeat(form, table, ordering, keep, token.get("repeatId"))
            if located is None:
                raise _Problem(400.34, "Record associated with the provided $skiptoken not found.")
            start, first_row = located
        chunks: list[tuple[_Submission, int, int]] = []
        taken = 0
        skipped = 0
        more = False
        for position in range(start, len(ordering)):
            sub = ordering.at(position)
            rows_here = sub.row_counts[index]
            low = first_row if position == start else 0
            if rows_here <= low or not keep(sub):
                continue
            if skipped < skip:
                step = min(rows_here - low, skip - skipped)
                skipped += step
                low += step
                if low >= rows_here:
                    continue
            room = rows_here - low if top is None else min(rows_here - low, top - taken)
            if room <= 0:
                more = True
                break
            chunks.append((sub, low, low + room))
            taken += room
            if low + room < rows_here:
                more = True
                break
        rows: list[dict[str, Any]] = []
        for sub, low, high in chunks:
            rows.extend(_repeat_rows(table, sub, opts)[low:high])
        next_token = None
        if more:  # with $top=0 that is {"repeatId": null}, as Central answers
            last_id = rows[-1]["__id"] if rows else None
            next_token = {"repeatId": last_id}
            if rows:
                sub, _, high = chunks[-1]
                form.cursors[(table.name, last_id)] = (sub.instance_id, high)
                if len(form.cursors) > _CURSOR_LIMIT:
                    form.cursors.popitem(last=False)
        return rows, count, next_token

    def _locate_repeat(
        self, form: _Form, table: _Table, ordering: Any, keep: Callable[[Any], bool], repeat_id: Any
    ) -> tuple[int, int] | None:
        """Where the page after repeat row ``repeat_id`` starts: (position, row index) in ``ordering``.
        Like Central, the row must still be in the (filtered) table; a recently issued token is found
        directly, any other by walking the table."""
        if not isinstance(repeat_id, str):
            return None
        remembered = form.cursors.get((table.name, repeat_id))
        if remembered is not None:
            sub = form.by_id.get(remembered[0])
            position = ordering.position(sub) if sub is not None else None
            if position is not None and keep(sub):
                ids = [
                    row_id for _, row_id, _, _, _ in _walk(table, json.loads(sub.data_json), sub.instance_id)
                ]
                if len(ids) >= remembered[1] and ids[remembered[1] - 1] == repeat_id:
                    return position, remembered[1]
        for position in range(len(ordering)):
            sub = ordering.at(position)
            if not sub.row_counts[table.index] or not keep(sub):
                continue
            for i, (_, row_id, _, _, _) in enumerate(
                _walk(table, json.loads(sub.data_json), sub.instance_id)
            ):
                if row_id == repeat_id:
                    return position, i + 1
        return None

    def _navigate(
        self,
        form: _Form,
        table: _Table | None,
        segments: list[tuple[str, str | None]],
        query: dict[str, str],
        opts: _Render,
    ) -> tuple[list[dict[str, Any]], int | None, dict[str, Any] | None]:
        """``Submissions('id')`` and the paths below it (``Submissions('id')/group/repeat('rid')/child``)."""
        with self._lock:
            sub = form.by_id.get(segments[0][1] or "") if segments[0][0] == "Submissions" else None
            if sub is None or sub.deleted_ms is not None:
                raise _not_found()
            if table is None:
                rows = [_root_row(form.schema, sub, opts)]
            else:
                rows = _repeat_rows(table, sub, opts)
                last = max(i for i, (_, ident) in enumerate(segments) if ident is not None)
                if last > 0:
                    column = "__" + "-".join(name for name, _ in segments[: last + 1]) + "-id"
                    rows = [r for r in rows if r.get(column) == segments[last][1]]
        count = len(rows) if _true(query.get("$count")) else None
        top = _int_param(query.get("$top"))
        raw_token = query.get("$skiptoken")
        offset = _int_param(query.get("$skip")) or 0
        if raw_token is not None:
            repeat_id = _parse_skiptoken(raw_token).get("repeatId")
            if not repeat_id:
                raise _Problem(400.35, "Invalid $skiptoken")
            found = next((i for i, r in enumerate(rows) if r.get("__id") == repeat_id), None)
            if found is None:
                raise _Problem(400.34, "Record associated with the provided $skiptoken not found.")
            offset = found + 1
        page = rows[offset:] if top is None else rows[offset : offset + top]
        token = None
        if page and top is not None and len(rows) - (offset + top) > 0:
            token = {"repeatId": page[-1]["__id"]} if table is not None else {"instanceId": sub.instance_id}
        return page, count, token

    # ---- HTTP: REST submissions -------------------------------------------------------------------

    def _rest(
        self,
        method: str,
        form: _Form,
        rest: list[str],
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> _Response:
        extended = _true(headers.get("X-Extended-Metadata"))
        with self._lock:
            if not rest:
                if method != "GET":
                    raise _not_found()
                deleted = _true(query.get("deleted"))
                subs = [s for s in reversed(form.ordered) if (s.deleted_ms is not None) == deleted]
                return _json(200, [self._rest_json(s, extended) for s in subs])
            instance_id = rest[0]
            sub = form.by_id.get(instance_id)
            if len(rest) == 2 and rest[1] == "restore" and method == "POST":
                if sub is None or sub.deleted_ms is None:
                    raise _not_found()
                sub.deleted_ms = None
                form.changed()
                return _json(200, _SUCCESS)
            if sub is None or sub.deleted_ms is not None:
                raise _not_found()
            if len(rest) == 1:
                if method == "GET":
                    return _json(200, self._rest_json(sub, extended))
                if method == "DELETE":
                    sub.deleted_ms = self._now_ms()
                    form.changed()
                    return _json(200, _SUCCESS)
                if method == "PATCH":
                    return self._patch(form, sub, body)
                raise _not_found()
            if rest[1] == "attachments" and method == "GET":
                files = sub.attachments or {}
                if len(rest) == 2:
                    return _json(
                        200, [{"name": n, "exists": b is not None} for n, b in sorted(files.items())]
                    )
                if len(rest) == 3:
                    blob = files.get(rest[2])
                    if self.redirect_attachments and blob is not None:
                        self._s3[blob.etag] = blob
                        response = self._attachment(blob, rest[2], headers)
                        if response.status == 200:
                            location = (
                                f"{self.base_url}/s3/{blob.etag}?X-Amz-Signature={secrets.token_hex(8)}"
                            )
                            return _Response(307, b"", {"Location": location, "ETag": f'"{blob.etag}"'})
                        return response
                    return self._attachment(blob, rest[2], headers)
            raise _not_found()

    def _patch(self, form: _Form, sub: _Submission, body: bytes) -> _Response:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            raise _Problem(400.1, f"Could not parse the given data ({len(body)} chars) as json.") from None
        if not isinstance(payload, dict) or "reviewState" not in payload:
            raise _Problem(400.2, "Required parameter reviewState missing.")
        state = payload["reviewState"]
        if state not in REVIEW_STATES:
            raise _Problem(400.8, f"Unexpected reviewState value {state}; not a recognized review state")
        sub.review_state = state
        sub.updated_ms = self._now_ms()
        form.changed()
        return _json(200, self._rest_json(sub, False))

    def _s3_object(self, md5: str) -> _Response:
        blob = self._s3.get(md5)
        if blob is None:
            return _Response(
                404, b"<Error><Code>NoSuchKey</Code></Error>", {"Content-Type": "application/xml"}
            )
        s3_etag = hashlib.sha256(blob.content).hexdigest()[:32]  # 32 hex digits, not the MD5
        return _Response(200, blob.content, {"Content-Type": blob.content_type, "ETag": f'"{s3_etag}"'})

    @staticmethod
    def _attachment(blob: _Blob | None, name: str, headers: Mapping[str, str]) -> _Response:
        if blob is None:
            raise _not_found()
        etag = f'"{blob.etag}"'
        wanted = [
            t.strip().removeprefix("W/") for t in (headers.get("If-None-Match") or "").split(",") if t.strip()
        ]
        if etag in wanted or "*" in wanted:
            return _Response(304, b"", {"ETag": etag})
        disposition = f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name, safe='')}"
        return _Response(
            200,
            blob.content,
            {"Content-Type": blob.content_type, "Content-Disposition": disposition, "ETag": etag},
        )

    def _rest_json(self, sub: _Submission, extended: bool) -> dict[str, Any]:
        result: dict[str, Any] = {
            "instanceId": sub.instance_id,
            "submitterId": sub.submitter_id,
            "deviceId": sub.device_id,
            "userAgent": sub.user_agent,
            "reviewState": sub.review_state,
            "createdAt": _iso(sub.created_ms),
            "updatedAt": _iso(sub.updated_ms),
            "deletedAt": _iso(sub.deleted_ms),
            "currentVersion": {
                "instanceId": sub.version_id,
                "instanceName": sub.instance_name,
                "submitterId": sub.version_submitter_id,
                "deviceId": sub.version_device_id,
                "userAgent": sub.user_agent,
                "createdAt": _iso(sub.version_created_ms),
                "current": True,
            },
        }
        if extended:
            result["submitter"] = {
                "id": sub.submitter_id,
                "type": "field_key",
                "displayName": sub.submitter_name,
                "createdAt": _iso(self._user_created_ms),
                "updatedAt": None,
                "deletedAt": None,
            }
        return result


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (a timeout test) is not an error worth printing."""

    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(central: FakeCentral) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeCentral/1"
        disable_nagle_algorithm = True  # headers and body leave together: no delayed-ACK stalls
        wbufsize = 1 << 16

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet server
            return

        def date_time_string(self, timestamp: float | None = None) -> str:
            """The ``Date`` header by the server's own clock, as Central's is (frozen, advanced)."""
            return formatdate(central.now().timestamp() if timestamp is None else timestamp, usegmt=True)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            response = central._respond(method, self.path, self.headers, body)
            if response.sleep:
                time.sleep(response.sleep)
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            if response.status != 304:
                self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if response.status != 304:
                self.wfile.write(response.body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_PATCH(self) -> None:  # noqa: N802
            self._handle("PATCH")

        def do_PUT(self) -> None:  # noqa: N802
            self._handle("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle("DELETE")

    return Handler
