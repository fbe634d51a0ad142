"""Catalog and stock: products, counts per store, the CSV import (all or nothing), "where is it in stock"."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mallfence.commerce import service
from tests.commerce_factories import build_mall, product, stock
from tests.factories import lonlat


@pytest.fixture
def mall(client: TestClient) -> dict:
    return build_mall(client)


def test_products_are_upserted_listed_and_deleted(client: TestClient, mall: dict) -> None:
    r = client.put("/v1/venues/mall/products/TR-2-42", json={"name": "Trail Runner 2", "brand": "Stride",
                                                              "image_url": "https://img.example/tr2.jpg"})
    assert r.status_code == 201 and r.json()["brand"] == "Stride"
    r = client.put("/v1/venues/mall/products/TR-2-42", json={"name": "Trail Runner II"})
    assert r.status_code == 200 and r.json()["name"] == "Trail Runner II" and r.json()["brand"] is None
    product(client, "BK-001", "Harbour Tales", brand="Tideline")
    product(client, "BK-002", "Sea Charts")
    assert [p["sku"] for p in client.get("/v1/venues/mall/products", params={"limit": 2}).json()] == [
        "BK-001", "BK-002"]
    assert [p["sku"] for p in client.get("/v1/venues/mall/products", params={"after": "BK-002"}).json()] == [
        "TR-2-42"]
    assert [p["sku"] for p in client.get("/v1/venues/mall/products", params={"q": "tideline"}).json()] == ["BK-001"]
    assert client.get("/v1/venues/mall/products/BK-002").json()["name"] == "Sea Charts"
    r = client.get("/v1/venues/mall/products/NOPE")
    assert r.status_code == 404 and "not in the catalog" in r.json()["detail"]
    stock(client, mall["books"], "BK-002", 4)
    assert client.delete("/v1/venues/mall/products/BK-002").status_code == 204
    assert client.get(f"/v1/venues/mall/stores/{mall['books']}/stock").json() == []  # its stock went with it


@pytest.mark.parametrize(("sku", "body", "says"), [
    ("HAS SPACE", {"name": "x"}, "String should match pattern"),
    ("OK-1", {"name": ""}, "at least 1 character"),
    ("OK-1", {"name": "x", "image_url": "ftp://img"}, "String should match pattern"),
    ("OK-1", {"name": "x", "colour": "red"}, "Extra inputs are not permitted"),
])
def test_bad_products_are_refused(client: TestClient, mall: dict, sku: str, body: dict, says: str) -> None:
    r = client.put(f"/v1/venues/mall/products/{sku}", json=body)
    assert r.status_code == 422 and says in r.text, r.text
    assert client.get("/v1/venues/mall/products").json() == []


def test_stock_levels_follow_quantity_and_threshold(client: TestClient, mall: dict) -> None:
    product(client, "TR-2")
    assert stock(client, mall["shoes"], "TR-2", 10)["level"] == "in_stock"
    assert stock(client, mall["shoes"], "TR-2", 3)["level"] == "low"  # default threshold 3
    assert stock(client, mall["shoes"], "TR-2", 3, low_threshold=2)["level"] == "in_stock"
    assert stock(client, mall["shoes"], "TR-2", 0)["level"] == "out"
    row = client.get(f"/v1/venues/mall/stores/{mall['shoes']}/stock").json()[0]
    assert (row["sku"], row["quantity"], row["low_threshold"], row["level"]) == ("TR-2", 0, 2, "out")
    assert client.get(f"/v1/venues/mall/stores/{mall['shoes']}/stock", params={"level": "low"}).json() == []
    r = client.put(f"/v1/venues/mall/stores/{mall['shoes']}/stock/GHOST", json={"quantity": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["sku"] and "not in the catalog" in r.text
    r = client.put("/v1/venues/mall/stores/999/stock/TR-2", json={"quantity": 1})
    assert r.status_code == 404 and "store 999" in r.text
    r = client.put(f"/v1/venues/mall/stores/{mall['shoes']}/stock/TR-2", json={"quantity": -1})
    assert r.status_code == 422


def test_out_of_stock_names_only_skus_known_to_be_out(client: TestClient, mall: dict) -> None:
    for sku, quantity in (("A", 0), ("B", 2), ("C", 9)):
        product(client, sku)
        stock(client, mall["shoes"], sku, quantity)
    product(client, "D")  # carried nowhere: no feed is not the same as none left
    with client.app.state.runtime.sessions() as s:  # type: ignore[attr-defined]
        assert service.out_of_stock(s, mall["shoes"], ["A", "B", "C", "D", "E"]) == {"A"}
        assert service.out_of_stock(s, store_id=mall["books"], skus=["A"]) == set()


# -- where is it in stock --------------------------------------------------------------------------------------
def test_where_in_stock_is_nearest_first_and_a_floor_costs_a_walk(client: TestClient, mall: dict) -> None:
    product(client, "TR-2", "Trail Runner 2")
    stock(client, mall["books"], "TR-2", 1)
    stock(client, mall["shoes"], "TR-2", 12)
    stock(client, mall["upstairs"], "TR-2", 5)
    lon, lat = lonlat(25, 10)  # ground floor, 5 m east of Books, 35 m west of Shoes, 30 m below Ballast
    r = client.get("/v1/venues/mall/stock", params={"sku": "TR-2", "lon": lon, "lat": lat, "floor": 0})
    assert r.status_code == 200, r.text
    found = [(p["store"]["name"], p["level"], round(p["distance_m"]), p["walk_hint"]) for p in r.json()["stores"]]
    assert found == [("Tideline Books", "low", 5, "Level 0, about 10 m"),
                     ("Stride Shoes", "in_stock", 35, "Level 0, about 40 m"),
                     ("Ballast Shoes", "in_stock", 70, "Level 1, about 70 m")]  # 30 m + one floor
    lon, lat = lonlat(20, 50)  # first floor, inside Ballast
    r = client.get("/v1/venues/mall/stock", params={"sku": "TR-2", "lon": lon, "lat": lat, "floor": 1}).json()
    assert [(p["store"]["name"], p["walk_hint"]) for p in r["stores"]][:2] == [
        ("Ballast Shoes", "Level 1, right here"), ("Tideline Books", "Level 0, about 70 m")]
    assert r["product"]["name"] == "Trail Runner 2" and r["origin"]["floor"] == 1


def test_where_in_stock_flags_stores_that_are_out(client: TestClient, mall: dict) -> None:
    product(client, "TR-2")
    stock(client, mall["books"], "TR-2", 0)
    stock(client, mall["upstairs"], "TR-2", 2)
    r = client.get("/v1/venues/mall/stock", params={"sku": "TR-2"}).json()
    assert [(p["store"]["name"], p["distance_m"], p["walk_hint"]) for p in r["stores"]] == [
        ("Ballast Shoes", None, None)]  # no position: no distance, nothing made up
    assert [p["store"]["name"] for p in r["out_of_stock"]] == ["Tideline Books"] and r["origin"] is None


@pytest.mark.parametrize(("params", "status", "says"), [
    ({"sku": "NOPE"}, 404, "not in the catalog"),
    ({"sku": "TR-2", "lon": 1.0}, 422, "give both lon and lat"),
    ({"sku": "TR-2", "floor": 1}, 422, "floor needs lon and lat"),
    ({"sku": "TR-2", "lon": 53.4808, "lat": -2.2426}, 422, "lon/lat swapped"),
    ({"sku": "TR 2"}, 422, "String should match pattern"),
])
def test_where_in_stock_refuses_bad_questions(client: TestClient, mall: dict, params: dict, status: int,
                                              says: str) -> None:
    product(client, "TR-2")
    r = client.get("/v1/venues/mall/stock", params=params)
    assert r.status_code == status and says in r.text, r.text


# -- CSV ----------------------------------------------------------------------------------------------------
def _import(client: TestClient, text: str):  # type: ignore[no-untyped-def]
    return client.post("/v1/venues/mall/stock/import", content=text.encode(), headers={"Content-Type": "text/csv"})


def test_a_stock_csv_with_names_creates_products_and_rows(client: TestClient, mall: dict) -> None:
    product(client, "BK-1", "Old name")
    text = ("sku,store,quantity,low_threshold,name,brand\n"
            "BK-1,L0-BOOKS,4,,Harbour Tales,Tideline\n"
            "TR-2,L0-SHOES,12,5,Trail Runner 2,\n"
            "TR-2,L1-BALLAST,0,,Trail Runner 2,\n")
    r = _import(client, text)
    assert r.status_code == 200, r.text
    assert r.json() == {"rows": 3, "created": 3, "updated": 0, "unchanged": 0, "products_created": 1,
                        "products_updated": 1}
    assert client.get("/v1/venues/mall/products/BK-1").json()["name"] == "Harbour Tales"
    shoes = client.get(f"/v1/venues/mall/stores/{mall['shoes']}/stock").json()
    assert [(s["sku"], s["quantity"], s["low_threshold"], s["level"]) for s in shoes] == [("TR-2", 12, 5, "in_stock")]
    again = _import(client, text.replace("BK-1,L0-BOOKS,4", "BK-1,L0-BOOKS,1")).json()
    assert (again["created"], again["updated"], again["unchanged"], again["products_updated"]) == (0, 1, 2, 0)


def test_a_stock_csv_with_bad_rows_stores_nothing_and_names_every_line(client: TestClient, mall: dict) -> None:
    product(client, "BK-1")
    text = (f"sku,store_id,quantity\n"
            f"BK-1,{mall['books']},4\n"  # fine, but must not be stored
            f"GHOST,{mall['books']},1\n"  # not in the catalog, and no name column to create it
            f"BK-1,999,2\n"  # not a store of this venue
            f"BK-1,{mall['shoes']},many\n"
            f"BK 2,{mall['shoes']},1\n"
            f"BK-1,,3\n"
            f"BK-1,{mall['books']},5\n")  # the same store and SKU as line 2
    r = _import(client, text)
    assert r.status_code == 422
    problems = [(d["loc"][1:], d["msg"]) for d in r.json()["detail"]]
    assert [loc for loc, _ in problems] == [["line 2"], ["line 3", "sku"], ["line 4", "store_id"],
                                            ["line 5", "quantity"], ["line 6", "sku"], ["line 7", "store_id"],
                                            ["line 8"]]
    assert "GHOST" in problems[1][1] and "add a name column" in problems[1][1]
    assert "store 999 does not exist" in problems[2][1] and "'many' is not a whole number" in problems[3][1]
    assert "appear 2 times" in problems[0][1]
    assert client.get(f"/v1/venues/mall/stores/{mall['books']}/stock").json() == []  # nothing half-written


@pytest.mark.parametrize(("text", "ctype", "says"), [
    ("sku,store_id,qty\nA,1,2\n", "text/csv", "unknown column(s) 'qty'"),
    ("sku,quantity\nA,2\n", "text/csv", "exactly one of store_id or store"),
    ("sku,store_id,store,quantity\nA,1,X,2\n", "text/csv", "exactly one of store_id or store"),
    ("", "text/csv", "empty CSV"),
    ("sku,store_id,quantity\nA,1,2\n", "application/json", "send text/csv"),
    ("sku,store,quantity,name\nNEW,L0-BOOKS,2,\n", "text/csv", "give it a name in this row"),
])
def test_stock_csv_refusals(client: TestClient, mall: dict, text: str, ctype: str, says: str) -> None:
    r = client.post("/v1/venues/mall/stock/import", content=text.encode(), headers={"Content-Type": ctype})
    assert r.status_code == 422 and says in r.text, r.text


def test_ids_and_text_a_database_cannot_hold_are_refused_not_a_500(client: TestClient, mall: dict) -> None:
    """PostgreSQL integers end at 2^31 - 1 and its text cannot hold NUL: such input is a 422 naming it."""
    product(client, "A")
    big = 2**31
    for method, url, kwargs, loc in [
        ("get", f"/v1/venues/mall/orders/{big}", {}, ["path", "order_id"]),
        ("put", f"/v1/venues/mall/stores/{big}/stock/A", {"json": {"quantity": 1}}, ["path", "store_id"]),
        ("get", "/v1/venues/mall/orders", {"params": {"store_id": big}}, ["query", "store_id"]),
        ("post", "/v1/venues/mall/orders", {"json": {"external_id": "x", "loyalty_id": "L", "store_id": mall["books"],
                                                     "pickup_zone_id": big}}, ["body", "pickup_zone_id"]),
        ("put", "/v1/venues/mall/products/A", {"json": {"name": "a\u0000b"}}, ["body"]),
        ("put", "/v1/venues/mall/products/A%00", {"json": {"name": "ab"}}, ["path", "sku"]),
        ("get", "/v1/venues/mall/products", {"params": {"q": "a\x00"}}, ["query", "q"]),
        ("get", "/v1/venues/mall/shoppers/a%00b/purchases", {}, ["path", "shopper_id"]),
        ("post", "/v1/venues/mall/stock/import", {"content": b"sku,store_id,quantity\nA\x00,1,2\n",
                                                  "headers": {"Content-Type": "text/csv"}}, ["csv", "line 2"]),
    ]:
        r = getattr(client, method)(url, **kwargs)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, (url, r.text)
    assert client.get("/v1/venues/mall/products/A").json()["name"] == "Product A"
