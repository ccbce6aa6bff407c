-- Seat changes (SeatChangeRequested) are answered once by their changeId, as requests of
-- operations are: they join seat_requests. A value added to an enum cannot be used in the
-- transaction that adds it, so it has a migration of its own; 0016 uses it.
ALTER TYPE seat_request_kind ADD VALUE IF NOT EXISTS 'SeatChangeRequested';
