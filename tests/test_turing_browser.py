"""In chromium: a physician logs in to the reader app at /study (login backed by the store),
answers a protocol-1 question, reloads the page and resumes at the next question."""
from __future__ import annotations

import shutil

import pytest

from tests.fixtures_turing import PASSWORD
from turing_test.manifest import load_manifest
from turing_test.storage import open_store

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_reader_logs_in_answers_and_resumes(ui_server_no_model, turing_manifest):
    if not shutil.which(CHROMIUM):
        pytest.skip("chromium not installed (scripts/system_deps.sh installs Debian's chromium)")
    from playwright.sync_api import expect, sync_playwright

    app = ui_server_no_model
    store = open_store(f"sqlite:///{app.data_dir / 'ui-test.db'}")
    store.create_reader("doc", PASSWORD, role="senior", years_experience=8)
    sid = store.create_study("browser", load_manifest(turing_manifest)[:4], protocols=[1], readers=["doc"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(app.url + "study/")
        page.get_by_role("textbox", name="username").fill("doc")
        page.get_by_role("textbox", name="password").fill("wrong password")
        page.get_by_role("button", name="Login").click()
        expect(page.get_by_text("Incorrect", exact=False)).to_be_visible(timeout=20_000)
        page.get_by_role("textbox", name="username").fill("doc")  # the failed attempt cleared it
        page.get_by_role("textbox", name="password").fill(PASSWORD)
        page.get_by_role("button", name="Login").click()
        expect(page.get_by_text("Question 1 of 4", exact=False)).to_be_visible(timeout=30_000)
        page.get_by_label("Real", exact=True).check()
        page.get_by_role("button", name="Submit answer").click()
        expect(page.get_by_text("Question 2 of 4", exact=False)).to_be_visible(timeout=30_000)
        page.reload()
        expect(page.get_by_text("Question 2 of 4", exact=False)).to_be_visible(timeout=30_000)
        browser.close()
    store.create_reader("boss", PASSWORD, role="admin")
    rows = store.answer_rows(store.reader_by_username("boss"), sid)
    assert [r["payload"] for r in rows] == [{"answer": "real"}]
