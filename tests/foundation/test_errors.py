"""The error tree: unique stable codes, exit statuses, templates."""

from __future__ import annotations

from preservation import errors


def test_codes_unique_and_statuses_set() -> None:
    classes = errors.all_error_classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    for c in classes:
        assert 1 <= c.exit_status <= 125, c


def test_template_and_transient() -> None:
    e = errors.ObjectNotFound(store="primary", key="a/b")
    assert str(e) == "primary: no object a/b"
    assert e.to_dict()["code"] == "STO001"
    assert errors.StoreUnavailable(store="s", reason="x").transient
    assert not errors.DigestMismatch(
        path="p", algorithm="sha256", expected="a", found="b"
    ).transient
