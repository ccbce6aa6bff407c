//! A flight as the schedule opens it: a valid designator and airports, times in order,
//! and a seat map of cabins that never overlap, at most [`MAX_SEATS_PER_FLIGHT`] seats.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Cabin, FlightId, SeatNumber};

/// A flight's seat map may hold at most this many seats.
pub const MAX_SEATS_PER_FLIGHT: usize = 1_000;

/// What a flight is to anyone asking: open for sale, cancelled, or gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum FlightStatus {
    Scheduled,
    Cancelled,
    Departed,
}

impl FlightStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// An IATA flight designator: a two-character airline code (letters, or a letter and a
/// digit) and 1-4 digits, with an optional suffix letter, such as `AI101`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlightCode(String);

impl FlightCode {
    pub fn parse(raw: &str) -> Option<Self> {
        let bytes = raw.as_bytes();
        if !(3..=7).contains(&bytes.len()) {
            return None;
        }
        let (airline, rest) = bytes.split_at(2);
        let airline_ok = match airline {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => true,
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_digit() => true,
            [a, b] if a.is_ascii_digit() && b.is_ascii_uppercase() => true,
            _ => false,
        };
        // An optional suffix letter after the digits.
        let digits = match rest.split_last() {
            Some((last, digits)) if last.is_ascii_uppercase() => digits,
            _ => rest,
        };
        let digits_ok = (1..=4).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit);
        (airline_ok && digits_ok).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A three-letter IATA airport code, such as `LHR`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Airport(String);

impl Airport {
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()))
            .then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One cabin of a seat map: rows `first..=last`, the same seat letters in every row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CabinLayout {
    pub cabin: Cabin,
    pub first_row: u8,
    pub last_row: u8,
    /// Ascending, distinct, A-K.
    pub letters: Vec<u8>,
}

impl CabinLayout {
    fn seats(&self) -> impl Iterator<Item = SeatNumber> + '_ {
        (self.first_row..=self.last_row).flat_map(move |row| {
            self.letters.iter().filter_map(move |letter| {
                SeatNumber::parse(&format!("{row}{}", char::from(*letter)))
            })
        })
    }

    fn len(&self) -> usize {
        usize::from(self.last_row - self.first_row + 1) * self.letters.len()
    }
}

/// Why a schedule was refused: the `reason` of `FlightScheduleRejected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScheduleProblem {
    InvalidFlightCode,
    InvalidAirport,
    InvalidTimes,
    InvalidCabins,
    OverlappingCabins,
    TooManySeats,
}

/// A schedule that cannot be applied, in words for the answer's `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleRefusal {
    pub problem: ScheduleProblem,
    pub message: String,
}

impl fmt::Display for ScheduleRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn refuse(problem: ScheduleProblem, message: impl Into<String>) -> ScheduleRefusal {
    ScheduleRefusal {
        problem,
        message: message.into(),
    }
}

/// A flight the schedule opened, valid in every part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlightSchedule {
    pub flight_id: FlightId,
    pub flight_code: FlightCode,
    pub origin: Airport,
    pub destination: Airport,
    pub departure: DateTime<Utc>,
    pub arrival: DateTime<Utc>,
    pub layout: AircraftLayout,
}

/// An aircraft's cabins: valid, not overlapping, within [`MAX_SEATS_PER_FLIGHT`]. A
/// schedule opens a flight with one, and an `AircraftChanged` gives it another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AircraftLayout(Vec<CabinLayout>);

impl AircraftLayout {
    /// The `cabins` of a `FlightScheduled` or an `AircraftChanged`, as sent.
    pub fn parse(raw: Option<&[RawCabin<'_>]>) -> Result<Self, ScheduleRefusal> {
        parse_cabins(raw).map(Self)
    }

    /// Every seat, cabin by cabin, in seat-map order.
    pub fn seats(&self) -> Vec<(SeatNumber, Cabin)> {
        self.0
            .iter()
            .flat_map(|cabin| cabin.seats().map(move |seat| (seat, cabin.cabin)))
            .collect()
    }

    /// How many seats each cabin has, in the order the layout names them.
    pub fn seat_counts(&self) -> Vec<(Cabin, usize)> {
        let mut counts: Vec<(Cabin, usize)> = Vec::new();
        for layout in &self.0 {
            match counts.iter_mut().find(|(cabin, _)| *cabin == layout.cabin) {
                Some((_, count)) => *count += layout.len(),
                None => counts.push((layout.cabin, layout.len())),
            }
        }
        counts
    }

    /// The layout in a canonical form: the same cabins again are the same text.
    pub fn canonical(&self) -> String {
        let cabins: Vec<String> = self
            .0
            .iter()
            .map(|cabin| {
                format!(
                    "{}:{}-{}:{}",
                    cabin.cabin.as_str(),
                    cabin.first_row,
                    cabin.last_row,
                    String::from_utf8_lossy(&cabin.letters)
                )
            })
            .collect();
        cabins.join(";")
    }
}

/// The parts of a schedule as they arrive, before they are checked.
#[derive(Clone, Debug, Default)]
pub struct ScheduleParts<'a> {
    pub flight_code: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub destination: Option<&'a str>,
    pub departure: Option<&'a str>,
    pub arrival: Option<&'a str>,
    /// Each cabin's `cabin`, `rows` and `letters`, as sent.
    pub cabins: Option<Vec<RawCabin<'a>>>,
}

impl FlightSchedule {
    pub fn parse(flight_id: FlightId, parts: &ScheduleParts<'_>) -> Result<Self, ScheduleRefusal> {
        let flight_code = parts
            .flight_code
            .and_then(FlightCode::parse)
            .ok_or_else(|| {
                refuse(
                    ScheduleProblem::InvalidFlightCode,
                    "flightCode must be an IATA designator such as AI101",
                )
            })?;
        let airport = |raw: Option<&str>, name: &str| {
            raw.and_then(Airport::parse).ok_or_else(|| {
                refuse(
                    ScheduleProblem::InvalidAirport,
                    format!("{name} must be a three-letter IATA airport code such as LHR"),
                )
            })
        };
        let origin = airport(parts.origin, "originIata")?;
        let destination = airport(parts.destination, "destinationIata")?;
        if origin == destination {
            return Err(refuse(
                ScheduleProblem::InvalidAirport,
                "originIata and destinationIata must differ",
            ));
        }
        let time = |raw: Option<&str>, name: &str| {
            raw.and_then(|raw| DateTime::parse_from_rfc3339(raw).ok())
                .map(|time| time.with_timezone(&Utc))
                .ok_or_else(|| {
                    refuse(
                        ScheduleProblem::InvalidTimes,
                        format!("{name} must be an RFC 3339 time"),
                    )
                })
        };
        let departure = time(parts.departure, "departureUtc")?;
        let arrival = time(parts.arrival, "arrivalUtc")?;
        if arrival <= departure {
            return Err(refuse(
                ScheduleProblem::InvalidTimes,
                "arrivalUtc must be after departureUtc",
            ));
        }
        let layout = AircraftLayout::parse(parts.cabins.as_deref())?;
        Ok(Self {
            flight_id,
            flight_code,
            origin,
            destination,
            departure,
            arrival,
            layout,
        })
    }

    /// Every seat of the flight, cabin by cabin, in seat-map order.
    pub fn seats(&self) -> Vec<(SeatNumber, Cabin)> {
        self.layout.seats()
    }

    /// How many seats each cabin has, in the order the schedule named them.
    pub fn seat_counts(&self) -> Vec<(Cabin, usize)> {
        self.layout.seat_counts()
    }

    /// What was scheduled, in a canonical form: the same schedule again is the same text.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.flight_code.as_str(),
            self.origin.as_str(),
            self.destination.as_str(),
            self.departure
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.arrival
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.layout.canonical()
        )
    }
}

/// A cabin's `cabin`, `rows` and `letters`, as sent.
pub type RawCabin<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

fn parse_cabins(raw: Option<&[RawCabin<'_>]>) -> Result<Vec<CabinLayout>, ScheduleRefusal> {
    let invalid = |message: String| refuse(ScheduleProblem::InvalidCabins, message);
    let raw = match raw {
        Some(raw) if !raw.is_empty() => raw,
        _ => return Err(invalid("cabins must be a non-empty list".into())),
    };
    if raw.len() > 16 {
        return Err(invalid("at most 16 cabins".into()));
    }
    let mut layouts: Vec<CabinLayout> = Vec::with_capacity(raw.len());
    for (index, (cabin, rows, letters)) in raw.iter().enumerate() {
        let cabin = cabin.and_then(Cabin::parse).ok_or_else(|| {
            invalid(format!(
                "cabins[{index}].cabin must be FIRST, BUSINESS, PREMIUM_ECONOMY or ECONOMY"
            ))
        })?;
        let (first_row, last_row) = rows.and_then(parse_rows).ok_or_else(|| {
            invalid(format!(
                "cabins[{index}].rows must be a row or a range of rows from 1 to 99, such as 10-30"
            ))
        })?;
        let letters = letters.and_then(parse_letters).ok_or_else(|| {
            invalid(format!(
                "cabins[{index}].letters must be distinct seat letters A-K in order, such as ABCDEF"
            ))
        })?;
        let layout = CabinLayout {
            cabin,
            first_row,
            last_row,
            letters,
        };
        if let Some(other) = layouts.iter().position(|earlier| overlap(earlier, &layout)) {
            return Err(refuse(
                ScheduleProblem::OverlappingCabins,
                format!("cabins[{other}] and cabins[{index}] share seats"),
            ));
        }
        layouts.push(layout);
    }
    let seats: usize = layouts.iter().map(CabinLayout::len).sum();
    if seats > MAX_SEATS_PER_FLIGHT {
        return Err(refuse(
            ScheduleProblem::TooManySeats,
            format!("the seat map has {seats} seats; at most {MAX_SEATS_PER_FLIGHT}"),
        ));
    }
    Ok(layouts)
}

fn overlap(a: &CabinLayout, b: &CabinLayout) -> bool {
    let rows = a.first_row <= b.last_row && b.first_row <= a.last_row;
    rows && a.letters.iter().any(|letter| b.letters.contains(letter))
}

/// `"10-30"` or `"7"`, rows 1-99, first no later than last.
fn parse_rows(raw: &str) -> Option<(u8, u8)> {
    let row = |text: &str| {
        text.parse::<u8>()
            .ok()
            .filter(|row| (1..=99).contains(row) && !text.starts_with('0'))
    };
    let (first, last) = match raw.split_once('-') {
        Some((first, last)) => (row(first)?, row(last)?),
        None => (row(raw)?, row(raw)?),
    };
    (first <= last).then_some((first, last))
}

fn parse_letters(raw: &str) -> Option<Vec<u8>> {
    let letters = raw.as_bytes().to_vec();
    let valid = !letters.is_empty()
        && letters.iter().all(|letter| (b'A'..=b'K').contains(letter))
        && letters.windows(2).all(|pair| pair[0] < pair[1]);
    valid.then_some(letters)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLIGHT: &str = "7a1e0c3d-5b2f-4e8a-9d6c-3f4b5a6c7d8e";

    fn parts<'a>(cabins: Vec<RawCabin<'a>>) -> ScheduleParts<'a> {
        ScheduleParts {
            flight_code: Some("AI102"),
            origin: Some("LHR"),
            destination: Some("DEL"),
            departure: Some("2027-01-10T09:00:00Z"),
            arrival: Some("2027-01-10T18:00:00Z"),
            cabins: Some(cabins),
        }
    }

    fn schedule(parts: &ScheduleParts<'_>) -> Result<FlightSchedule, ScheduleRefusal> {
        let flight =
            FlightId::parse(FLIGHT).ok_or_else(|| refuse(ScheduleProblem::InvalidCabins, ""))?;
        FlightSchedule::parse(flight, parts)
    }

    fn problem(parts: &ScheduleParts<'_>) -> Option<ScheduleProblem> {
        schedule(parts).err().map(|refusal| refusal.problem)
    }

    #[test]
    fn a_schedule_becomes_every_seat_of_its_cabins() {
        let parts = parts(vec![
            (Some("BUSINESS"), Some("1-2"), Some("ACDF")),
            (Some("ECONOMY"), Some("10-12"), Some("ABCDEF")),
        ]);

        let schedule = schedule(&parts);

        let Ok(schedule) = schedule else {
            panic!("expected a schedule, got {schedule:?}");
        };
        let seats = schedule.seats();
        assert_eq!(seats.len(), 2 * 4 + 3 * 6);
        assert_eq!(seats[0].0.as_str(), "1A");
        assert_eq!(seats[1].0.as_str(), "1C");
        assert_eq!(
            schedule.seat_counts(),
            vec![(Cabin::Business, 8), (Cabin::Economy, 18)]
        );
        assert_eq!(
            schedule.fingerprint(),
            "AI102|LHR|DEL|2027-01-10T09:00:00Z|2027-01-10T18:00:00Z|BUSINESS:1-2:ACDF;ECONOMY:10-12:ABCDEF"
        );
    }

    #[test]
    fn bad_codes_and_times_are_refused_with_their_reason() {
        let cabins = || vec![(Some("ECONOMY"), Some("1-2"), Some("ABC"))];
        let mut bad_code = parts(cabins());
        bad_code.flight_code = Some("A1");
        let mut bad_airport = parts(cabins());
        bad_airport.origin = Some("lhr");
        let mut same_airports = parts(cabins());
        same_airports.destination = Some("LHR");
        let mut backwards = parts(cabins());
        backwards.arrival = Some("2027-01-10T08:00:00Z");
        let mut not_a_time = parts(cabins());
        not_a_time.departure = Some("tomorrow");

        assert_eq!(problem(&bad_code), Some(ScheduleProblem::InvalidFlightCode));
        assert_eq!(problem(&bad_airport), Some(ScheduleProblem::InvalidAirport));
        assert_eq!(
            problem(&same_airports),
            Some(ScheduleProblem::InvalidAirport)
        );
        assert_eq!(problem(&backwards), Some(ScheduleProblem::InvalidTimes));
        assert_eq!(problem(&not_a_time), Some(ScheduleProblem::InvalidTimes));
    }

    #[test]
    fn cabins_that_overlap_or_hold_too_many_seats_are_refused() {
        let overlapping = parts(vec![
            (Some("BUSINESS"), Some("1-5"), Some("ABCD")),
            (Some("ECONOMY"), Some("5-30"), Some("DEF")),
        ]);
        let too_many = parts(vec![(Some("ECONOMY"), Some("1-99"), Some("ABCDEFGHIJK"))]);
        let side_by_side = parts(vec![
            (Some("BUSINESS"), Some("1-5"), Some("ABC")),
            (Some("ECONOMY"), Some("1-5"), Some("DEF")),
        ]);

        assert_eq!(
            problem(&overlapping),
            Some(ScheduleProblem::OverlappingCabins)
        );
        assert_eq!(problem(&too_many), Some(ScheduleProblem::TooManySeats));
        assert_eq!(problem(&side_by_side), None);
    }

    #[test]
    fn malformed_cabins_are_refused() {
        for (cabin, rows, letters) in [
            (Some("LOUNGE"), Some("1-2"), Some("AB")),
            (Some("ECONOMY"), Some("3-1"), Some("AB")),
            (Some("ECONOMY"), Some("0-2"), Some("AB")),
            (Some("ECONOMY"), Some("1-100"), Some("AB")),
            (Some("ECONOMY"), Some("1-2"), Some("BA")),
            (Some("ECONOMY"), Some("1-2"), Some("AAB")),
            (Some("ECONOMY"), Some("1-2"), Some("AL")),
            (Some("ECONOMY"), None, Some("AB")),
        ] {
            let parts = parts(vec![(cabin, rows, letters)]);
            assert_eq!(
                problem(&parts),
                Some(ScheduleProblem::InvalidCabins),
                "{cabin:?} {rows:?} {letters:?}"
            );
        }
        assert_eq!(
            problem(&parts(vec![])),
            Some(ScheduleProblem::InvalidCabins)
        );
    }

    #[test]
    fn flight_codes_are_iata_designators() {
        for ok in ["AI101", "BA2", "U21234", "9W1A", "LH4000"] {
            assert!(FlightCode::parse(ok).is_some(), "{ok}");
        }
        for bad in ["", "AI", "ABC1", "ai101", "AI12345", "AI-10", "AIX101"] {
            assert!(FlightCode::parse(bad).is_none(), "{bad}");
        }
    }
}
