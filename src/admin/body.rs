//! Reading an admin request's JSON body field by field, so a bad value is refused with the
//! field's name (`rules.max_score: expected a whole number`), and an unknown field is refused
//! rather than ignored.

use podium_actors::domain::error::ClientError;
use serde_json::{Map, Value};

/// The fields of one JSON object, `prefix` naming where it sits (`rules.`).
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: &'static str,
}

fn bad(prefix: &str, name: &str, expected: &str) -> ClientError {
    ClientError::BadMessage(format!("{prefix}{name}: expected {expected}"))
}

impl<'a> Fields<'a> {
    /// The body's top-level object.
    pub fn of(body: &'a Value) -> Result<Self, ClientError> {
        let map = body
            .as_object()
            .ok_or_else(|| ClientError::BadMessage("the body must be a JSON object".into()))?;
        Ok(Self { map, prefix: "" })
    }

    /// Parses raw bytes into a value whose fields can then be read.
    pub fn parse(raw: &[u8]) -> Result<Value, ClientError> {
        serde_json::from_slice(raw).map_err(|e| ClientError::BadMessage(format!("body: {e}")))
    }

    /// The request's body: a JSON object whose fields are all in `known`; no body at all is
    /// an empty object when `optional` (a body of only whitespace is not JSON: 400, as
    /// schemathesis found).
    pub async fn read(
        payload: actix_web::web::Payload,
        known: &[&str],
        optional: bool,
    ) -> Result<Value, ClientError> {
        let raw = crate::routes::read_body(payload).await?;
        let value = if optional && raw.is_empty() {
            Value::Object(Map::new())
        } else {
            Self::parse(&raw)?
        };
        Fields::of(&value)?.only(known)?;
        Ok(value)
    }

    /// Refuses any field not in `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), ClientError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ClientError::BadMessage(format!(
                "{}{k}: unknown field (known: {})",
                self.prefix,
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// A nested object, if present.
    pub fn object(
        &self,
        name: &str,
        prefix: &'static str,
    ) -> Result<Option<Fields<'a>>, ClientError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields { map, prefix })),
            Some(_) => Err(bad(self.prefix, name, "an object")),
        }
    }

    pub fn whole(&self, name: &str) -> Result<Option<u64>, ClientError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(self.prefix, name, "a whole number")),
        }
    }

    /// A whole number or null (to clear it): absent is `None`, null `Some(None)`.
    pub fn whole_or_null(&self, name: &str) -> Result<Option<Option<u64>>, ClientError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => v
                .as_u64()
                .map(|n| Some(Some(n)))
                .ok_or_else(|| bad(self.prefix, name, "a whole number or null")),
        }
    }

    /// A number or null (to clear it): absent is `None`, null `Some(None)`.
    pub fn number_or_null(&self, name: &str) -> Result<Option<Option<f64>>, ClientError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => v
                .as_f64()
                .map(|n| Some(Some(n)))
                .ok_or_else(|| bad(self.prefix, name, "a number or null")),
        }
    }

    /// A field as any value, for a nested shape read by serde.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    pub fn text(&self, name: &str) -> Result<Option<String>, ClientError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(self.prefix, name, "a string")),
        }
    }

    /// Text that may also be null (to clear it): absent is `None`, null `Some(None)`.
    pub fn text_or_null(&self, name: &str) -> Result<Option<Option<String>>, ClientError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(_) => Err(bad(self.prefix, name, "a string or null")),
        }
    }

    /// An RFC 3339 time or null, as Unix ms: absent is `None`, null `Some(None)`.
    pub fn time(&self, name: &str) -> Result<Option<Option<u64>>, ClientError> {
        use time::format_description::well_known::Rfc3339;
        let expected = "an RFC 3339 time such as 2026-12-24T18:00:00Z, or null";
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => {
                let t = time::OffsetDateTime::parse(s, &Rfc3339)
                    .map_err(|_| bad(self.prefix, name, expected))?;
                let ms = t.unix_timestamp_nanos() / 1_000_000;
                u64::try_from(ms)
                    .map(|ms| Some(Some(ms)))
                    .map_err(|_| bad(self.prefix, name, "a time after 1970"))
            }
            Some(_) => Err(bad(self.prefix, name, expected)),
        }
    }

    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, ClientError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| bad(self.prefix, name, "a list of strings")),
            Some(_) => Err(bad(self.prefix, name, "a list of strings")),
        }
    }
}
