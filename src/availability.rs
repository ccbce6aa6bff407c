//! Seat availability anyone can read: a flight's seat map with counts per cabin, read in
//! one call, answered over HTTP with an `ETag` (a matching `If-None-Match` gets `304`),
//! and drawn in a terminal by `aeronode-inventory seatmap`. Nothing about orders or
//! passengers is in it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{DbError, Function, Session};
use crate::domain::{BlockReason, Cabin, FlightId, FlightStatus, SeatNumber, SeatStatus};
use crate::inbound::{HttpRequest, Resource};

const READ_AVAILABILITY: Function = Function::named("inventory_read_availability");

/// How long a client or cache may reuse an answer without asking again.
pub const MAX_AGE_SECONDS: u32 = 5;

/// Names the ETags: a v5 UUID of the answer and the flight's seat versions.
const ETAG_NAMESPACE: Uuid = Uuid::from_u128(0x2b7e_1516_28ae_4d2a_9f3c_5e6d_7a8b_9c0d);

/// A flight's seat map, as read.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatMap {
    pub flight_id: Uuid,
    pub flight_code: String,
    pub origin_iata: String,
    pub destination_iata: String,
    pub departure_utc: DateTime<Utc>,
    pub arrival_utc: DateTime<Utc>,
    pub status: FlightStatus,
    /// Moves whenever any seat of the flight changes.
    #[serde(skip_serializing)]
    pub version_sum: i64,
    /// In seat-map order: rows, then letters.
    pub seats: Vec<MapSeat>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MapSeat {
    pub seat_number: SeatNumber,
    pub cabin: Cabin,
    /// A seat whose hold has lapsed is `AVAILABLE`: a reservation would take it.
    pub status: SeatStatus,
    /// Why operations blocked it, for a `BLOCKED` seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_reason: Option<BlockReason>,
}

/// The seats of one cabin by state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CabinCount {
    pub cabin: Cabin,
    pub available: usize,
    pub locked: usize,
    pub booked: usize,
    pub blocked: usize,
}

impl SeatMap {
    /// Counts per cabin, front cabin first.
    pub fn cabins(&self) -> Vec<CabinCount> {
        let order = |cabin: Cabin| match cabin {
            Cabin::First => 0,
            Cabin::Business => 1,
            Cabin::PremiumEconomy => 2,
            Cabin::Economy => 3,
        };
        let mut counts: BTreeMap<u8, CabinCount> = BTreeMap::new();
        for seat in &self.seats {
            let count = counts
                .entry(order(seat.cabin))
                .or_insert_with(|| CabinCount {
                    cabin: seat.cabin,
                    available: 0,
                    locked: 0,
                    booked: 0,
                    blocked: 0,
                });
            match seat.status {
                SeatStatus::Available => count.available += 1,
                SeatStatus::Locked => count.locked += 1,
                SeatStatus::Booked => count.booked += 1,
                SeatStatus::Blocked => count.blocked += 1,
            }
        }
        counts.into_values().collect()
    }
}

/// The body of a `200`: the flight, its cabins, its seats.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Availability<'a> {
    #[serde(flatten)]
    map: &'a SeatMap,
    cabins: Vec<CabinCount>,
}

/// The seat map of `flight_id`, or `None` if there is no such flight.
pub async fn read(
    session: &mut Session<'_>,
    flight_id: FlightId,
) -> Result<Option<SeatMap>, DbError> {
    session
        .read(
            READ_AVAILABILITY,
            &serde_json::json!({"flightId": flight_id.as_uuid()}),
        )
        .await
}

/// An HTTP answer, in the shape API Gateway and function URLs take from Lambda.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpResponse {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub is_base64_encoded: bool,
}

impl HttpResponse {
    fn json(status_code: u16, body: String) -> Self {
        let mut headers = BTreeMap::new();
        headers.insert("content-type".into(), "application/json".into());
        Self {
            status_code,
            headers,
            body: Some(body),
            is_base64_encoded: false,
        }
    }

    /// An error, with its `message` in a JSON body.
    pub fn error(status_code: u16, message: &str) -> Self {
        Self::json(
            status_code,
            serde_json::json!({ "message": message }).to_string(),
        )
    }

    fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// Answers a request: reads the seat map when there is one to read.
pub async fn answer(
    session: &mut Session<'_>,
    request: &HttpRequest,
) -> Result<HttpResponse, DbError> {
    if let Some(refusal) = refuse(request) {
        return Ok(refusal);
    }
    let Resource::Seats(flight_id) = request.resource else {
        return Ok(HttpResponse::error(404, "no such resource"));
    };
    let map = read(session, flight_id).await?;
    Ok(respond(request, flight_id, map.as_ref()))
}

/// The answers that need no read: a method other than GET or HEAD, a path that is not a
/// seat map, a malformed flight id.
fn refuse(request: &HttpRequest) -> Option<HttpResponse> {
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        return Some(
            HttpResponse::error(405, "only GET and HEAD are allowed").with("allow", "GET, HEAD"),
        );
    }
    match request.resource {
        Resource::Seats(_) => None,
        Resource::MalformedFlightId => Some(HttpResponse::error(
            400,
            "the flight id must be a UUID, as in /flights/3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10/seats",
        )),
        Resource::Unknown => Some(HttpResponse::error(
            404,
            "no such resource; seat maps are at /flights/{flightId}/seats",
        )),
    }
}

/// The answer to a request for a seat map, once read.
pub fn respond(request: &HttpRequest, flight_id: FlightId, map: Option<&SeatMap>) -> HttpResponse {
    let Some(map) = map else {
        return HttpResponse::error(404, &format!("no flight {flight_id}"));
    };
    let body = match serde_json::to_string(&Availability {
        map,
        cabins: map.cabins(),
    }) {
        Ok(body) => body,
        Err(_) => return HttpResponse::error(500, "the seat map could not be written"),
    };
    let tag = etag(&body, map.version_sum);
    let cache = format!("max-age={MAX_AGE_SECONDS}");
    if request
        .if_none_match
        .as_deref()
        .is_some_and(|tags| matches(tags, &tag))
    {
        return HttpResponse {
            status_code: 304,
            headers: BTreeMap::new(),
            body: None,
            is_base64_encoded: false,
        }
        .with("etag", tag)
        .with("cache-control", cache);
    }
    let response = HttpResponse::json(200, body)
        .with("etag", tag)
        .with("cache-control", cache);
    if request.method == "HEAD" {
        return HttpResponse {
            body: None,
            ..response
        };
    }
    response
}

fn etag(body: &str, version_sum: i64) -> String {
    let tag = Uuid::new_v5(&ETAG_NAMESPACE, format!("{version_sum}\n{body}").as_bytes());
    format!("\"{}\"", tag.simple())
}

/// `If-None-Match`: `*`, or a list of tags, weak or strong (compared weakly, as for GET).
fn matches(header: &str, tag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLIGHT: &str = "3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10";

    fn flight() -> FlightId {
        FlightId::parse(FLIGHT).unwrap_or_else(|| unreachable!())
    }

    fn seat(number: &str, cabin: Cabin, status: SeatStatus) -> MapSeat {
        MapSeat {
            seat_number: SeatNumber::parse(number).unwrap_or_else(|| unreachable!()),
            cabin,
            status,
            block_reason: None,
        }
    }

    fn map(version_sum: i64) -> SeatMap {
        SeatMap {
            flight_id: flight().as_uuid(),
            flight_code: "AI101".into(),
            origin_iata: "DEL".into(),
            destination_iata: "LHR".into(),
            departure_utc: DateTime::UNIX_EPOCH,
            arrival_utc: DateTime::UNIX_EPOCH,
            status: FlightStatus::Scheduled,
            version_sum,
            seats: vec![
                seat("1A", Cabin::Business, SeatStatus::Booked),
                seat("1B", Cabin::Business, SeatStatus::Available),
                seat("9A", Cabin::Economy, SeatStatus::Locked),
            ],
        }
    }

    fn get(if_none_match: Option<&str>) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            resource: Resource::Seats(flight()),
            if_none_match: if_none_match.map(str::to_owned),
        }
    }

    #[test]
    fn a_seat_map_is_counted_per_cabin_front_first() {
        assert_eq!(
            map(1).cabins(),
            vec![
                CabinCount {
                    cabin: Cabin::Business,
                    available: 1,
                    locked: 0,
                    booked: 1,
                    blocked: 0
                },
                CabinCount {
                    cabin: Cabin::Economy,
                    available: 0,
                    locked: 1,
                    booked: 0,
                    blocked: 0
                },
            ]
        );
    }

    #[test]
    fn a_matching_etag_is_answered_304_and_a_changed_seat_changes_it() {
        let first = respond(&get(None), flight(), Some(&map(3)));
        let tag = first.headers.get("etag").cloned().unwrap_or_default();

        let again = respond(&get(Some(&tag)), flight(), Some(&map(3)));
        let weak = respond(
            &get(Some(&format!("\"x\", W/{tag}"))),
            flight(),
            Some(&map(3)),
        );
        let changed = respond(&get(Some(&tag)), flight(), Some(&map(4)));

        assert_eq!(first.status_code, 200);
        assert_eq!(
            first.headers.get("cache-control").map(String::as_str),
            Some("max-age=5")
        );
        assert_eq!((again.status_code, again.body), (304, None));
        assert_eq!(weak.status_code, 304);
        assert_eq!(changed.status_code, 200);
        assert_ne!(changed.headers.get("etag"), Some(&tag));
    }

    #[test]
    fn other_methods_paths_and_ids_get_their_own_answers() {
        let post = HttpRequest {
            method: "POST".into(),
            ..get(None)
        };
        let malformed = HttpRequest {
            resource: Resource::MalformedFlightId,
            ..get(None)
        };
        let head = HttpRequest {
            method: "HEAD".into(),
            ..get(None)
        };

        let refused = refuse(&post);
        assert_eq!(refused.as_ref().map(|r| r.status_code), Some(405));
        assert_eq!(
            refused
                .and_then(|r| r.headers.get("allow").cloned())
                .as_deref(),
            Some("GET, HEAD")
        );
        assert_eq!(refuse(&malformed).map(|r| r.status_code), Some(400));
        assert_eq!(respond(&get(None), flight(), None).status_code, 404);
        let head = respond(&head, flight(), Some(&map(1)));
        assert_eq!((head.status_code, head.body.is_none()), (200, true));
        assert!(head.headers.contains_key("etag"));
    }
}
