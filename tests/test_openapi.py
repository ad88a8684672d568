"""The OpenAPI document covers every API route and its examples are valid."""

from jsonschema import Draft202012Validator


def test_openapi_lists_every_api_route_with_roles(app, client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    operations = {(path, method) for path, methods in doc["paths"].items() for method in methods}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in operations
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    assert login["x-roles"] == ["public"]
    households = doc["paths"]["/api/v1/villages/{village_code}/households"]["get"]
    assert households["x-scope"] == "village"
    assert "admin" in households["x-roles"]
    assert households["parameters"][0]["name"] == "village_code"


def test_every_request_schema_is_valid_and_its_example_passes(client):
    doc = client.get("/api/v1/openapi.json").json
    bodies = [
        op["requestBody"]["content"]["application/json"]["schema"]
        for methods in doc["paths"].values()
        for op in methods.values()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    assert len(bodies) >= 6
    for schema in bodies:
        Draft202012Validator.check_schema(schema)
        assert list(Draft202012Validator(schema).iter_errors(schema["example"])) == []


def test_sync_is_described_body_cursor_and_resumable_upload_headers(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    push = paths["/api/v1/sync/push"]["post"]
    batch = push["requestBody"]["content"]["application/json"]["schema"]
    assert batch["required"] == ["device_id", "ops"]
    assert "conflict" in str(push["responses"]["200"])
    pull = paths["/api/v1/sync/pull"]["get"]
    assert [p["name"] for p in pull["parameters"] if p["in"] == "query"] == ["cursor", "limit"]
    head = paths["/api/v1/blobs/{sha256}"]["head"]
    assert set(head["responses"]["200"]["headers"]) == {"Upload-Offset", "Upload-Complete"}
    put = paths["/api/v1/blobs/{sha256}"]["put"]
    headers = {p["name"] for p in put["parameters"] if p["in"] == "header"}
    assert headers == {"Upload-Offset", "Upload-Length"}
    assert "application/octet-stream" in put["requestBody"]["content"]
