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
pub use response::{encode_response, encode_response_into, ResponseMeta};

use crate::response::Response;
use serde_json::json;

/// A request the server refuses before it reaches the application. The connection is closed
/// after the answer: after a framing error nothing that follows can be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {message}")]
pub struct HttpError {
    pub status: u16,
    pub message: String,
    /// How Gunicorn words this error in its `Invalid request from ip=…: …` log line, where it
    /// differs from `message` (which the client gets in the JSON answer).
    pub log_message: Option<String>,
}

impl HttpError {
    pub fn new(status: u16, message: &str) -> Self {
        HttpError {
            status,
            message: message.to_string(),
            log_message: None,
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

    /// Sets the Gunicorn wording of the log line.
    pub fn logged_as(mut self, text: String) -> Self {
        self.log_message = Some(text);
        self
    }

    /// What the error log says about it.
    pub fn log_text(&self) -> &str {
        self.log_message.as_deref().unwrap_or(&self.message)
    }

    pub fn to_response(&self) -> Response {
        Response::error(self.status, &self.message, json!({ "status": self.status }))
    }
}
