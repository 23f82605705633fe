"""3D in-vivo results per fraction

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 17:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dose3d_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fraction_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("gamma_3pct2mm_percent", sa.Float(), nullable=True),
        sa.Column("gamma_2pct2mm_percent", sa.Float(), nullable=True),
        sa.Column("mean_gamma_3pct2mm", sa.Float(), nullable=True),
        sa.Column("isocenter_ratio", sa.Float(), nullable=True),
        sa.Column("prescription_gy", sa.Float(), nullable=True),
        sa.Column("dvh", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("folder", sa.String(length=300), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["fraction_id"], ["fractions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fraction_id"),
    )


def downgrade() -> None:
    op.drop_table("dose3d_results")
