//! A flight's seat map drawn for a terminal (`aeronode-inventory seatmap FLIGHT_ID`): rows
//! down, seat letters across with an aisle where the letters skip, one glyph each for free,
//! held, sold and blocked, a legend, and the counts per cabin. Colour only when asked for, which the
//! command does when stdout is a terminal.

use std::fmt::Write;

use crate::availability::SeatMap;
use crate::domain::{Cabin, SeatStatus};

const FREE: char = '·';
const HELD: char = '◐';
const SOLD: char = '●';
const BLOCKED: char = '×';

const GREEN: &str = "\u{1b}[32m";
const YELLOW: &str = "\u{1b}[33m";
const RED: &str = "\u{1b}[31m";
const BLUE: &str = "\u{1b}[34m";
const RESET: &str = "\u{1b}[0m";

fn glyph(status: SeatStatus, colour: bool) -> String {
    let (glyph, ansi) = match status {
        SeatStatus::Available => (FREE, GREEN),
        SeatStatus::Locked => (HELD, YELLOW),
        SeatStatus::Booked => (SOLD, RED),
        SeatStatus::Blocked => (BLOCKED, BLUE),
    };
    if colour {
        format!("{ansi}{glyph}{RESET}")
    } else {
        glyph.to_string()
    }
}

/// The seat map as text, one line per row, ending with the legend and the counts.
pub fn render(map: &SeatMap, colour: bool) -> String {
    let mut letters: Vec<u8> = map.seats.iter().map(|s| s.seat_number.letter()).collect();
    letters.sort_unstable();
    letters.dedup();
    // Each column: its letter, and whether an aisle comes before it (a letter skipped).
    let columns: Vec<(u8, bool)> = letters
        .iter()
        .enumerate()
        .map(|(i, letter)| (*letter, i > 0 && *letter > letters[i - 1] + 1))
        .collect();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} → {}  departs {}  {}",
        map.flight_code,
        map.origin_iata,
        map.destination_iata,
        map.departure_utc.format("%Y-%m-%d %H:%M UTC"),
        map.status.as_str()
    );
    let mut header = String::from("     ");
    for (letter, aisle) in &columns {
        if *aisle {
            header.push_str("  ");
        }
        let _ = write!(header, " {}", char::from(*letter));
    }
    let _ = writeln!(out, "{}", header.trim_end());

    let mut cabin: Option<Cabin> = None;
    for row in map
        .seats
        .chunk_by(|a, b| a.seat_number.row() == b.seat_number.row())
    {
        let number = row[0].seat_number.row();
        let mut line = format!("  {number:>2} ");
        for (letter, aisle) in &columns {
            if *aisle {
                line.push_str("  ");
            }
            line.push(' ');
            match row.iter().find(|seat| seat.seat_number.letter() == *letter) {
                Some(seat) => line.push_str(&glyph(seat.status, colour)),
                None => line.push(' '),
            }
        }
        if cabin != Some(row[0].cabin) {
            cabin = Some(row[0].cabin);
            let _ = write!(line, "   {}", row[0].cabin.as_str());
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(
        out,
        "\n  {} free   {} held   {} sold   {} blocked",
        glyph(SeatStatus::Available, colour),
        glyph(SeatStatus::Locked, colour),
        glyph(SeatStatus::Booked, colour),
        glyph(SeatStatus::Blocked, colour)
    );
    for count in map.cabins() {
        let _ = writeln!(
            out,
            "  {:<16} {:>3} free  {:>3} held  {:>3} sold  {:>3} blocked",
            count.cabin.as_str(),
            count.available,
            count.locked,
            count.booked,
            count.blocked
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::availability::MapSeat;
    use crate::domain::{BlockReason, FlightStatus, SeatNumber};

    fn seat(number: &str, cabin: Cabin, status: SeatStatus) -> Option<MapSeat> {
        Some(MapSeat {
            seat_number: SeatNumber::parse(number)?,
            cabin,
            status,
            block_reason: (status == SeatStatus::Blocked).then_some(BlockReason::Inoperative),
        })
    }

    fn map() -> SeatMap {
        let seats = [
            seat("1A", Cabin::Business, SeatStatus::Booked),
            seat("1C", Cabin::Business, SeatStatus::Available),
            seat("1D", Cabin::Business, SeatStatus::Locked),
            seat("1F", Cabin::Business, SeatStatus::Available),
            seat("10A", Cabin::Economy, SeatStatus::Available),
            seat("10B", Cabin::Economy, SeatStatus::Available),
            seat("10C", Cabin::Economy, SeatStatus::Available),
            seat("10D", Cabin::Economy, SeatStatus::Available),
            seat("10E", Cabin::Economy, SeatStatus::Available),
            seat("10F", Cabin::Economy, SeatStatus::Booked),
        ];
        SeatMap {
            flight_id: uuid::Uuid::nil(),
            flight_code: "AI102".into(),
            origin_iata: "LHR".into(),
            destination_iata: "DEL".into(),
            departure_utc: DateTime::UNIX_EPOCH,
            arrival_utc: DateTime::UNIX_EPOCH,
            status: FlightStatus::Scheduled,
            version_sum: 0,
            seats: seats.into_iter().flatten().collect(),
        }
    }

    #[test]
    fn rows_go_down_letters_across_with_an_aisle_where_letters_skip() {
        let text = render(&map(), false);
        let lines: Vec<&str> = text.lines().collect();

        assert_eq!(lines[1], "      A B C D E F");
        assert_eq!(lines[2], "   1  ●   · ◐   ·   BUSINESS");
        assert_eq!(lines[3], "  10  · · · · · ●   ECONOMY");
        assert!(
            text.contains("· free   ◐ held   ● sold   × blocked"),
            "{text}"
        );
        assert!(
            text.contains("BUSINESS           2 free    1 held    1 sold"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "no colour unless asked");
    }

    #[test]
    fn an_aisle_is_drawn_where_the_letters_of_every_row_skip() {
        let mut map = map();
        map.seats.retain(|seat| seat.cabin == Cabin::Business);

        let text = render(&map, false);

        assert_eq!(text.lines().nth(1), Some("      A   C D   F"));
        assert_eq!(text.lines().nth(2), Some("   1  ●   · ◐   ·   BUSINESS"));
    }

    #[test]
    fn a_blocked_seat_has_its_own_glyph_and_count() {
        let mut map = map();
        map.seats[1] = seat("1C", Cabin::Business, SeatStatus::Blocked).expect("a seat");

        let text = render(&map, false);

        assert_eq!(text.lines().nth(2), Some("   1  ●   × ◐   ·   BUSINESS"));
        assert!(
            text.contains("BUSINESS           1 free    1 held    1 sold    1 blocked"),
            "{text}"
        );
    }

    #[test]
    fn colour_marks_each_state() {
        let text = render(&map(), true);

        assert!(text.contains(&format!("{RED}●{RESET}")));
        assert!(text.contains(&format!("{YELLOW}◐{RESET}")));
        assert!(text.contains(&format!("{GREEN}·{RESET}")));
    }
}
