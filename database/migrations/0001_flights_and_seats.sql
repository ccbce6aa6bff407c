-- Flights and their seats: the inventory this service is the source of truth for.
-- Other systems load rows with (flight_id, flight_code, origin_iata, destination_iata,
-- departure_utc, arrival_utc) and (seat_id, flight_id, seat_number) alone; every
-- other column has a default.

CREATE TYPE seat_status AS ENUM ('AVAILABLE', 'LOCKED', 'BOOKED');

CREATE TABLE flights (
    flight_id        UUID        PRIMARY KEY,
    -- IATA designator: two-character airline code (letters, or a letter and a digit) and 1-4 digits.
    flight_code      VARCHAR(7)  NOT NULL
        CONSTRAINT flights_flight_code_check
        CHECK (flight_code ~ '^([A-Z]{2}|[A-Z][0-9]|[0-9][A-Z])[0-9]{1,4}[A-Z]?$'),
    origin_iata      CHAR(3)     NOT NULL
        CONSTRAINT flights_origin_iata_check CHECK (origin_iata ~ '^[A-Z]{3}$'),
    destination_iata CHAR(3)     NOT NULL
        CONSTRAINT flights_destination_iata_check CHECK (destination_iata ~ '^[A-Z]{3}$'),
    departure_utc    TIMESTAMPTZ NOT NULL,
    arrival_utc      TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT flights_route_check    CHECK (origin_iata <> destination_iata),
    CONSTRAINT flights_schedule_check CHECK (arrival_utc > departure_utc)
);

CREATE TABLE flight_seats (
    seat_id     UUID        PRIMARY KEY,
    flight_id   UUID        NOT NULL REFERENCES flights (flight_id) ON DELETE CASCADE,
    -- Row 1-99 and a seat letter A-K, e.g. 12A.
    seat_number VARCHAR(3)  NOT NULL
        CONSTRAINT flight_seats_seat_number_check CHECK (seat_number ~ '^[1-9][0-9]?[A-K]$'),
    status      seat_status NOT NULL DEFAULT 'AVAILABLE',
    -- Optimistic lock: every change of status bumps the version.
    version     INTEGER     NOT NULL DEFAULT 1 CONSTRAINT flight_seats_version_check CHECK (version >= 1),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT flight_seats_flight_id_seat_number_key UNIQUE (flight_id, seat_number)
);
