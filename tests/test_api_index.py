"""``/api/v1/`` answers an index of the API (it was a 404), and ``/`` leads to the dashboard."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_index_lists_every_route_of_the_schema_with_links_to_the_docs(api: APIClient) -> None:
    response = api.get("/api/v1/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["docs"] == "http://testserver/api/docs/" and body["schema"] == "http://testserver/api/schema/"
    assert body["redoc"] == "http://testserver/api/redoc/" and body["health"] == "http://testserver/health"
    schema = APIClient().get("/api/schema/?format=json").json()
    documented = {
        (path, method.upper())
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/") and path != "/api/v1/"
        for method in item
    }
    index_paths = [
        path for path, item in schema["paths"].items() if item.get("get", {}).get("operationId") == "api_index"
    ]
    assert index_paths == ["/api/v1/"] and api.get("/api/").status_code == 404
    listed = {(route["path"], method) for route in body["endpoints"] for method in route["methods"]}
    assert listed == documented
    hrefs = {route["path"]: route.get("href") for route in body["endpoints"]}
    assert hrefs["/api/v1/stats"] == "http://testserver/api/v1/stats" and hrefs["/api/v1/jobs/{job_id}"] is None
    for link in (body["docs"], body["schema"], body["redoc"], hrefs["/api/v1/jobs"]):
        assert api.get(link).status_code == 200, link


def test_the_index_needs_a_token_like_every_api_route() -> None:
    response = APIClient().get("/api/v1/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("path", ["/", "/?next=x"])
def test_the_root_redirects_to_the_dashboard(path: str) -> None:
    response: Any = Client().get(path)
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
