"""In chromium: a physician logs in to the reader app at /study (login backed by the store),
answers a protocol-1 question, reloads the page and resumes at the next question; in a study
that allows edits, changes an earlier answer from "Review my answers"."""
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


def test_reader_reviews_and_changes_an_earlier_answer(ui_server_no_model, turing_manifest):
    """allow_edits study: answer two questions, open the first from "Review my answers", change it,
    land back at the next unanswered question; the store holds revision 1 and the old version."""
    if not shutil.which(CHROMIUM):
        pytest.skip("chromium not installed (scripts/system_deps.sh installs Debian's chromium)")
    from playwright.sync_api import expect, sync_playwright

    app = ui_server_no_model
    store = open_store(f"sqlite:///{app.data_dir / 'ui-test.db'}")
    store.create_reader("ed", PASSWORD, role="junior", years_experience=3)
    sid = store.create_study("browser edits", load_manifest(turing_manifest)[:3], protocols=[1], allow_edits=True,
                             readers=["ed"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(app.url + "study/")
        page.get_by_role("textbox", name="username").fill("ed")
        page.get_by_role("textbox", name="password").fill(PASSWORD)
        page.get_by_role("button", name="Login").click()
        for n, answer in ((1, "Real"), (2, "Synthetic")):
            expect(page.get_by_text(f"Question {n} of 3", exact=False)).to_be_visible(timeout=30_000)
            page.get_by_label(answer, exact=True).check()
            page.get_by_role("button", name="Submit answer").click()
        expect(page.get_by_text("Question 3 of 3", exact=False)).to_be_visible(timeout=30_000)
        page.get_by_text("Review my answers").click()
        page.get_by_label("Answered questions").click()
        page.get_by_role("option", name="Question 1 - ", exact=False).click()
        page.get_by_role("button", name="Open", exact=True).click()
        expect(page.get_by_text("Reviewing question 1 of 3", exact=False)).to_be_visible(timeout=30_000)
        expect(page.get_by_label("Real", exact=True)).to_be_checked()  # the stored answer, pre-filled
        page.get_by_label("Synthetic", exact=True).check()
        page.get_by_role("button", name="Save changed answer").click()
        expect(page.get_by_text("(revision 1)", exact=False)).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Question 3 of 3", exact=False)).to_be_visible()  # back where the reader was
        browser.close()
    store.create_reader("boss2", PASSWORD, role="admin")
    boss = store.reader_by_username("boss2")
    assert [x["revision"] for x in store.answered_items(store.reader_by_username("ed"), sid)] == [1, 0]
    rows = store.answer_rows(boss, sid)
    assert len(rows) == 2
    edited = next(row for row in rows if row["revision"] == 1)
    assert edited["payload"] == {"answer": "synthetic"}
    assert [(h["revision"], h["payload"]) for h in store.answer_history(boss, edited["answer_id"])] == \
        [(0, {"answer": "real"})]
