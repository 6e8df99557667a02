//! The audit's findings and the three ways they are shown: a table on stdout, JSON, and a
//! self-contained HTML page.

use crate::replay::Exchange;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Warn => "warn",
            Self::Skip => "skip",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
}

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub status: Status,
    pub severity: Severity,
    /// What was seen, in a sentence or two.
    pub detail: String,
    /// Where the pass comes from the browser rather than the app, what the browser did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser_note: Option<String>,
    /// The requests and answers that prove it.
    pub evidence: Vec<Exchange>,
    /// The fix, in a sentence (for a failure or a warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<&'static str>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub tool: String,
    pub started_at: String,
    pub checks: Vec<Check>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    pub skip: usize,
}

impl Report {
    pub fn new(target: String, started_at: String, checks: Vec<Check>) -> Self {
        let mut summary = Summary::default();
        for c in &checks {
            match c.status {
                Status::Pass => summary.pass += 1,
                Status::Fail => summary.fail += 1,
                Status::Warn => summary.warn += 1,
                Status::Skip => summary.skip += 1,
            }
        }
        Self { target, tool: format!("signoff audit {}", env!("CARGO_PKG_VERSION")), started_at, checks, summary }
    }

    pub fn failed(&self) -> bool {
        self.summary.fail > 0
    }

    /// The table printed on stdout (what the app put in it, such as storage keys, without
    /// control characters, so a page cannot drive the terminal).
    pub fn table(&self) -> String {
        self.raw_table().chars().filter(|c| *c == '\n' || !c.is_control()).collect()
    }

    fn raw_table(&self) -> String {
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(2).max(5);
        let mut out = format!(
            "signoff audit of {}\n\n{:<width$}  {:<6}  {:<8}  detail\n",
            self.target, "check", "status", "severity"
        );
        for c in &self.checks {
            let severity = if matches!(c.status, Status::Fail | Status::Warn) { severity(c.severity) } else { "" };
            out.push_str(&format!("{:<width$}  {:<6}  {:<8}  {}\n", c.id, c.status.as_str(), severity, c.detail));
            if let Some(note) = &c.browser_note {
                out.push_str(&format!("{:<width$}  {:<6}  {:<8}  note: {note}\n", "", "", ""));
            }
            if let (Some(fix), Status::Fail | Status::Warn) = (c.fix, c.status) {
                out.push_str(&format!("{:<width$}  {:<6}  {:<8}  fix: {fix}\n", "", "", ""));
            }
        }
        let Summary { pass, fail, warn, skip } = self.summary;
        out.push_str(&format!("\n{pass} passed, {fail} failed, {warn} warnings, {skip} skipped\n"));
        out
    }

    /// A page that stands alone (no script, no outside resources), readable on a phone.
    pub fn html(&self) -> String {
        let mut rows = String::new();
        for c in &self.checks {
            let mut evidence = String::new();
            for e in &c.evidence {
                evidence.push_str(&format!("<li><code>{}</code>", esc(&e.line())));
                let headers: Vec<String> = e
                    .sent
                    .iter()
                    .map(|h| format!("&gt; {}: {}", esc(&h.name), esc(&h.value)))
                    .chain(e.received.iter().map(|h| format!("&lt; {}: {}", esc(&h.name), esc(&h.value))))
                    .collect();
                if !headers.is_empty() {
                    evidence.push_str(&format!("<pre>{}</pre>", headers.join("\n")));
                }
                evidence.push_str("</li>");
            }
            rows.push_str(&format!(
                "<section class=\"{status}\"><h2><span class=\"badge\">{status}</span> {title} <small>{id}{sev}</small></h2>\
                 <p>{detail}</p>{note}{fix}{evidence}</section>\n",
                status = c.status.as_str(),
                title = esc(c.title),
                id = c.id,
                sev = if matches!(c.status, Status::Fail | Status::Warn) {
                    format!(" · {} severity", severity(c.severity))
                } else {
                    String::new()
                },
                detail = esc(&c.detail),
                note = c.browser_note.as_ref().map_or(String::new(), |n| format!("<p class=\"note\">Note: {}</p>", esc(n))),
                fix = match (c.fix, c.status) {
                    (Some(f), Status::Fail | Status::Warn) => format!("<p class=\"fix\"><strong>Fix:</strong> {}</p>", esc(f)),
                    _ => String::new(),
                },
                evidence = if evidence.is_empty() { String::new() } else { format!("<details><summary>Evidence</summary><ul>{evidence}</ul></details>") },
            ));
        }
        let Summary { pass, fail, warn, skip } = self.summary;
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Logout audit of {target}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 52rem; padding: 1rem; color: #1b1b1b; }}
h1 {{ font-size: 1.4rem; overflow-wrap: anywhere; }} h2 {{ font-size: 1.05rem; margin: 0 0 .3rem; }}
section {{ border-left: 4px solid #999; padding: .4rem .8rem; margin: .8rem 0; background: #f7f7f7; }}
section.fail {{ border-color: #c62828; }} section.pass {{ border-color: #2e7d32; }} section.warn {{ border-color: #ef8f00; }}
.badge {{ text-transform: uppercase; font-size: .75rem; padding: .1rem .4rem; border-radius: .2rem; background: #ddd; }}
.fail .badge {{ background: #c62828; color: #fff; }} .pass .badge {{ background: #2e7d32; color: #fff; }} .warn .badge {{ background: #ef8f00; }}
small {{ color: #555; font-weight: normal; }} pre, code {{ white-space: pre-wrap; overflow-wrap: anywhere; font-size: .85rem; }}
p {{ margin: .3rem 0; overflow-wrap: anywhere; }} .note {{ color: #444; }}
</style></head>
<body><h1>Logout audit of {target}</h1>
<p>{pass} passed, {fail} failed, {warn} warnings, {skip} skipped · {tool} · {started}</p>
{rows}</body></html>
"#,
            target = esc(&self.target),
            tool = esc(&self.tool),
            started = esc(&self.started_at),
        )
    }
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
