-- A home's postal address, as the owner writes it: what a courier's list and a
-- dispatcher's view show.
ALTER TABLE homes ADD COLUMN address TEXT NOT NULL DEFAULT '';
