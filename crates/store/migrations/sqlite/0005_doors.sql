-- Doors (entry points) as a first-class noun: each door has its lock, its contact
-- sensor and the cameras that watch it. Only a camera bound to a door can vouch for
-- it; only the door's own lock receives a capability for it.
CREATE TABLE doors (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    name TEXT NOT NULL,
    lock_id TEXT REFERENCES devices(id),
    contact_id TEXT REFERENCES devices(id),
    accepts_deliveries INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX doors_home ON doors(home_id);
CREATE UNIQUE INDEX doors_lock ON doors(lock_id) WHERE lock_id IS NOT NULL;
CREATE UNIQUE INDEX doors_contact ON doors(contact_id) WHERE contact_id IS NOT NULL;
CREATE TABLE door_cameras (
    door_id TEXT NOT NULL REFERENCES doors(id) ON DELETE CASCADE,
    camera_id TEXT NOT NULL REFERENCES devices(id),
    PRIMARY KEY (door_id, camera_id)
);
CREATE INDEX door_cameras_camera ON door_cameras(camera_id);

-- Every opening of a door, once, however many devices reported it.
CREATE TABLE door_openings (
    id TEXT PRIMARY KEY,
    home_id TEXT NOT NULL REFERENCES homes(id),
    door_id TEXT,
    at_ms INTEGER NOT NULL,
    reported_by TEXT NOT NULL,
    attribution TEXT NOT NULL,
    session_id TEXT,
    delivery_id TEXT,
    created_ms INTEGER NOT NULL
);
CREATE INDEX door_openings_home ON door_openings(home_id, at_ms);

-- Merchants (dispatcher accounts) an owner lets deliver inside without asking.
CREATE TABLE home_merchants (
    home_id TEXT NOT NULL REFERENCES homes(id),
    dispatcher_id TEXT NOT NULL REFERENCES users(id),
    trusted_ms INTEGER NOT NULL,
    PRIMARY KEY (home_id, dispatcher_id)
);

ALTER TABLE deliveries ADD COLUMN door_id TEXT;
ALTER TABLE deliveries ADD COLUMN delivered_ms INTEGER;
ALTER TABLE deliveries ADD COLUMN camera_lost_ms INTEGER;
ALTER TABLE deliveries ADD COLUMN ended_ms INTEGER;
CREATE INDEX deliveries_state ON deliveries(state);
ALTER TABLE access_sessions ADD COLUMN door_id TEXT;
ALTER TABLE guest_grants ADD COLUMN door_id TEXT;
ALTER TABLE pairing_codes ADD COLUMN door_id TEXT;
-- One alert per cause (a delivery's incident, a door opening): raised once, whichever
-- code path or hub process gets there first.
ALTER TABLE alerts ADD COLUMN cause_key TEXT;
CREATE UNIQUE INDEX alerts_cause ON alerts(cause_key) WHERE cause_key IS NOT NULL;
-- The device clock's offset as last estimated, kept with the replay mark: after a
-- crash, messages signed before the restart are told apart from new ones by it.
ALTER TABLE devices ADD COLUMN clock_offset_ms INTEGER;

-- Existing homes: one door per lock, named after it. Its contact sensor and camera
-- are bound only where the home has exactly one lock and exactly one of them (the
-- only case in which the old rule, "any camera of the home", meant this door).
INSERT INTO doors (id, home_id, name, lock_id, contact_id, accepts_deliveries, created_ms)
SELECT l.id, l.home_id, l.name, l.id,
       (SELECT c.id FROM devices c WHERE c.home_id = l.home_id AND c.kind = 'contact_sensor'
          AND c.revoked_ms IS NULL
          AND (SELECT COUNT(*) FROM devices x WHERE x.home_id = l.home_id AND x.kind = 'contact_sensor' AND x.revoked_ms IS NULL) = 1
          AND (SELECT COUNT(*) FROM devices x WHERE x.home_id = l.home_id AND x.kind = 'lock' AND x.revoked_ms IS NULL) = 1),
       1, l.enrolled_ms
FROM devices l WHERE l.kind = 'lock' AND l.revoked_ms IS NULL;
INSERT INTO door_cameras (door_id, camera_id)
SELECT dr.id, c.id FROM doors dr JOIN devices c ON c.home_id = dr.home_id
WHERE c.kind = 'camera' AND c.revoked_ms IS NULL
  AND (SELECT COUNT(*) FROM devices x WHERE x.home_id = dr.home_id AND x.kind = 'camera' AND x.revoked_ms IS NULL) = 1
  AND (SELECT COUNT(*) FROM doors y WHERE y.home_id = dr.home_id) = 1;
UPDATE deliveries SET door_id = (SELECT dr.id FROM doors dr WHERE dr.home_id = deliveries.home_id)
WHERE (SELECT COUNT(*) FROM doors y WHERE y.home_id = deliveries.home_id) = 1;
UPDATE access_sessions SET door_id = (SELECT dr.id FROM doors dr WHERE dr.home_id = access_sessions.home_id)
WHERE (SELECT COUNT(*) FROM doors y WHERE y.home_id = access_sessions.home_id) = 1;
UPDATE guest_grants SET door_id = (SELECT dr.id FROM doors dr WHERE dr.home_id = guest_grants.home_id)
WHERE (SELECT COUNT(*) FROM doors y WHERE y.home_id = guest_grants.home_id) = 1;
-- Deliveries in the old states: a compromised open session is an incident; an open
-- session's timestamps come from it.
UPDATE deliveries SET camera_lost_ms = (SELECT s.compromised_ms FROM access_sessions s WHERE s.delivery_id = deliveries.id ORDER BY s.opened_ms DESC LIMIT 1),
    delivered_ms = (SELECT s.delivered_ms FROM access_sessions s WHERE s.delivery_id = deliveries.id ORDER BY s.opened_ms DESC LIMIT 1);
UPDATE deliveries SET state = 'camera_lost' WHERE compromised = 1 AND state IN ('inside', 'delivered', 'entering');
UPDATE deliveries SET state = 'inside' WHERE state = 'entering';
