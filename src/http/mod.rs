//! The HTTP/1.1 layer: request-head parsing with Gunicorn's limits (on `httparse`), body framing,
//! and response writing. It knows nothing of sockets: the worker feeds it bytes and sends what it
//! returns, which keeps every rule here testable on plain byte strings.

pub mod body;
pub mod parse;
pub mod response;

pub use body::BodyReader;
pub use parse::{
    parse_complete_head, parse_head, BodyFraming, HeadScan, HttpLimits, RequestHead, Version,
    DEFAULT_HEAD_LIMIT,
};
pub use response::{encode_response, ResponseMeta};

use crate::app::Response;
use serde_json::json;

/// A request the server refuses before it reaches the application. The connection is closed
/// after the answer: after a framing error nothing that follows can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub message: String,
}

impl HttpError {
    pub fn new(status: u16, message: &str) -> Self {
        HttpError {
            status,
            message: message.to_string(),
        }
    }

    pub fn bad_request(message: &str) -> Self {
        HttpError::new(400, message)
    }

    pub fn header_too_large(message: &str) -> Self {
        HttpError::new(431, message)
    }

    pub fn version_not_supported() -> Self {
        HttpError::new(505, "HTTP version not supported")
    }

    pub fn to_response(&self) -> Response {
        Response::error(self.status, &self.message, json!({ "status": self.status }))
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}
