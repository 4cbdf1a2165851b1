//! Exact SMS segment counting (GSM 03.38 and UCS-2), and the GSM-7 text that carrier
//! "smart encoding" would make of a UCS-2 message.
//!
//! GSM-7: 160 septets in one segment, 153 per segment when concatenated; the extension
//! characters (form feed, `^ { } \ [ ~ ] |` and `€`) take two septets (escape + char) and
//! an escape pair is never split across segments. UCS-2: 70 UTF-16 units, 67 when
//! concatenated; a surrogate pair (most emoji) is never split.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2) the text takes.
    pub units: usize,
    pub segments: usize,
}

const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets a character takes in GSM-7, or `None` when it is not in the alphabet.
pub fn gsm_width(c: char) -> Option<usize> {
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm_width(c).is_some())
}

/// Packs units of the given widths into segments without splitting any one of them.
fn pack(widths: impl Iterator<Item = usize>, single: usize, multi: usize) -> (usize, usize) {
    let widths: Vec<usize> = widths.collect();
    let total: usize = widths.iter().sum();
    if total == 0 {
        return (0, 0);
    }
    if total <= single {
        return (total, 1);
    }
    let (mut segments, mut used) = (1, 0);
    for w in widths {
        if used + w > multi {
            segments += 1;
            used = 0;
        }
        used += w;
    }
    (total, segments)
}

pub fn count(text: &str) -> Segments {
    if is_gsm7(text) {
        let (units, segments) = pack(text.chars().filter_map(gsm_width), 160, 153);
        Segments {
            encoding: Encoding::Gsm7,
            units,
            segments,
        }
    } else {
        let (units, segments) = pack(text.chars().map(char::len_utf16), 70, 67);
        Segments {
            encoding: Encoding::Ucs2,
            units,
            segments,
        }
    }
}

/// What smart encoding sends instead of a character, when it has a GSM-7 stand-in.
fn replacement(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}' | '\u{2032}' | '\u{2039}'
        | '\u{203a}' | '\u{ff07}' | '`' | '\u{b4}' => "'",
        '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{201f}' | '\u{2033}' | '\u{ab}' | '\u{bb}'
        | '\u{ff02}' => "\"",
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
        | '\u{2212}' | '\u{ff0d}' => "-",
        '\u{2026}' => "...",
        '\u{a0}' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\t' => " ",
        '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{ad}' => "",
        '\u{2022}' | '\u{b7}' => "-",
        '\u{2c6}' => "^",
        '\u{2dc}' => "~",
        '\u{2044}' | '\u{2215}' => "/",
        '\u{ff01}' => "!",
        '\u{ff1f}' => "?",
        '\u{ff0c}' => ",",
        '\u{ff0e}' => ".",
        '\u{ff1a}' => ":",
        '\u{ff1b}' => ";",
        _ => return None,
    })
}

/// The GSM-7 text smart encoding would send, when every non-GSM character has a stand-in;
/// `None` when the text is already GSM-7 or keeps a character only UCS-2 can carry.
pub fn gsm_suggestion(text: &str) -> Option<String> {
    if is_gsm7(text) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if gsm_width(c).is_some() {
            out.push(c);
        } else {
            out.push_str(replacement(c)?);
        }
    }
    Some(out)
}

/// The characters that force UCS-2, in order of first appearance.
pub fn non_gsm_chars(text: &str) -> Vec<char> {
    let mut seen = Vec::new();
    for c in text.chars() {
        if gsm_width(c).is_none() && !seen.contains(&c) {
            seen.push(c);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(text: &str) -> (Encoding, usize, usize) {
        let s = count(text);
        (s.encoding, s.units, s.segments)
    }

    /// Reference cases derived from GSM 03.38 / 3GPP TS 23.040 concatenation rules.
    #[test]
    fn reference_table() {
        let cases: Vec<(String, (Encoding, usize, usize))> = vec![
            ("".into(), (Encoding::Gsm7, 0, 0)),
            ("a".repeat(160), (Encoding::Gsm7, 160, 1)),
            ("a".repeat(161), (Encoding::Gsm7, 161, 2)),
            ("a".repeat(306), (Encoding::Gsm7, 306, 2)),
            ("a".repeat(307), (Encoding::Gsm7, 307, 3)),
            // Extension characters count two septets.
            ("€".repeat(80), (Encoding::Gsm7, 160, 1)),
            (format!("{}€", "a".repeat(159)), (Encoding::Gsm7, 161, 2)),
            // An escape pair is never split: 152 + € (2) does not fit 153, so it moves.
            (
                format!("{}€{}", "a".repeat(152), "a".repeat(152)),
                (Encoding::Gsm7, 306, 3),
            ),
            ("{}[]~|^\\".into(), (Encoding::Gsm7, 16, 1)),
            ("é ü Ñ ß Δ".into(), (Encoding::Gsm7, 9, 1)),
            // UCS-2.
            ("ç".repeat(70), (Encoding::Ucs2, 70, 1)),
            ("ç".repeat(71), (Encoding::Ucs2, 71, 2)),
            ("ç".repeat(134), (Encoding::Ucs2, 134, 2)),
            ("ç".repeat(135), (Encoding::Ucs2, 135, 3)),
            // An emoji is two UTF-16 units; a family emoji joined with ZWJs is eleven.
            ("😀".into(), (Encoding::Ucs2, 2, 1)),
            ("👨‍👩‍👧‍👦".into(), (Encoding::Ucs2, 11, 1)),
            ("😀".repeat(35), (Encoding::Ucs2, 70, 1)),
            ("😀".repeat(36), (Encoding::Ucs2, 72, 2)),
            // A surrogate pair is never split: 66 units + 😀 does not fit 67.
            (
                format!("{}😀{}", "ç".repeat(66), "ç".repeat(10)),
                (Encoding::Ucs2, 78, 2),
            ),
            (
                format!("{}😀{}", "ç".repeat(66), "ç".repeat(66)),
                (Encoding::Ucs2, 134, 3),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                seg(&text),
                want,
                "{} chars: {:?}…",
                text.chars().count(),
                text.chars().take(8).collect::<String>()
            );
        }
    }

    #[test]
    fn one_curly_apostrophe_turns_150_characters_into_three_segments() {
        let plain = format!("We{}re sorry we missed your call! {}", "'", "x".repeat(117));
        assert_eq!(plain.chars().count(), 150);
        assert_eq!(seg(&plain), (Encoding::Gsm7, 150, 1));
        let curly = plain.replace('\'', "\u{2019}");
        assert_eq!(seg(&curly), (Encoding::Ucs2, 150, 3));
        let fixed = gsm_suggestion(&curly).unwrap();
        assert_eq!(fixed, plain);
        assert_eq!(count(&fixed).segments, 1);
    }

    #[test]
    fn dashes_ellipses_and_invisible_characters() {
        let text = "Call us \u{2013} anytime\u{2026} \u{a0}ok\u{200b}";
        assert_eq!(count(text).encoding, Encoding::Ucs2);
        assert_eq!(gsm_suggestion(text).unwrap(), "Call us - anytime...  ok");
        assert_eq!(
            non_gsm_chars(text),
            vec!['\u{2013}', '\u{2026}', '\u{a0}', '\u{200b}']
        );
        // No GSM stand-in for an emoji: no suggestion.
        assert_eq!(gsm_suggestion("Thanks 😀"), None);
        assert_eq!(gsm_suggestion("plain"), None);
    }

    /// Random texts from a mix of basic, extension, accented, curly and emoji characters.
    fn random_text(rng: &mut fastrand::Rng) -> String {
        const POOL: &[char] = &[
            'a', 'Z', ' ', '!', '{', '€', '^', 'é', 'Ç', '\u{2019}', '\u{2013}', 'ç', '😀',
            '\u{200d}', '\n',
        ];
        let len = rng.usize(0..400);
        let ucs2 = rng.bool();
        (0..len)
            .map(|_| {
                let c = POOL[rng.usize(..POOL.len())];
                if !ucs2 && gsm_width(c).is_none() {
                    'a'
                } else {
                    c
                }
            })
            .collect()
    }

    #[test]
    fn properties_hold_for_random_texts() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..5_000 {
            let text = random_text(&mut rng);
            let s = count(&text);
            let (single, multi) = match s.encoding {
                Encoding::Gsm7 => (160, 153),
                Encoding::Ucs2 => (70, 67),
            };
            let expected_units: usize = match s.encoding {
                Encoding::Gsm7 => text.chars().filter_map(gsm_width).sum(),
                Encoding::Ucs2 => text.encode_utf16().count(),
            };
            assert_eq!(s.units, expected_units);
            if s.units <= single {
                assert_eq!(s.segments, usize::from(s.units > 0));
            } else {
                // Never fewer than a perfect packing, never more than one unit lost per segment.
                assert!(s.segments >= s.units.div_ceil(multi), "{text:?}");
                assert!(s.segments <= s.units.div_ceil(multi - 1), "{text:?}");
            }
            // Appending never lowers the count within the same encoding.
            let longer = format!("{text}a");
            let l = count(&longer);
            if l.encoding == s.encoding {
                assert!(l.segments >= s.segments);
            }
            // A suggestion is GSM-7 and never costs more segments.
            if let Some(g) = gsm_suggestion(&text) {
                assert!(is_gsm7(&g));
                assert!(count(&g).segments <= s.segments.max(1));
            }
        }
    }
}
