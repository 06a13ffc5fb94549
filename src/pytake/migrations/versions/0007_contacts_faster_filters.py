"""contacts: faster filters

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-23 20:16:54.077756

- contact_tags.contact_created_at (a copy of contacts.created_at) and the index
  (tag_id, contact_created_at, contact_id): a tag filter pages newest first from the links.
- Links of deleted contacts are removed (deleting a contact now removes them), so a tag's links
  count its live contacts.
- PostgreSQL: `contact_digit_grams(text)` and a GIN index on it over contacts.search_text, for
  phone-number searches (contact.search.digit_grams). The model declares the index for
  PostgreSQL only (`ddl_if`): SQLite has no such function and searches by LIKE alone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pytake.models.base

revision: str = "0007"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every 5-digit window of every run of at least 5 digits (contact.search.DIGIT_GRAM), as integers
# (int4[] GIN entries cost half of text ones to insert). plpgsql: a loop costs about half of a
# set-returning SQL function per row, and it runs on every insert.
_DIGIT_GRAMS = """
CREATE OR REPLACE FUNCTION contact_digit_grams(search_text text) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    run text;
    grams int[] := '{}';
BEGIN
    FOREACH run IN ARRAY regexp_split_to_array(search_text, '[^0-9]+') LOOP
        FOR i IN 1 .. length(run) - 4 LOOP
            grams := grams || substr(run, i, 5)::int;
        END LOOP;
    END LOOP;
    RETURN grams;
END
$$
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("contact_tags", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "contact_created_at",
                pytake.models.base.UTCDateTime(timezone=True),
                nullable=True,
                comment="= contacts.created_at",
            )
        )
    if postgres:
        op.execute(
            "UPDATE contact_tags AS ct SET contact_created_at = c.created_at"
            " FROM contacts AS c WHERE c.id = ct.contact_id"
        )
    else:
        op.execute(
            "UPDATE contact_tags SET contact_created_at ="
            " (SELECT created_at FROM contacts WHERE contacts.id = contact_tags.contact_id)"
        )
    # Deleting a contact now removes its tag links (contact.service.delete_contact).
    op.execute(
        "DELETE FROM contact_tags WHERE contact_id IN"
        " (SELECT id FROM contacts WHERE deleted_at IS NOT NULL)"
    )
    with op.batch_alter_table("contact_tags", schema=None) as batch_op:
        batch_op.alter_column("contact_created_at", nullable=False)
        batch_op.drop_index(batch_op.f("ix_contact_tags_tag_id"))
        batch_op.create_index(
            "ix_contact_tags_tag_created",
            ["tag_id", "contact_created_at", "contact_id"],
            unique=False,
        )
    if postgres:
        op.execute(_DIGIT_GRAMS)
        op.execute(
            "CREATE INDEX ix_contacts_digit_grams ON contacts"
            " USING gin (contact_digit_grams(search_text))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_contacts_digit_grams")
        op.execute("DROP FUNCTION IF EXISTS contact_digit_grams(text)")
    with op.batch_alter_table("contact_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_tags_tag_created")
        batch_op.create_index(batch_op.f("ix_contact_tags_tag_id"), ["tag_id"], unique=False)
        batch_op.drop_column("contact_created_at")
