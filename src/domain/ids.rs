use std::fmt;

use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses the canonical hyphenated form; anything else (braces, urn, 1 MB strings) is refused.
            pub fn parse(raw: &str) -> Option<Self> {
                // The hyphenated form is exactly 36 characters; refusing longer input first
                // keeps absurd strings cheap.
                if raw.len() != 36 {
                    return None;
                }
                Uuid::try_parse(raw).ok().map(Self)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }
    };
}

uuid_id!(
    /// The order service's id of an order; also our idempotency key.
    OrderId
);
uuid_id!(
    /// A flight in the inventory.
    FlightId
);
uuid_id!(
    /// The id of a request of operations (`requestId`) or of a seat change (`changeId`):
    /// its idempotency key, as an order id is an order's.
    RequestId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canonical_uuid_parses() {
        let id = OrderId::parse("b6f7c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d");
        assert_eq!(
            id.map(|id| id.to_string()).as_deref(),
            Some("b6f7c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d")
        );
    }

    #[test]
    fn other_uuid_spellings_and_garbage_are_refused() {
        for raw in [
            "",
            "not-a-uuid",
            "b6f7c1d23e4f4a5b8c6d7e8f9a0b1c2d",
            "{b6f7c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d}",
            "urn:uuid:b6f7c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
            "b6f7c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2x",
        ] {
            assert_eq!(FlightId::parse(raw), None, "{raw:?} should be refused");
        }
        assert_eq!(FlightId::parse(&"a".repeat(1 << 20)), None);
    }
}
