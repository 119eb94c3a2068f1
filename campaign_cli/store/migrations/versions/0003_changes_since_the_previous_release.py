"""Changes since the previous release: remote delivery backends (remote rooms, where a message was
delivered, the sending device), sender claims (several senders on one campaign, with per-claim
stats and the senders seen), member custom fields, and when a segment target was added.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('remote_rooms',
    sa.Column('pk', sa.Integer(), nullable=False),
    sa.Column('backend', sa.String(), nullable=False),
    sa.Column('owner', sa.String(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('room_id', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('pk')
    )
    with op.batch_alter_table('remote_rooms', schema=None) as batch_op:
        batch_op.create_index('ux_remote_rooms_key', ['backend', 'owner', 'key'], unique=True)

    op.create_table('campaign_claims',
    sa.Column('campaign_pk', sa.Integer(), nullable=False),
    sa.Column('lo', sa.Integer(), nullable=False),
    sa.Column('hi', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(), nullable=False),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('channels_created', sa.Integer(), nullable=False),
    sa.Column('users_sent', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.JSON(), nullable=False),
    sa.Column('failed_reasons', sa.JSON(), nullable=False),
    sa.Column('folded', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_pk'], ['campaigns.pk'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_pk', 'lo')
    )
    op.create_table('campaign_senders',
    sa.Column('campaign_pk', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen', sa.DateTime(), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_pk'], ['campaigns.pk'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_pk', 'owner')
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        # Existing campaigns get an empty breakdown.
        batch_op.add_column(sa.Column('stats_failed_reasons', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('delivery_device', sa.String(), nullable=True))

    with op.batch_alter_table('channel_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('custom', sa.JSON(), nullable=True))

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery_backend', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('remote_room_id', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('remote_event_id', sa.String(), nullable=True))

    with op.batch_alter_table('segment_targets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_at', sa.DateTime(), nullable=True))
    # Targets added before this release count as added now.
    op.execute(sa.text("UPDATE segment_targets SET created_at = :now WHERE created_at IS NULL")
               .bindparams(now=datetime.now(timezone.utc).replace(tzinfo=None)))


def downgrade() -> None:
    with op.batch_alter_table('segment_targets', schema=None) as batch_op:
        batch_op.drop_column('created_at')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('remote_event_id')
        batch_op.drop_column('remote_room_id')
        batch_op.drop_column('delivery_backend')

    with op.batch_alter_table('channel_members', schema=None) as batch_op:
        batch_op.drop_column('custom')

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('delivery_device')
        batch_op.drop_column('stats_failed_reasons')

    op.drop_table('campaign_senders')
    op.drop_table('campaign_claims')
    with op.batch_alter_table('remote_rooms', schema=None) as batch_op:
        batch_op.drop_index('ux_remote_rooms_key')

    op.drop_table('remote_rooms')
