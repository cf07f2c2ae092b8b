//! Checks for text that callers send: length limits, and no characters that
//! can deceive a reader or a log (control characters, bidirectional overrides
//! and isolates, which reorder how text is shown).
//!
//! Every string field of both APIs goes through one of these, so every string
//! has a documented limit and a clear error naming the field.

/// Why a text was refused; shown to the caller next to the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TextError(String);

impl From<&str> for TextError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

/// Characters that change how surrounding text is displayed (Unicode's
/// bidirectional embeddings, overrides and isolates, and the directional
/// marks): a name or address holding one can show as something it is not.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `c` is refused in one-line text.
fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// A one-line text (a name, a title, an address): trimmed, at most `max_chars`
/// characters, without control or bidirectional-control characters.
///
/// # Errors
/// When it is too long or holds a refused character.
pub fn line(raw: &str, max_chars: usize) -> Result<String, TextError> {
    let text = raw.trim();
    check_length(text, max_chars)?;
    if let Some(c) = text.chars().find(|&c| is_unsafe(c)) {
        return Err(TextError(format!(
            "must not contain the control or text-direction character U+{:04X}",
            u32::from(c)
        )));
    }
    Ok(text.to_owned())
}

/// A multi-line text (a description, a comment): at most `max_chars`
/// characters; line breaks and tabs are allowed, other control and
/// bidirectional-control characters are not.
///
/// # Errors
/// When it is too long or holds a refused character.
pub fn block(raw: &str, max_chars: usize) -> Result<String, TextError> {
    check_length(raw, max_chars)?;
    if let Some(c) = raw
        .chars()
        .find(|&c| is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(TextError(format!(
            "must not contain the control or text-direction character U+{:04X}",
            u32::from(c)
        )));
    }
    Ok(raw.to_owned())
}

/// An opaque token or secret: 1 to `max_bytes` bytes of printable ASCII.
///
/// # Errors
/// When it is empty, too long, or not printable ASCII.
pub fn token(raw: &str, min_bytes: usize, max_bytes: usize) -> Result<String, TextError> {
    if raw.len() < min_bytes {
        return Err(TextError(format!(
            "must be at least {min_bytes} bytes long"
        )));
    }
    if raw.len() > max_bytes {
        return Err(TextError(format!("must be at most {max_bytes} bytes long")));
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TextError(
            "must be printable ASCII without spaces".to_owned(),
        ));
    }
    Ok(raw.to_owned())
}

fn check_length(text: &str, max_chars: usize) -> Result<(), TextError> {
    // Bytes first: a huge text is refused without counting its characters.
    if text.len() > max_chars * 4 || text.chars().count() > max_chars {
        return Err(TextError(format!("is longer than {max_chars} characters")));
    }
    Ok(())
}

/// A list of at most `max` items.
///
/// # Errors
/// When it has more.
pub fn count<T>(items: &[T], max: usize) -> Result<(), TextError> {
    if items.len() > max {
        return Err(TextError(format!(
            "has {} items; at most {max} are accepted",
            items.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_trimmed_bounded_and_safe() {
        let cases: &[(&str, usize, Result<&str, &str>)] = &[
            ("  Jess  ", 10, Ok("Jess")),
            ("Jéss", 4, Ok("Jéss")),
            ("Jessica", 4, Err("longer than 4")),
            ("Je\u{202E}ss", 10, Err("U+202E")),
            ("Je\u{2066}ss", 10, Err("U+2066")),
            ("Je\u{0007}ss", 10, Err("U+0007")),
            ("two\nlines", 20, Err("U+000A")),
        ];
        for (raw, max, expected) in cases {
            match (line(raw, *max), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want),
                (Err(e), Err(fragment)) => {
                    assert!(e.to_string().contains(fragment), "{raw:?}: {e}");
                }
                (got, want) => panic!("{raw:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn blocks_keep_line_breaks_but_not_direction_controls() {
        assert_eq!(block("a\n\tb\r\n", 10).as_deref(), Ok("a\n\tb\r\n"));
        assert!(block("a\u{202D}b", 10).is_err());
        assert!(block(&"x".repeat(11), 10).is_err());
    }

    #[test]
    fn tokens_and_counts_are_bounded() {
        assert!(token("0123456789abcdef", 16, 64).is_ok());
        assert!(token("short", 16, 64).is_err());
        assert!(token(&"x".repeat(65), 16, 64).is_err());
        assert!(token("0123456789 abcdef", 16, 64).is_err());
        assert!(count(&[1, 2, 3], 3).is_ok());
        assert!(count(&[1, 2, 3], 2).is_err());
    }
}
