"""The OpenAPI 3 description of each service, made from the same declarations the
endpoints check their parameters against (:class:`Field` lists), served at ``/openapi.json``
with a readable page at ``/docs`` (its script and style ship in the package: no CDN).

A test checks that every route of each app is described, and property-based tests
(Schemathesis) run the real services against this document.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, current_app, jsonify, send_from_directory

from core.images import IMAGE_FORMATS
from core.trimap import METHOD_DEFAULTS, TrimapParams

IMAGE_TYPES = sorted(set(IMAGE_FORMATS.values()))
ERROR = {"$ref": "#/components/schemas/Error"}


@dataclass(frozen=True)
class Field:
    """One request parameter: query string or form field (``file=True``: a file part)."""

    name: str
    schema: dict
    description: str
    file: bool = False


def trimap_fields() -> list[Field]:
    """The trimap parameters, from :class:`core.trimap.TrimapParams` itself."""
    defaults = TrimapParams()
    out = []
    for name in TrimapParams.names():
        value = getattr(defaults, name)
        if name == "method":
            schema = {"type": "string", "enum": sorted(METHOD_DEFAULTS)}
        elif isinstance(value, int):
            schema = {"type": "integer", "minimum": 0}
        else:
            schema = {"type": "number", "minimum": 0, "maximum": 1}
        out.append(Field(name, schema, f"trimap parameter (default: the service's, else {value!r})"))
    return out


PEOPLE = Field("people", {"type": "string", "pattern": r"^\s*([Aa][Ll][Ll]|[Ll][Aa][Rr][Gg][Ee][Ss][Tt]|"
                                                     r"[0-9]+|(index|indices|at):[0-9,]+)?\s*$"},
               "which people to keep: all (default), largest, N (the N largest), "
               "index:I,J (places in the X-People list, 0 = largest) or at:X,Y (the person "
               "under a point)")


@dataclass(frozen=True)
class Operation:
    """One endpoint: what it takes and what it answers (``status -> (media types, what)``)."""

    path: str
    method: str
    summary: str
    fields: list[Field] = field(default_factory=list)
    json_body: dict | None = None
    raw_image: bool = False
    responses: dict[int, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    open: bool = False  # no API key needed

    def spec(self, keys: bool) -> dict:
        op: dict[str, Any] = {"summary": self.summary, "operationId": _operation_id(self),
                              "responses": {}}
        query = [f for f in self.fields if not f.file]
        if query:
            # A field named in the path (``/jobs/{job_id}``) is a path parameter.
            op["parameters"] = [{"name": f.name, "in": "path", "required": True,
                                 "description": f.description, "schema": f.schema}
                                if "{" + f.name + "}" in self.path else
                                {"name": f.name, "in": "query", "required": False,
                                 "description": f.description, "schema": f.schema}
                                for f in query]
        content = {}
        if any(f.file for f in self.fields):
            props = {f.name: ({"type": "string", "format": "binary"} if f.file else f.schema)
                     for f in self.fields if "{" + f.name + "}" not in self.path}
            content["multipart/form-data"] = {"schema": {"type": "object", "properties": props}}
        if self.raw_image:
            content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
        if self.json_body is not None:
            content["application/json"] = {"schema": self.json_body}
        if content:
            op["requestBody"] = {"required": False, "content": content}
        for status, (media, what) in sorted(self.responses.items()):
            schemas = {m: {"schema": ERROR if m == "application/json" and status >= 400 else
                           ({"type": "object"} if m == "application/json" else
                            {"type": "string"} if m.startswith("text/") else
                            {"type": "string", "format": "binary"})} for m in media}
            op["responses"][str(status)] = {"description": what, "content": schemas}
        if keys and not self.open:
            op["security"] = [{"bearer": []}, {"apiKey": []}]
            op["responses"]["401"] = {"description": "missing or wrong API key",
                                      "content": {"application/json": {"schema": ERROR}}}
        return op


def _operation_id(op: Operation) -> str:
    name = op.path.strip("/").replace("/", "_")
    for bracket in "<>{}":
        name = name.replace(bracket, "")
    name = name or "root"
    return f"{op.method.lower()}_{name}"


def error_responses(*statuses: int) -> dict:
    words = {400: "the request is wrong (the message says how)", 406: "nobody in the image",
             404: "no such job (never made, or removed after its keep time)",
             409: "the job has no result (yet): its state says why",
             416: "the range asked for is not in the file",
             413: "the request is larger than MAX_UPLOAD_MB",
             429: "over the rate limit (Retry-After)",
             503: "busy (Retry-After) or a service it needs is down"}
    return {s: (("application/json",), words[s]) for s in statuses}


def document(title: str, description: str, operations: list[Operation], keys: bool) -> dict:
    """The OpenAPI 3.0 document of ``operations``."""
    paths: dict = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = op.spec(keys)
    spec = {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1", "description": description,
                 "license": {"name": "MIT (code); model weights keep their own terms"}},
        "paths": paths,
        "components": {"schemas": {"Error": {
            "type": "object", "required": ["error", "code", "request_id"],
            "properties": {"error": {"type": "string"}, "code": {"type": "string"},
                           "request_id": {"type": "string"}}}}},
    }
    if keys:
        spec["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
    return spec


def blueprint(title: str, description: str, operations: list[Operation]) -> Blueprint:
    """``/openapi.json`` and ``/docs`` for a service."""
    bp = Blueprint("api_docs", __name__, static_folder="static", static_url_path="/api-docs")

    @bp.get("/openapi.json")
    def openapi():
        return jsonify(document(title, description, operations,
                                current_app.extensions.get("api_keys", False)))

    @bp.get("/docs")
    def docs():
        return send_from_directory(bp.static_folder, "docs.html")

    return bp


# The operations every service has, besides its own.
COMMON_OPERATIONS = [
    Operation("/health", "GET", "Is the service up, and with which backend", open=True,
              responses={200: (("application/json",), "status, backend, settings")}),
    Operation("/metrics", "GET", "Prometheus metrics", open=True,
              responses={200: (("text/plain",), "Prometheus text format")}),
    Operation("/openapi.json", "GET", "This document", open=True,
              responses={200: (("application/json",), "OpenAPI 3")}),
    Operation("/docs", "GET", "This document, readable", open=True,
              responses={200: (("text/html",), "HTML page")}),
]
