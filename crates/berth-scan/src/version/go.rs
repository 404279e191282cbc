//! Go version spellings.
//!
//! Hand-written because `semver` (rightly) rejects Go's spellings: the `v` prefix of module
//! versions, the `+incompatible` marker (which Go ignores when ordering), Go toolchain versions
//! (`go1.21.3`, `go1.22rc1`, `go1.20`) used for the `stdlib` package, and the `v1.2` shorthand.
//! Once spelled as SemVer, pseudo-versions (`v0.0.0-20220314234659-1baeb1ce4c0b`,
//! `v1.2.4-0.20191109021931-daa7c04131f5`) order correctly by SemVer pre-release precedence,
//! because their timestamps are fixed-width.

/// Normalises a Go module or toolchain version to SemVer; `None` if it is not one.
pub fn normalize(s: &str) -> Option<semver::Version> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("go") {
        return toolchain(rest);
    }
    let s = s.strip_prefix('v').unwrap_or(s);
    let s = s.strip_suffix("+incompatible").unwrap_or(s);
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    // Shorthand `1` / `1.2` (OSV's `introduced: "0"` included).
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() < 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        let mut padded = parts.join(".");
        for _ in parts.len()..3 {
            padded.push_str(".0");
        }
        return semver::Version::parse(&padded).ok();
    }
    None
}

/// `1.21.3`, `1.21`, `1.21rc2`, `1.21beta1`, `1.21.0 X:boringcrypto`.
fn toolchain(rest: &str) -> Option<semver::Version> {
    let rest = rest.split([' ', '-']).next().unwrap_or(rest);
    let split = rest.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(rest.len());
    let (release, pre) = rest.split_at(split);
    let mut nums: Vec<u64> = Vec::new();
    for part in release.split('.') {
        nums.push(part.parse().ok()?);
    }
    if nums.is_empty() || nums.len() > 3 {
        return None;
    }
    nums.resize(3, 0);
    let mut v = semver::Version::new(nums[0], nums[1], nums[2]);
    if !pre.is_empty() {
        let kind: String = pre.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        let num = &pre[kind.len()..];
        let pre = if num.is_empty() { kind } else { format!("{kind}.{num}") };
        v.pre = semver::Prerelease::new(&pre).ok()?;
    }
    Some(v)
}
