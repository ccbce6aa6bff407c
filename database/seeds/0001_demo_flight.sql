-- A demo flight for local runs: AI101 Delhi → London, departing 30 days after seeding,
-- with a full seat map of 30 rows, seats A-F: rows 1-3 BUSINESS, 4-8 PREMIUM_ECONOMY,
-- the rest ECONOMY. Safe to run twice.
INSERT INTO flights (flight_id, flight_code, origin_iata, destination_iata, departure_utc, arrival_utc)
VALUES ('3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10', 'AI101', 'DEL', 'LHR',
        date_trunc('hour', now()) + interval '30 days',
        date_trunc('hour', now()) + interval '30 days 9 hours 30 minutes')
ON CONFLICT (flight_id) DO NOTHING;

-- Seat ids are derived from the flight and seat number so that reseeding gives the same ids.
INSERT INTO flight_seats (seat_id, flight_id, seat_number, cabin)
SELECT md5('3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10' || seat_row || seat_letter)::uuid,
       '3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10',
       seat_row || seat_letter,
       CASE WHEN seat_row <= 3 THEN 'BUSINESS'
            WHEN seat_row <= 8 THEN 'PREMIUM_ECONOMY'
            ELSE 'ECONOMY' END::cabin_class
FROM generate_series(1, 30) AS seat_row,
     unnest(ARRAY['A', 'B', 'C', 'D', 'E', 'F']) AS seat_letter
ON CONFLICT (flight_id, seat_number) DO NOTHING;
