//! A response as a value: status, content type, extra headers and body. The application builds
//! them; the HTTP layer frames and writes them. Neither knows the other: both use this.

use serde_json::{json, Value};

/// A response as the application sees it: status, JSON body and any extra headers.
/// The HTTP layer adds framing and the standard headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub const JSON: &str = "application/json";

impl Response {
    pub fn json(status: u16, value: &Value) -> Self {
        let mut body = serde_json::to_vec(value).expect("JSON values always serialise");
        body.push(b'\n');
        Response {
            status,
            content_type: JSON,
            headers: Vec::new(),
            body,
        }
    }

    /// An answer that is not JSON (the metrics).
    pub fn text(status: u16, content_type: &'static str, body: String) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }

    /// An error answer: `{"error": message, ...extra}`.
    pub fn error(status: u16, message: &str, extra: Value) -> Self {
        let mut value = json!({ "error": message });
        if let (Some(map), Value::Object(more)) = (value.as_object_mut(), extra) {
            map.extend(more);
        }
        Response::json(status, &value)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
