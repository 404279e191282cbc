//! apk-tools version ordering (Alpine).
//!
//! Hand-written because no maintained crate implements it: the crates that mention apk either
//! bind the C library or parse packages without comparing versions. This is a port of the
//! tokenizer and comparison of current apk-tools `src/version.c` (the `token_state` rewrite):
//!
//! `digit{.digit}...{letter}{_suffix{digits}}...{~hash}{-r#}`
//!
//! * numeric fields compare as numbers, except that a dotted field with a leading zero
//!   compares as a string (`8.2.0015 < 8.2.002`, as in Gentoo);
//! * pre-release suffixes `_alpha < _beta < _pre < _rc` sort before the bare release,
//!   post-release ones `_cvs < _svn < _git < _hg < _p` after it;
//! * when one version is a prefix of the other, the longer one is greater unless what follows
//!   is a pre-release suffix.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

// Suffix values; `NONE` is the pivot between pre- and post-release.
const SUFFIX_INVALID: u8 = 0;
const SUFFIX_NONE: u8 = 5;
const SUFFIXES: [(&[u8], u8); 9] =
    [(b"alpha", 1), (b"beta", 2), (b"pre", 3), (b"rc", 4), (b"cvs", 6), (b"svn", 7), (b"git", 8), (b"hg", 9), (b"p", 10)];

fn suffix_value(s: &[u8]) -> u8 {
    SUFFIXES.iter().find(|(name, _)| *name == s).map_or(SUFFIX_INVALID, |(_, v)| *v)
}

struct State<'a> {
    token: Token,
    suffix: u8,
    number: u64,
    value: &'a [u8],
}

/// Splits off the leading run of bytes matching `pred`.
fn span(b: &[u8], pred: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let n = b.iter().take_while(|c| pred(**c)).count();
    b.split_at(n)
}

fn parse_digits<'a>(t: &mut State<'a>, b: &mut &'a [u8]) {
    let (digits, rest) = span(b, |c| c.is_ascii_digit());
    t.number = digits.iter().fold(0u64, |n, d| n.wrapping_mul(10).wrapping_add(u64::from(d - b'0')));
    t.value = digits;
    *b = rest;
    if digits.is_empty() {
        t.token = Token::Invalid;
    }
}

fn first<'a>(b: &mut &'a [u8]) -> State<'a> {
    let mut t = State { token: Token::InitialDigit, suffix: SUFFIX_INVALID, number: 0, value: &[] };
    parse_digits(&mut t, b);
    t
}

fn next<'a>(t: &mut State<'a>, b: &mut &'a [u8]) {
    let Some(&c) = b.first() else {
        t.token = Token::End;
        return;
    };
    let invalid = |t: &mut State| t.token = Token::Invalid;
    match c {
        b'a'..=b'z' => {
            if t.token > Token::Digit {
                return invalid(t);
            }
            t.value = &b[..1];
            t.token = Token::Letter;
            *b = &b[1..];
        }
        b'.' | b'0'..=b'9' => {
            if c == b'.' {
                if t.token > Token::Digit {
                    return invalid(t);
                }
                *b = &b[1..];
            }
            t.token = match t.token {
                Token::InitialDigit | Token::Digit => Token::Digit,
                Token::Suffix => Token::SuffixNo,
                _ => return invalid(t),
            };
            parse_digits(t, b);
        }
        b'_' => {
            if t.token > Token::SuffixNo {
                return invalid(t);
            }
            let (name, rest) = span(&b[1..], |c| c.is_ascii_lowercase());
            *b = rest;
            t.value = name;
            t.suffix = suffix_value(name);
            if t.suffix == SUFFIX_INVALID {
                return invalid(t);
            }
            t.token = Token::Suffix;
        }
        b'~' => {
            if t.token >= Token::CommitHash {
                return invalid(t);
            }
            let (hash, rest) = span(&b[1..], |c| c.is_ascii_hexdigit());
            *b = rest;
            if hash.is_empty() {
                return invalid(t);
            }
            t.value = hash;
            t.token = Token::CommitHash;
        }
        b'-' => {
            if t.token >= Token::RevisionNo || !b.starts_with(b"-r") {
                return invalid(t);
            }
            *b = &b[2..];
            t.token = Token::RevisionNo;
            parse_digits(t, b);
        }
        _ => invalid(t),
    }
}

fn token_cmp(a: &State, b: &State) -> Ordering {
    match a.token {
        // A dotted field with a leading zero compares as a string.
        Token::Digit if a.value.first() == Some(&b'0') || b.value.first() == Some(&b'0') => a.value.cmp(b.value),
        Token::Digit | Token::InitialDigit | Token::SuffixNo | Token::RevisionNo => a.number.cmp(&b.number),
        Token::Letter => a.value.first().cmp(&b.value.first()),
        Token::Suffix => a.suffix.cmp(&b.suffix),
        _ => a.value.cmp(b.value),
    }
}

/// Whether `v` is a well-formed apk version (`apk_version_validate`).
pub(super) fn is_valid(v: &str) -> bool {
    let mut b = v.as_bytes();
    let mut t = first(&mut b);
    while t.token < Token::End {
        next(&mut t, &mut b);
    }
    t.token == Token::End
}

/// Compares two apk versions (`apk_version_compare`). Malformed input compares by its valid
/// prefix, as apk-tools does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (mut ab, mut bb) = (a.as_bytes(), b.as_bytes());
    let (mut ta, mut tb) = (first(&mut ab), first(&mut bb));
    while ta.token == tb.token && ta.token < Token::End {
        let r = token_cmp(&ta, &tb);
        if r != Ordering::Equal {
            return r;
        }
        next(&mut ta, &mut ab);
        next(&mut tb, &mut bb);
    }
    if ta.token == tb.token {
        return Ordering::Equal;
    }
    if ta.token == Token::Suffix && ta.suffix < SUFFIX_NONE {
        return Ordering::Less;
    }
    if tb.token == Token::Suffix && tb.suffix < SUFFIX_NONE {
        return Ordering::Greater;
    }
    tb.token.cmp(&ta.token)
}
