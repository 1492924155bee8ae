//! JSON, read and written by hand.
//!
//! Why not serde: its deserializer machinery (generic visitors, one copy per
//! field type, `Content` buffering for untagged enums) was measured at about
//! 79 KB of the 430 KB wasm component, and serde_json's writer, compact and
//! pretty, another ~9 KB gzipped. clawft needs one small tree instead:
//! numbers stay as their text (no float parsing or formatting tables),
//! members remember where their values start (so a config error can name its
//! line and column), and nesting is refused past 128 levels.
//! `fuzz/fuzz_targets/json.rs` checks reading against `serde_json` and that
//! what is written reads back the same.

use std::fmt;

/// The deepest nesting accepted (serde_json's default limit too).
pub const MAX_DEPTH: usize = 128;

/// A JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    /// Members in document order; a repeated key keeps every copy, and
    /// [`Json::get`] finds the last, as most JSON readers do.
    Object(Vec<Member>),
}

/// A JSON number exactly as written. It is made only by reading JSON, by
/// [`Number::parse`] or from an integer, so it always matches the grammar
/// and what is written is always valid JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number(String);

impl Number {
    /// The text if it is a JSON number (`-? int frac? exp?`), else `None`.
    pub fn parse(text: &str) -> Option<Number> {
        let mut parser = Parser::new(text.as_bytes());
        match parser.number() {
            Ok(number) if parser.at == text.len() => Some(number),
            _ => None,
        }
    }

    /// The number as written, e.g. `0.7`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A non-negative whole number written without fraction or exponent.
    pub fn as_u64(&self) -> Option<u64> {
        if self.0.bytes().all(|b| b.is_ascii_digit()) {
            self.0.parse().ok()
        } else {
            None
        }
    }

    /// The value as [`number_value`] reads it.
    pub fn value(&self) -> f64 {
        number_value(&self.0).unwrap_or(f64::NAN)
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<u64> for Number {
    fn from(n: u64) -> Number {
        Number(n.to_string())
    }
}

/// One `"key": value` of an object. Equality ignores `offset`: where a
/// value stood in some text is not part of the value.
#[derive(Debug, Clone)]
pub struct Member {
    pub key: String,
    pub value: Json,
    /// Byte offset of the value in the text it was read from (see
    /// [`position`]); 0 for members built in code.
    pub offset: usize,
}

impl PartialEq for Member {
    fn eq(&self, other: &Member) -> bool {
        self.key == other.key && self.value == other.value
    }
}

impl Eq for Member {}

impl Member {
    pub fn new(key: &str, value: impl Into<Json>) -> Member {
        Member {
            key: key.to_owned(),
            value: value.into(),
            offset: 0,
        }
    }
}

/// Builds an object from `(key, value)` pairs, in order.
pub fn object<const N: usize>(members: [(&str, Json); N]) -> Json {
    Json::Object(
        members
            .into_iter()
            .map(|(k, v)| Member::new(k, v))
            .collect(),
    )
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::String(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::String(s)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Json {
        Json::Number(n.into())
    }
}

impl From<Number> for Json {
    fn from(n: Number) -> Json {
        Json::Number(n)
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(value: Option<T>) -> Json {
        value.map_or(Json::Null, Into::into)
    }
}

impl From<Vec<Json>> for Json {
    fn from(items: Vec<Json>) -> Json {
        Json::Array(items)
    }
}

/// Why text is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub reason: &'static str,
    /// 1-based.
    pub line: usize,
    /// 1-based, in bytes.
    pub column: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.reason
        )
    }
}

impl std::error::Error for JsonError {}

/// The 1-based line and column of byte `offset` in `text`.
pub fn position(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (line, offset - line_start + 1)
}

/// Parses one JSON value; only whitespace may follow it.
pub fn parse(text: &[u8]) -> Result<Json, JsonError> {
    Parser::new(text).document()
}

/// Parses one event of a streamed reply, where a proxy that splits text by
/// UTF-16 code units may have cut a surrogate pair in two: an unpaired
/// `\uD800`-`\uDFFF` escape is kept as a stand-in character (see
/// [`unpaired_surrogate`]) for [`crate::provider`] to join with its other
/// half from the next event. Everything else is as strict as [`parse`].
pub fn parse_piece(text: &[u8]) -> Result<Json, JsonError> {
    let mut parser = Parser::new(text);
    parser.keep_unpaired = true;
    parser.document()
}

/// The first of the 2,048 stand-ins for unpaired surrogates: code units
/// U+D800..U+DFFF map in order onto U+10F800..U+10FFFF, the end of the last
/// private-use plane, which no model writes in practice.
const STAND_IN_BASE: u32 = 0x10_F800;

/// The UTF-16 code unit a stand-in from [`parse_piece`] stands for.
pub fn unpaired_surrogate(c: char) -> Option<u16> {
    let code = u32::from(c);
    (code >= STAND_IN_BASE).then(|| (code - STAND_IN_BASE + 0xD800) as u16)
}

impl Json {
    /// The member `key` of an object (the last, if it repeats).
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.member(key).map(|m| &m.value)
    }

    /// The member `key` of an object, with its position.
    pub fn member(&self, key: &str) -> Option<&Member> {
        match self {
            Json::Object(members) => members.iter().rev().find(|m| m.key == key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[Member]> {
        match self {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// A non-negative whole number written without fraction or exponent.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// Any number, as [`number_value`] reads it.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => number_value(n.as_str()),
            _ => None,
        }
    }

    /// Compact JSON text: a request body, a session line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None);
        out
    }

    /// JSON text indented by two spaces, for people to read.
    pub fn to_pretty_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(0));
        out
    }

    /// Writes the value; `indent` is the current depth when pretty.
    fn write(&self, out: &mut String, indent: Option<usize>) {
        let newline = |out: &mut String, depth: usize| {
            out.push('\n');
            (0..depth).for_each(|_| out.push_str("  "));
        };
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n.as_str()),
            Json::String(s) => write_string(out, s),
            Json::Array(items) if items.is_empty() => out.push_str("[]"),
            Json::Object(members) if members.is_empty() => out.push_str("{}"),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if let Some(depth) = indent {
                        newline(out, depth + 1);
                    }
                    item.write(out, indent.map(|d| d + 1));
                }
                if let Some(depth) = indent {
                    newline(out, depth);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, m) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if let Some(depth) = indent {
                        newline(out, depth + 1);
                    }
                    write_string(out, &m.key);
                    out.push_str(if indent.is_some() { ": " } else { ":" });
                    m.value.write(out, indent.map(|d| d + 1));
                }
                if let Some(depth) = indent {
                    newline(out, depth);
                }
                out.push('}');
            }
        }
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "true or false",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// A Rust type a JSON value can be read as, for [`Json::field`] and
/// [`Json::required`]: the one place that says which JSON fits which type.
pub trait FromJson: Sized {
    /// What the value must be, in words ("a string", "a whole number").
    const WANTED: &'static str;
    fn from_json(value: &Json) -> Option<Self>;
}

impl FromJson for String {
    const WANTED: &'static str = "a string";
    fn from_json(value: &Json) -> Option<String> {
        value.as_str().map(str::to_owned)
    }
}

impl FromJson for bool {
    const WANTED: &'static str = "true or false";
    fn from_json(value: &Json) -> Option<bool> {
        value.as_bool()
    }
}

impl FromJson for u64 {
    const WANTED: &'static str = "a whole number";
    fn from_json(value: &Json) -> Option<u64> {
        value.as_u64()
    }
}

impl FromJson for Vec<String> {
    const WANTED: &'static str = "a list of strings";
    fn from_json(value: &Json) -> Option<Vec<String>> {
        value.as_array()?.iter().map(String::from_json).collect()
    }
}

impl FromJson for Json {
    const WANTED: &'static str = "a value";
    fn from_json(value: &Json) -> Option<Json> {
        Some(value.clone())
    }
}

/// A member that is missing or of the wrong kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    /// What it must be; `None` when it is missing.
    pub wanted: Option<&'static str>,
    /// What it is (see [`Json::kind`]).
    pub got: &'static str,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.wanted {
            None => write!(f, "'{}' is required", self.field),
            Some(wanted) => write!(f, "'{}' must be {wanted}, not {}", self.field, self.got),
        }
    }
}

impl std::error::Error for FieldError {}

impl Json {
    /// Member `key` read as a `T`; absent or null is `Ok(None)`.
    pub fn field<T: FromJson>(&self, key: &str) -> Result<Option<T>, FieldError> {
        match self.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(value) => T::from_json(value).map(Some).ok_or(FieldError {
                field: key.to_owned(),
                wanted: Some(T::WANTED),
                got: value.kind(),
            }),
        }
    }

    /// Member `key` read as a `T`, which must be there.
    pub fn required<T: FromJson>(&self, key: &str) -> Result<T, FieldError> {
        self.field(key)?.ok_or(FieldError {
            field: key.to_owned(),
            wanted: None,
            got: "missing",
        })
    }
}

/// A JSON string literal: quotes, backslashes and control characters
/// escaped, everything else (all of Unicode) as it is.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(HEX[n >> 4] as char);
                out.push(HEX[n & 15] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The value of JSON number text (already checked against the grammar) as
/// the nearest `f64` this simple conversion gives: exact for the short
/// decimals a config holds (0.7, 1e-3), without a full float parser.
pub fn number_value(text: &str) -> Option<f64> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    // Past ±400 an f64 is 0 or infinite anyway; clamping keeps the digit
    // arithmetic below from overflowing.
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (
            &text[..i],
            text[i + 1..].parse::<i64>().ok()?.clamp(-400, 400) as i32,
        ),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut digits: u64 = 0;
    let mut scale = exponent;
    for (i, b) in whole.bytes().chain(fraction.bytes()).enumerate() {
        if digits < 1 << 53 {
            digits = digits * 10 + u64::from(b - b'0');
            if i >= whole.len() {
                scale = scale.saturating_sub(1);
            }
        } else if i < whole.len() {
            // Digits past f64's precision still count in the integer part.
            scale = scale.saturating_add(1);
        }
    }
    let value = digits as f64 * 10f64.powi(scale);
    Some(if negative { -value } else { value })
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    /// Keep unpaired surrogates as stand-ins instead of refusing them.
    keep_unpaired: bool,
}

impl<'a> Parser<'a> {
    fn new(text: &'a [u8]) -> Parser<'a> {
        Parser {
            text,
            at: 0,
            keep_unpaired: false,
        }
    }

    /// One value and nothing after it but whitespace.
    fn document(&mut self) -> Result<Json, JsonError> {
        self.skip_space();
        let value = self.value(0)?;
        self.skip_space();
        if self.at < self.text.len() {
            return Err(self.fail("unexpected characters after the value"));
        }
        Ok(value)
    }

    /// The code for an unpaired surrogate: an error, or its stand-in.
    fn unpaired(&self, unit: u32) -> Result<u32, JsonError> {
        if self.keep_unpaired {
            Ok(STAND_IN_BASE + unit - 0xD800)
        } else {
            Err(self.fail("a lone surrogate in a \\u escape"))
        }
    }

    fn fail(&self, reason: &'static str) -> JsonError {
        let (line, column) = position(self.text, self.at);
        JsonError {
            reason,
            line,
            column,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.fail(reason))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        match self.peek() {
            None => Err(self.fail("the text ends where a value should be")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.word(b"true", Json::Bool(true)),
            Some(b'f') => self.word(b"false", Json::Bool(false)),
            Some(b'n') => self.word(b"null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Json::Number),
            Some(_) => Err(self.fail("expected a value")),
        }
    }

    fn word(&mut self, word: &[u8], value: Json) -> Result<Json, JsonError> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.fail("expected a value"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, JsonError> {
        let mut members = Vec::new();
        if self.open(depth, b'}')? {
            return Ok(Json::Object(members));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.fail("expected a key in double quotes"));
            }
            let key = self.string()?;
            self.skip_space();
            self.expect(b':', "expected ':' after the key")?;
            self.skip_space();
            let offset = self.at;
            let value = self.value(depth)?;
            members.push(Member { key, value, offset });
            if self.closed(b'}', "expected ',' or '}'")? {
                return Ok(Json::Object(members));
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, JsonError> {
        let mut items = Vec::new();
        if self.open(depth, b']')? {
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            if self.closed(b']', "expected ',' or ']'")? {
                return Ok(Json::Array(items));
            }
        }
    }

    /// Enters an object or array at its opening byte: refuses nesting past
    /// [`MAX_DEPTH`], and says whether it is empty (its `close` consumed).
    fn open(&mut self, depth: usize, close: u8) -> Result<bool, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.fail("nested more than 128 levels deep"));
        }
        self.at += 1;
        self.skip_space();
        let empty = self.peek() == Some(close);
        if empty {
            self.at += 1;
        }
        Ok(empty)
    }

    /// After an item: true at `close` (consumed), false after a comma.
    fn closed(&mut self, close: u8, reason: &'static str) -> Result<bool, JsonError> {
        self.skip_space();
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                self.skip_space();
                Ok(false)
            }
            Some(b) if b == close => {
                self.at += 1;
                Ok(true)
            }
            _ => Err(self.fail(reason)),
        }
    }

    /// A string, from its opening quote; escapes decoded, UTF-8 checked.
    fn string(&mut self) -> Result<String, JsonError> {
        self.at += 1; // "
        let mut out = Vec::new();
        loop {
            let run_start = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.extend_from_slice(&self.text[run_start..self.at]);
            match self.peek() {
                None => return Err(self.fail("the text ends inside a string")),
                Some(b'"') => {
                    self.at += 1;
                    return String::from_utf8(out).map_err(|_| {
                        self.at = run_start;
                        self.fail("a string is not valid UTF-8")
                    });
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.fail("a control character inside a string")),
            }
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let byte = match self.peek() {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'b') => 0x08,
            Some(b'f') => 0x0c,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                self.at += 1;
                let first = self.hex4()?;
                let code = match first {
                    0xd800..=0xdbff => {
                        let rest = &self.text[self.at..];
                        let low = rest.starts_with(b"\\u")
                            && rest.get(2..6).is_some_and(|d| {
                                d.iter().all(u8::is_ascii_hexdigit)
                                    && matches!(d[0], b'd' | b'D')
                                    && matches!(d[1], b'c'..=b'f' | b'C'..=b'F')
                            });
                        if low {
                            self.at += 2;
                            let second = self.hex4()?;
                            0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
                        } else {
                            self.unpaired(first)?
                        }
                    }
                    0xdc00..=0xdfff => self.unpaired(first)?,
                    _ => first,
                };
                let c = char::from_u32(code).expect("surrogates were handled above");
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => return Err(self.fail("an unknown escape in a string")),
        };
        self.at += 1;
        out.push(byte);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
            .ok_or_else(|| self.fail("expected four hex digits after \\u"))?;
        let value = digits.iter().fold(0, |n, &d| {
            n * 16 + (d as char).to_digit(16).expect("checked")
        });
        self.at += 4;
        Ok(value)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<Number, JsonError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.fail("a '-' without digits")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.fail("a number needs digits after '.'"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.fail("a number needs digits in its exponent"));
            }
            self.digits();
        }
        let text = std::str::from_utf8(&self.text[start..self.at]).expect("ASCII digits");
        Ok(Number(text.to_owned()))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Json {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> JsonError {
        parse(text.as_bytes()).expect_err(text)
    }

    #[test]
    fn values_of_every_kind() {
        let v = ok(r#" {"a": [1, -2.5e3, true, false, null], "b": {"c": "d"}, "a": "last"} "#);
        assert_eq!(v.get("a").and_then(Json::as_str), Some("last"));
        assert_eq!(
            v.get("b").and_then(|b| b.get("c")).and_then(Json::as_str),
            Some("d")
        );
        let Json::Object(members) = &v else { panic!() };
        let first = members[0].value.as_array().unwrap();
        assert_eq!(first[0].as_u64(), Some(1));
        assert_eq!(first[1].as_f64(), Some(-2500.0));
        assert_eq!(first[2].as_bool(), Some(true));
        assert!(first[4].is_null());
        assert_eq!(ok("[]"), Json::Array(vec![]));
        assert_eq!(ok("{}"), Json::Object(vec![]));
        assert_eq!(ok("0"), Json::from(0u64));
    }

    #[test]
    fn strings_decode_every_escape() {
        let v = ok(r#""q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 日本""#);
        assert_eq!(v.as_str(), Some("q\" b\\ s/ \u{8}\u{c}\n\r\t é 😀 日本"));
    }

    #[test]
    fn numbers_read_as_asked() {
        assert_eq!(ok("4096").as_u64(), Some(4096));
        assert_eq!(ok("1.0").as_u64(), None);
        assert_eq!(ok("-1").as_u64(), None);
        assert_eq!(ok("99999999999999999999999").as_u64(), None);
        for (text, expected) in [("0.7", 0.7), ("2", 2.0), ("1e-3", 0.001), ("-0.25E1", -2.5)] {
            let got = ok(text).as_f64().unwrap();
            assert!((got - expected).abs() < 1e-12, "{text}: {got}");
        }
        assert_eq!(ok("\"7\"").as_f64(), None);
    }

    #[test]
    fn broken_text_is_refused_with_its_position() {
        for (text, reason) in [
            ("", "the text ends where a value should be"),
            ("{", "expected a key in double quotes"),
            ("{\"a\" 1}", "expected ':' after the key"),
            ("{\"a\":1,}", "expected a key in double quotes"),
            ("[1,]", "expected a value"),
            ("[1 2]", "expected ',' or ']'"),
            ("01", "unexpected characters after the value"),
            ("1.", "a number needs digits after '.'"),
            ("-", "a '-' without digits"),
            ("1e+", "a number needs digits in its exponent"),
            ("tru", "expected a value"),
            ("\"abc", "the text ends inside a string"),
            ("\"a\nb\"", "a control character inside a string"),
            ("\"\\x\"", "an unknown escape in a string"),
            ("\"\\u12\"", "expected four hex digits after \\u"),
            ("\"\\ud800\"", "a lone surrogate in a \\u escape"),
            ("\"\\udc00\"", "a lone surrogate in a \\u escape"),
            ("\u{feff}{}", "expected a value"),
        ] {
            assert_eq!(err(text).reason, reason, "{text:?}");
        }
        assert_eq!(
            parse(b"\"\xff\"").unwrap_err().reason,
            "a string is not valid UTF-8"
        );
        let e = err("{\n  \"agents\": {,}\n}");
        assert_eq!((e.line, e.column), (2, 14));
        assert_eq!(
            e.to_string(),
            "line 2, column 14: expected a key in double quotes"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(deep(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            parse(deep(MAX_DEPTH + 1).as_bytes()).unwrap_err().reason,
            "nested more than 128 levels deep"
        );
        assert!(parse(deep(100_000).as_bytes()).is_err());
    }

    #[test]
    fn what_is_written_reads_back() {
        let value = object([
            ("s", "quote \" slash \\ nl \n tab \t bell \u{7} é 😀".into()),
            ("n", Number::parse("-1.5e3").unwrap().into()),
            ("b", true.into()),
            ("none", None::<String>.into()),
            (
                "list",
                vec![Json::from(7u64), object([]), Json::Array(vec![])].into(),
            ),
        ]);
        let compact = value.to_text();
        assert_eq!(
            compact,
            r#"{"s":"quote \" slash \\ nl \n tab \t bell \u0007 é 😀","n":-1.5e3,"b":true,"none":null,"list":[7,{},[]]}"#
        );
        assert_eq!(parse(compact.as_bytes()).unwrap(), value);
        let pretty = value.to_pretty_text();
        assert!(pretty.starts_with("{\n  \"s\": \"quote"), "{pretty}");
        assert!(
            pretty.contains("\"list\": [\n    7,\n    {},\n    []\n  ]\n}"),
            "{pretty}"
        );
        assert_eq!(parse(pretty.as_bytes()).unwrap(), value);
    }

    #[test]
    fn numbers_past_f64_range_keep_their_text() {
        // Found by fuzzing: serde_json refuses these, we keep them as written.
        let v = ok("2e514");
        assert_eq!(v.to_text(), "2e514");
        assert_eq!(v.as_f64(), Some(f64::INFINITY));
        assert_eq!(v.as_u64(), None);
        // Found in review: an extreme exponent overflowed the scale.
        assert_eq!(ok("0.5e-2147483648").as_f64(), Some(0.0));
        assert_eq!(ok("5e99999999999999999999").as_f64(), None);
        assert_eq!(ok("1e400").as_f64(), Some(f64::INFINITY));
    }

    #[test]
    fn numbers_cannot_be_made_invalid() {
        for good in ["0", "-0", "7", "-1.5e3", "2E+10", "0.25"] {
            assert_eq!(Number::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "NaN", "inf", "", "-", "01", "1.", ".5", "1e", "1 ", " 1", "0x10", "+1",
        ] {
            assert_eq!(Number::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Json::from(42u64).to_text(), "42");
    }

    #[test]
    fn a_surrogate_pair_split_between_pieces_is_kept_for_joining() {
        // Strict parsing refuses the halves; piece parsing keeps stand-ins.
        assert!(parse(br#""\ud83d""#).is_err());
        let high = parse_piece(br#""ab\ud83d""#).unwrap();
        let low = parse_piece(br#""\uDE00cd""#).unwrap();
        let high = high.as_str().unwrap();
        let low = low.as_str().unwrap();
        assert_eq!(
            high.chars().last().and_then(unpaired_surrogate),
            Some(0xd83d)
        );
        assert_eq!(
            low.chars().next().and_then(unpaired_surrogate),
            Some(0xde00)
        );
        // A whole pair, and a high half followed by another escape, as before.
        assert_eq!(
            parse_piece(br#""\ud83d\ude00""#).unwrap().as_str(),
            Some("😀")
        );
        let odd = parse_piece(br#""\ud83d\u0041""#).unwrap();
        let chars: Vec<char> = odd.as_str().unwrap().chars().collect();
        assert_eq!(unpaired_surrogate(chars[0]), Some(0xd83d));
        assert_eq!(chars[1], 'A');
        assert_eq!(unpaired_surrogate('a'), None);
        assert_eq!(unpaired_surrogate('😀'), None);
    }

    #[test]
    fn fields_read_as_their_types_with_messages_that_say_why() {
        let v = ok(r#"{"path": "a.txt", "n": 3, "flag": true, "list": ["x", "y"], "none": null}"#);
        assert_eq!(v.required::<String>("path").unwrap(), "a.txt");
        assert_eq!(v.field::<u64>("n").unwrap(), Some(3));
        assert_eq!(v.field::<bool>("flag").unwrap(), Some(true));
        assert_eq!(v.field::<Vec<String>>("list").unwrap().unwrap(), ["x", "y"]);
        assert_eq!(v.field::<String>("none").unwrap(), None);
        assert_eq!(v.field::<String>("absent").unwrap(), None);
        let err = v.required::<String>("absent").unwrap_err();
        assert_eq!(err.to_string(), "'absent' is required");
        let err = v.field::<String>("n").unwrap_err();
        assert_eq!(err.to_string(), "'n' must be a string, not a number");
        let err = v.field::<u64>("path").unwrap_err();
        assert_eq!(
            err.to_string(),
            "'path' must be a whole number, not a string"
        );
    }

    #[test]
    fn members_know_where_their_values_are() {
        let text = b"{\n  \"max\": \"many\"\n}";
        let v = parse(text).unwrap();
        let m = v.member("max").unwrap();
        assert_eq!(position(text, m.offset), (2, 10));
    }
}
