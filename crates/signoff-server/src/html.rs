//! Server-rendered HTML for the demo site: one page layout and escaping.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Escapes text for element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page. `body` must already be escaped HTML. `signed_in` is the e-mail shown in the
/// header, if any; such pages also load `/signoff.js`, which takes the page to `/login` the
/// moment its session ends anywhere.
pub fn page(status: StatusCode, title: &str, signed_in: Option<&str>, body: &str) -> Response {
    let nav = match signed_in {
        Some(email) => format!(
            "<nav><a href=\"/app\">App</a><a href=\"/app/sessions\">Devices</a><a href=\"/app/security\">Security</a>\
             <span class=\"who\">{}</span></nav>",
            esc(email)
        ),
        None => "<nav><a href=\"/login\">Sign in</a><a href=\"/register\">Create account</a></nav>".to_owned(),
    };
    let script = if signed_in.is_some() {
        "<script src=\"/signoff.js\" defer></script><script src=\"/demo.js\" defer></script>"
    } else {
        ""
    };
    let watch = if signed_in.is_some() { " data-signoff-watch" } else { "" };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"{watch}><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · signoff</title><link rel=\"stylesheet\" href=\"/demo.css\">{script}</head>\
         <body><header><a class=\"brand\" href=\"/\">signoff</a>{nav}</header><main>{body}</main>\
         <footer>signoff demo · sessions that really end</footer></body></html>\n",
        title = esc(title),
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// A notice box, if there is something to say.
pub fn notice(kind: &str, text: Option<&str>) -> String {
    text.map(|t| format!("<p class=\"notice {kind}\" role=\"status\">{}</p>", esc(t))).unwrap_or_default()
}

/// A hidden CSRF field for forms of a signed-in page.
pub fn csrf_field(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">", esc(token))
}
