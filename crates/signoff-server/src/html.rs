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
    page_at(status, title, signed_in, body, None)
}

/// A page that answers a form post with the form again (an error to correct): `url` is the
/// address of the form's own page, which the browser's address bar is set to (`demo.js`), so
/// that a reload asks for the page rather than posting the form again.
pub fn page_at(status: StatusCode, title: &str, signed_in: Option<&str>, body: &str, url: Option<&str>) -> Response {
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
        "<script src=\"/demo.js\" defer></script>"
    };
    let watch = if signed_in.is_some() { " data-signoff-watch" } else { "" };
    let url = url.map(|u| format!(" data-url=\"{}\"", esc(u))).unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"{watch}{url}><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · signoff</title><link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/demo.css\">{script}</head>\
         <body><header><a class=\"brand\" href=\"/\">signoff</a>{nav}</header><main>{body}</main>\
         <footer>signoff demo · sessions that really end</footer></body></html>\n",
        title = esc(title),
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// A notice box, if there is something to say (as a sentence: a capital first, a full stop
/// last). An error is an alert, read out at once.
pub fn notice(kind: &str, text: Option<&str>) -> String {
    let role = if kind == "error" { "alert" } else { "status" };
    text.map(|t| format!("<p class=\"notice {kind}\" role=\"{role}\">{}</p>", esc(&crate::error_page::sentence(t))))
        .unwrap_or_default()
}

/// A hidden CSRF field for forms of a signed-in page.
pub fn csrf_field(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">", esc(token))
}

/// A page whose form leads on, through redirects, to `target` (an app's redirect or
/// post-logout URI): browsers apply the page's `form-action` to every redirect of the form's
/// submission, so the policy names that origin beside this server's own.
pub fn with_form_target(res: Response, target: &str) -> Response {
    let Ok(url) = url::Url::parse(target) else { return res };
    let origin = url.origin();
    if !origin.is_tuple() {
        return res;
    }
    let origin = origin.ascii_serialization();
    amend_csp(res, |policy| policy.replace("form-action 'self'", &format!("form-action 'self' {origin}")))
}

/// A page that frames `origins` (front-channel logout): the policy lets frames load from them,
/// and from nowhere else.
pub fn with_frames(res: Response, origins: &[&str]) -> Response {
    if origins.is_empty() {
        return res;
    }
    let list = origins.join(" ");
    amend_csp(res, |policy| format!("{policy}; frame-src {list}"))
}

/// Sets the page's policy to `change` of the one it has (the edge's for HTML, unless a handler
/// set its own): the edge keeps a policy a handler set on HTML.
fn amend_csp(mut res: Response, change: impl FnOnce(&str) -> String) -> Response {
    let current = res
        .headers()
        .get(axum::http::header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(crate::edge::CSP_HTML);
    if let Ok(value) = axum::http::HeaderValue::from_str(&change(current)) {
        res.headers_mut().insert(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
    res
}
