"""The OpenAPI description the gateway serves at `/openapi.json` (the batches endpoints as the
Message Batches API documents them, and batchline's own `/v1/requests`)."""

from __future__ import annotations

from typing import Any

ID = {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}
ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
MESSAGE_PARAMS = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {"role": {"enum": ["user", "assistant"]}, "content": {}},
            },
        },
    },
}
COUNTS = {
    "type": "object",
    "properties": {k: {"type": "integer"} for k in ("processing", "succeeded", "errored", "canceled", "expired")},
}
TIME = {"type": ["string", "null"], "format": "date-time"}
BATCH = {
    "type": "object",
    "required": ["id", "type", "processing_status", "request_counts", "created_at", "expires_at"],
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "message_batch"},
        "processing_status": {"enum": ["in_progress", "canceling", "ended"]},
        "request_counts": COUNTS,
        "created_at": TIME,
        "expires_at": TIME,
        "ended_at": TIME,
        "cancel_initiated_at": TIME,
        "archived_at": TIME,
        "results_url": {"type": ["string", "null"]},
    },
}
BETA_HEADER = {
    "name": "anthropic-beta",
    "in": "header",
    "required": False,
    "description": "comma-separated betas; every request of the batch carries them (the endpoint's own "
    "message-batches-* is ignored); each must match ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$, at most 20",
    "schema": {"type": "string"},
}
REQUEST_ITEM = {
    "type": "object",
    "required": ["custom_id", "params"],
    "properties": {
        "custom_id": ID,
        "params": MESSAGE_PARAMS,
        "reply_to": {"type": "string"},
        "metadata": {"type": "object"},
        "deadline": {
            "type": "string",
            "format": "date-time",
            "description": "answer by this time (RFC 3339 with an offset); not with deadline_seconds",
        },
        "deadline_seconds": {"type": "number", "description": "answer within this many seconds of submission"},
    },
}
REPORT = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer"},
        "duplicate": {"type": "integer"},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "custom_id": {"type": ["string", "null"]},
                    "field": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}
PAGE = {
    "type": "object",
    "properties": {
        "data": {"type": "array", "items": {"$ref": "#/components/schemas/MessageBatch"}},
        "has_more": {"type": "boolean"},
        "first_id": {"type": ["string", "null"]},
        "last_id": {"type": ["string", "null"]},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", **_json({"$ref": "#/components/schemas/Error"})} for c in codes}


BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}
CUSTOM_ID = {"name": "custom_id", "in": "path", "required": True, "schema": ID}
COMMON = (400, 401, 413, 429, 529)


def document(base_url: str) -> dict[str, Any]:
    batch = {"description": "a message batch", **_json({"$ref": "#/components/schemas/MessageBatch"})}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "batchline gateway",
            "version": "1",
            "description": "Anthropic-compatible Message Batches API for tenants of batchline, and "
            "batchline's own single requests. Authenticate with x-api-key or Authorization: Bearer.",
        },
        "servers": [{"url": base_url}],
        "components": {
            "schemas": {"Error": ERROR, "MessageBatch": BATCH, "RequestItem": REQUEST_ITEM, "SubmitReport": REPORT},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": {
            "/v1/messages/batches": {
                "post": {
                    "operationId": "createBatch",
                    "parameters": [BETA_HEADER],
                    "requestBody": {
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "required": ["requests"],
                                "additionalProperties": False,
                                "properties": {
                                    "requests": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {
                                            "type": "object",
                                            "required": ["custom_id", "params"],
                                            "additionalProperties": False,
                                            "properties": {"custom_id": ID, "params": MESSAGE_PARAMS},
                                        },
                                    }
                                },
                            }
                        ),
                    },
                    "responses": {"200": batch, **_errors(*COMMON)},
                },
                "get": {
                    "operationId": "listBatches",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                        {"name": "after_id", "in": "query", "schema": {"type": "string"}},
                        {"name": "before_id", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": {"description": "a page, newest first", **_json(PAGE)}, **_errors(*COMMON)},
                },
            },
            "/v1/messages/batches/{batch_id}": {
                "get": {
                    "operationId": "retrieveBatch",
                    "parameters": [BATCH_ID],
                    "responses": {"200": batch, **_errors(*COMMON, 404)},
                },
                "delete": {
                    "operationId": "deleteBatch",
                    "parameters": [BATCH_ID],
                    "responses": {
                        "200": {
                            "description": "deleted",
                            **_json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "string"},
                                        "type": {"const": "message_batch_deleted"},
                                    },
                                }
                            ),
                        },
                        **_errors(*COMMON, 404),
                    },
                },
            },
            "/v1/messages/batches/{batch_id}/cancel": {
                "post": {
                    "operationId": "cancelBatch",
                    "parameters": [BATCH_ID],
                    "responses": {"200": batch, **_errors(*COMMON, 404)},
                }
            },
            "/v1/messages/batches/{batch_id}/results": {
                "get": {
                    "operationId": "batchResults",
                    "parameters": [BATCH_ID],
                    "responses": {
                        "200": {
                            "description": "JSON Lines: {custom_id, result} per request",
                            "content": {"application/x-jsonl": {"schema": {"type": "string"}}},
                        },
                        **_errors(*COMMON, 404),
                    },
                }
            },
            "/v1/requests": {
                "post": {
                    "operationId": "submitRequests",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/RequestItem"},
                                        {
                                            "type": "array",
                                            "minItems": 1,
                                            "items": {"$ref": "#/components/schemas/RequestItem"},
                                        },
                                    ]
                                }
                            },
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "what was stored",
                            **_json({"$ref": "#/components/schemas/SubmitReport"}),
                        },
                        **_errors(*COMMON),
                    },
                }
            },
            "/v1/requests/{custom_id}": {
                "get": {
                    "operationId": "requestStatus",
                    "parameters": [CUSTOM_ID],
                    "responses": {
                        "200": {
                            "description": "state, every attempt, and the result once final",
                            **_json({"type": "object"}),
                        },
                        **_errors(*COMMON, 404),
                    },
                },
                "delete": {
                    "operationId": "cancelRequest",
                    "parameters": [CUSTOM_ID],
                    "responses": {
                        "200": {
                            "description": "what the cancel did",
                            **_json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "custom_id": {"type": "string"},
                                        "cancel": {"enum": ["removed", "requested", "final"]},
                                    },
                                }
                            ),
                        },
                        **_errors(*COMMON, 404),
                    },
                },
            },
        },
    }
