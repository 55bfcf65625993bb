"""Budgets: spend_hold(), which takes a model call's hold in one statement.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The owner's lock first; then the hold, inserted only if every bound that is set (not NULL)
# has room for it beside the owner's ledger today or this month and its other live holds. In
# READ COMMITTED each statement of a function takes its own snapshot, so the insert reads the
# sums only once the lock is this call's: two calls cannot both take the last of a budget.
# An earlier hold of the same holder (a run's attempt that died) is replaced, not counted.
SPEND_HOLD = """
CREATE FUNCTION spend_hold(
    p_owner text, p_holder uuid, p_tokens bigint, p_cost_usd numeric,
    p_expires_at timestamptz, p_now timestamptz, p_day_start timestamptz,
    p_month_start timestamptz, p_tokens_per_day bigint, p_tokens_per_month bigint,
    p_usd_per_day numeric, p_usd_per_month numeric
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    taken bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(376445, hashtext(p_owner));
    INSERT INTO spend_holds (owner, holder, tokens, cost_usd, expires_at)
    SELECT p_owner, p_holder, p_tokens, p_cost_usd, p_expires_at
    FROM (
        SELECT
            coalesce(sum(prompt_tokens + completion_tokens)
                FILTER (WHERE created_at >= p_day_start), 0) AS tokens_day,
            coalesce(sum(cost_usd) FILTER (WHERE created_at >= p_day_start), 0) AS usd_day,
            coalesce(sum(prompt_tokens + completion_tokens), 0) AS tokens_month,
            coalesce(sum(cost_usd), 0) AS usd_month
        FROM model_calls
        WHERE owner = p_owner AND created_at >= p_month_start
    ) AS spent, (
        SELECT coalesce(sum(tokens), 0) AS tokens, coalesce(sum(cost_usd), 0) AS usd
        FROM spend_holds
        WHERE owner = p_owner AND expires_at > p_now AND holder <> p_holder
    ) AS held
    WHERE (p_tokens_per_day IS NULL
            OR spent.tokens_day + held.tokens + p_tokens <= p_tokens_per_day)
        AND (p_tokens_per_month IS NULL
            OR spent.tokens_month + held.tokens + p_tokens <= p_tokens_per_month)
        AND (p_usd_per_day IS NULL
            OR spent.usd_day + held.usd + p_cost_usd <= p_usd_per_day)
        AND (p_usd_per_month IS NULL
            OR spent.usd_month + held.usd + p_cost_usd <= p_usd_per_month)
    ON CONFLICT (holder) DO UPDATE SET
        owner = excluded.owner,
        tokens = excluded.tokens,
        cost_usd = excluded.cost_usd,
        expires_at = excluded.expires_at
    RETURNING id INTO taken;
    RETURN taken;
END
$$
"""


def upgrade() -> None:
    op.execute(SPEND_HOLD)


def downgrade() -> None:
    op.execute("DROP FUNCTION spend_hold")
