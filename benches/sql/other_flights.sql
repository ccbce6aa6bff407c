-- 300 other flights of 180 seats each, a third of their seats held, so the tables the
-- reservation reads are the size where the planner walks indexes, as on a shared
-- database, rather than the fixture's few hundred rows, where it scans whole tables.
-- Loaded once by benches/reserve-server-time.sh, then analysed.
INSERT INTO flights (flight_id, flight_code, origin_iata, destination_iata, departure_utc, arrival_utc)
SELECT md5('bench flight ' || n)::uuid, 'BX' || n, 'DEL', 'LHR',
       now() + interval '40 days', now() + interval '40 days 9 hours'
FROM generate_series(1, 300) AS n;

INSERT INTO flight_seats (seat_id, flight_id, seat_number, status, version)
SELECT md5('bench seat ' || n || '|' || seat_row || seat_letter)::uuid,
       md5('bench flight ' || n)::uuid, seat_row || seat_letter,
       CASE WHEN seat_row % 3 = 0 THEN 'LOCKED' ELSE 'AVAILABLE' END::seat_status,
       CASE WHEN seat_row % 3 = 0 THEN 2 ELSE 1 END
FROM generate_series(1, 300) AS n, generate_series(1, 30) AS seat_row,
     unnest(ARRAY['A', 'B', 'C', 'D', 'E', 'F']) AS seat_letter;

INSERT INTO reservations (order_id, flight_id, request_fingerprint, outcome_event_id,
                          outcome_detail_type, outcome_detail)
SELECT md5('bench order ' || n || '|' || seat_row)::uuid, md5('bench flight ' || n)::uuid,
       'bench', gen_random_uuid(), 'SeatReserved', '{}'
FROM generate_series(1, 300) AS n, generate_series(3, 30, 3) AS seat_row;

INSERT INTO inventory_locks (order_id, seat_id, flight_id, seat_version, created_at, expires_at)
SELECT md5('bench order ' || n || '|' || seat_row)::uuid,
       md5('bench seat ' || n || '|' || seat_row || seat_letter)::uuid,
       md5('bench flight ' || n)::uuid, 2, now(), now() + interval '1 day'
FROM generate_series(1, 300) AS n, generate_series(3, 30, 3) AS seat_row,
     unnest(ARRAY['A', 'B', 'C', 'D', 'E', 'F']) AS seat_letter;
