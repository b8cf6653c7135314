-- The access pass closes owner and guest sessions past their end four times a
-- second (`manual_sessions_past_end`): it reads only those open ones, not every open
-- delivery session.
CREATE INDEX access_sessions_manual_open ON access_sessions(ends_ms)
    WHERE closed_ms IS NULL AND delivery_id IS NULL;
