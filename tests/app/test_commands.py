"""``intrepid ingest`` and ``intrepid serve`` on the command line: JSON contract, exit status, accounts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from intrepid.cli._main import main

from .conftest import write_epid


def test_ingest_json_contract_quarantine_and_idempotence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    write_epid(drop / "f1.dcm", fraction=1)
    (drop / "junk.dcm").write_bytes(b"\x00" * 300)
    data = tmp_path / "data"
    status = main(["ingest", str(drop), "--data", str(data), "--predictor", "baseline", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert status == 1  # a file was quarantined
    assert set(doc) == {"data", "counts", "files"}
    assert doc["counts"] == {"ingested": 1, "quarantined": 1}
    by_name = {Path(f["path"]).name: f for f in doc["files"]}
    assert set(by_name["f1.dcm"]) == {"path", "status", "reason", "fraction_id"}
    assert by_name["f1.dcm"]["fraction_id"] == 1 and by_name["junk.dcm"]["reason"]
    assert (data / "intrepid.sqlite").is_file()
    status = main(["ingest", str(drop), "--data", str(data), "--predictor", "baseline"])
    out = capsys.readouterr().out
    assert status == 0 and "2 duplicate" in out


def test_ingest_and_serve_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", str(tmp_path / "missing"), "--data", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "missing: no such file or folder" in err
    assert main(["serve", "--data", str(tmp_path / "d"), "--watch", str(tmp_path / "nowhere")]) == 1
    assert "--watch" in capsys.readouterr().err


def test_add_user_stores_a_scrypt_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from intrepid.app._db import User, make_engine, session_factory

    monkeypatch.setenv("INTREPID_PASSWORD", "long-enough-pw")
    assert main(["serve", "--data", str(tmp_path), "--add-user", "alice"]) == 0
    with session_factory(make_engine(f"sqlite:///{tmp_path / 'intrepid.sqlite'}"))() as s:
        user = s.scalars(select(User)).one()
    assert user.username == "alice" and user.password_hash.startswith("scrypt$")
    assert "long-enough-pw" not in user.password_hash
    monkeypatch.setenv("INTREPID_PASSWORD", "short")
    assert main(["serve", "--data", str(tmp_path), "--add-user", "bob"]) == 2
