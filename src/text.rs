//! Text that came from outside — agent and skill names anyone with admin rights can edit,
//! API messages, URLs from the config — made safe to show to a person.
//!
//! [`printable`] is the one escaping rule for every human output (tables, `show`, `history`,
//! `diff`, `rollback`, the human log): a control character could otherwise move the cursor,
//! recolour or clear a terminal, or end a log line and forge the next one, and a bidi
//! override could make `Bob` read as something else. JSON output needs none of this: serde
//! escapes control characters, and a JSON reader shows bidi marks as data.
//!
//! [`redact_userinfo`] and [`redact_after_host`] keep credentials that live in URLs out of
//! errors, logs and `check-config`.

use std::borrow::Cow;
use std::fmt;

/// Bidi controls: embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069), the
/// left-to-right and right-to-left marks (U+200E, U+200F) and the Arabic letter mark (U+061C).
/// They reorder what is shown without being seen themselves.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Whether `c` is shown escaped: every control character (C0, DEL, C1 — ESC, CR, LF, NUL,
/// tab …), the line and paragraph separators U+2028/U+2029 (some viewers break lines on
/// them), and the bidi controls.
pub fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_bidi_control(c)
}

/// `text` with [`needs_escape`] characters written as Rust-style escapes (`\n`, `\r`, `\t`,
/// `\0`, `\x1b`, `\u{202e}`); borrowed, with no allocation, when there is nothing to escape.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if needs_escape(c) && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`printable`] as a `Display` value, for log fields (`agent = %Printable(&name)`) and
/// padded table columns (it honours width and alignment).
#[derive(Debug, Clone, Copy)]
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&printable(self.0))
    }
}

/// `text` with the `user:password@` part of every URL in it shown as `***@`. Textual, so it
/// also covers URLs that do not parse and URLs inside longer messages.
pub fn redact_userinfo(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut done = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let authority_len = text[start..]
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(text.len() - start);
        let authority = &text[start..start + authority_len];
        if let Some(at) = authority.rfind('@') {
            out.push_str(&text[done..start]);
            out.push_str("***");
            done = start + at;
        }
        from = start + authority_len;
    }
    if done == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

/// Only `scheme://host[:port]/…` of `url`. For webhooks whose path is the secret (a Slack
/// incoming-webhook URL is its own credential) nothing after the host is shown, and neither
/// is any `user:password@`. Unparsable text is hidden entirely.
pub fn redact_after_host(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("");
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            let bare =
                parsed.path() == "/" && parsed.query().is_none() && parsed.fragment().is_none();
            let rest = if bare { "/" } else { "/…" };
            format!("{}://{host}{port}{rest}", parsed.scheme())
        }
        Err(_) if url.is_empty() => String::new(),
        Err(_) => "(not a URL; not shown)".into(),
    }
}

/// `text` cut to at most `max` characters, the last of them `…` when anything was cut (table
/// columns, workitem names and descriptions, which have length limits).
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for s in [
            "Rosa Patel",
            "Zoë O'Brien",
            "Техподдержка",
            "客服",
            "Sales / EMEA",
            "",
        ] {
            assert!(matches!(printable(s), Cow::Borrowed(t) if t == s), "{s}");
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\x1b[31mb"), "a\\x1b[31mb");
        assert_eq!(printable("a\nFORGED"), "a\\nFORGED");
        assert_eq!(printable("a\rb\tc\0d\x7f"), "a\\rb\\tc\\0d\\x7f");
        assert_eq!(printable("c1\u{9b}x"), "c1\\u{9b}x");
        assert_eq!(printable("l\u{2028}p\u{2029}"), "l\\u{2028}p\\u{2029}");
    }

    #[test]
    fn every_bidi_control_is_escaped() {
        let bidi = [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ];
        for c in bidi {
            let shown = printable(&format!("x{c}y")).into_owned();
            assert_eq!(shown, format!("x\\u{{{:x}}}y", c as u32));
            assert!(!shown.contains(c));
        }
    }

    #[test]
    fn printable_pads_like_a_string() {
        assert_eq!(format!("[{:<6}]", Printable("a\nb")), "[a\\nb  ]");
        assert_eq!(format!("[{:>4}]", Printable("ab")), "[  ab]");
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("http://user:PASSWORD@127.0.0.1:1/oauth/token"),
            "http://***@127.0.0.1:1/oauth/token"
        );
        assert_eq!(
            redact_userinfo("https://login.mypurecloud.ie/oauth/token"),
            "https://login.mypurecloud.ie/oauth/token"
        );
        assert_eq!(redact_userinfo("not a url"), "not a url");
        assert_eq!(
            redact_userinfo("cannot reach http://u:p%40ss@h:99999/x and https://a:b@c/ d@e"),
            "cannot reach http://***@h:99999/x and https://***@c/ d@e"
        );
        assert_eq!(redact_userinfo("https://h/path@x"), "https://h/path@x");
    }

    #[test]
    fn webhook_urls_keep_only_scheme_and_host() {
        assert_eq!(
            redact_after_host("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_after_host("http://u:p@127.0.0.1:9/hook?token=XXXXSECRET"),
            "http://127.0.0.1:9/…"
        );
        assert_eq!(
            redact_after_host("https://example.com/"),
            "https://example.com/"
        );
        assert_eq!(
            redact_after_host("https://example.com"),
            "https://example.com/"
        );
        assert_eq!(redact_after_host(""), "");
        assert!(!redact_after_host("::XXXXSECRET").contains("XXXXSECRET"));
    }
}
