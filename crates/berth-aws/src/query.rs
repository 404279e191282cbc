//! The AWS Query protocol (STS): form-encoded requests, XML responses and errors.
//!
//! Written by hand rather than with an XML crate: the responses are a few flat elements
//! whose text is escaped here, and nothing XML is ever parsed.

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};

/// `Action=` of a form-encoded body.
pub fn action(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, _)| k == "Action").map(|(_, v)| v.into_owned()).filter(|a| !a.is_empty())
}

/// A parameter of a form-encoded body.
pub fn param(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Escapes text for an XML element.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<{Action}Response><{Action}Result>…</…><ResponseMetadata><RequestId>` in `namespace`.
pub fn response(namespace: &str, action: &str, fields: &[(&str, &str)], request_id: &str) -> Response {
    let mut result = String::new();
    for (k, v) in fields {
        result.push_str(&format!("    <{k}>{}</{k}>\n", escape(v)));
    }
    let body = format!(
        "<{action}Response xmlns=\"{namespace}\">\n  <{action}Result>\n{result}  </{action}Result>\n  \
         <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n",
        escape(request_id)
    );
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// An `<ErrorResponse>` as the Query APIs answer (`Sender` faults for the client's errors).
pub fn error(namespace: &str, status: StatusCode, code: &str, message: &str, request_id: &str) -> Response {
    let fault = if status.is_server_error() { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"{namespace}\">\n  <Error>\n    <Type>{fault}</Type>\n    <Code>{}</Code>\n    \
         <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        escape(code),
        escape(message),
        escape(request_id)
    );
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_escape() {
        assert_eq!(action(b"Action=GetCallerIdentity&Version=2011-06-15").as_deref(), Some("GetCallerIdentity"));
        assert_eq!(action(b"Version=2011-06-15"), None);
        assert_eq!(param(b"Action=X&Version=2011-06-15", "Version").as_deref(), Some("2011-06-15"));
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
