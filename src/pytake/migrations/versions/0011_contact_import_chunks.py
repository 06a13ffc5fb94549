"""contact imports: the uploaded CSV is stored in the database, in chunks

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 12:00:00.000000

An import's CSV was a file on the local disk of the `serve` process that received the upload,
so only that host could run or resume the job: a job interrupted by a crash of its host was
lost, and `pytake worker` on another host could not take it over. The file now lives in
`contact_import_chunks` (fixed-size pieces, written as the upload streams in), which any
process can read from the job's `resume_offset`; the chunks go when the job ends.

`file_path` becomes nullable and stays for jobs uploaded before this revision (their
`chunk_size` is NULL): the importer still reads those from disk, which works on the host that
received them and fails the job elsewhere, as it did before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_import_chunks",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["contact_import_jobs.id"],
            name=op.f("fk_contact_import_chunks_job_id_contact_import_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name=op.f("pk_contact_import_chunks")),
    )
    with op.batch_alter_table("contact_import_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "chunk_size",
                sa.Integer(),
                nullable=True,
                comment="bytes per stored chunk of the file; NULL: the file is at file_path",
            )
        )
        batch_op.alter_column("file_path", existing_type=sa.String(length=1000), nullable=True)


def downgrade() -> None:
    # Jobs whose file is only in the database cannot run after a downgrade: fail them.
    op.execute(
        "UPDATE contact_import_jobs SET status = 'failed', "
        "error = 'The import was stored in the database, which this version cannot read' "
        "WHERE file_path IS NULL AND status IN ('pending', 'running')"
    )
    op.execute("UPDATE contact_import_jobs SET file_path = '' WHERE file_path IS NULL")
    with op.batch_alter_table("contact_import_jobs", schema=None) as batch_op:
        batch_op.alter_column("file_path", existing_type=sa.String(length=1000), nullable=False)
        batch_op.drop_column("chunk_size")
    op.drop_table("contact_import_chunks")
