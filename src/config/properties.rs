//! A reader for Java `.properties` text with the exact semantics of `java.util.Properties.load`.
//!
//! Owns: splitting text into logical lines (comments, blank lines, backslash continuations),
//! splitting each logical line into key and value, and unescaping both. It remembers the 1-based
//! line number where each entry starts. It knows nothing about Kafka keys.
//!
//! Java reads `.properties` streams as ISO-8859-1; Kafka's `Utils.loadProps` does the same. We take
//! `&str`, so the caller decides the decoding (see `decode_properties_bytes`).

use std::collections::BTreeMap;

/// A property file could not be read: only a malformed `\uXXXX` escape is an error in Java.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PropertiesError {
    /// 1-based line where the logical line holding the bad escape starts.
    pub line: u32,
    pub message: String,
}

/// One entry: its value and the 1-based line where the (last) definition starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyValue {
    pub value: String,
    pub line: u32,
}

/// Parsed properties. Later duplicates replace earlier ones, as `Properties.put` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    entries: BTreeMap<String, PropertyValue>,
}

impl Properties {
    pub fn parse(text: &str) -> Result<Properties, PropertiesError> {
        let mut entries = BTreeMap::new();
        for logical in LogicalLines::new(text) {
            let (key, value) = split_key_value(&logical.text);
            let key = unescape(key).map_err(|message| PropertiesError {
                line: logical.line,
                message,
            })?;
            let value = unescape(value).map_err(|message| PropertiesError {
                line: logical.line,
                message,
            })?;
            entries.insert(
                key,
                PropertyValue {
                    value,
                    line: logical.line,
                },
            );
        }
        Ok(Properties { entries })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|v| v.value.as_str())
    }

    pub fn line(&self, key: &str) -> Option<u32> {
        self.entries.get(key).map(|v| v.line)
    }

    pub fn entry(&self, key: &str) -> Option<&PropertyValue> {
        self.entries.get(key)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PropertyValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Decodes a file's bytes: UTF-8 when valid (what people write today), else ISO-8859-1 as Java
/// does, so that no file is refused for its encoding.
pub fn decode_properties_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

struct LogicalLine {
    text: String,
    line: u32,
}

/// Java's `Properties.LineReader`: yields logical lines with continuation backslashes removed
/// (other backslashes are kept for `unescape`), skipping comment and blank lines.
struct LogicalLines<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    /// 1-based number of the natural line the next char belongs to.
    line: u32,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{c}'
}

impl<'a> LogicalLines<'a> {
    fn new(text: &'a str) -> Self {
        LogicalLines {
            chars: text.chars().peekable(),
            line: 1,
        }
    }

    /// Consumes one line terminator (`\n`, `\r` or `\r\n`) whose first char is `c`.
    fn end_natural_line(&mut self, c: char) {
        if c == '\r' && self.chars.peek() == Some(&'\n') {
            self.chars.next();
        }
        self.line += 1;
    }
}

impl Iterator for LogicalLines<'_> {
    type Item = LogicalLine;

    fn next(&mut self) -> Option<LogicalLine> {
        // Skip blank lines, leading whitespace and comment lines until the first char of an entry.
        let start_line;
        loop {
            let c = *self.chars.peek()?;
            if is_blank(c) {
                self.chars.next();
            } else if c == '\n' || c == '\r' {
                self.chars.next();
                self.end_natural_line(c);
            } else if c == '#' || c == '!' {
                // A comment runs to the end of its natural line; a trailing backslash does not
                // continue it.
                while let Some(c) = self.chars.next() {
                    if c == '\n' || c == '\r' {
                        self.end_natural_line(c);
                        break;
                    }
                }
            } else {
                start_line = self.line;
                break;
            }
        }

        let mut text = String::new();
        let mut preceding_backslash = false;
        loop {
            let Some(c) = self.chars.next() else {
                // At end of input Java drops a dangling continuation backslash.
                if preceding_backslash {
                    text.pop();
                }
                break;
            };
            if c == '\n' || c == '\r' {
                self.end_natural_line(c);
                if !preceding_backslash {
                    break;
                }
                // Continuation: drop the backslash and the next line's leading whitespace.
                text.pop();
                preceding_backslash = false;
                while let Some(&n) = self.chars.peek() {
                    if is_blank(n) {
                        self.chars.next();
                    } else {
                        break;
                    }
                }
                continue;
            }
            text.push(c);
            preceding_backslash = c == '\\' && !preceding_backslash;
        }
        Some(LogicalLine {
            text,
            line: start_line,
        })
    }
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace, as Java does. Both parts
/// are still escaped.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut has_separator = false;
    let mut preceding_backslash = false;
    for (i, c) in line.char_indices() {
        if (c == '=' || c == ':') && !preceding_backslash {
            key_end = i;
            value_start = i + 1;
            has_separator = true;
            break;
        }
        if is_blank(c) && !preceding_backslash {
            key_end = i;
            value_start = i + c.len_utf8();
            break;
        }
        preceding_backslash = c == '\\' && !preceding_backslash;
    }
    let rest = &line[value_start..];
    let mut skip = 0;
    for (i, c) in rest.char_indices() {
        if is_blank(c) {
            skip = i + c.len_utf8();
        } else if !has_separator && (c == '=' || c == ':') {
            has_separator = true;
            skip = i + 1;
        } else {
            skip = i;
            break;
        }
    }
    (&line[..key_end], &rest[skip..])
}

/// Java's `loadConvert`: `\t \n \r \f`, `\uXXXX` (UTF-16 units, surrogate pairs joined) and
/// `\x` = `x` for any other `x`.
fn unescape(s: &str) -> Result<String, String> {
    if !s.contains('\\') {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut units: Vec<u16> = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            flush_units(&mut units, &mut out);
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            // Only reachable for a backslash dropped at end of input: nothing to add.
            break;
        };
        match e {
            'u' => {
                let mut v: u32 = 0;
                for _ in 0..4 {
                    let d = chars
                        .next()
                        .and_then(|h| h.to_digit(16))
                        .ok_or_else(|| "malformed \\uxxxx encoding".to_owned())?;
                    v = v * 16 + d;
                }
                // Four hex digits always fit a UTF-16 unit.
                units.push(v as u16);
                continue;
            }
            't' => {
                flush_units(&mut units, &mut out);
                out.push('\t');
            }
            'n' => {
                flush_units(&mut units, &mut out);
                out.push('\n');
            }
            'r' => {
                flush_units(&mut units, &mut out);
                out.push('\r');
            }
            'f' => {
                flush_units(&mut units, &mut out);
                out.push('\u{c}');
            }
            other => {
                flush_units(&mut units, &mut out);
                out.push(other);
            }
        }
    }
    flush_units(&mut units, &mut out);
    Ok(out)
}

/// A Java string may hold a lone surrogate; a Rust string cannot, so it becomes U+FFFD.
fn flush_units(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    out.extend(char::decode_utf16(units.drain(..)).map(|r| r.unwrap_or('\u{fffd}')));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(text: &str) -> (String, String, u32) {
        let p = Properties::parse(text).expect("parses");
        assert_eq!(p.len(), 1, "expected one entry in {text:?}: {p:?}");
        let (k, v) = p.iter().next().expect("one entry");
        (k.to_owned(), v.value.clone(), v.line)
    }

    #[test]
    fn separators_table() {
        let cases: &[(&str, &str, &str)] = &[
            ("a=b", "a", "b"),
            ("a:b", "a", "b"),
            ("a b", "a", "b"),
            ("a\tb", "a", "b"),
            ("a = b", "a", "b"),
            ("a : b", "a", "b"),
            ("a   =   b  ", "a", "b  "),
            ("a==b", "a", "=b"),
            ("a=:b", "a", ":b"),
            ("a :=b", "a", "=b"),
            ("a  b c", "a", "b c"),
            ("   a=b", "a", "b"),
            ("\t\u{c} a=b", "a", "b"),
            ("a", "a", ""),
            ("a=", "a", ""),
            ("a   ", "a", ""),
            ("=b", "", "b"),
            (":b", "", "b"),
            ("a\\=b=c", "a=b", "c"),
            ("a\\:b:c", "a:b", "c"),
            ("a\\ b c", "a b", "c"),
            ("a\\\\=b", "a\\", "b"),
            ("key=value=with=equals", "key", "value=with=equals"),
            (
                "listeners=PLAINTEXT://:9092",
                "listeners",
                "PLAINTEXT://:9092",
            ),
        ];
        for (text, key, value) in cases {
            let (k, v, line) = one(text);
            assert_eq!(
                (k.as_str(), v.as_str(), line),
                (*key, *value, 1),
                "{text:?}"
            );
        }
    }

    #[test]
    fn escapes_table() {
        let cases: &[(&str, &str)] = &[
            ("k=a\\tb", "a\tb"),
            ("k=a\\nb", "a\nb"),
            ("k=a\\rb", "a\rb"),
            ("k=a\\fb", "a\u{c}b"),
            ("k=a\\\\b", "a\\b"),
            ("k=\\u0041\\u00e9", "Aé"),
            ("k=\\uD83D\\uDE00", "😀"),
            ("k=\\q\\#\\!", "q#!"),
            ("k=C:\\\\path", "C:\\path"),
            ("k=\\ lead", " lead"),
            ("k=\\uDEAD", "\u{fffd}"),
        ];
        for (text, value) in cases {
            let (k, v, _) = one(text);
            assert_eq!((k.as_str(), v.as_str()), ("k", *value), "{text:?}");
        }
    }

    #[test]
    fn comments_and_blank_lines() {
        let text = "# comment\n! also comment\n\n   \n  # indented comment\nk=v # not a comment\n";
        let (k, v, line) = one(text);
        assert_eq!(
            (k.as_str(), v.as_str(), line),
            ("k", "v # not a comment", 6)
        );
    }

    #[test]
    fn comment_with_trailing_backslash_does_not_continue() {
        let p = Properties::parse("# comment \\\na=1\n").expect("parses");
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.line("a"), Some(2));
    }

    #[test]
    fn continuation_lines() {
        let p = Properties::parse("a=one,\\\n    two,\\\n\tthree\nb=2\n").expect("parses");
        assert_eq!(p.get("a"), Some("one,two,three"));
        assert_eq!(p.line("a"), Some(1));
        assert_eq!(p.get("b"), Some("2"));
        assert_eq!(p.line("b"), Some(4));
    }

    #[test]
    fn continuation_in_key_and_of_comment_looking_line() {
        let p = Properties::parse("long\\\n  key=v\\\n# still value\n").expect("parses");
        assert_eq!(p.get("longkey"), Some("v# still value"));
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        let p = Properties::parse("a=x\\\\\nb=y\n").expect("parses");
        assert_eq!(p.get("a"), Some("x\\"));
        assert_eq!(p.get("b"), Some("y"));
    }

    #[test]
    fn continuation_onto_blank_line_ends_the_entry() {
        let p = Properties::parse("a=x\\\n\nb=y").expect("parses");
        assert_eq!(p.get("a"), Some("x"));
        assert_eq!(p.get("b"), Some("y"));
        assert_eq!(p.line("b"), Some(3));
    }

    #[test]
    fn dangling_backslash_at_eof_is_dropped() {
        let (_, v, _) = one("a=x\\");
        assert_eq!(v, "x");
    }

    #[test]
    fn crlf_and_cr_line_endings_count_lines() {
        let p = Properties::parse("a=1\r\nb=2\rc=3\n\r\nd=4").expect("parses");
        assert_eq!(p.line("a"), Some(1));
        assert_eq!(p.line("b"), Some(2));
        assert_eq!(p.line("c"), Some(3));
        assert_eq!(p.line("d"), Some(5));
        assert_eq!(p.get("d"), Some("4"));
    }

    #[test]
    fn later_duplicate_wins_and_keeps_its_line() {
        let p = Properties::parse("a=1\nb=2\na=3\n").expect("parses");
        assert_eq!(p.get("a"), Some("3"));
        assert_eq!(p.line("a"), Some(3));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn malformed_unicode_escape_names_the_line() {
        for text in ["ok=1\nbad=\\u12G4\n", "ok=1\nbad=\\u12", "ok=1\nb\\uXYZW=1"] {
            let err = Properties::parse(text).expect_err("must fail");
            assert_eq!(err.line, 2, "{text:?}");
            assert!(err.to_string().starts_with("line 2: malformed"), "{err}");
        }
    }

    #[test]
    fn latin1_fallback_for_invalid_utf8() {
        assert_eq!(decode_properties_bytes(b"k=caf\xe9"), "k=café");
        assert_eq!(decode_properties_bytes("k=café".as_bytes()), "k=café");
    }

    /// Escapes like `Properties.store` does, so that any string round-trips.
    fn store_escape(s: &str, is_key: bool) -> String {
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            match c {
                ' ' if i == 0 || is_key => out.push_str("\\ "),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\u{c}' => out.push_str("\\f"),
                '=' | ':' | '#' | '!' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
                c => out.push(c),
            }
        }
        out
    }

    proptest! {
        #[test]
        fn store_then_load_round_trips(
            entries in proptest::collection::btree_map(any::<String>(), any::<String>(), 0..8),
            noise in proptest::collection::vec(0u8..4, 0..8),
        ) {
            let mut text = String::new();
            let mut line = 1u32;
            let mut expected_lines = BTreeMap::new();
            for (i, (k, v)) in entries.iter().enumerate() {
                match noise.get(i).copied().unwrap_or(0) {
                    1 => { text.push_str("# comment = x\n"); line += 1; }
                    2 => { text.push_str("   \n\n"); line += 2; }
                    3 => { text.push_str("! bang\r\n"); line += 1; }
                    _ => {}
                }
                expected_lines.insert(k.clone(), line);
                text.push_str(&store_escape(k, true));
                text.push('=');
                text.push_str(&store_escape(v, false));
                text.push('\n');
                line += 1;
            }
            let parsed = Properties::parse(&text).expect("stored text parses");
            prop_assert_eq!(parsed.len(), entries.len());
            for (k, v) in &entries {
                let got = parsed.entry(k).expect("key present");
                prop_assert_eq!(&got.value, v);
                prop_assert_eq!(Some(&got.line), expected_lines.get(k));
            }
        }

        #[test]
        fn continuation_split_anywhere_in_value(value in "[a-z0-9,.]{0,30}", cut in 0usize..31, indent in "[ \t]{0,4}") {
            let cut = cut.min(value.len());
            let text = format!("k={}\\\n{}{}\nafter=1\n", &value[..cut], indent, &value[cut..]);
            let parsed = Properties::parse(&text).expect("parses");
            prop_assert_eq!(parsed.get("k"), Some(value.as_str()));
            prop_assert_eq!(parsed.line("after"), Some(3));
        }

        #[test]
        fn never_panics(text in any::<String>()) {
            let _ = Properties::parse(&text);
        }
    }
}
