"""The admin command line: first admin without any default password, a study, an export."""
from __future__ import annotations

import io
import json

from turing_test import cli
from turing_test.storage import open_store


def test_cli_creates_admin_study_and_exports(tmp_path, turing_manifest, monkeypatch, capsys):
    db = ["--db", f"sqlite:///{tmp_path / 'cli.sqlite3'}"]
    monkeypatch.setenv("ADMIN_PW", "admin password 1")
    assert cli.main(db + ["create-admin", "ada", "--password-env", "ADMIN_PW"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("reader password\n"))
    assert cli.main(db + ["create-reader", "jun", "--role", "junior", "--years", "3"]) == 0
    assert cli.main(db + ["create-reader", "bad", "--password-env", "NOPE_UNSET"]) == 2
    assert "is empty" in capsys.readouterr().err
    assert cli.main(db + ["create-study", "cli study", "--manifest", str(turing_manifest), "--protocols", "1,3",
                          "--cases-per-reader", "4", "--readers", "jun"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    store = open_store(db[1])
    jun = store.authenticate("jun", "reader password")
    item = store.next_item(jun, out["study_id"])
    assert item["total"] == 8  # 4 cases per protocol, 2 protocols
    store.submit(jun, out["study_id"], item["item_id"], {"answer": "real"})
    assert cli.main(db + ["export", str(out["study_id"]), str(tmp_path / "exp"), "--admin", "ada"]) == 0
    assert (tmp_path / "exp" / "answers.csv").read_text().count("\n") == 2
    assert cli.main(db + ["create-study", "x", "--manifest", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
