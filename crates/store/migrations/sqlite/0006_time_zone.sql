-- A home's time zone (IANA name): the owner's hours and guests' weekly windows are
-- local times there, correct across daylight-saving changes. NULL for homes from
-- before zones, whose hours keep the fixed UTC offset they were written with.
ALTER TABLE homes ADD COLUMN time_zone TEXT;
