"""The ledger summed per owner, UTC day and model (spend_days), kept by the database: what
budgets and the usage report read, instead of every call.

A budget's check summed the owner's ledger rows of the month, under the owner's lock: with a
million calls in a month each hold took ~140 ms, and one key's calls queued behind it; the
usage report grouped the same rows on every request. spend_days holds each owner's calls,
tokens and dollars per UTC day and model; triggers on model_calls keep it equal to the ledger
whatever writes it (a turn's step, a run's one-statement write, a key's rows moved to another
owner, rows deleted), so a budget reads at most 31 days' rows per model.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Ledger rows summed per owner, UTC day and model, each sum as the usage report names it; the
# rows of {rows}: the ledger itself, or a statement's rows arriving or leaving.
SUMS = """
    SELECT owner, (created_at AT TIME ZONE 'UTC')::date AS day, provider, model,
           count(*) AS calls,
           sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens,
           sum(cache_read_tokens) AS cache_read_tokens,
           sum(cache_write_tokens) AS cache_write_tokens,
           coalesce(sum(cost_usd), 0) AS cost_usd,
           count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_calls
    FROM {rows}
    GROUP BY 1, 2, 3, 4
"""
COLUMNS = """owner, day, provider, model, calls, prompt_tokens, completion_tokens,
    cache_read_tokens, cache_write_tokens, cost_usd, unpriced_calls"""
BACKFILL = "INSERT INTO spend_days ({columns}) {sums}".format(
    columns=COLUMNS, sums=SUMS.format(rows="model_calls")
)

# Rows leaving (deleted, or moved by an UPDATE) take their part off the days they counted on;
# rows arriving add theirs, creating a day's row. Once per statement, over its rows summed: a
# row-level trigger would update a day's row once per ledger row, and a statement inserting
# many rows then slows down with each (every update of a row in one transaction leaves
# another version of it to walk).
FOLLOW = """
CREATE FUNCTION spend_days_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE spend_days AS d SET
            calls = d.calls - gone.calls,
            prompt_tokens = d.prompt_tokens - gone.prompt_tokens,
            completion_tokens = d.completion_tokens - gone.completion_tokens,
            cache_read_tokens = d.cache_read_tokens - gone.cache_read_tokens,
            cache_write_tokens = d.cache_write_tokens - gone.cache_write_tokens,
            cost_usd = d.cost_usd - gone.cost_usd,
            unpriced_calls = d.unpriced_calls - gone.unpriced_calls
        FROM ({leaving}) AS gone
        WHERE (d.owner, d.day, d.provider, d.model)
            = (gone.owner, gone.day, gone.provider, gone.model);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO spend_days AS d ({columns}) {arriving}
        ON CONFLICT (owner, day, provider, model) DO UPDATE SET
            calls = d.calls + excluded.calls,
            prompt_tokens = d.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = d.completion_tokens + excluded.completion_tokens,
            cache_read_tokens = d.cache_read_tokens + excluded.cache_read_tokens,
            cache_write_tokens = d.cache_write_tokens + excluded.cache_write_tokens,
            cost_usd = d.cost_usd + excluded.cost_usd,
            unpriced_calls = d.unpriced_calls + excluded.unpriced_calls;
    END IF;
    RETURN NULL;
END
$$
""".format(
    leaving=SUMS.format(rows="old_rows"),
    columns=COLUMNS,
    arriving=SUMS.format(rows="new_rows"),
)
# A trigger with transition tables serves one event: one each, all calling FOLLOW.
TRIGGERS = {
    "spend_days_insert": "INSERT ON model_calls REFERENCING NEW TABLE AS new_rows",
    "spend_days_update": (
        "UPDATE ON model_calls REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    ),
    "spend_days_delete": "DELETE ON model_calls REFERENCING OLD TABLE AS old_rows",
}
EMPTIED = """
CREATE FUNCTION spend_days_empty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM spend_days;
    RETURN NULL;
END
$$
"""


# spend_hold as in 0009, what was spent read from spend_days (SPENT) instead of the ledger's
# rows (SPENT_0009, for downgrade). The day and month starts stay instants (UTC midnights), so
# that callers are unchanged.
SPENT = """
        SELECT
            coalesce(sum(prompt_tokens + completion_tokens)
                FILTER (WHERE day >= (p_day_start AT TIME ZONE 'UTC')::date), 0) AS tokens_day,
            coalesce(sum(cost_usd)
                FILTER (WHERE day >= (p_day_start AT TIME ZONE 'UTC')::date), 0) AS usd_day,
            coalesce(sum(prompt_tokens + completion_tokens), 0) AS tokens_month,
            coalesce(sum(cost_usd), 0) AS usd_month
        FROM spend_days
        WHERE owner = p_owner AND day >= (p_month_start AT TIME ZONE 'UTC')::date
"""
SPENT_0009 = """
        SELECT
            coalesce(sum(prompt_tokens + completion_tokens)
                FILTER (WHERE created_at >= p_day_start), 0) AS tokens_day,
            coalesce(sum(cost_usd) FILTER (WHERE created_at >= p_day_start), 0) AS usd_day,
            coalesce(sum(prompt_tokens + completion_tokens), 0) AS tokens_month,
            coalesce(sum(cost_usd), 0) AS usd_month
        FROM model_calls
        WHERE owner = p_owner AND created_at >= p_month_start
"""
SPEND_HOLD = """
CREATE OR REPLACE FUNCTION spend_hold(
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
    FROM (SPENT) AS spent, (
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
    op.create_table(
        "spend_days",
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("unpriced_calls", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "day", "provider", "model", name=op.f("pk_spend_days")),
    )
    # No call is written between the trigger's start and the backfill (both in this
    # migration's transaction): none is counted twice or missed.
    op.execute("LOCK TABLE model_calls IN SHARE ROW EXCLUSIVE MODE")
    op.execute(FOLLOW)
    op.execute(EMPTIED)
    for name, event in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} "
            "FOR EACH STATEMENT EXECUTE FUNCTION spend_days_follow()"
        )
    op.execute(
        "CREATE TRIGGER spend_days_empty AFTER TRUNCATE ON model_calls "
        "FOR EACH STATEMENT EXECUTE FUNCTION spend_days_empty()"
    )
    op.execute(BACKFILL)
    op.execute(SPEND_HOLD.replace("(SPENT)", f"({SPENT})"))


def downgrade() -> None:
    op.execute(SPEND_HOLD.replace("(SPENT)", f"({SPENT_0009})"))
    op.execute("DROP TRIGGER spend_days_empty ON model_calls")
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON model_calls")
    op.execute("DROP FUNCTION spend_days_empty()")
    op.execute("DROP FUNCTION spend_days_follow()")
    op.drop_table("spend_days")
