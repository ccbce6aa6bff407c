//! Choosing seats for an any-seat order: side by side in one row where possible.

use crate::domain::HeldSeat;

/// Picks `count` of the free `candidates`: a run of neighbours in one row if there is one,
/// else seats of one row, else free seats front to back. Among equally good choices
/// `spread` decides, so that concurrent orders (each with its own spread) reach for
/// different seats instead of all racing for the first ones. `None` if there are not enough.
pub fn pick(candidates: &[HeldSeat], count: usize, spread: u64) -> Option<Vec<HeldSeat>> {
    if count == 0 || candidates.len() < count {
        return None;
    }
    let mut seats: Vec<&HeldSeat> = candidates.iter().collect();
    seats.sort_by_key(|seat| (seat.seat_number.row(), seat.seat_number.letter()));
    let rows: Vec<&[&HeldSeat]> = seats
        .chunk_by(|a, b| a.seat_number.row() == b.seat_number.row())
        .collect();

    let runs: Vec<&[&HeldSeat]> = rows
        .iter()
        .flat_map(|row| row.windows(count))
        .filter(|window| {
            window
                .windows(2)
                .all(|pair| pair[1].seat_number.letter() == pair[0].seat_number.letter() + 1)
        })
        .collect();
    let nth = |choices: usize| (spread % choices as u64) as usize;
    let roomy: Vec<&&[&HeldSeat]> = rows.iter().filter(|row| row.len() >= count).collect();
    let chosen: Vec<&HeldSeat> = if !runs.is_empty() {
        runs[nth(runs.len())].to_vec()
    } else if !roomy.is_empty() {
        roomy[nth(roomy.len())][..count].to_vec()
    } else {
        let start = nth(seats.len() - count + 1);
        seats[start..start + count].to_vec()
    };
    Some(chosen.into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::SeatNumber;

    fn free(numbers: &[&str]) -> Vec<HeldSeat> {
        numbers
            .iter()
            .filter_map(|n| SeatNumber::parse(n))
            .map(|seat_number| HeldSeat {
                seat_id: Uuid::new_v4(),
                seat_number,
                version: 1,
            })
            .collect()
    }

    fn picked(candidates: &[&str], count: usize, spread: u64) -> Option<Vec<String>> {
        pick(&free(candidates), count, spread)
            .map(|seats| seats.iter().map(|s| s.seat_number.to_string()).collect())
    }

    #[test]
    fn neighbours_in_one_row_are_preferred() {
        let seats = ["1A", "1C", "1E", "2B", "2C", "2D", "3A"];
        assert_eq!(
            picked(&seats, 3, 0),
            Some(vec!["2B".into(), "2C".into(), "2D".into()])
        );
        assert_eq!(picked(&seats, 2, 0), Some(vec!["2B".into(), "2C".into()]));
    }

    #[test]
    fn concurrent_orders_spread_over_the_runs() {
        let seats = ["1A", "1B", "2A", "2B", "3A", "3B"];
        assert_eq!(picked(&seats, 2, 1), Some(vec!["2A".into(), "2B".into()]));
        assert_eq!(picked(&seats, 2, 2), Some(vec!["3A".into(), "3B".into()]));
    }

    #[test]
    fn without_neighbours_one_row_then_front_to_back() {
        assert_eq!(
            picked(&["1A", "1C", "2A"], 2, 0),
            Some(vec!["1A".into(), "1C".into()])
        );
        assert_eq!(
            picked(&["1A", "2C", "3A"], 2, 0),
            Some(vec!["1A".into(), "2C".into()])
        );
    }

    #[test]
    fn too_few_seats_is_none() {
        assert_eq!(picked(&["1A", "9F"], 3, 0), None);
        assert_eq!(picked(&[], 1, 0), None);
    }
}
