-- A camera going blind looks up the open deliveries of its doors
-- (`active_deliveries_of_door`): by door, not by scanning every open delivery.
CREATE INDEX deliveries_door ON deliveries(door_id, state);
