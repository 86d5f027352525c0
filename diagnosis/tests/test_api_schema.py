def test_the_openapi_schema_describes_the_endpoints(client, db):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/patients/", "/api/v1/patients/{id}/", "/api/v1/scans/", "/api/v1/scans/{id}/"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/api/v1/scans/"]["post"]["requestBody"]["content"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_the_interactive_docs_use_local_assets_not_a_cdn(client, db):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr.net" not in html and "/static/drf_spectacular_sidecar/" in html


def test_the_schema_describes_review_report_heatmap_and_worklist(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    paths = schema["paths"]
    assert "post" in paths["/api/v1/scans/{id}/review/"]
    assert "application/pdf" in paths["/api/v1/scans/{id}/report/"]["get"]["responses"]["200"]["content"]
    assert "image/png" in paths["/api/v1/scans/{id}/heatmap/"]["get"]["responses"]["200"]["content"]
    assert "get" in paths["/api/v1/worklist/"]
    prediction = schema["components"]["schemas"]["Prediction"]["properties"]
    assert {"heatmap_url", "needs_review", "needs_review_reason", "confidence"} <= set(prediction)
    assert "review" in schema["components"]["schemas"]["Scan"]["properties"]
