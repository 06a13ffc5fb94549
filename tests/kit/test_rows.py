"""RowBuilder: complete Core rows with the model's defaults."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table

from pytake.contact.rows import new_contact_row
from pytake.kit.rows import RowBuilder
from pytake.models.base import utcnow


def _table() -> Table:
    return Table(
        "things",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String, nullable=False),
        Column("colour", String, default="blue"),
        Column("tags", String, default=lambda: "fresh"),
        Column("label", String, default=lambda ctx: ctx.get_current_parameters()["name"] + "!"),
        Column("note", String, nullable=True),
        Column("rank", Integer, nullable=False, server_default="0"),
    )


def test_every_column_is_filled_from_the_model() -> None:
    rows = RowBuilder(_table())
    row = rows.row(name="lamp")
    assert row == {
        "id": None,
        "name": "lamp",
        "colour": "blue",
        "tags": "fresh",
        "label": "lamp!",
        "note": None,
    }
    # Only a server default: the database fills it.
    assert "rank" not in rows.columns and set(rows.columns) == set(row)


def test_given_values_win_over_defaults() -> None:
    row = RowBuilder(_table()).row(name="lamp", colour="red", label="mine")
    assert (row["colour"], row["label"]) == ("red", "mine")


def test_a_missing_required_column_or_an_unknown_name_raises() -> None:
    rows = RowBuilder(_table())
    with pytest.raises(TypeError, match="needs name"):
        rows.row(colour="red")
    with pytest.raises(TypeError, match="no column size"):
        rows.row(name="lamp", size=3)


def test_a_new_contact_row_gets_fresh_mutable_defaults_and_its_search_text() -> None:
    org, now = uuid.uuid4(), utcnow()
    first = new_contact_row(org, "+5511999998888", "5511999998888", now, name="Ana Souza")
    second = new_contact_row(org, "+5511999997777", "5511999997777", now)
    assert first["attributes"] == {} and first["attributes"] is not second["attributes"]
    assert first["id"] != second["id"] and first["opt_in"] is True
    assert "ana souza" in first["search_text"] and "5511999998888" in first["search_text"]
