//! The simulator's world: a seeded random source, the events it sends (built from the
//! samples under `events/`), and what it remembers of what it sent.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{FLIGHT, order_created_with, sample, uuid};

/// splitmix64: tiny, fast, and the same sequence for the same seed everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True `per_mille` times in a thousand.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next_u64() % 1_000 < per_mille
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A v4 UUID drawn from the seed, so a replay sends the same ids.
    pub fn uuid(&mut self) -> Uuid {
        let bytes = (u128::from(self.next_u64()) << 64 | u128::from(self.next_u64())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// The seats every new flight has: a tiny BUSINESS cabin and a tiny ECONOMY one, so that
/// orders collide all the time.
pub const SMALL_CABINS: &[&str] = &["1A", "1C", "2A", "2B", "2C", "3A", "3B", "3C"];
/// The hot seats of the fixtures' demo flight (explicit orders only; its cabin is large).
pub const DEMO_HOT_SEATS: &[&str] = &["1A", "1B", "1C", "2A", "2B", "2C"];

/// A flight as the simulator knows it.
pub struct Flight {
    pub id: Uuid,
    pub label: String,
    pub hot_seats: &'static [&'static str],
    /// Any-seat orders only on the small flights, where they collide.
    pub any_seat: bool,
    /// The step at which a `FlightCancelled` for it was first handled successfully.
    pub cancelled_at_step: Option<usize>,
    /// Moved 40+ days into the past: retention may delete it at any housekeeping.
    pub departed: bool,
    /// Deleted by retention (its seat map is gone).
    pub gone: bool,
}

/// An order the simulator sent an `OrderCreated` for.
#[derive(Clone)]
pub struct Order {
    pub id: Uuid,
    pub flight: usize,
    /// The seats it named (none for an any-seat order).
    pub seats: Vec<String>,
}

/// What the simulator sent so far.
pub struct World {
    pub flights: Vec<Flight>,
    /// The orders sent lately (payments and cancellations pick from these).
    pub orders: VecDeque<Order>,
    /// The step at which each order id first reached the service as an `OrderCreated`.
    pub first_ordered_at: HashMap<Uuid, usize>,
    /// The flight each order id was first sent for.
    pub order_flight: HashMap<Uuid, usize>,
    /// Order ids a payment or cancellation was sent for before any `OrderCreated`.
    pub early: Vec<Uuid>,
    /// Envelopes sent lately, for redeliveries.
    pub recent: VecDeque<Value>,
    /// Request ids of operations sent lately, with their flight (a request under one of
    /// them with other content is a conflict).
    pub requests: VecDeque<(Uuid, usize)>,
    /// Aircraft change ids sent lately, with their flight.
    pub aircraft_changes: VecDeque<(Uuid, usize)>,
    departure: chrono::DateTime<chrono::Utc>,
}

const REMEMBERED_ORDERS: usize = 64;
const REMEMBERED_EVENTS: usize = 64;

impl World {
    pub fn new() -> Self {
        let demo = Flight {
            id: uuid(FLIGHT),
            label: "F0".into(),
            hot_seats: DEMO_HOT_SEATS,
            any_seat: false,
            cancelled_at_step: None,
            departed: false,
            gone: false,
        };
        Self {
            flights: vec![demo],
            orders: VecDeque::new(),
            first_ordered_at: HashMap::new(),
            order_flight: HashMap::new(),
            early: Vec::new(),
            recent: VecDeque::new(),
            requests: VecDeque::new(),
            aircraft_changes: VecDeque::new(),
            departure: chrono::Utc::now() + chrono::Duration::days(20),
        }
    }

    pub fn flight_index(&self, id: Uuid) -> Option<usize> {
        self.flights.iter().position(|flight| flight.id == id)
    }

    /// Flights not moved into the past, most of the time one that is not cancelled.
    pub fn some_flight(&self, rng: &mut Rng) -> usize {
        let open: Vec<usize> = (0..self.flights.len())
            .filter(|&i| !self.flights[i].departed)
            .collect();
        let scheduled: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| self.flights[i].cancelled_at_step.is_none())
            .collect();
        if !scheduled.is_empty() && !rng.chance(150) {
            return *rng.pick(&scheduled);
        }
        if !open.is_empty() {
            return *rng.pick(&open);
        }
        rng.below(self.flights.len())
    }

    /// A flight to retire: a cancelled one if there is one.
    pub fn flight_to_retire(&self, rng: &mut Rng) -> usize {
        let cancelled: Vec<usize> = (0..self.flights.len())
            .filter(|&i| !self.flights[i].departed && self.flights[i].cancelled_at_step.is_some())
            .collect();
        if !cancelled.is_empty() && !rng.chance(300) {
            return *rng.pick(&cancelled);
        }
        self.some_flight(rng)
    }

    pub fn open_flights(&self) -> usize {
        self.flights
            .iter()
            .filter(|f| !f.departed && f.cancelled_at_step.is_none())
            .count()
    }

    /// A new small flight and the `FlightScheduled` that opens it.
    pub fn new_flight(&mut self, rng: &mut Rng) -> Value {
        let id = rng.uuid();
        let mut event = sample("flight-scheduled.json");
        event["detail"]["flightId"] = json!(id);
        let departure = self.departure + chrono::Duration::hours(self.flights.len() as i64);
        event["detail"]["departureUtc"] = json!(departure.to_rfc3339());
        event["detail"]["arrivalUtc"] =
            json!((departure + chrono::Duration::hours(9)).to_rfc3339());
        event["detail"]["cabins"] = json!([
            {"cabin": "BUSINESS", "rows": "1-1", "letters": "AC"},
            {"cabin": "ECONOMY", "rows": "2-3", "letters": "ABC"}
        ]);
        self.flights.push(Flight {
            id,
            label: format!("F{}", self.flights.len()),
            hot_seats: SMALL_CABINS,
            any_seat: true,
            cancelled_at_step: None,
            departed: false,
            gone: false,
        });
        self.envelope(rng, event)
    }

    /// 1 to 3 distinct hot seats of the flight.
    pub fn some_seats(&self, rng: &mut Rng, flight: usize) -> Vec<String> {
        let hot = self.flights[flight].hot_seats;
        let mut seats: Vec<String> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let seat = (*rng.pick(hot)).to_owned();
            if !seats.contains(&seat) {
                seats.push(seat);
            }
        }
        seats
    }

    /// A new order with explicit seats, or any N seats of a cabin on a small flight.
    pub fn new_order(&mut self, rng: &mut Rng, step: usize, id: Uuid, any_seat: bool) -> Value {
        let flight = self.some_flight(rng);
        let mut seats = Vec::new();
        let detail = if any_seat && self.flights[flight].any_seat {
            let mut detail = json!({"orderId": id, "flightId": self.flights[flight].id,
                                    "seatCount": 1 + rng.below(3)});
            match rng.below(3) {
                0 => detail["cabin"] = json!("BUSINESS"),
                1 => detail["cabin"] = json!("ECONOMY"),
                _ => {}
            }
            detail
        } else {
            seats = self.some_seats(rng, flight);
            json!({"orderId": id, "flightId": self.flights[flight].id, "seats": seats})
        };
        self.remember_order(Order { id, flight, seats }, step);
        self.envelope(rng, order_created_with(detail))
    }

    /// The same order id with other content: other seats, sometimes on another flight.
    pub fn conflicting_order(&mut self, rng: &mut Rng, order: Order) -> Value {
        let flight = if rng.chance(300) {
            self.some_flight(rng)
        } else {
            order.flight
        };
        let seats = self.some_seats(rng, flight);
        let detail = json!({"orderId": order.id, "flightId": self.flights[flight].id,
                            "seats": seats, "note": "resent with other content"});
        self.envelope(rng, order_created_with(detail))
    }

    fn remember_order(&mut self, order: Order, step: usize) {
        self.first_ordered_at.entry(order.id).or_insert(step);
        self.order_flight.entry(order.id).or_insert(order.flight);
        self.orders.push_back(order);
        if self.orders.len() > REMEMBERED_ORDERS {
            self.orders.pop_front();
        }
    }

    /// An order id for a payment or cancellation: mostly one sent lately, sometimes one
    /// never seen (its `OrderCreated` may come later).
    pub fn some_order_id(&mut self, rng: &mut Rng) -> Uuid {
        if self.orders.is_empty() || rng.chance(80) {
            let id = rng.uuid();
            self.early.push(id);
            return id;
        }
        let at = rng.below(self.orders.len());
        self.orders[at].id
    }

    /// A sample event with a fresh envelope id from the seed, remembered for redelivery.
    pub fn envelope(&mut self, rng: &mut Rng, mut event: Value) -> Value {
        event["id"] = json!(rng.uuid());
        self.recent.push_back(event.clone());
        if self.recent.len() > REMEMBERED_EVENTS {
            self.recent.pop_front();
        }
        event
    }

    pub fn for_order(&mut self, rng: &mut Rng, sample_name: &str, order_id: Uuid) -> Value {
        let mut event = sample(sample_name);
        event["detail"]["orderId"] = json!(order_id);
        if rng.chance(30) {
            // Text with a NUL in a field the service keeps or echoes.
            if sample_name == "payment-succeeded.json" {
                event["detail"]["paymentId"] = json!("pay_\u{0}nul");
            } else {
                event["detail"]["reason"] = json!("customer\u{0}request");
            }
        }
        self.envelope(rng, event)
    }

    pub fn flight_cancelled(&mut self, rng: &mut Rng, flight: usize) -> Value {
        let mut event = sample("flight-cancelled.json");
        event["detail"]["flightId"] = json!(self.flights[flight].id);
        if rng.chance(250) {
            event["detail"]["reason"] = json!("crew\u{0}unavailable");
        }
        self.envelope(rng, event)
    }

    /// `SeatBlockRequested` for hot seats of a flight: now and then invalid, or under a
    /// request id sent before with other content (a conflict).
    pub fn block(&mut self, rng: &mut Rng, flight: usize) -> Value {
        const REASONS: &[&str] = &[
            "CREW_REST",
            "INOPERATIVE",
            "WEIGHT_AND_BALANCE",
            "RESERVED_FOR_ASSISTANCE",
            "OPERATOR",
        ];
        let id = self.request_id(rng, flight);
        let reason = if rng.chance(30) {
            "BROKEN"
        } else {
            *rng.pick(REASONS)
        };
        let mut event = sample("seat-block-requested.json");
        event["detail"] = json!({"requestId": id, "flightId": self.flights[flight].id,
                                 "seats": self.some_seats(rng, flight), "reason": reason});
        self.envelope(rng, event)
    }

    /// `SeatChangeRequested` of an order: one or two of the seats it named moved to other hot
    /// seats of its flight (so sometimes to another cabin, or to a taken seat); now and
    /// then under a change id sent before (a conflict).
    pub fn seat_change(&mut self, rng: &mut Rng, order: &Order) -> Value {
        let hot = self.flights[order.flight].hot_seats;
        // On a small flight row 1 is BUSINESS: a target in the source's cabin, but one
        // time in twenty anywhere (a change of cabin, refused).
        let small = self.flights[order.flight].any_seat;
        let cabin = |seat: &str| small && seat.starts_with('1') && seat.len() == 2;
        let anywhere = rng.chance(50);
        let mut moves = Vec::new();
        let mut used: Vec<&str> = Vec::new();
        for from in order.seats.iter().take(1 + rng.below(2)) {
            let targets: Vec<&str> = hot
                .iter()
                .copied()
                .filter(|seat| !order.seats.iter().any(|own| own == seat))
                .filter(|seat| anywhere || cabin(seat) == cabin(from))
                .collect();
            let to = *rng.pick(if targets.is_empty() { hot } else { &targets });
            if used.contains(&to) {
                continue;
            }
            used.push(to);
            moves.push(json!({"from": from, "to": to}));
        }
        if moves.is_empty() {
            // An any-seat order: a seat it may or may not hold.
            let (from, to) = (*rng.pick(hot), *rng.pick(hot));
            moves.push(json!({"from": from, "to": to}));
        }
        let id = self.request_id(rng, order.flight);
        let mut event = sample("seat-change-requested.json");
        event["detail"] = json!({"changeId": id, "orderId": order.id,
                                 "flightId": self.flights[order.flight].id, "moves": moves});
        self.envelope(rng, event)
    }

    /// `AircraftChanged` of a small flight: one of four layouts, each losing or gaining a
    /// few hot seats; now and then under a change id sent before (a conflict). `None` for
    /// the demo flight, whose orders name seats the layouts do not have.
    pub fn aircraft_changed(&mut self, rng: &mut Rng, flight: usize) -> Option<Value> {
        if !self.flights[flight].any_seat {
            return None;
        }
        let layouts = [
            json!([{"cabin": "BUSINESS", "rows": "1", "letters": "AC"},
                   {"cabin": "ECONOMY", "rows": "2-3", "letters": "ABC"}]),
            json!([{"cabin": "BUSINESS", "rows": "1", "letters": "AC"},
                   {"cabin": "ECONOMY", "rows": "2", "letters": "ABC"}]),
            json!([{"cabin": "BUSINESS", "rows": "1", "letters": "A"},
                   {"cabin": "ECONOMY", "rows": "2-4", "letters": "ABC"}]),
            json!([{"cabin": "BUSINESS", "rows": "1", "letters": "AC"},
                   {"cabin": "ECONOMY", "rows": "2-3", "letters": "AB"}]),
        ];
        let earlier: Vec<Uuid> = self
            .aircraft_changes
            .iter()
            .filter(|(_, at)| *at == flight)
            .map(|(id, _)| *id)
            .collect();
        let id = if !earlier.is_empty() && rng.chance(100) {
            *rng.pick(&earlier)
        } else {
            let id = rng.uuid();
            self.aircraft_changes.push_back((id, flight));
            if self.aircraft_changes.len() > REMEMBERED_ORDERS {
                self.aircraft_changes.pop_front();
            }
            id
        };
        let mut event = sample("aircraft-changed.json");
        event["detail"] = json!({"changeId": id, "flightId": self.flights[flight].id,
                                 "cabins": rng.pick(&layouts).clone()});
        Some(self.envelope(rng, event))
    }

    /// `SeatUnblockRequested` for hot seats of a flight (blocked or not).
    pub fn unblock(&mut self, rng: &mut Rng, flight: usize) -> Value {
        let id = self.request_id(rng, flight);
        let mut event = sample("seat-unblock-requested.json");
        event["detail"] = json!({"requestId": id, "flightId": self.flights[flight].id,
                                 "seats": self.some_seats(rng, flight)});
        self.envelope(rng, event)
    }

    /// A new request id, or (one time in twenty) one sent before for the same flight.
    fn request_id(&mut self, rng: &mut Rng, flight: usize) -> Uuid {
        let earlier: Vec<Uuid> = self
            .requests
            .iter()
            .filter(|(_, at)| *at == flight)
            .map(|(id, _)| *id)
            .collect();
        if !earlier.is_empty() && rng.chance(50) {
            return *rng.pick(&earlier);
        }
        let id = rng.uuid();
        self.requests.push_back((id, flight));
        if self.requests.len() > REMEMBERED_ORDERS {
            self.requests.pop_front();
        }
        id
    }

    pub fn housekeeping(&mut self, rng: &mut Rng) -> Value {
        let mut event = sample("scheduled.json");
        event["id"] = json!(rng.uuid());
        event
    }
}

/// `GET /flights/{id}/seats`, as the function URL delivers it.
pub fn get_seats(flight: Uuid) -> Value {
    let mut request = sample("get-seats-request.json");
    let path = format!("/flights/{flight}/seats");
    request["rawPath"] = json!(path);
    request["requestContext"]["http"]["path"] = json!(path);
    request
}

/// A short description of an incoming event for the step log.
pub fn describe(event: &Value, world: &World) -> String {
    let detail = &event["detail"];
    let flight = |id: &Value| {
        id.as_str()
            .and_then(|raw| Uuid::parse_str(raw).ok())
            .and_then(|id| world.flight_index(id))
            .map(|i| world.flights[i].label.clone())
            .unwrap_or_else(|| format!("{id}"))
    };
    let order = short(&detail["orderId"]);
    match event["detail-type"].as_str() {
        Some("OrderCreated") if detail.get("seatCount").is_some() => format!(
            "OrderCreated {order} {} any {} {}",
            flight(&detail["flightId"]),
            detail["seatCount"],
            detail["cabin"].as_str().unwrap_or("-")
        ),
        Some("OrderCreated") => format!(
            "OrderCreated {order} {} {}",
            flight(&detail["flightId"]),
            detail["seats"]
        ),
        Some("FlightScheduled") => format!("FlightScheduled {}", flight(&detail["flightId"])),
        Some("FlightCancelled") => format!(
            "FlightCancelled {} reason {:?}",
            flight(&detail["flightId"]),
            detail["reason"]
        ),
        Some("Scheduled Event") => "housekeeping".into(),
        Some("AircraftChanged") => format!(
            "AircraftChanged {} {} {}",
            short(&detail["changeId"]),
            flight(&detail["flightId"]),
            detail["cabins"]
        ),
        Some("SeatChangeRequested") => format!(
            "SeatChangeRequested {} {order} {} {}",
            short(&detail["changeId"]),
            flight(&detail["flightId"]),
            detail["moves"]
        ),
        Some(kind @ ("SeatBlockRequested" | "SeatUnblockRequested")) => format!(
            "{kind} {} {} {} {}",
            short(&detail["requestId"]),
            flight(&detail["flightId"]),
            detail["seats"],
            detail["reason"].as_str().unwrap_or("")
        ),
        Some(kind) => format!(
            "{kind} {order} {:?}",
            detail.get("paymentId").or(detail.get("reason"))
        ),
        None => format!(
            "GET {}",
            event["rawPath"]
                .as_str()
                .unwrap_or("?")
                .replace("/seats", "")
        ),
    }
}

/// The first 8 characters of a uuid, enough to follow an order through the log.
pub fn short(id: &Value) -> String {
    id.as_str().unwrap_or("?").chars().take(8).collect()
}
