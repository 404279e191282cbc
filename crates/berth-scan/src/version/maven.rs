//! Maven version ordering (`org.apache.maven.artifact.versioning.ComparableVersion`).
//!
//! Hand-written because the only crate implementing it (`mvn_version`) is a single unmaintained
//! 0.1 release. This follows Maven 3's algorithm: the version is split into a tree of integer,
//! string and list items at `.`, `-` and digit/letter transitions; trailing "null" items
//! (`0`, `""`, `final`, `ga`, `release`, empty lists) are dropped; well-known qualifiers order
//! `alpha < beta < milestone < rc = cr < snapshot < "" = final = ga = release < sp`, and unknown
//! qualifiers sort after all of them, lexically.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// Digits with leading zeros stripped; compared by length then lexically (arbitrary size).
    Int(String),
    /// A qualifier, already mapped to its comparable form.
    Str(String),
    List(Vec<Item>),
}

/// A parsed Maven version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MavenVersion {
    items: Vec<Item>,
}

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
const RELEASE_INDEX: &str = "5";

fn comparable_qualifier(q: &str) -> String {
    match QUALIFIERS.iter().position(|k| *k == q) {
        Some(i) => i.to_string(),
        None => format!("{}-{q}", QUALIFIERS.len()),
    }
}

fn string_item(value: &str, followed_by_digit: bool) -> Item {
    let mut v = value.to_string();
    if followed_by_digit && v.len() == 1 {
        v = match v.as_str() {
            "a" => "alpha".into(),
            "b" => "beta".into(),
            "m" => "milestone".into(),
            _ => v,
        };
    }
    let v = match v.as_str() {
        "ga" | "final" | "release" => String::new(),
        "cr" => "rc".into(),
        _ => v,
    };
    Item::Str(comparable_qualifier(&v))
}

fn int_item(digits: &str) -> Item {
    let t = digits.trim_start_matches('0');
    Item::Int(if t.is_empty() { "0".into() } else { t.into() })
}

fn parse_item(is_digit: bool, buf: &str) -> Item {
    if is_digit {
        int_item(buf)
    } else {
        string_item(buf, false)
    }
}

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Item::Int(v) => v == "0",
            Item::Str(v) => v == RELEASE_INDEX,
            Item::List(l) => l.is_empty(),
        }
    }

    fn cmp_opt(&self, other: Option<&Item>) -> Ordering {
        match (self, other) {
            (Item::Int(v), None) => {
                if v == "0" {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Item::Str(v), None) => v.as_str().cmp(RELEASE_INDEX),
            (Item::List(l), None) => {
                for i in l {
                    let r = i.cmp_opt(None);
                    if r != Ordering::Equal {
                        return r;
                    }
                }
                Ordering::Equal
            }
            (Item::Int(a), Some(Item::Int(b))) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Item::Int(_), Some(_)) => Ordering::Greater,
            (Item::Str(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::Str(a), Some(Item::Str(b))) => a.cmp(b),
            (Item::Str(_), Some(Item::List(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Str(_))) => Ordering::Greater,
            (Item::List(a), Some(Item::List(b))) => cmp_lists(a, b),
        }
    }
}

fn cmp_lists(a: &[Item], b: &[Item]) -> Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let r = match (a.get(i), b.get(i)) {
            (None, None) => Ordering::Equal,
            (None, Some(r)) => r.cmp_opt(None).reverse(),
            (Some(l), r) => l.cmp_opt(r),
        };
        if r != Ordering::Equal {
            return r;
        }
    }
    Ordering::Equal
}

fn normalize(list: &mut Vec<Item>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], Item::List(_)) {
            break;
        }
    }
}

impl MavenVersion {
    /// Parses any string; Maven accepts every version string.
    pub fn parse(version: &str) -> MavenVersion {
        let version = version.trim().to_lowercase();
        // Lists are built on an explicit stack of (items) so hostile input cannot recurse deeply.
        let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
        let bytes = version.as_bytes();
        let mut is_digit = false;
        let mut start = 0usize;
        let push_list = |stack: &mut Vec<Vec<Item>>| stack.push(Vec::new());
        for (i, &c) in bytes.iter().enumerate() {
            match c {
                b'.' => {
                    let item = if i == start { int_item("0") } else { parse_item(is_digit, &version[start..i]) };
                    stack.last_mut().expect("stack never empty").push(item);
                    start = i + 1;
                }
                b'-' => {
                    let item = if i == start { int_item("0") } else { parse_item(is_digit, &version[start..i]) };
                    stack.last_mut().expect("stack never empty").push(item);
                    start = i + 1;
                    push_list(&mut stack);
                }
                b'0'..=b'9' => {
                    if !is_digit && i > start {
                        let item = string_item(&version[start..i], true);
                        stack.last_mut().expect("stack never empty").push(item);
                        start = i;
                        push_list(&mut stack);
                    }
                    is_digit = true;
                }
                _ => {
                    if is_digit && i > start {
                        let item = parse_item(true, &version[start..i]);
                        stack.last_mut().expect("stack never empty").push(item);
                        start = i;
                        push_list(&mut stack);
                    }
                    is_digit = false;
                }
            }
        }
        if version.len() > start {
            let item = parse_item(is_digit, &version[start..]);
            stack.last_mut().expect("stack never empty").push(item);
        }
        // Fold the stack: each list is normalised, then appended to its parent.
        while stack.len() > 1 {
            let mut list = stack.pop().expect("len > 1");
            normalize(&mut list);
            stack.last_mut().expect("len >= 1").push(Item::List(list));
        }
        let mut items = stack.pop().unwrap_or_default();
        normalize(&mut items);
        MavenVersion { items }
    }
}

impl Ord for MavenVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_lists(&self.items, &other.items)
    }
}

impl PartialOrd for MavenVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
