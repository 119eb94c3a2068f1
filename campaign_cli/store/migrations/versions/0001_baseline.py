"""Baseline: the schema of the last release before migrations (schema version 1 in `meta`).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('pk', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('description', sa.String(), nullable=False),
    sa.Column('segment_ids', sa.JSON(), nullable=False),
    sa.Column('user_ids', sa.JSON(), nullable=False),
    sa.Column('sender_id', sa.String(), nullable=False),
    sa.Column('sender_mode', sa.String(), nullable=True),
    sa.Column('sender_visibility', sa.String(), nullable=True),
    sa.Column('message_template', sa.JSON(), nullable=False),
    sa.Column('create_channels', sa.Boolean(), nullable=False),
    sa.Column('channel_template', sa.JSON(), nullable=True),
    sa.Column('show_channels', sa.Boolean(), nullable=False),
    sa.Column('skip_push', sa.Boolean(), nullable=False),
    sa.Column('skip_webhook', sa.Boolean(), nullable=False),
    sa.Column('scheduled_for', sa.DateTime(), nullable=True),
    sa.Column('stop_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('stats_started_at', sa.DateTime(), nullable=True),
    sa.Column('stats_completed_at', sa.DateTime(), nullable=True),
    sa.Column('stats_targets', sa.Integer(), nullable=False),
    sa.Column('stats_done', sa.Integer(), nullable=False),
    sa.Column('stats_messages_sent', sa.Integer(), nullable=False),
    sa.Column('stats_channels_created', sa.Integer(), nullable=False),
    sa.Column('stats_users_sent', sa.Integer(), nullable=False),
    sa.Column('stats_skipped', sa.JSON(), nullable=False),
    sa.Column('stats_failed', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaigns_status'), ['status'], unique=False)

    op.create_table('channels',
    sa.Column('pk', sa.Integer(), nullable=False),
    sa.Column('cid', sa.String(length=512), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('team', sa.String(), nullable=True),
    sa.Column('created_by_id', sa.String(), nullable=True),
    sa.Column('member_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('last_message_at', sa.DateTime(), nullable=True),
    sa.Column('custom', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('cid')
    )
    op.create_table('events',
    sa.Column('pk', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('campaign_id', sa.String(), nullable=True),
    sa.Column('cid', sa.String(), nullable=True),
    sa.Column('message_id', sa.String(), nullable=True),
    sa.Column('user_id', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('pk')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_campaign', ['campaign_id', 'pk'], unique=False)

    op.create_table('meta',
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('value', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('outbox',
    sa.Column('pk', sa.Integer(), nullable=False),
    sa.Column('sink', sa.String(), nullable=False),
    sa.Column('event_type', sa.String(), nullable=False),
    sa.Column('campaign_id', sa.String(), nullable=True),
    sa.Column('body', sa.String(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('last_error', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('pk')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_campaign', ['campaign_id', 'sink', 'status'], unique=False)
        batch_op.create_index('ix_outbox_due', ['sink', 'status', 'next_attempt_at'], unique=False)

    op.create_table('push_notifications',
    sa.Column('pk', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.String(), nullable=True),
    sa.Column('message_id', sa.String(), nullable=False),
    sa.Column('user_id', sa.String(), nullable=False),
    sa.Column('device_id', sa.String(), nullable=False),
    sa.Column('push_provider', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('pk')
    )
    with op.batch_alter_table('push_notifications', schema=None) as batch_op:
        batch_op.create_index('ix_push_campaign', ['campaign_id', 'pk'], unique=False)

    op.create_table('segments',
    sa.Column('pk', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('description', sa.String(), nullable=False),
    sa.Column('filter', sa.JSON(), nullable=True),
    sa.Column('all_users', sa.Boolean(), nullable=False),
    sa.Column('all_sender_channels', sa.Boolean(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('id')
    )
    op.create_table('users',
    sa.Column('pk', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(), nullable=True),
    sa.Column('role', sa.String(), nullable=False),
    sa.Column('teams', sa.JSON(), nullable=False),
    sa.Column('language', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('last_active', sa.DateTime(), nullable=True),
    sa.Column('banned', sa.Boolean(), nullable=False),
    sa.Column('devices', sa.JSON(), nullable=False),
    sa.Column('custom', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index('ix_users_with_devices', ['id'], unique=False, sqlite_where=sa.text('json_array_length(devices) > 0'), postgresql_where=sa.text('json_array_length(devices) > 0'))

    op.create_table('campaign_targets',
    sa.Column('campaign_pk', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.String(length=512), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('reason', sa.String(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_pk'], ['campaigns.pk'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_pk', 'seq'),
    sqlite_with_rowid=False
    )
    op.create_table('channel_members',
    sa.Column('channel_pk', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('channel_role', sa.String(), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_read_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['channel_pk'], ['channels.pk'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('channel_pk', 'user_id'),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('channel_members', schema=None) as batch_op:
        batch_op.create_index('ix_channel_members_user', ['user_id'], unique=False)

    op.create_table('messages',
    sa.Column('pk', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('cid', sa.String(), nullable=False),
    sa.Column('channel_pk', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(), nullable=False),
    sa.Column('text', sa.String(), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('attachments', sa.JSON(), nullable=False),
    sa.Column('custom', sa.JSON(), nullable=False),
    sa.Column('campaign_id', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['channel_pk'], ['channels.pk'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_campaign', ['campaign_id', 'pk'], unique=False)

    op.create_table('segment_targets',
    sa.Column('segment_pk', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.String(length=512), nullable=False),
    sa.ForeignKeyConstraint(['segment_pk'], ['segments.pk'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('segment_pk', 'target_id'),
    sqlite_with_rowid=False
    )
    op.bulk_insert(sa.table("meta", sa.column("key", sa.String()), sa.column("value", sa.String())),
                   [{"key": "schema_version", "value": "1"}])


def downgrade() -> None:
    op.drop_table('segment_targets')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_campaign')

    op.drop_table('messages')
    with op.batch_alter_table('channel_members', schema=None) as batch_op:
        batch_op.drop_index('ix_channel_members_user')

    op.drop_table('channel_members')
    op.drop_table('campaign_targets')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_with_devices', sqlite_where=sa.text('json_array_length(devices) > 0'), postgresql_where=sa.text('json_array_length(devices) > 0'))

    op.drop_table('users')
    op.drop_table('segments')
    with op.batch_alter_table('push_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_push_campaign')

    op.drop_table('push_notifications')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due')
        batch_op.drop_index('ix_outbox_campaign')

    op.drop_table('outbox')
    op.drop_table('meta')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_campaign')

    op.drop_table('events')
    op.drop_table('channels')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaigns_status'))

    op.drop_table('campaigns')
