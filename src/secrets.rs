//! Everything that stands between a credential, or text clawft did not
//! write, and a person's screen: the [`Secret`] type, redaction of every
//! credential a provider is configured with, one-line messages, and the
//! terminal filter for model text.

use std::fmt;
use std::io::{self, Write};

/// An API key or token. It has no `Display`, and `Debug` hides it, so it
/// cannot slip into a message by accident; [`Secret::expose`] is the one
/// way out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `other` in time that depends only on the lengths, so a
    /// client guessing a token learns nothing from how fast it is refused.
    pub fn matches(&self, other: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), other.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, &x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Secrets shorter than this are not searched for: a placeholder key such
/// as `x` would otherwise cut ordinary words apart.
pub const MIN_REDACTED_BYTES: usize = 8;

/// The longest message kept from outside text, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Whether a header carries a credential, judging by its name.
pub fn looks_secret(header: &str) -> bool {
    let name = header.to_ascii_lowercase();
    ["auth", "key", "token", "secret", "cookie", "password"]
        .iter()
        .any(|w| name.contains(w))
}

/// A header's value fit to show a person: "(hidden)" for a credential.
pub fn shown_value<'a>(header: &str, value: &'a str) -> &'a str {
    if looks_secret(header) {
        "(hidden)"
    } else {
        value
    }
}

/// The strings to remove from outside text before anyone sees it: an API
/// key and the values of credential headers (`api-key`, `Authorization`),
/// also without their scheme (`Bearer `), so an echo of either part is
/// caught.
#[derive(Debug, Clone, Default)]
pub struct Redactions(Vec<Secret>);

impl Redactions {
    pub fn new() -> Redactions {
        Redactions::default()
    }

    /// Adds a secret, and each of its space-separated parts. They are
    /// kept longest first, so a key is removed whole before any part of it.
    pub fn add(&mut self, secret: &str) {
        let parts = std::iter::once(secret).chain(secret.split_whitespace());
        for part in parts {
            let part = part.trim();
            if part.len() >= MIN_REDACTED_BYTES && !self.0.iter().any(|s| s.expose() == part) {
                let at = self
                    .0
                    .iter()
                    .position(|s| s.expose().len() < part.len())
                    .unwrap_or(self.0.len());
                self.0.insert(at, Secret::new(part));
            }
        }
    }

    /// Adds a header's value if its name says it is a credential.
    pub fn add_header(&mut self, name: &str, value: &str) {
        if looks_secret(name) {
            self.add(value);
        }
    }

    /// `text` with every copy of every secret replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.0 {
            if out.contains(secret.expose()) {
                out = out.replace(secret.expose(), "[redacted]");
            }
        }
        out
    }

    /// Outside text (a provider's message) made fit for one stderr line:
    /// secrets removed first, then control characters (newlines, terminal
    /// escapes) turned into spaces, then cut to [`MAX_MESSAGE_CHARS`]. In
    /// that order, so a cut can never leave part of a secret behind.
    pub fn one_line(&self, text: &str) -> String {
        one_line(&self.redact(text))
    }
}

/// Text made one printable line: control characters become spaces, and it
/// is cut to [`MAX_MESSAGE_CHARS`]. Redact secrets before calling this.
pub fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    match flat.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat.to_owned(),
    }
}

/// A name from outside (a session key) for a message: in quotes, on one
/// line. (`{:?}` would do, at the cost of Unicode tables in the wasm build.)
pub fn quoted(name: &str) -> String {
    format!("'{}'", one_line(name))
}

/// A writer for a terminal that passes model text through with its
/// colours and emphasis (SGR sequences, `ESC [ ... m`) but drops every other
/// escape or control sequence: no clipboard writes (OSC 52), no hyperlinks
/// (OSC 8), no cursor movement, no carriage returns that overwrite a line.
/// A sequence split across writes is held until it is complete. When the
/// output is not a terminal, use the writer itself: a pipe gets exactly
/// what the model said.
pub struct Terminal<W: Write> {
    inner: W,
    state: Escape,
    /// The SGR sequence being read, kept only while it may still be one.
    sgr: String,
}

/// Where the filter is inside an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [` (a control sequence).
    Csi,
    /// Inside a string sequence (OSC, DCS, APC, PM, SOS), until its end.
    Text,
    /// ESC inside a string sequence: `\` ends it.
    TextEsc,
    /// After `ESC` and an intermediate byte: the next byte ends it.
    Final,
}

/// An SGR sequence longer than this is not plain formatting.
const MAX_SGR: usize = 64;

impl<W: Write> Terminal<W> {
    pub fn new(inner: W) -> Terminal<W> {
        Terminal {
            inner,
            state: Escape::None,
            sgr: String::new(),
        }
    }

    /// The text with what a terminal must not see removed.
    fn filter(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match self.state {
                Escape::None => match c {
                    '\u{1b}' => self.state = Escape::Start,
                    // C1 controls: 8-bit CSI, OSC, DCS and the other string starts.
                    '\u{9b}' => {
                        // Never kept: without the 7-bit `ESC [` it is not plain.
                        self.sgr.clear();
                        self.state = Escape::Csi;
                    }
                    '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => {
                        self.state = Escape::Text
                    }
                    '\n' | '\t' => out.push(c),
                    c if c.is_control() => {}
                    c => out.push(c),
                },
                Escape::Start => {
                    self.state = match c {
                        '[' => {
                            self.sgr.clear();
                            self.sgr.push_str("\u{1b}[");
                            Escape::Csi
                        }
                        ']' | 'P' | 'X' | '^' | '_' => Escape::Text,
                        ' '..='/' => Escape::Final,
                        _ => Escape::None,
                    }
                }
                Escape::Final => self.state = Escape::None,
                Escape::Csi => match c {
                    '0'..='?' | ' '..='/' => {
                        if self.sgr.len() < MAX_SGR {
                            self.sgr.push(c);
                        } else {
                            self.sgr.clear();
                        }
                    }
                    '@'..='~' => {
                        let plain = self.sgr.starts_with("\u{1b}[")
                            && self.sgr[2..]
                                .chars()
                                .all(|p| p.is_ascii_digit() || p == ';');
                        if c == 'm' && plain {
                            out.push_str(&self.sgr);
                            out.push('m');
                        }
                        self.sgr.clear();
                        self.state = Escape::None;
                    }
                    // Not a control sequence after all: drop what was read.
                    _ => {
                        self.sgr.clear();
                        self.state = Escape::None;
                        if !c.is_control() {
                            out.push(c);
                        }
                    }
                },
                Escape::Text => match c {
                    '\u{7}' | '\u{9c}' => self.state = Escape::None,
                    '\u{1b}' => self.state = Escape::TextEsc,
                    _ => {}
                },
                Escape::TextEsc => {
                    self.state = if c == '\\' {
                        Escape::None
                    } else {
                        Escape::Text
                    }
                }
            }
        }
        out
    }
}

impl<W: Write> Write for Terminal<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let shown = self.filter(&text);
        self.inner.write_all(shown.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(pieces: &[&str]) -> String {
        let mut screen = Terminal::new(Vec::new());
        for piece in pieces {
            screen.write_all(piece.as_bytes()).unwrap();
        }
        String::from_utf8(screen.inner).unwrap()
    }

    #[test]
    fn redaction_covers_keys_and_credential_headers_but_not_short_values() {
        let mut r = Redactions::new();
        r.add("sk-123456789");
        r.add_header("api-key", "azure-secret-42");
        r.add_header("Authorization", "Bearer tok-abcdefgh");
        r.add_header("X-Title", "clawft-is-a-title");
        r.add("x"); // a placeholder key
        let text = "key sk-123456789, azure-secret-42, tok-abcdefgh and Bearer tok-abcdefgh; \
                    mistral x clawft-is-a-title";
        assert_eq!(
            r.redact(text),
            "key [redacted], [redacted], [redacted] and [redacted]; mistral x clawft-is-a-title"
        );
        assert_eq!(Redactions::new().redact("nothing"), "nothing");
    }

    #[test]
    fn one_line_redacts_before_it_cuts() {
        let key = "KEYKEYKEY-distinctive";
        let mut r = Redactions::new();
        r.add(key);
        for prefix in [490, 495, 499] {
            let text = format!("{} {key}", "x".repeat(prefix));
            assert!(!r.one_line(&text).contains(&key[..6]));
        }
        assert_eq!(one_line("a\nb\u{1b}[31mc"), "a b [31mc");
    }

    #[test]
    fn secrets_compare_in_full() {
        let s = Secret::new("token-1");
        assert!(s.matches("token-1"));
        for other in ["token-2", "token-", "token-11", "", "TOKEN-1"] {
            assert!(!s.matches(other), "{other}");
        }
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn the_terminal_keeps_colours_and_drops_every_other_escape() {
        // Plain formatting stays.
        assert_eq!(
            shown(&["\u{1b}[1;31mred\u{1b}[0m"]),
            "\u{1b}[1;31mred\u{1b}[0m"
        );
        // Clipboard writes, hyperlinks, titles: gone, with their payload.
        assert_eq!(
            shown(&["a\u{1b}]52;c;ZXZpbA==\u{7}b"]),
            "ab",
            "OSC 52 with BEL"
        );
        assert_eq!(
            shown(&["\u{1b}]8;;https://evil\u{1b}\\link\u{1b}]8;;\u{1b}\\"]),
            "link"
        );
        assert_eq!(shown(&["\u{9d}0;title\u{9c}x"]), "x", "8-bit OSC");
        // Cursor movement, screen clearing, carriage returns, bells.
        assert_eq!(shown(&["a\u{1b}[2J\u{1b}[Hb\rc\u{7}\u{8}"]), "abc");
        assert_eq!(shown(&["\u{9b}31mx"]), "x", "8-bit CSI is never kept");
        assert_eq!(shown(&["\u{1b}(Bq"]), "q");
        // Split anywhere, the same result.
        let whole = "ok \u{1b}[32mgreen\u{1b}]52;c;AAAA\u{1b}\\ done\n\ttab";
        let expected = "ok \u{1b}[32mgreen done\n\ttab";
        for cut in 1..whole.len() {
            if whole.is_char_boundary(cut) {
                assert_eq!(
                    shown(&[&whole[..cut], &whole[cut..]]),
                    expected,
                    "cut {cut}"
                );
            }
        }
        // Ordinary text, all of Unicode, unchanged.
        assert_eq!(shown(&["héllo 世界 😀"]), "héllo 世界 😀");
    }
}
