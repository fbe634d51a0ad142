"""The console's shell: served without a key, from the package, under a policy that runs only its own files."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from mallfence.console import STATIC


def test_console_shell_loads_without_a_key(client: TestClient) -> None:
    anonymous = {"Authorization": ""}
    assert client.get("/console", headers=anonymous, follow_redirects=False).headers["location"].endswith("/console/")
    page = client.get("/console/", headers=anonymous)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    # every script and stylesheet the page names is served, from this origin
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {"js/main.js", "console.css"} <= set(assets)
    for asset in assets:
        assert not asset.startswith(("http:", "https:", "//")), asset
        assert client.get(f"/console/{asset}", headers=anonymous).status_code == 200, asset


def test_every_module_the_console_imports_is_shipped(client: TestClient) -> None:
    for module in (STATIC / "js").glob("*.js"):
        for imported in re.findall(r'from "\./([\w-]+\.js)"', module.read_text()):
            assert (STATIC / "js" / imported).is_file(), f"{module.name} imports missing {imported}"
            assert client.get(f"/console/js/{imported}").status_code == 200


def test_console_policy_allows_only_its_own_origin_and_the_api_keeps_its_own(client: TestClient) -> None:
    console = client.get("/console/").headers["content-security-policy"]
    assert "script-src 'self'" in console and "connect-src 'self'" in console
    assert "unsafe-inline" not in console and "unsafe-eval" not in console and "http" not in console
    assert client.get("/v1/me").headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    # a look-alike path is API, not console
    assert client.get("/consoles").headers["content-security-policy"].startswith("default-src 'none'")


def test_console_is_not_in_the_openapi_schema(client: TestClient) -> None:
    assert not [p for p in client.get("/openapi.json").json()["paths"] if p.startswith("/console")]
