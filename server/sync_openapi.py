"""How the sync routes appear in the OpenAPI document (`server.openapi.describe`): the push
batch, the pull cursor and page, and the resumable photo upload's headers."""

from sync.protocol import KINDS, MAX_BATCH_OPS

OPERATION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["op_id", "device_seq", "record_id", "kind", "payload", "client_time"],
    "properties": {
        "op_id": {"type": "string", "format": "uuid", "description": "Unique per operation."},
        "device_seq": {"type": "integer", "minimum": 1, "description": "1, 2, 3… per phone."},
        "record_id": {"type": "string", "maxLength": 40, "description": "The tree's id."},
        "kind": {"enum": list(KINDS)},
        "payload": {"type": "object"},
        "client_time": {"type": "string", "description": "ISO-8601 with its zone."},
        "base_version": {"type": ["integer", "null"], "minimum": 0},
    },
}
PUSH_BODY = {
    "type": "object",
    "required": ["device_id", "ops"],
    "properties": {
        "device_id": {"type": "string"},
        "sent_at": {"type": ["string", "null"], "description": "The phone's clock."},
        "ops": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH_OPS, "items": OPERATION},
        "pull_cursor": {
            "type": "integer",
            "minimum": 0,
            "description": "Optional: the phone's pull cursor. The answer then carries `pull`, "
            "the page `GET /sync/pull?cursor=` would give, when few changes wait (else null).",
        },
    },
    "example": {
        "device_id": "dev_6f1c2a",
        "sent_at": "2026-06-01T08:00:05.000+08:00",
        "ops": [
            {
                "op_id": "0190f0a0-0000-7000-8000-0000000000c1",
                "device_seq": 1,
                "record_id": "0190f0a0-0000-7000-8000-00000000000a",
                "kind": "tree.register",
                "payload": {
                    "household_code": "360423101201-0042-K7",
                    "species_id": "cunninghamia_lanceolata",
                    "position": "house",
                },
                "client_time": "2026-06-01T08:00:00.000+08:00",
                "base_version": None,
            }
        ],
    },
}
RESULT = {
    "type": "object",
    "required": ["op_id", "device_seq", "status"],
    "properties": {
        "op_id": {"type": "string"},
        "device_seq": {"type": "integer"},
        "status": {
            "enum": ["applied", "duplicate", "rejected", "held"],
            "description": "`duplicate`: the same op_id and content again (the stored result). "
            "`rejected` with code `conflict`: the op_id was used before for other content; "
            "the first is kept and the device recorded. `held`: waiting for a missing "
            "device_seq.",
        },
        "code": {"type": "string"},
        "reason": {"type": "string"},
        "server_seq": {"type": "integer"},
    },
}
PUSH = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PUSH_BODY}},
        "description": "May be sent gzipped (Content-Encoding: gzip).",
    },
    "responses": {
        "200": {
            "description": "One result per operation (and per held one now applied).",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "results": {"type": "array", "items": RESULT},
                            "server_time": {"type": "string"},
                            "clock_offset_s": {"type": ["number", "null"]},
                            "last_seq": {"type": "integer"},
                            "gap": {},
                            "pull": {
                                "type": ["object", "null"],
                                "description": "Only when `pull_cursor` was sent.",
                            },
                        },
                    }
                }
            },
        }
    },
}
PULL = {
    "parameters": [
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "default": 0},
            "description": "The `cursor` of the last page received (0 from scratch).",
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 500},
            "description": "At most this many changes a page.",
        },
    ],
    "responses": {
        "200": {
            "description": "One page of changes after the cursor; each record once, at the "
            "page of its newest change. Pull again with `cursor` while `more` is true.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "cursor": {"type": "integer"},
                            "more": {"type": "boolean"},
                            "village": {"type": "object"},
                            "households": {"type": "array"},
                            "trees": {"type": "array"},
                            "method": {"type": "object"},
                            "last_seq": {"type": "integer"},
                            "gap": {},
                            "server_time": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
}
_OFFSET = {"schema": {"type": "integer", "minimum": 0}}
BLOB_STATUS = {
    "responses": {
        "200": {
            "description": "What the server holds of this photo; no body.",
            "headers": {
                "Upload-Offset": {"description": "Bytes received so far.", **_OFFSET},
                "Upload-Complete": {
                    "description": "`true` once the whole photo arrived and matched its hash.",
                    "schema": {"enum": ["true", "false"]},
                },
            },
        }
    }
}
BLOB_CHUNK = {
    "parameters": [
        {
            "name": "Upload-Offset",
            "in": "header",
            "required": True,
            "description": "Where this chunk starts: the server's `Upload-Offset` from HEAD.",
            **_OFFSET,
        },
        {
            "name": "Upload-Length",
            "in": "header",
            "required": True,
            "description": "The whole photo's size in bytes.",
            "schema": {"type": "integer", "minimum": 1},
        },
    ],
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The chunk's bytes (16–256 KB); each is fsynced as it arrives.",
    },
    "responses": {
        "200": {
            "description": "`{complete, offset}`; complete once the bytes match the sha256.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "complete": {"type": "boolean"},
                            "offset": {"type": "integer"},
                        },
                    }
                }
            },
        },
        "409": {
            "description": "The offset is not what the server holds (`offset_mismatch`); its "
            "`Upload-Offset` header says where to resume.",
            "headers": {"Upload-Offset": _OFFSET},
        },
    },
}
