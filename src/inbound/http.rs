//! HTTP requests in payload format 2.0, as API Gateway HTTP APIs and Lambda function URLs
//! send them. The path is read from `rawPath`, so it works with or without
//! `pathParameters`; header names arrive in lower case.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::domain::FlightId;
use crate::domain::text;

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `/flights/{flightId}/seats`.
    Seats(FlightId),
    /// `/flights/{something}/seats` where something is not a flight id.
    MalformedFlightId,
    /// Any other path.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// Upper case, as sent.
    pub method: String,
    pub resource: Resource,
    /// The entity tags of `If-None-Match`, as sent; none if the header could not be a list
    /// of entity tags (a control character, absurd length), so the full answer is sent.
    pub if_none_match: Option<String>,
}

/// Far more than any list of our entity tags.
const MAX_IF_NONE_MATCH_LEN: usize = 4096;

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "rawPath")]
    raw_path: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(rename = "requestContext")]
    request_context: Context,
}

#[derive(Deserialize)]
struct Context {
    http: Method,
}

#[derive(Deserialize)]
struct Method {
    method: String,
}

/// Whether the payload has the shape of an HTTP request (and so is not an EventBridge event).
pub fn is_http(payload: &Value) -> bool {
    payload
        .get("requestContext")
        .and_then(|context| context.get("http"))
        .is_some()
}

/// The request, or `None` if it lacks the parts every HTTP request has.
pub fn parse(payload: Value) -> Option<HttpRequest> {
    let event: Event = serde_json::from_value(payload).ok()?;
    let segments: Vec<&str> = event
        .raw_path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    let resource = match segments.as_slice() {
        ["flights", id, "seats"] => FlightId::parse(id)
            .map(Resource::Seats)
            .unwrap_or(Resource::MalformedFlightId),
        _ => Resource::Unknown,
    };
    Some(HttpRequest {
        method: event.request_context.http.method.to_ascii_uppercase(),
        resource,
        if_none_match: event
            .headers
            .get("if-none-match")
            .and_then(|tags| text::identifier(tags, MAX_IF_NONE_MATCH_LEN))
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FLIGHT: &str = "3f1c6a52-8d2e-4b7a-9c41-0e5d2a7b9f10";

    fn request(method: &str, path: &str) -> Value {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {"if-none-match": "\"abc\""},
            "requestContext": {"http": {"method": method, "path": path}}
        })
    }

    #[test]
    fn the_seats_of_a_flight_are_read_from_the_raw_path() {
        let parsed = parse(request("GET", &format!("/flights/{FLIGHT}/seats")));

        assert_eq!(
            parsed.map(|r| (r.method, r.resource, r.if_none_match)),
            Some((
                "GET".into(),
                Resource::Seats(FlightId::parse(FLIGHT).unwrap_or_else(|| unreachable!())),
                Some("\"abc\"".into())
            ))
        );
    }

    #[test]
    fn a_malformed_id_and_other_paths_are_told_apart() {
        let malformed = parse(request("GET", "/flights/AI101/seats")).map(|r| r.resource);
        let other = parse(request("GET", "/flights")).map(|r| r.resource);

        assert_eq!(malformed, Some(Resource::MalformedFlightId));
        assert_eq!(other, Some(Resource::Unknown));
    }

    #[test]
    fn an_if_none_match_with_control_characters_is_ignored() {
        for tags in [
            "\"abc\"\u{0}",
            "\"abc\"\r\nx-forged: 1",
            &"\"a\",".repeat(2_000),
        ] {
            let mut request = request("GET", &format!("/flights/{FLIGHT}/seats"));
            request["headers"]["if-none-match"] = json!(tags);

            assert_eq!(
                parse(request).map(|r| r.if_none_match),
                Some(None),
                "{tags:?}"
            );
        }
    }

    #[test]
    fn an_http_request_is_told_from_an_eventbridge_event() {
        assert!(is_http(&request("HEAD", "/")));
        assert!(!is_http(
            &json!({"detail-type": "OrderCreated", "detail": {}})
        ));
        assert_eq!(parse(json!({"requestContext": {"http": {}}})), None);
    }
}
