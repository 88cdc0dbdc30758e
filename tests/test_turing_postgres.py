"""The store on a real PostgreSQL server (started by the tests): a whole study, and racing
double submits from many threads still store each answer exactly once (the database's unique
constraint decides, not a check in Python)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures_turing import PASSWORD
from turing_test.errors import DuplicateAnswer
from turing_test.manifest import load_manifest
from turing_test.storage import open_store

pytestmark = pytest.mark.postgres


def test_study_on_postgres_exactly_once_under_races(postgres_server, turing_manifest):
    store = open_store(postgres_server())
    store.create_reader("ada", PASSWORD, role="admin", years_experience=10)
    store.create_reader("jun", PASSWORD, role="junior", years_experience=1)
    sid = store.create_study("pg", load_manifest(turing_manifest), protocols=[1, 3], seed=1, readers=["jun"])
    jun = store.authenticate("jun", PASSWORD)
    answered = 0
    while (item := store.next_item(jun, sid)) is not None:
        payload = ({"answer": "real"} if item["protocol"] == 1
                   else {"features": {f["group"]: False for f in item["features"]}})

        def attempt(_):
            try:
                return store.submit(jun, sid, item["item_id"], payload)["answer_id"]
            except DuplicateAnswer:
                return None

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(attempt, range(4)))
        assert sum(r is not None for r in results) == 1
        answered += 1
    assert store.count_answers(sid) == answered == item_count(store, sid)
    rows = store.answer_rows(store.authenticate("ada", PASSWORD), sid)
    assert {r["protocol"] for r in rows} == {1, 3}
    store.engine.dispose()


def item_count(store, sid: int) -> int:
    from sqlalchemy import func, select

    from turing_test.models import Item

    with store.Session() as s:
        return s.scalar(select(func.count()).select_from(Item).where(Item.study_id == sid))
