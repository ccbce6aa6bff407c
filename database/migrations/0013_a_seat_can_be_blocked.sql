-- A seat can be BLOCKED by operations (crew rest, an inoperative seat, weight and balance,
-- a seat kept for assistance): never held or sold while it is. A value added to an enum
-- cannot be used in the transaction that adds it, so it has a migration of its own; 0014
-- uses it.
ALTER TYPE seat_status ADD VALUE IF NOT EXISTS 'BLOCKED';
