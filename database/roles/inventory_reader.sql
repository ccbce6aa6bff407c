-- The availability function's database role: it reads the seat map and can write nothing.
-- Create the role first (CREATE ROLE inventory_reader LOGIN, with its password in the RDS
-- Proxy's secret), then run this as the owner of the tables, once the migrations are
-- applied, on the service's database. Every function runs with its caller's rights, so a
-- write function called as this role is refused by these grants (SQLSTATE 42501).
GRANT USAGE ON SCHEMA public TO inventory_reader;
-- What the seat map reads: the flight, its seats, and the seat rules' view (which reads
-- holds and orders with the view owner's rights, and shows no order).
GRANT SELECT ON flights, flight_seats, inventory_seat_standing TO inventory_reader;
ALTER ROLE inventory_reader SET default_transaction_read_only = on;
