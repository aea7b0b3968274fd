"""The API's OpenAPI 3.1 document, served at /api/openapi.json. tests/test_api_docs.py
checks it against the routes and against what the endpoints really answer."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

_STR, _INT, _NUM, _BOOL = ({"type": t} for t in ("string", "integer", "number", "boolean"))


def _nullable(schema: dict) -> dict:
    return {**schema, "type": [schema["type"], "null"]}


PROBE = {
    "type": "object",
    "properties": {
        "profile": {**_STR, "description": "device profile slug"},
        "status": {"enum": ["pending", "running", "done", "failed"]},
        "error": _nullable(_STR),
    },
}

PRECISION = {"enum": ["fp32", "bf16", "int8", "int4"]}  # evaluator.quant.RECIPES

SUBMISSION_PROPERTIES = {
    "id": _INT,
    "name": _STR,
    "url": {**_STR, "description": "the checkpoint as submitted"},
    "commit": _nullable({**_STR, "description": "Hub commit the submission was pinned to"}),
    "status": {
        "enum": [
            "pending",
            "fetching",
            "evaluating",
            "probing",
            "done",
            "failed",
            "rejected",
            "cancelled",
        ]  # fmt: skip
    },
    "active": {**_BOOL, "description": "still pending or running"},
    "task_index": {**_INT, "description": "0-based index of the current task"},
    "task_count": {**_INT, "description": "tasks × precisions: every task at every precision"},
    "precisions": {
        "type": "array",
        "items": _STR,
        "description": "the quantization ladder evaluated, fp32 (the reference) first",
    },
    "task": _nullable(_STR),
    "task_fraction": {**_NUM, "description": "fraction of the current task (or download) done"},
    "progress": {**_NUM, "description": "fraction of the whole evaluation done; never decreases"},
    "stage": {**_STR, "description": "where the submission is, in words"},
    "elapsed_s": _nullable(_INT),
    "eta_s": _nullable({**_INT, "description": "estimated seconds left while evaluating"}),
    "error": _nullable(_STR),
    "log_tail": _nullable(_STR),
    "probes_pending": {"type": "array", "items": _STR},
    "probes": {"type": "array", "items": PROBE},
    "data": {**_STR, "description": "benchmark data: hub, sample, or a directory's name"},
    "limit": _nullable(_INT),
    "created": {**_STR, "format": "date-time"},
    "finished": _nullable({**_STR, "format": "date-time"}),
    "model_url": _nullable({**_STR, "description": "the model page, once there are scores"}),
    "page": {**_STR, "description": "the submission's page"},
}

ERROR = {
    "description": "refused",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": _STR}, "required": ["error"]}
        }
    },
}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document(base_url: str = "") -> dict:
    submission = {"$ref": "#/components/schemas/Submission"}
    created = {
        "allOf": [
            submission,
            {
                "type": "object",
                "properties": {
                    "cancel_secret": {
                        **_STR,
                        "description": "pass it back to the cancel endpoint; shown only once",
                    }
                },
                "required": ["cancel_secret"],
            },
        ]
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "On-Device LLM Leaderboard API",
            "version": settings.PROJECT_VERSION,
            "description": "Submit a checkpoint for evaluation, follow it, cancel it. Every "
            'error is {"error": "..."} with a 4xx status.',
        },
        "servers": [{"url": base_url or "/"}],
        "paths": {
            "/api/submissions": {
                "post": {
                    "summary": "Submit a checkpoint",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["url", "name"],
                                    "properties": {
                                        "url": {
                                            **_STR,
                                            "description": "Hub repo (org/name[@revision]) or "
                                            "https URL of a .tar.gz/.tgz/.tar/.zip archive "
                                            "or of a .gguf file",
                                        },
                                        "name": {**_STR, "maxLength": 100},
                                        "notes": _STR,
                                        "precisions": {
                                            "oneOf": [
                                                {"type": "array", "items": PRECISION},
                                                {**_STR, "description": "comma-separated"},
                                            ],
                                            "description": "evaluated at each (fp32, the "
                                            "reference, always); default: the site's "
                                            "EVAL_PRECISIONS",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json(created, "created"),
                        "200": _json(submission, "the same checkpoint was already submitted"),
                        "400": ERROR,
                        "413": ERROR,
                        "415": ERROR,
                        "429": ERROR,
                    },
                }
            },
            "/api/submissions/{id}/cancel": {
                "post": {
                    "summary": "Cancel a pending or running submission",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": _INT}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "cancel_secret": {
                                            **_STR,
                                            "description": "as returned at creation",
                                        },
                                        "secret": {**_STR, "description": "older name, same"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(submission, "cancelled"),
                        "400": ERROR,
                        "403": ERROR,
                        "404": ERROR,
                        "409": ERROR,
                    },
                }
            },
            "/submissions/{id}.json": {
                "get": {
                    "summary": "One submission, with its scores and latency once stored",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": _INT}],
                    "responses": {"200": _json(submission, "the submission"), "404": ERROR},
                }
            },
        },
        "components": {
            "schemas": {
                "Submission": {
                    "type": "object",
                    "properties": {
                        **SUBMISSION_PROPERTIES,
                        "outcome": {
                            "type": ["object", "null"],
                            "description": "only in /submissions/{id}.json: avg, benchmark, "
                            "scores (headline metric per task, %) and latency per profile",
                        },
                    },
                    "required": list(SUBMISSION_PROPERTIES),
                }
            }
        },
    }


def openapi_json(request):
    base = getattr(settings, "SITE_URL", "") or request.build_absolute_uri("/").rstrip("/")
    return JsonResponse(document(base))
