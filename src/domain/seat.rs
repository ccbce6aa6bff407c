use std::fmt;

use serde::{Deserialize, Serialize};

/// An order may ask for at most this many seats.
pub const MAX_SEATS_PER_ORDER: usize = 9;

/// A seat on the seat map: row 1-99 and a letter A-K, such as `12A`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct SeatNumber(String);

impl SeatNumber {
    pub fn parse(raw: &str) -> Option<Self> {
        let (row, letter) = match raw.as_bytes() {
            [row @ .., letter] if (1..=2).contains(&row.len()) => (row, *letter),
            _ => return None,
        };
        let row_ok = row[0] != b'0' && row.iter().all(u8::is_ascii_digit);
        let letter_ok = (b'A'..=b'K').contains(&letter);
        (row_ok && letter_ok).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The row, 1-99.
    pub fn row(&self) -> u8 {
        let digits = &self.0[..self.0.len() - 1];
        digits
            .bytes()
            .fold(0, |row, digit| row * 10 + (digit - b'0'))
    }

    /// The seat letter, `b'A'` to `b'K'`: neighbours in a row have consecutive letters.
    pub fn letter(&self) -> u8 {
        self.0.as_bytes()[self.0.len() - 1]
    }
}

impl TryFrom<String> for SeatNumber {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw).ok_or_else(|| format!("{:?} is not a seat number", shorten(&raw)))
    }
}

impl fmt::Display for SeatNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for SeatNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Where a seat stands in its life: free, held for an order, or sold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeatStatus {
    Available,
    Locked,
    Booked,
    /// Taken out of sale by operations, with a [`BlockReason`].
    Blocked,
}

/// Why operations blocked a seat (`SeatBlockRequested.reason`, the database's
/// `seat_block_reason`): a blocked seat is never held or sold.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum BlockReason {
    CrewRest,
    Inoperative,
    WeightAndBalance,
    ReservedForAssistance,
    Operator,
}

impl BlockReason {
    pub fn parse(raw: &str) -> Option<Self> {
        raw.parse().ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where a hold stands: held, sold, given back, or lapsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HoldStatus {
    Active,
    Confirmed,
    Released,
    Expired,
}

/// A cabin of the aircraft; any-seat orders may ask for one. Its text (events, the
/// database's `cabin_class`) is the SCREAMING_SNAKE_CASE name, from both derives.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Cabin {
    First,
    Business,
    PremiumEconomy,
    Economy,
}

impl Cabin {
    pub fn parse(raw: &str) -> Option<Self> {
        raw.parse().ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The seats one order asks for: 1 to 9 distinct, valid seat numbers, in the order asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatRequest(Vec<SeatNumber>);

/// Why a list of seats was refused, in words for the `message` of the answer.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeatRequestError {
    #[error("no seats were requested")]
    Empty,
    #[error("at most {max} seats can be requested at once, got {got}")]
    TooMany { got: usize, max: usize },
    #[error("seat {0:?} is requested twice")]
    Duplicate(String),
    #[error("{0:?} is not a seat number (expected a row 1-99 and a letter A-K, such as 12A)")]
    Malformed(String),
}

impl SeatRequest {
    pub fn parse<'a>(
        raw: impl ExactSizeIterator<Item = &'a str>,
    ) -> Result<Self, SeatRequestError> {
        Self::parse_at_most(raw, MAX_SEATS_PER_ORDER)
    }

    /// 1 to `max` distinct, valid seat numbers, in the order given.
    pub fn parse_at_most<'a>(
        raw: impl ExactSizeIterator<Item = &'a str>,
        max: usize,
    ) -> Result<Self, SeatRequestError> {
        match raw.len() {
            0 => return Err(SeatRequestError::Empty),
            got if got > max => return Err(SeatRequestError::TooMany { got, max }),
            _ => {}
        }
        let mut seats: Vec<SeatNumber> = Vec::with_capacity(raw.len());
        for item in raw {
            let seat = SeatNumber::parse(item)
                .ok_or_else(|| SeatRequestError::Malformed(shorten(item)))?;
            if seats.contains(&seat) {
                return Err(SeatRequestError::Duplicate(seat.0));
            }
            seats.push(seat);
        }
        Ok(Self(seats))
    }

    pub fn seats(&self) -> &[SeatNumber] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The seats sorted, joined: the same set of seats in any order gives the same text.
    pub fn canonical(&self) -> String {
        let mut sorted: Vec<&str> = self.0.iter().map(SeatNumber::as_str).collect();
        sorted.sort_unstable();
        sorted.join(",")
    }
}

/// One move of a seat change: the order's seat `from` becomes `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SeatMove {
    pub from: SeatNumber,
    pub to: SeatNumber,
}

/// The moves of one seat change: 1 to 9, no seat named twice (as a source or a target),
/// none to itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatMoves(Vec<SeatMove>);

/// Why a list of moves was refused, in words for the `message` of the answer.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeatMovesError {
    #[error("no moves were requested")]
    Empty,
    #[error("at most {MAX_SEATS_PER_ORDER} moves can be requested at once, got {0}")]
    TooMany(usize),
    #[error("every move must be {{\"from\": seat, \"to\": seat}}, with seats such as \"12A\"")]
    Malformed,
    #[error("seat {0} is named twice")]
    Repeated(String),
    #[error("seat {0} is moved to itself")]
    ToItself(String),
}

impl SeatMoves {
    /// From `(from, to)` pairs as sent; `None` for a pair that is not two strings.
    pub fn parse<'a>(
        raw: impl ExactSizeIterator<Item = Option<(&'a str, &'a str)>>,
    ) -> Result<Self, SeatMovesError> {
        match raw.len() {
            0 => return Err(SeatMovesError::Empty),
            n if n > MAX_SEATS_PER_ORDER => return Err(SeatMovesError::TooMany(n)),
            _ => {}
        }
        let mut moves: Vec<SeatMove> = Vec::with_capacity(raw.len());
        for pair in raw {
            let (from, to) = pair
                .and_then(|(from, to)| Some((SeatNumber::parse(from)?, SeatNumber::parse(to)?)))
                .ok_or(SeatMovesError::Malformed)?;
            if from == to {
                return Err(SeatMovesError::ToItself(from.0));
            }
            for seat in [&from, &to] {
                if moves.iter().any(|m| m.from == *seat || m.to == *seat) {
                    return Err(SeatMovesError::Repeated(seat.0.clone()));
                }
            }
            moves.push(SeatMove { from, to });
        }
        Ok(Self(moves))
    }

    pub fn moves(&self) -> &[SeatMove] {
        &self.0
    }

    /// The moves sorted, joined: the same moves in any order give the same text.
    pub fn canonical(&self) -> String {
        let mut sorted: Vec<String> = self
            .0
            .iter()
            .map(|m| format!("{}>{}", m.from, m.to))
            .collect();
        sorted.sort_unstable();
        sorted.join(",")
    }
}

/// Quotes of bad input stay short, whatever was sent.
fn shorten(raw: &str) -> String {
    const KEEP: usize = 16;
    match raw.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{}…", &raw[..cut]),
        None => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(seats: &[&str]) -> Result<SeatRequest, SeatRequestError> {
        SeatRequest::parse(seats.iter().copied())
    }

    #[test]
    fn seat_numbers_are_a_row_and_a_letter() {
        for ok in ["1A", "9K", "12A", "99F", "30C"] {
            assert!(SeatNumber::parse(ok).is_some(), "{ok} should parse");
        }
        for bad in [
            "", "A", "0A", "01A", "100A", "12L", "12a", "12", "1 A", "١٢A", "12AA",
        ] {
            assert!(
                SeatNumber::parse(bad).is_none(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn a_cabin_reads_and_writes_one_text_everywhere() {
        use strum::VariantArray;
        for cabin in Cabin::VARIANTS {
            assert_eq!(Cabin::parse(cabin.as_str()), Some(*cabin));
            assert_eq!(
                serde_json::to_value(cabin).ok(),
                Some(serde_json::json!(cabin.as_str()))
            );
        }
        assert_eq!(Cabin::PremiumEconomy.as_str(), "PREMIUM_ECONOMY");
        assert_eq!(Cabin::parse("economy"), None);
    }

    #[test]
    fn a_seat_number_knows_its_row_and_letter() {
        let seat = SeatNumber::parse("23C").map(|s| (s.row(), s.letter()));
        assert_eq!(seat, Some((23, b'C')));
        assert_eq!(
            SeatNumber::parse("7K").map(|s| (s.row(), s.letter())),
            Some((7, b'K'))
        );
    }

    #[test]
    fn a_request_keeps_the_seats_in_the_order_asked() {
        let seats = request(&["12B", "12A"]).map(|r| r.canonical());
        assert_eq!(seats.as_deref(), Ok("12A,12B"));
    }

    #[test]
    fn empty_oversized_duplicate_and_malformed_requests_are_refused() {
        assert_eq!(request(&[]), Err(SeatRequestError::Empty));
        let ten = ["1A", "1B", "1C", "1D", "1E", "1F", "2A", "2B", "2C", "2D"];
        assert_eq!(
            request(&ten),
            Err(SeatRequestError::TooMany { got: 10, max: 9 })
        );
        assert_eq!(
            request(&["1A", "1A"]),
            Err(SeatRequestError::Duplicate("1A".into()))
        );
        let long = "9".repeat(10_000);
        assert_eq!(
            request(&[long.as_str()]),
            Err(SeatRequestError::Malformed(format!("{}…", "9".repeat(16))))
        );
    }
}
