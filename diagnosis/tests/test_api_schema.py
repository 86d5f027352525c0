def test_the_openapi_schema_describes_the_endpoints(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/patients/", "/api/v1/patients/{id}/", "/api/v1/scans/", "/api/v1/scans/{id}/"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/api/v1/scans/"]["post"]["requestBody"]["content"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    assert not {"/api/docs/", "/api/schema/"} & set(schema["paths"])  # pages about the API are no operations of it


def test_the_interactive_docs_use_local_assets_not_a_cdn(ui_client):
    response = ui_client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr.net" not in html and "/static/drf_spectacular_sidecar/" in html


def test_the_schema_describes_review_report_heatmap_and_worklist(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    paths = schema["paths"]
    assert "post" in paths["/api/v1/scans/{id}/review/"]
    assert "application/pdf" in paths["/api/v1/scans/{id}/report/"]["get"]["responses"]["200"]["content"]
    assert "image/png" in paths["/api/v1/scans/{id}/heatmap/"]["get"]["responses"]["200"]["content"]
    assert "get" in paths["/api/v1/worklist/"]
    prediction = schema["components"]["schemas"]["Prediction"]["properties"]
    assert {"heatmap_url", "needs_review", "needs_review_reason", "confidence"} <= set(prediction)
    assert "review" in schema["components"]["schemas"]["Scan"]["properties"]


def test_the_schema_and_the_docs_are_for_signed_in_users(client, api_client, db):
    refused = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert refused.status_code == 401 and "credentials were not provided" in refused.json()["detail"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"] == "/accounts/login/?next=/api/docs/"

    assert api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").status_code == 200
    # A web login without an organization (a site administrator) reads them too: they hold no patient data.
    from django.contrib.auth import get_user_model
    from django.test import Client

    nobody = Client()
    nobody.force_login(get_user_model().objects.create_user("site-admin", password="pw-site-admin-1"))
    assert nobody.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").status_code == 200
    assert nobody.get("/api/docs/").status_code == 200


def test_a_deployment_may_publish_them(client, db, settings):
    settings.KIDNEYWEB_API_DOCS_PUBLIC = True

    assert client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").status_code == 200
    assert client.get("/api/docs/").status_code == 200
